"""Configuration: one YAML file, validated completely at start-up.

Defaults live here and only here. A bad value raises :class:`ConfigError`
naming the key, so a broken configuration fails when the service starts,
never at the first login.
"""

from __future__ import annotations

import logging
import os
import re
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import yaml
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from seatgate.config.kerberos import KerberosConfig, parse_kerberos
from seatgate.config.ldap import LdapConfig, parse_ldap
from seatgate.config.notify import NotifyConfig, parse_notify
from seatgate.config.parse import Section
from seatgate.config.seats import SeatsConfig, parse_seats
from seatgate.config.upstream import TrustedIdentityConfig, parse_trusted_identity
from seatgate.errors import ConfigError

log = logging.getLogger(__name__)

DEFAULT_CONFIG_FILE = "seatgate.yaml"
DEFAULT_DATABASE_URL = "sqlite:///seatgate.db"
DEFAULT_ISSUER = "seatgate-vendor"
AUDIT_KEY_MIN_BYTES = 32
KID_PATTERN = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9._-]{0,63}\Z")


@dataclass(frozen=True)
class HashParameters:
    """The ``passwords:`` section: argon2id cost parameters.

    The defaults are argon2-cffi's RFC 9106 low-memory profile.
    """

    time_cost: int = 3
    memory_cost_kib: int = 65536
    parallelism: int = 4


@dataclass(frozen=True)
class LicenseConfig:
    """How licence tokens are verified."""

    issuer: str = DEFAULT_ISSUER
    public_keys: Mapping[str, Ed25519PublicKey] = field(default_factory=dict)
    leeway_seconds: int = 60


@dataclass(frozen=True)
class WebConfig:
    """The web gate (Flask extension, pages, JSON API, forward-auth)."""

    # The name of an environment variable; unset: a key generated once and
    # kept in the database, so every web node of the installation shares it.
    secret_key_env: str = "SEATGATE_SECRET_KEY"  # noqa: S105
    secure_cookies: bool = True
    trusted_proxies: int = 0
    language: Literal["auto", "es", "en"] = "auto"
    remember_me: bool = False
    session_hours: int = 12
    # Failed logins tolerated per 15 minutes: per login and client address,
    # per client address (an office behind one NAT counts only its failures),
    # and per login from addresses where it never logged in successfully.
    max_failures_per_login_and_address: int = 5
    max_failures_per_address: int = 100
    max_failures_per_login: int = 30
    # ... and per browser with a device cookie from an earlier successful
    # login, which the three limits above do not lock out.
    max_failures_per_device: int = 3
    # Password verifications at once per web process (each takes the argon2
    # memory cost); beyond it a login is answered 429 at once. 0: sized to
    # the memory available at start-up (see seatgate.gate.slots).
    max_concurrent_verifications: int = 0
    # Serve Prometheus metrics at GET /metrics. With a token variable named,
    # requests must carry `Authorization: Bearer <its value>`.
    metrics: bool = False
    metrics_token_env: str | None = None
    # The largest request body the gate reads; larger ones get 413 before
    # they are read. Above the licence-token field limit (64 KiB) plus the
    # JSON around it; the login forms need a few hundred bytes.
    max_body_bytes: int = 128 * 1024
    # Strict-Transport-Security max-age while secure_cookies is on (0: no header).
    hsts_max_age: int = 31_536_000
    # A proxy in front that authenticates users and names them in a header
    # (seatgate.config.upstream); None: no such door.
    trusted_identity: TrustedIdentityConfig | None = None
    # Kerberos (SPNEGO) sign-on at /login/negotiate (seatgate.config.kerberos);
    # None: no such door.
    kerberos: KerberosConfig | None = None


@dataclass(frozen=True)
class AuditConfig:
    """The ``audit:`` section: the key of a keyed (HMAC) audit chain."""

    # The name of an environment variable holding the key (at least 32
    # bytes); None: the chain is plain SHA-256.
    key_env: str | None = None

    def key(self) -> bytes | None:
        """The chain key from the environment, or None when no ``key_env`` is set.

        Raises :class:`ConfigError` when the variable is unset or shorter
        than 32 bytes (UTF-8): a weak key would make the HMAC a formality.
        """
        if self.key_env is None:
            return None
        value = os.environ.get(self.key_env, "").encode("utf-8")
        if len(value) < AUDIT_KEY_MIN_BYTES:
            raise ConfigError(
                "audit.key_env",
                f"environment variable {self.key_env} is unset or shorter than "
                f"{AUDIT_KEY_MIN_BYTES} bytes; it must hold the audit chain key",
            )
        return value


