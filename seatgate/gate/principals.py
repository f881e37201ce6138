"""From a Kerberos principal to a directory account, then through the shared seat decision.

A ticket the web gate accepted names a principal, ``alice@CORP.EXAMPLE``
(or, for an enterprise name, ``alice\\@corp.example@CORP.EXAMPLE``). It
stands for a directory account only:

- its realm must be one the installation lists (compared case-insensitively);
- it must name a user: one name part, no ``service/host`` principal;
- the account is a directory (``ldap``) account whose login is the user
  principal name (``alice@corp.example``, when the directory sync uses
  ``userPrincipalName`` as the login, or the enterprise name) or the
  ``sAMAccountName`` (``alice``, the AD preset's login).

A local or CSV account of the same name is never signed in this way: its
owner proved nothing to the KDC. Every refusal is audited like any other
login, with method ``kerberos`` and the full principal as the login given.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import Connection

from seatgate.accounts.logins import login_key
from seatgate.errors import InvalidLogin
from seatgate.gate.admission import refused_as
from seatgate.gate.decision import LoginGate
from seatgate.gate.outcome import Decision, Method
from seatgate.gate.refusals import RefusalKind
from seatgate.records import Account


def split_principal(principal: str) -> tuple[str, str] | None:
    """``(name, realm)`` of a user principal's display form; None when it names no user.

    The realm is after the last unescaped ``@``; ``\\@`` inside the name
    (an enterprise name) is an ``@`` of the name. A name with an unescaped
    ``/`` has several parts (a service), which is no user.
    """
    name: list[str] = []
    at: int | None = None
    escaped = False
    for index, char in enumerate(principal):
        if escaped:
            name.append(char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == "/":
            return None
        elif char == "@":
            at = index
            break
        else:
            name.append(char)
    if at is None or escaped:
        return None
    realm = principal[at + 1 :]
    user = "".join(name)
    if not user or not realm or "@" in realm or "/" in realm:
        return None
    return user, realm


def candidate_logins(name: str, realm: str) -> tuple[str, ...]:
    """The logins a directory account of this principal may have, most specific first."""
    if "@" in name:
        return (name,)  # an enterprise name is the user principal name itself
    return (f"{name}@{realm}", name)


def admit_principal(
    gate: LoginGate, principal: str, *, realms: Iterable[str], address: str | None
) -> Decision:
    """The seat decision for the user a Kerberos ticket names, or why the principal is refused."""
    split = split_principal(principal)
    accepted = {realm.casefold() for realm in realms}
    if split is None:
        return _unknown(gate, principal, address, "not a user principal")
    name, realm = split
    if realm.casefold() not in accepted:
        return _unknown(gate, principal, address, f"realm {realm} is not accepted")
    account = gate.db.read(lambda conn: _directory_account(gate, conn, name, realm))
    if account is None:
        return _unknown(gate, principal, address, "no directory account")
    return gate.admit_authenticated(account.login, method=Method.KERBEROS, address=address)


def _directory_account(gate: LoginGate, conn: Connection, name: str, realm: str) -> Account | None:
    for login in candidate_logins(name, realm):
        try:
            login_key(login)
        except InvalidLogin:
            continue
        account = gate.accounts.find_in(conn, login)
        if account is not None and account.source == "ldap":
            return account
    return None


def _unknown(gate: LoginGate, principal: str, address: str | None, detail: str) -> Decision:
    refused = refused_as(RefusalKind.INVALID_CREDENTIALS, None, detail)
    return gate.seats.refuse(principal, address, Method.KERBEROS, refused)
