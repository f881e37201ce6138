"""The checks of ``seatgate doctor kerberos``: each says what it found and what to fix.

In order: the keytab (readable, holds the service principal, which key
versions and encryption types), the acceptor credentials the web gate
builds from it, the realms, the service host's DNS (it resolves; its
canonical and reverse names, which browsers may use to name the service),
the clock against the KDC (Kerberos refuses tickets across more than five
minutes of skew) and, when the operator has a ticket (``kinit``), a real
ticket for the service accepted with the keytab -- the proof that the
keytab's key is the one the KDC has now.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

import gssapi
from gssapi.raw.misc import GSSError

from seatgate.config.kerberos import KerberosConfig

from .kerberos import _reason
from .kerberos_wire import (
    KDC_PORT,
    STRONG_ENCTYPES,
    KeytabEntry,
    KeytabError,
    kdc_time,
    kdcs_of,
    read_keytab,
)

# Kerberos' default tolerance (clockskew = 300 s in MIT krb5 and AD).
MAX_SKEW_SECONDS = 300
WARN_SKEW_SECONDS = 60


@dataclass(frozen=True)
class Check:
    """One finding: ``status`` is ok, warn, fail or skip; ``fix`` says what to do."""

    name: str
    status: str
    detail: str
    fix: str | None = None

    def as_dict(self) -> dict[str, str | None]:
        return asdict(self)


def run_checks(config: KerberosConfig, kdc: str | None = None) -> list[Check]:
    """Every check, in order; ``kdc``: ``host[:port]`` to ask instead of krb5.conf's."""
    checks = [_keytab(config), _acceptor(config), _realms(config), *_dns(config)]
    checks.append(_clock(config, kdc))
    checks.append(_end_to_end(config))
    return checks


def _keytab(config: KerberosConfig) -> Check:
    try:
        entries = read_keytab(config.keytab)
    except (OSError, KeytabError) as exc:
        return Check("keytab", "fail", f"cannot read {config.keytab}: {exc}", _EXPORT)
    mine = [e for e in entries if e.principal == config.service_principal]
    if not mine:
        held = sorted({e.principal for e in entries}) or ["nothing"]
        return Check(
            "keytab",
            "fail",
            f"{config.keytab} holds no key for {config.service_principal} "
            f"(it holds {', '.join(held)})",
            f"set web.kerberos.service_principal to the principal exported, or {_EXPORT}",
        )
    return _keys(config, mine)


def _keys(config: KerberosConfig, mine: list[KeytabEntry]) -> Check:
    newest = max(entry.kvno for entry in mine)
    current = [e for e in mine if e.kvno == newest]
    names = ", ".join(sorted({e.enctype_name for e in current}))
    detail = f"{config.service_principal}: key version {newest} ({names})"
    if not any(e.enctype in STRONG_ENCTYPES for e in current):
        return Check(
            "keytab",
            "warn",
            detail + "; no AES key",
            "enable AES for the service account (msDS-SupportedEncryptionTypes) and re-export",
        )
    return Check("keytab", "ok", detail)


def _acceptor(config: KerberosConfig) -> Check:
    name = gssapi.Name(config.service_principal, gssapi.NameType.kerberos_principal)
    try:
        gssapi.Credentials(name=name, usage="accept", store={"keytab": str(config.keytab)})
    except GSSError as exc:
        return Check("acceptor", "fail", _reason(exc), _EXPORT)
    return Check("acceptor", "ok", "the web gate can accept tickets with this keytab")


def _realms(config: KerberosConfig) -> Check:
    odd = [realm for realm in config.realms if realm != realm.upper()]
    detail = f"users of {', '.join(config.realms)} may sign in"
    if odd:
        return Check(
            "realms",
            "warn",
            detail + f"; {', '.join(odd)} is not upper case, as AD realms are",
            "write realms as the domain's Kerberos realm (upper case)",
        )
    if not config.realm_accepted(config.service_realm):
        return Check(
            "realms",
            "warn",
            detail + f"; not the service's own realm {config.service_realm}",
            "list the service's realm in web.kerberos.realms unless users come only by trust",
        )
    return Check("realms", "ok", detail)