@dataclass(frozen=True)
class Config:
    """A complete, validated seatgate configuration."""

    installation_id: str
    database_url: str = DEFAULT_DATABASE_URL
    license: LicenseConfig = field(default_factory=LicenseConfig)
    seats: SeatsConfig = field(default_factory=SeatsConfig)
    passwords: HashParameters = field(default_factory=HashParameters)
    ldap: LdapConfig | None = None
    web: WebConfig = field(default_factory=WebConfig)
    audit: AuditConfig = field(default_factory=AuditConfig)
    # Where alerts are delivered (seatgate.config.notify); None: kept in the outbox only.
    notify: NotifyConfig | None = None
    source: Path | None = None


def load_config(path: str | Path) -> Config:
    """Read and validate the YAML configuration at ``path``.

    Relative paths inside it (the SQLite file, key files) are relative to
    the file's folder. Raises :class:`ConfigError`.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            "--config", f"file {path} does not exist (see config.example.yaml)"
        ) from None
    except OSError as exc:
        raise ConfigError("--config", f"cannot read {path}: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError("--config", f"{path} is not valid YAML: {exc}") from None
    if data is None:
        data = {}
    config = config_from_mapping(data, base_dir=path.resolve().parent)
    _warn_if_secrets_readable(path, config)
    return Config(**{**config.__dict__, "source": path.resolve()})


def _warn_if_secrets_readable(path: Path, config: Config) -> None:
    """Warn when the file holds a secret inline and its group or others may read it.

    Every other secret is named by an environment variable; the database URL
    is the one value that can carry a password inline.
    """
    if not re.match(r"^[^:/]+://[^/@]*:[^/@]*@", config.database_url):
        return
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except OSError:
        return
    if mode & 0o077:
        log.warning(
            "configuration file %s holds a secret (the password in database_url) but its "
            "mode is %04o: group or others may read it; chmod 600 it, or pass the password "
            "another way (a .pgpass file)",
            path,
            mode,
        )


def config_from_mapping(data: object, base_dir: Path) -> Config:
    """Validate a parsed configuration mapping. Raises :class:`ConfigError`."""
    top = Section(data, "")
    installation_id = top.string("installation_id", required=True)
    database_url = _database_url(top.string("database_url", DEFAULT_DATABASE_URL), base_dir)

    lic = top.section("license")
    license_config = LicenseConfig(
        issuer=lic.string("issuer", DEFAULT_ISSUER),
        public_keys=_public_keys(lic.mapping("public_keys"), base_dir),
        leeway_seconds=lic.integer("leeway_seconds", 60, minimum=0, maximum=3600),
    )
    lic.reject_unknown()

    seats_config = parse_seats(top.section("seats"))

    pw = top.section("passwords")
    defaults = HashParameters()
    passwords = HashParameters(
        time_cost=pw.integer("argon2_time_cost", defaults.time_cost, minimum=1, maximum=100),
        memory_cost_kib=pw.integer(
            "argon2_memory_kib", defaults.memory_cost_kib, minimum=8, maximum=4 * 1024 * 1024
        ),
        parallelism=pw.integer("argon2_parallelism", defaults.parallelism, minimum=1, maximum=64),
    )
    if passwords.memory_cost_kib < 8 * passwords.parallelism:
        raise ConfigError(
            "passwords.argon2_memory_kib", "must be at least 8 times passwords.argon2_parallelism"
        )
    pw.reject_unknown()
    ldap = parse_ldap(top.section("ldap"), base_dir) if top.data.get("ldap") is not None else None
    web = _web(top.section("web"), base_dir)
    audit_section = top.section("audit")
    audit = AuditConfig(key_env=audit_section.string("key_env", "") or None)
    audit_section.reject_unknown()
    notify = None
    if top.data.get("notify") is not None:
        notify = parse_notify(top.section("notify"), base_dir)
    else:
        top.section("notify")
    top.reject_unknown()

    return Config(
        installation_id=installation_id,
        database_url=database_url,
        license=license_config,
        seats=seats_config,
        passwords=passwords,
        ldap=ldap,
        web=web,
        audit=audit,
        notify=notify,
    )


def _web(section: Section, base_dir: Path) -> WebConfig:
    defaults = WebConfig()
    language = section.choice("language", defaults.language, ("auto", "es", "en"))
    web = WebConfig(
        secret_key_env=section.string("secret_key_env", defaults.secret_key_env),
        secure_cookies=section.boolean("secure_cookies", defaults.secure_cookies),
        trusted_proxies=section.integer("trusted_proxies", 0, minimum=0, maximum=10),
        language="es" if language == "es" else "en" if language == "en" else "auto",
        remember_me=section.boolean("remember_me", defaults.remember_me),
        session_hours=section.integer(
            "session_hours", defaults.session_hours, minimum=1, maximum=24 * 30
        ),
        max_failures_per_login_and_address=section.integer(
            "max_failures_per_login_and_address",
            defaults.max_failures_per_login_and_address,
            minimum=1,
            maximum=10_000,
        ),
        max_failures_per_address=section.integer(
            "max_failures_per_address",
            defaults.max_failures_per_address,
            minimum=1,
            maximum=100_000,
        ),
        max_failures_per_login=section.integer(
            "max_failures_per_login", defaults.max_failures_per_login, minimum=1, maximum=100_000
        ),
        max_failures_per_device=section.integer(
            "max_failures_per_device", defaults.max_failures_per_device, minimum=1, maximum=1000
        ),
        max_concurrent_verifications=section.integer(
            "max_concurrent_verifications",
            defaults.max_concurrent_verifications,
            minimum=0,
            maximum=1024,
        ),
        metrics=section.boolean("metrics", defaults.metrics),
        # Read at start-up by the web gate, which refuses to start when the
        # variable is unset or empty: an open endpoint must be chosen, not fallen into.
        metrics_token_env=section.string("metrics_token_env", "") or None,
        max_body_bytes=section.integer(
            "max_body_bytes", defaults.max_body_bytes, minimum=4096, maximum=64 * 1024 * 1024
        ),
        hsts_max_age=section.integer(
            "hsts_max_age", defaults.hsts_max_age, minimum=0, maximum=2 * 31_536_000
        ),
        trusted_identity=_trusted_identity(section),
        kerberos=_kerberos(section, base_dir),
    )
    section.reject_unknown()
    return web


def _trusted_identity(web: Section) -> TrustedIdentityConfig | None:
    # `trusted_identity: null` (as the example has it) is no door, like no key.
    absent = web.data.get("trusted_identity") is None
    section = web.section("trusted_identity")
    return None if absent else parse_trusted_identity(section)


def _kerberos(web: Section, base_dir: Path) -> KerberosConfig | None:
    # `kerberos: null` (as the example has it) is no door, like no key.
    absent = web.data.get("kerberos") is None
    section = web.section("kerberos")
    return None if absent else parse_kerberos(section, base_dir)


def _database_url(url: str, base_dir: Path) -> str:
    if not re.match(r"^(sqlite|postgresql)(\+\w+)?://", url):
        raise ConfigError(
            "database_url",
            f"`{url.split('://', maxsplit=1)[0]}` is not supported; use sqlite:///FILE or "
            "postgresql+psycopg://USER@HOST/DB",
        )
    if url.startswith("postgresql://"):
        # SQLAlchemy's default PostgreSQL driver is psycopg2; seatgate ships psycopg 3.
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    if url.startswith("sqlite"):
        prefix, _, rest = url.partition(":///")
        if not rest or rest == ":memory:":
            raise ConfigError(
                "database_url",
                "an in-memory SQLite database would lose every seat at exit; name a file",
            )
        db_path = Path(rest)
        if not db_path.is_absolute():
            url = f"{prefix}:///{(base_dir / db_path).resolve()}"
    return url


def _public_keys(raw: Mapping[str, object], base_dir: Path) -> dict[str, Ed25519PublicKey]:
    keys: dict[str, Ed25519PublicKey] = {}
    for kid, value in raw.items():
        key_name = f"license.public_keys.{kid}"
        if not isinstance(kid, str) or not KID_PATTERN.match(kid):
            raise ConfigError(key_name, "a key id is 1-64 letters, digits, `.`, `_` or `-`")
        if not isinstance(value, str) or not value.strip():
            raise ConfigError(key_name, "must be PEM text or the path of a PEM file")
        if "-----BEGIN" in value:
            pem = value.encode()
        else:
            key_path = base_dir / value
            try:
                pem = key_path.read_bytes()
            except OSError as exc:
                raise ConfigError(key_name, f"cannot read {key_path}: {exc.strerror}") from None
        try:
            key = load_pem_public_key(pem)
        except (ValueError, UnsupportedAlgorithm):
            raise ConfigError(key_name, "is not a PEM public key seatgate can read") from None
        if not isinstance(key, Ed25519PublicKey):
            raise ConfigError(key_name, "is not an Ed25519 public key; licences are EdDSA-signed")
        keys[kid] = key
    return keys
