"""``web.trusted_identity``: a proxy in front that authenticates users and names them.

Apache ``mod_auth_gssapi``, a SAML service provider or an OIDC proxy
authenticates the user and passes the login on in a header. The gate takes
that header only from the proxy: the request's socket peer (never
``X-Forwarded-For``, which a client writes) must be in ``from``, and the
request must carry the shared secret (``secret_header``, whose value is the
environment variable ``secret_env``). A header from anywhere else is ignored.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
import re
from dataclasses import dataclass

from seatgate.config.parse import Section
from seatgate.errors import ConfigError

# The name of an environment variable, not a secret.
DEFAULT_SECRET_ENV = "SEATGATE_UPSTREAM_SECRET"  # noqa: S105
DEFAULT_SECRET_HEADER = "X-Seatgate-Proxy-Secret"  # noqa: S105
SECRET_MIN_BYTES = 32
_HEADER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{0,63}$")
# Headers a client or the gate itself sets: never an identity.
_RESERVED = frozenset(
    name.lower()
    for name in (
        "Authorization",
        "Cookie",
        "Host",
        "X-Forwarded-For",
        "X-Real-IP",
        "Forwarded",
        "X-Seatgate-User",
        "X-Seatgate-Groups",
    )
)

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class TrustedIdentityConfig:
    """Which header names the user, which proxies may send it, and their shared secret."""

    header: str
    networks: tuple[Network, ...]
    secret_env: str = DEFAULT_SECRET_ENV
    secret_header: str = DEFAULT_SECRET_HEADER

    def secret(self) -> bytes:
        """The shared secret, from the environment.

        Raises :class:`ConfigError` when the variable is unset or shorter
        than 32 bytes: the web gate then refuses to start.
        """
        value = os.environ.get(self.secret_env, "").strip().encode("utf-8")
        if len(value) < SECRET_MIN_BYTES:
            raise ConfigError(
                "web.trusted_identity.secret_env",
                f"environment variable {self.secret_env} is unset or shorter than "
                f"{SECRET_MIN_BYTES} bytes; it must hold the secret the proxy sends",
            )
        return value

    def from_proxy(self, peer: str | None, given_secret: str | None, secret: bytes) -> bool:
        """Whether a request from socket peer ``peer`` carrying ``given_secret`` is the proxy's."""
        if peer is None or given_secret is None:
            return False
        try:
            address = ipaddress.ip_address(peer.split("%", 1)[0])
        except ValueError:
            return False
        if not any(address in network for network in self.networks):
            return False
        # Compared in constant time: the secret is the proxy's password.
        return hmac.compare_digest(given_secret.strip().encode("utf-8", "replace"), secret)


def parse_trusted_identity(section: Section) -> TrustedIdentityConfig:
    """Validate ``web.trusted_identity``. Raises :class:`ConfigError`."""
    header = _header(section, "header", None)
    secret_header = _header(section, "secret_header", DEFAULT_SECRET_HEADER)
    if header.lower() == secret_header.lower():
        raise ConfigError(
            "web.trusted_identity.secret_header", "must differ from the identity header"
        )
    networks = tuple(_network(text) for text in section.string_list("from"))
    if not networks:
        raise ConfigError(
            "web.trusted_identity.from", "list the proxy addresses (CIDR) the header may come from"
        )
    config = TrustedIdentityConfig(
        header=header,
        networks=networks,
        secret_env=section.string("secret_env", DEFAULT_SECRET_ENV),
        secret_header=secret_header,
    )
    section.reject_unknown()
    return config


def _header(section: Section, key: str, default: str | None) -> str:
    name = section.string(key, default or "", required=default is None)
    if not _HEADER_NAME.match(name):
        raise ConfigError(f"web.trusted_identity.{key}", f"{name!r} is not a header name")
    if name.lower() in _RESERVED:
        raise ConfigError(
            f"web.trusted_identity.{key}", f"{name} is set by clients or by the gate itself"
        )
    return name


def _network(text: str) -> Network:
    try:
        network = ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise ConfigError(
            "web.trusted_identity.from", f"{text!r} is not an address or network (CIDR)"
        ) from None
    if network.prefixlen == 0:
        raise ConfigError(
            "web.trusted_identity.from",
            f"{text} trusts every address: list only the proxies' own addresses",
        )
    return network
