"""The ``notify:`` section: where alerts go (webhooks, email) and in which language.

Secrets are never in the file: each webhook names the environment variable
holding its signing secret, and the SMTP password is named the same way.
They are read when a notification is sent, with an error naming the key.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from seatgate.config.parse import Section
from seatgate.errors import ConfigError

SECRET_MIN_BYTES = 32
Security = Literal["starttls", "tls", "none"]
_DEFAULT_PORTS = {"starttls": 587, "tls": 465, "none": 25}
_ADDRESS = re.compile(r"^[^@\s<>,;]+@[^@\s<>,;]+\.[^@\s<>,;]+$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class WebhookConfig:
    """One webhook: events are POSTed as JSON, signed with HMAC-SHA256."""

    url: str
    secret_env: str
    key: str
    """The configuration key, for errors (``notify.webhooks[0]``)."""

    @property
    def channel(self) -> str:
        """The channel name deliveries are kept under: ``webhook:ORIGIN#HASH``.

        Not the URL itself: many receivers (chat webhooks, for one) carry
        their secret in the path or the query, and the channel name is
        stored in the database and printed by ``notify list``. The origin
        says where it goes; a hash of the whole URL keeps two hooks on one
        host apart and stays the same while the URL does.
        """
        parts = urlsplit(self.url)
        origin = f"{parts.scheme}://{parts.hostname or ''}"
        if parts.port is not None:
            origin += f":{parts.port}"
        digest = hashlib.sha256(self.url.encode("utf-8")).hexdigest()[:12]
        return f"webhook:{origin}#{digest}"

    def secret(self) -> bytes:
        """The signing secret, from the environment; :class:`ConfigError` when unset or short."""
        return _secret(self.secret_env, f"{self.key}.secret_env", "the webhook signing secret")


@dataclass(frozen=True)
class EmailConfig:
    """SMTP delivery to the admins' addresses and the listed ones."""

    host: str
    port: int
    security: Security
    sender: str
    to: tuple[str, ...]
    to_admins: bool
    username: str | None
    password_env: str | None
    ca_file: Path | None
    timeout_seconds: int

    def password(self) -> str | None:
        """The SMTP password from the environment, None without a username."""
        if self.username is None or self.password_env is None:
            return None
        value = os.environ.get(self.password_env, "")
        if not value:
            raise ConfigError(
                "notify.email.password_env",
                f"environment variable {self.password_env} is unset or empty; "
                "it must hold the SMTP password",
            )
        return value


@dataclass(frozen=True)
class NotifyConfig:
    """The ``notify:`` section."""

    language: Literal["en", "es"] = "en"
    webhooks: tuple[WebhookConfig, ...] = ()
    email: EmailConfig | None = None

    @property
    def channels(self) -> tuple[str, ...]:
        """Every configured channel's name."""
        names = [hook.channel for hook in self.webhooks]
        return (*names, "email") if self.email is not None else tuple(names)


def parse_notify(section: Section, base_dir: Path) -> NotifyConfig:
    """Validate the ``notify:`` section. Raises :class:`ConfigError` naming the key."""
    language = section.choice("language", "en", ("en", "es"))
    webhooks = tuple(_webhook(raw, f"notify.webhooks[{n}]") for n, raw in _list(section))
    if len({hook.url for hook in webhooks}) != len(webhooks):
        raise ConfigError("notify.webhooks", "lists the same URL twice")
    email = _email(section.section("email"), base_dir) if section.data.get("email") else None
    section.reject_unknown()
    if not webhooks and email is None:
        raise ConfigError("notify", "needs `webhooks`, `email` or both (or `notify: null`)")
    return NotifyConfig("es" if language == "es" else "en", webhooks, email)


def _list(section: Section) -> list[tuple[int, object]]:
    raw = section.raw("webhooks")
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise ConfigError("notify.webhooks", "must be a list of {url, secret_env} mappings")
    return list(enumerate(raw))


def _webhook(raw: object, key: str) -> WebhookConfig:
    section = Section(raw, key)
    url = section.string("url", required=True)
    if not re.match(r"^https?://[^/\s]+", url):
        raise ConfigError(f"{key}.url", f"must be an http:// or https:// URL, not {url!r}")
    secret_env = section.string("secret_env", required=True)
    if not _ENV_NAME.match(secret_env):
        raise ConfigError(f"{key}.secret_env", "must name an environment variable")
    section.reject_unknown()
    return WebhookConfig(url=url, secret_env=secret_env, key=key)


def _email(section: Section, base_dir: Path) -> EmailConfig:
    security = section.choice("security", "starttls", ("starttls", "tls", "none"))
    sender = section.string("from", required=True)
    to = tuple(section.string_list("to"))
    for n, address in enumerate((sender, *to)):
        if not _ADDRESS.match(address):
            name = "notify.email.from" if n == 0 else f"notify.email.to[{n - 1}]"
            raise ConfigError(name, f"{address!r} is not an email address")
    to_admins = section.boolean("to_admins", True)
    if not to and not to_admins:
        raise ConfigError("notify.email.to", "is empty and to_admins is false: nobody to mail")
    username = section.string("username", "") or None
    password_env = section.string("password_env", "") or None
    if (username is None) != (password_env is None):
        raise ConfigError("notify.email.password_env", "username and password_env go together")
    if username is not None and security == "none":
        raise ConfigError("notify.email.security", "`none` would send the SMTP password in clear")
    email = EmailConfig(
        host=section.string("host", required=True),
        port=section.integer("port", _DEFAULT_PORTS[security], minimum=1, maximum=65535),
        security="tls" if security == "tls" else "none" if security == "none" else "starttls",
        sender=sender,
        to=to,
        to_admins=to_admins,
        username=username,
        password_env=password_env,
        ca_file=section.path("ca_file", base_dir),
        timeout_seconds=section.integer("timeout_seconds", 30, minimum=1, maximum=600),
    )
    section.reject_unknown()
    return email


def _secret(env: str, key: str, what: str) -> bytes:
    value = os.environ.get(env, "").strip().encode("utf-8")
    if len(value) < SECRET_MIN_BYTES:
        raise ConfigError(
            key,
            f"environment variable {env} is unset or shorter than {SECRET_MIN_BYTES} bytes; "
            f"it must hold {what}",
        )
    return value
