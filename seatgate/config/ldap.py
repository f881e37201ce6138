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
    urls: tuple[str, ...] = ()
    """Every server in order (``ldap.urls``); empty: ``url`` alone."""
    server_down_seconds: int = 60
    upn_suffixes: tuple[str, ...] | None = None
    """None: the DNS domain of base_dn's DC= parts."""
    netbios_domain: str | None = None
    """None: base_dn's first DC= part in capitals; "": no down-level form."""

    @property
    def server_urls(self) -> tuple[str, ...]:
        """The directory servers to try, in order."""
        return self.urls or (self.url,)

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
    urls = _server_urls(section)
    start_tls = section.boolean("start_tls", False)
    insecure = section.boolean("insecure", False)
    for key, url in urls:
        _check_transport(key, url, start_tls=start_tls, insecure=insecure)
    preset = section.choice("preset", "ad", ("ad", "openldap"))
    default_filter, defaults = PRESETS[preset]
    attributes = _attribute_map(section.section("attributes"), defaults)
    user_filter = section.string("user_filter", default_filter)
    if not (user_filter.startswith("(") and user_filter.endswith(")")):
        raise ConfigError("ldap.user_filter", "must be an LDAP filter in parentheses")
    base_dn = section.string("base_dn", required=True)
    config = LdapConfig(
        url=urls[0][1],
        urls=tuple(url for _, url in urls) if len(urls) > 1 else (),
        server_down_seconds=section.integer(
            "server_down_seconds", 60, minimum=0, maximum=24 * 3600
        ),
        base_dn=base_dn,
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
        upn_suffixes=_upn_suffixes(section),
        netbios_domain=_netbios_domain(section),
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


def _server_urls(section: Section) -> list[tuple[str, str]]:
    """``ldap.url`` (one server) or ``ldap.urls`` (several, in order), as (key, URL) pairs."""
    if "url" in section.data and "urls" in section.data:
        raise ConfigError(
            "ldap.urls", "give either ldap.url (one server) or ldap.urls (several), not both"
        )
    if "urls" not in section.data:
        return [("ldap.url", section.string("url", required=True))]
    urls = section.string_list("urls")
    if not urls:
        raise ConfigError("ldap.urls", "must list at least one server URL")
    seen: set[str] = set()
    for index, url in enumerate(urls):
        if url.lower().rstrip("/") in seen:
            raise ConfigError(f"ldap.urls[{index}]", f"{url!r} is listed twice")
        seen.add(url.lower().rstrip("/"))
    return [(f"ldap.urls[{index}]", url) for index, url in enumerate(urls)]


def _check_transport(key: str, url: str, *, start_tls: bool, insecure: bool) -> None:
    """Every server gets the same protection: TLS (ldaps:// or StartTLS) unless insecure."""
    scheme = url.split("://", 1)[0].lower()
    if scheme not in ("ldap", "ldaps") or "://" not in url:
        raise ConfigError(key, f"must start with ldaps:// or ldap://, not {url!r}")
    if scheme == "ldaps" and start_tls:
        raise ConfigError(
            "ldap.start_tls", f"StartTLS is for ldap:// URLs; {url} is TLS already ({key})"
        )
    if scheme == "ldap" and not start_tls and not insecure:
        raise ConfigError(
            key,
            "plain ldap:// sends passwords in clear text: use ldaps://, or set "
            "start_tls: true, or (labs only) insecure: true",
        )


def _upn_suffixes(section: Section) -> tuple[str, ...] | None:
    if "upn_suffixes" not in section.data:
        section.seen.add("upn_suffixes")
        return None
    suffixes = section.string_list("upn_suffixes")
    for index, suffix in enumerate(suffixes):
        if any(ch in suffix for ch in "@\\ "):
            raise ConfigError(
                f"ldap.upn_suffixes[{index}]",
                f"must be a domain such as corp.example (no @, \\ or spaces), not {suffix!r}",
            )
    return tuple(suffixes)


def _netbios_domain(section: Section) -> str | None:
    """The configured NetBIOS domain; None: derive it from base_dn; "": no down-level form."""
    if section.data.get("netbios_domain") == "":
        section.seen.add("netbios_domain")
        return ""
    name = section.string("netbios_domain", "") or None
    # NetBIOS names: at most 15 characters, none of \ / : * ? " < > | . or spaces.
    if name is not None and (len(name) > 15 or any(ch in '\\/:*?"<>|. ' for ch in name)):
        raise ConfigError(
            "ldap.netbios_domain",
            f"must be a NetBIOS domain name such as CORP (up to 15 characters), not {name!r}",
        )
    return name


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
