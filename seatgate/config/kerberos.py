"""``web.kerberos``: Windows-integrated sign-on (Kerberos over SPNEGO) at ``/login/negotiate``.

The gate accepts a browser's Kerberos ticket for ``service_principal``
(``HTTP/host@REALM``) with the keys in ``keytab``, maps the ticket's
principal to a directory account, and admits it through the same seat
decision as a password login. Only principals of the ``realms`` listed are
accepted. Clients whose address is in ``auto_networks`` are sent to the
negotiate door by ``GET /login`` without asking; everyone else sees the
password form and may still use ``/login/negotiate``.
"""

from __future__ import annotations

import ipaddress
import os
import re
from dataclasses import dataclass
from pathlib import Path

from seatgate.config.parse import Section
from seatgate.errors import ConfigError

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
# service/host@REALM: the service and host name parts have no '@' or '/'.
_SERVICE_PRINCIPAL = re.compile(r"\A([A-Za-z][A-Za-z0-9-]*)/([A-Za-z0-9.-]+)@([^@/\s]+)\Z")
_REALM = re.compile(r"\A[^@/\s]+\Z")


@dataclass(frozen=True)
class KerberosConfig:
    """The acceptor's keytab and principal, the realms accepted, where to try it unasked."""

    keytab: Path
    service_principal: str
    realms: tuple[str, ...]
    auto_networks: tuple[Network, ...] = ()

    @property
    def service_host(self) -> str:
        """The host name part of the service principal (``intranet.example.com``)."""
        return self.service_principal.split("/", 1)[1].rsplit("@", 1)[0]

    @property
    def service_realm(self) -> str:
        """The realm of the service principal."""
        return self.service_principal.rsplit("@", 1)[1]

    def realm_accepted(self, realm: str) -> bool:
        """Whether a principal of ``realm`` may sign in (realms compare case-insensitively)."""
        return realm.casefold() in {accepted.casefold() for accepted in self.realms}

    def automatic_for(self, address: str | None) -> bool:
        """Whether ``GET /login`` tries Kerberos without asking for a client at ``address``."""
        if address is None or not self.auto_networks:
            return False
        try:
            client = ipaddress.ip_address(address.split("%", 1)[0])
        except ValueError:
            return False
        return any(client in network for network in self.auto_networks)


def parse_kerberos(section: Section, base_dir: Path) -> KerberosConfig:
    """Validate ``web.kerberos``. Raises :class:`ConfigError` naming the key."""
    keytab = _keytab(section, base_dir)
    principal = section.string("service_principal", required=True)
    match = _SERVICE_PRINCIPAL.match(principal)
    if match is None:
        raise ConfigError(
            "web.kerberos.service_principal",
            f"{principal!r} is not of the form HTTP/host.name@REALM",
        )
    realms = tuple(section.string_list("realms")) or (match.group(3),)
    for realm in realms:
        if not _REALM.match(realm):
            raise ConfigError("web.kerberos.realms", f"{realm!r} is not a realm name")
    networks = tuple(_network(text) for text in section.string_list("auto_networks"))
    config = KerberosConfig(
        keytab=keytab, service_principal=principal, realms=realms, auto_networks=networks
    )
    section.reject_unknown()
    return config


def _keytab(section: Section, base_dir: Path) -> Path:
    if section.data.get("keytab") is None:
        raise ConfigError("web.kerberos.keytab", "is required: the service's keytab file")
    path = section.path("keytab", base_dir)
    assert path is not None  # noqa: S101 - checked just above
    try:
        with path.open("rb") as file:
            file.read(1)
    except OSError as exc:
        raise ConfigError(
            "web.kerberos.keytab",
            f"cannot read {path} as uid {os.geteuid()} ({exc.strerror}); let the service read it",
        ) from None
    return path


def _network(text: str) -> Network:
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise ConfigError(
            "web.kerberos.auto_networks", f"{text!r} is not an address or network (CIDR)"
        ) from None
