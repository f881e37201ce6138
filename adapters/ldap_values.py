"""ldap3 plumbing: attribute values, AD's ranged values and bind answers, decoy binds, closing."""

from __future__ import annotations

import contextlib
import re
import secrets
import socket
from ipaddress import ip_address

import ldap3
from ldap3.core.exceptions import LDAPException

from seatgate.errors import DirectorySearchIncomplete

SUCCESS = 0
RANGE = re.compile(r"^(?P<name>[^;]+);range=(?P<low>\d+)-(?P<high>\d+|\*)$", re.IGNORECASE)
# AD's sub-codes in an invalidCredentials message ("... data 533, ...") that
# mean "right password, but this account may not log in".
AD_BLOCKED = {
    "530": "logon not permitted at this time",
    "531": "logon not permitted from this workstation",
    "532": "the password has expired",
    "533": "the account is disabled",
    "701": "the account has expired",
    "773": "the password must be changed",
}
# 775 (locked out) is answered whatever the password: telling it would show a
# guesser that the account exists, so it is a plain failed login.
AD_DATA = re.compile(r"\bdata ([0-9a-f]{3,4})\b", re.IGNORECASE)


def complete_ranges(
    conn: ldap3.Connection, dn: str, raw: dict[str, list[bytes]]
) -> dict[str, list[bytes]]:
    """Lower-case attribute names, and fetch the rest of AD's ranged values.

    AD returns at most 1,500 values of a multi-valued attribute at once, as
    ``member;range=0-1499``; the rest must be asked for by range.
    """
    complete: dict[str, list[bytes]] = {}
    for name, values in raw.items():
        # Only a name with options can be ranged: most names skip the regex.
        match = RANGE.match(name) if ";" in name else None
        if not match:
            complete[name.lower()] = list(values)
            continue
        base = match.group("name")
        collected = list(values)
        high = match.group("high")
        while high != "*":
            start = int(high) + 1
            conn.search(dn, "(objectClass=*)", ldap3.BASE, attributes=[f"{base};range={start}-*"])
            result = conn.result or {}
            if result.get("result") != SUCCESS:
                raise DirectorySearchIncomplete(
                    f"reading {base} of {dn} by range stopped: {result.get('description')}"
                )
            high = "*"
            for item in conn.response or []:
                for key, more in (item.get("raw_attributes") or {}).items():
                    again = RANGE.match(key)
                    if again and again.group("name").lower() == base.lower():
                        collected.extend(more)
                        high = again.group("high")
        complete[base.lower()] = collected
    return complete


def is_ip(host: str) -> bool:
    try:
        ip_address(host)
    except ValueError:
        return False
    return True


def close_quietly(conn: ldap3.Connection) -> None:
    """Close a connection that failed half-way (its socket may already be gone)."""
    with contextlib.suppress(LDAPException, OSError):
        conn.unbind()


def send_at_once(conn: ldap3.Connection) -> None:
    """Turn Nagle's algorithm off on an opened connection's socket.

    With it on, the request that follows the StartTLS handshake (the bind)
    waited for the server's delayed acknowledgement: 40 ms on every
    connection, half the time of an incremental sync. A socket that is not
    TCP (or is already gone) is left as it is.
    """
    sock = getattr(conn, "socket", None)
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def as_text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def first_text(values: list[bytes] | None) -> str | None:
    if not values:
        return None
    value = as_text(values[0]).strip()
    return value or None


def brief(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def decoy_credentials(base_dn: str) -> tuple[str, str]:
    """A DN no entry has (under ``base_dn``) and a random password, for a decoy bind.

    Binding as a name that does not exist locks no account out, and the
    password is never one a user typed (that is not the directory's to see).
    """
    return f"cn=seatgate-decoy-{secrets.token_hex(8)},{base_dn}", secrets.token_urlsafe(24)
