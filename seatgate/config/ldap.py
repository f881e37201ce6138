"""The ``ldap:`` section of the configuration, with the AD and OpenLDAP presets."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

from seatgate.config.parse import Section
from seatgate.errors import ConfigError

log = logging.getLogger(__name__)

Preset = Literal["ad", "openldap"]
SeatGroupsMode = Literal["grant", "exclusive"]
# The name of an environment variable, not a secret.
DEFAULT_PASSWORD_ENV = "SEATGATE_LDAP_PASSWORD"  # noqa: S105


@dataclass(frozen=True)
class AttributeMap:
    """Which directory attribute holds each account field."""

    login: str
    name: str
    email: str
    groups: str
    id: str
    changed: str


PRESETS: dict[str, tuple[str, AttributeMap]] = {
    "ad": (
        "(&(objectCategory=person)(objectClass=user))",
        AttributeMap(
            login="sAMAccountName",
            name="displayName",
            email="mail",
            groups="memberOf",
            id="objectGUID",
            changed="uSNChanged",
        ),
    ),
    "openldap": (
        "(objectClass=inetOrgPerson)",
        AttributeMap(
            login="uid",
            name="cn",
            email="mail",
            groups="memberOf",
            id="entryUUID",
            changed="modifyTimestamp",
        ),
    ),
}


@dataclass(frozen=True)
class LdapConfig:
    """How to reach the directory and map its entries to accounts."""

    url: str
    base_dn: str
    bind_dn: str
    bind_password_env: str = DEFAULT_PASSWORD_ENV
    start_tls: bool = False
    ca_file: Path | None = None
    insecure: bool = False
    preset: Preset = "ad"
    user_filter: str = PRESETS["ad"][0]
    attributes: AttributeMap = field(default_factory=lambda: PRESETS["ad"][1])
    disabled_attribute: str | None = None
    disabled_values: tuple[str, ...] = ()
    page_size: int = 500
    timeout_seconds: int = 10
    max_disable_ratio: float = 0.10
    max_disable_count: int = 500
    seat_groups: tuple[str, ...] = ()
    seat_groups_mode: SeatGroupsMode = "grant"
    nested_groups: bool = False
    admin_groups: tuple[str, ...] = ()
    group_base_dn: str | None = None

    def bind_password(self) -> str:
        """The service account's secret, from the environment.

        Raises :class:`ConfigError` when it is unset or empty: an empty
        secret would be an anonymous bind that "succeeds".
        """
        secret = os.environ.get(self.bind_password_env, "")
        if not secret.strip():
            raise ConfigError(
                "ldap.bind_password_env",
                f"environment variable {self.bind_password_env} is unset or empty; "
                "it must hold the service account's password",
            )
        return secret

    @property
    def is_ad(self) -> bool:
        return self.preset == "ad"


def parse_ldap(section: Section, base_dir: Path) -> LdapConfig:
    """Validate the ``ldap:`` section. Raises :class:`ConfigError`."""
    url = section.string("url", required=True)
    scheme = url.split("://", 1)[0].lower()
    if scheme not in ("ldap", "ldaps"):
        raise ConfigError("ldap.url", f"must start with ldaps:// or ldap://, not {url!r}")
    start_tls = section.boolean("start_tls", False)
    insecure = section.boolean("insecure", False)
    if scheme == "ldaps" and start_tls:
        raise ConfigError("ldap.start_tls", "StartTLS is for ldap:// URLs; ldaps:// is TLS already")
    if scheme == "ldap" and not start_tls and not insecure:
        raise ConfigError(
            "ldap.url",
            "plain ldap:// sends passwords in clear text: use ldaps://, or set "
            "start_tls: true, or (labs only) insecure: true",
        )
    preset = section.choice("preset", "ad", ("ad", "openldap"))
    default_filter, defaults = PRESETS[preset]
    attributes = _attribute_map(section.section("attributes"), defaults)
    user_filter = section.string("user_filter", default_filter)
    if not (user_filter.startswith("(") and user_filter.endswith(")")):
        raise ConfigError("ldap.user_filter", "must be an LDAP filter in parentheses")
    config = LdapConfig(
        url=url,
        base_dn=section.string("base_dn", required=True),
        bind_dn=section.string("bind_dn", required=True),
        bind_password_env=section.string("bind_password_env", DEFAULT_PASSWORD_ENV),
        start_tls=start_tls,
        ca_file=section.path("ca_file", base_dir),
        insecure=insecure,
        preset="openldap" if preset == "openldap" else "ad",
        user_filter=user_filter,
        attributes=attributes,
        disabled_attribute=section.string("disabled_attribute", "") or None,
        disabled_values=tuple(section.string_list("disabled_values")),
        page_size=section.integer("page_size", 500, minimum=1, maximum=1000),
        timeout_seconds=section.integer("timeout_seconds", 10, minimum=1, maximum=300),
        max_disable_ratio=section.number("max_disable_ratio", 0.10, minimum=0.0, maximum=1.0),
        max_disable_count=section.integer("max_disable_count", 500, minimum=0, maximum=10**7),
        seat_groups=tuple(section.string_list("seat_groups")),
    )
    config = _with_group_options(config, section)
    section.reject_unknown()
    if config.seat_groups_mode == "exclusive" and not config.seat_groups:
        raise ConfigError(
            "ldap.seat_groups_mode",
            "exclusive needs ldap.seat_groups: without a seat group every directory "
            "account would lose its seat",
        )
    return config


def _with_group_options(config: LdapConfig, section: Section) -> LdapConfig:
    """``seat_groups_mode``, ``nested_groups``, ``admin_groups`` and ``group_base_dn``."""
    mode = section.choice("seat_groups_mode", "grant", ("grant", "exclusive"))
    return replace(
        config,
        seat_groups_mode="exclusive" if mode == "exclusive" else "grant",
        nested_groups=section.boolean("nested_groups", False),
        admin_groups=tuple(section.string_list("admin_groups")),
        group_base_dn=section.string("group_base_dn", "") or None,
    )


# Keys an older release accepted and this one ignores, with why: a file that
# still has one keeps working (with a warning) instead of failing to start.
RETIRED_ATTRIBUTES = {
    "bind_name": "directory logins bind with the entry's DN; this attribute was never used",
}


def _attribute_map(attrs: Section, defaults: AttributeMap) -> AttributeMap:
    """The ``ldap.attributes`` overrides on top of the preset's map."""
    for key, why in RETIRED_ATTRIBUTES.items():
        if key in attrs.data:
            attrs.seen.add(key)
            log.warning(
                "configuration key `ldap.attributes.%s` is no longer used (%s); "
                "remove it from the configuration file",
                key,
                why,
            )
    attributes = AttributeMap(
        login=attrs.string("login", defaults.login),
        name=attrs.string("name", defaults.name),
        email=attrs.string("email", defaults.email),
        groups=attrs.string("groups", defaults.groups),
        id=attrs.string("id", defaults.id),
        changed=attrs.string("changed", defaults.changed),
    )
    attrs.reject_unknown()
    return attributes