def _dns(config: KerberosConfig) -> list[Check]:
    host = config.service_host
    try:
        canonical, _aliases, addresses = socket.gethostbyname_ex(host)
    except OSError as exc:
        return [
            Check(
                "dns",
                "fail",
                f"{host} does not resolve ({exc})",
                f"add an A record for {host}: browsers ask for a ticket for the name they use",
            )
        ]
    checks = [Check("dns", "ok", f"{host} resolves to {', '.join(addresses)}")]
    if canonical.rstrip(".").lower() != host.lower():
        checks.append(
            Check(
                "dns",
                "warn",
                f"{host} is an alias (CNAME) of {canonical}: Windows and Chrome ask for "
                f"HTTP/{canonical}",
                f"use an A record for {host}, or add the SPN HTTP/{canonical} to the "
                "service account and its key to the keytab",
            )
        )
    for address in addresses:
        try:
            reverse = socket.gethostbyaddr(address)[0]
        except OSError:
            reverse = None
        if reverse is not None and reverse.rstrip(".").lower() != host.lower():
            checks.append(
                Check(
                    "dns",
                    "warn",
                    f"{address} reverses to {reverse}, not {host}: clients with rdns = true "
                    f"ask for HTTP/{reverse}",
                    f"make the PTR record of {address} name {host}, or set rdns = false",
                )
            )
    return checks


def _clock(config: KerberosConfig, kdc: str | None) -> Check:
    targets = [_host_port(kdc)] if kdc else kdcs_of(config.service_realm)
    targets = targets or [(config.service_realm.lower(), KDC_PORT)]
    errors = []
    for host, port in targets:
        try:
            theirs = kdc_time(host, port, config.service_principal)
        except OSError as exc:
            errors.append(f"{host}:{port}: {exc}")
            continue
        skew = (datetime.now(UTC) - theirs).total_seconds()
        detail = f"this host is {abs(skew):.0f} s {'ahead of' if skew > 0 else 'behind'} the KDC"
        detail += f" {host}:{port}"
        if abs(skew) > MAX_SKEW_SECONDS:
            return Check("clock", "fail", detail, _NTP)
        if abs(skew) > WARN_SKEW_SECONDS:
            return Check("clock", "warn", detail, _NTP)
        return Check("clock", "ok", detail)
    return Check(
        "clock",
        "fail",
        "no KDC answered: " + "; ".join(errors),
        "name the KDC in krb5.conf ([realms]) or with --kdc HOST, and let this host reach "
        "its port 88",
    )


def _end_to_end(config: KerberosConfig) -> Check:
    target = gssapi.Name(config.service_principal, gssapi.NameType.kerberos_principal)
    try:
        mine = gssapi.Credentials(usage="initiate")
        user = str(mine.name)
    except GSSError:
        return Check(
            "ticket",
            "skip",
            "no ticket of yours to test with",
            "kinit as any domain user and run this again to test the keytab end to end",
        )
    accept = _step(
        lambda: gssapi.Credentials(
            name=target, usage="accept", store={"keytab": str(config.keytab)}
        ),
    )
    try:
        client = gssapi.SecurityContext(name=target, creds=mine, usage="initiate")
        token = client.step()
    except GSSError as exc:
        return Check(
            "ticket",
            "fail",
            f"the KDC gave {user} no ticket for {config.service_principal}: {_reason(exc)}",
            f"register the SPN: setspn -S {config.service_principal.rsplit('@', 1)[0]} "
            "<service account>",
        )
    if isinstance(accept, Check):
        return accept
    try:
        server = gssapi.SecurityContext(creds=accept, usage="accept")
        server.step(token)
        complete = server.complete
    except GSSError as exc:
        return Check(
            "ticket",
            "fail",
            f"the keytab cannot read the KDC's ticket: {_reason(exc)}",
            "the service account's key changed since the export: " + _EXPORT,
        )
    if not complete:
        return Check("ticket", "fail", "the ticket needs another round trip", _EXPORT)
    return Check("ticket", "ok", f"a ticket of {user} for the service was accepted")


def _step(build: Callable[[], gssapi.Credentials]) -> gssapi.Credentials | Check:
    try:
        return build()
    except GSSError as exc:
        return Check("ticket", "skip", f"no acceptor credentials: {_reason(exc)}", _EXPORT)


def _host_port(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    if host and port.isdigit():
        return host, int(port)
    return value, KDC_PORT


_EXPORT = (
    "export the service account's keys again (ktpass /princ HTTP/host@REALM ... /out, or "
    "samba-tool domain exportkeytab --principal=HTTP/host) and install the file"
)
_NTP = "synchronise this host's clock with the domain (NTP against a domain controller)"
