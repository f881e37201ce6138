"""The cells of an account CSV file: each column's parser, and a row's record made in one go."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from typing import Any

from seatgate.accounts.logins import MAX_LOGIN_LENGTH, display_login, login_key
from seatgate.accounts.passwords import is_argon2_hash
from seatgate.accounts.service import MAX_EMAIL_LENGTH, MAX_NAME_LENGTH, validate_email
from seatgate.errors import AccountError, InvalidLogin, shorten
from seatgate.imports import FIELDS, AccountRecord

TRUE_WORDS = frozenset({"yes", "true", "1", "sí", "si"})
FALSE_WORDS = frozenset({"no", "false", "0"})
# The spellings nearly every file uses, answered without normalising the cell.
_EXACT_WORDS = {word: True for word in TRUE_WORDS} | {word: False for word in FALSE_WORDS}
MAX_HASH_LENGTH = 512
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")  # Unicode category Cc


def parse_login(value: str) -> tuple[str, str]:
    if value.isascii():
        # What display_login and login_key give a good ASCII login (NFC and NFKC leave
        # it as it is); anything else takes the full path, with its errors.
        shown = value.strip()
        if shown and len(shown) <= MAX_LOGIN_LENGTH and shown.isprintable():
            return shown, shown.lower()
    if not value.strip():
        raise AccountError("login is missing")
    key = login_key(value)  # InvalidLogin is an AccountError
    shown = display_login(value)
    if len(shown) > MAX_LOGIN_LENGTH:
        raise InvalidLogin(value, f"it is longer than {MAX_LOGIN_LENGTH} characters")
    return shown, key


def _name(value: str) -> str | None:
    # Line breaks typed into a spreadsheet cell (Alt+Enter) become spaces.
    name = " ".join(value.split())
    if len(name) > MAX_NAME_LENGTH:
        raise AccountError(f"name is longer than {MAX_NAME_LENGTH} characters")
    if not name.isprintable() and _CONTROL.search(name):  # every Cc is unprintable
        raise AccountError(f"name `{shorten(name)}` contains control characters")
    return name or None


def _boolean(value: str, column: str, *, default: bool) -> bool:
    exact = _EXACT_WORDS.get(value)
    if exact is not None:
        return exact
    word = unicodedata.normalize("NFC", value).strip().casefold()
    if not word:
        return default
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise AccountError(f"{column} is `{shorten(value)}`; write yes/no, true/false, 1/0 or sí/no")


def _password_hash(value: str) -> str | None:
    value = value.strip()
    if not value:
        return None  # keep the account's password as it is
    if len(value) > MAX_HASH_LENGTH:
        raise AccountError(f"password_hash is longer than {MAX_HASH_LENGTH} characters")
    if not is_argon2_hash(value):
        raise AccountError("password_hash is not an argon2id hash (`$argon2id$...`)")
    return value


def _admin(value: str) -> bool:
    exact = _EXACT_WORDS.get(value)
    return _boolean(value, "admin", default=False) if exact is None else exact


def _active(value: str) -> bool:
    exact = _EXACT_WORDS.get(value)
    return _boolean(value, "active", default=True) if exact is None else exact


# Each column's parser (raising AccountError) and its value when the column is absent.
PARSERS: dict[str, Callable[[str], Any]] = {
    "login": parse_login,
    "name": _name,
    "email": validate_email,
    "admin": _admin,
    "active": _active,
    "password_hash": _password_hash,
}
DEFAULTS: dict[str, Any] = {
    "name": None,
    "email": None,
    "admin": False,
    "active": True,
    "password_hash": None,
}


def _constant(field: str) -> Callable[[str], Any]:
    """A parser that ignores its cell: the value of ``field`` when the file has no such column."""
    value = DEFAULTS[field]
    return lambda _cell: value


def plain_email(value: str) -> bool:
    """Whether ``value`` is an address :func:`validate_email` returns as it is, told cheaply.

    ASCII, printable and without spaces (so without any whitespace: the other
    ASCII whitespace is unprintable), at most :data:`MAX_EMAIL_LENGTH` long,
    one ``@`` after something, and a ``.`` inside what follows it: what the
    address pattern accepts with nothing to strip. False only means "ask
    :func:`validate_email`".
    """
    local, at, domain = value.partition("@")
    return (
        bool(local and at)
        and "." in domain[1:-1]
        and "@" not in domain
        and value.isascii()
        and value.isprintable()
        and " " not in value
        and len(value) <= MAX_EMAIL_LENGTH
    )


Maker = Callable[[int, list[str]], AccountRecord]


def row_maker(columns: list[str | None]) -> Maker:
    """The record of a full row (line, cells) of a file with ``columns``, made in one go.

    Raises :class:`AccountError` when a cell is bad (the caller then parses the
    row cell by cell, to give every reason). For the usual header (login, name,
    email, admin, active) each cell's common case is checked inline, without a
    call per cell; any other cell goes to its parser.
    """
    where = {column: index for index, column in enumerate(columns) if column}
    if set(where) != {"login", "name", "email", "admin", "active"}:
        return _any_maker(where)
    login_at, name_at, email_at = where["login"], where["name"], where["email"]
    admin_at, active_at = where["admin"], where["active"]
    record, exact = tuple.__new__, _EXACT_WORDS.get

    def make(line: int, cells: list[str]) -> AccountRecord:
        value = cells[login_at]
        login = value.strip()
        if value.isascii() and login and len(login) <= MAX_LOGIN_LENGTH and login.isprintable():
            key = login.lower()  # what parse_login gives a good ASCII login
        else:
            login, key = parse_login(value)
        value = cells[name_at]
        name: str | None = " ".join(value.split())
        if not (name and len(name) <= MAX_NAME_LENGTH and name.isprintable()):
            name = _name(value)  # else what _name gives a good name
        value = cells[email_at]
        email = value if plain_email(value) else validate_email(value)
        admin = exact(cells[admin_at])
        if admin is None:
            admin = _admin(cells[admin_at])
        active = exact(cells[active_at])
        if active is None:
            active = _active(cells[active_at])
        return record(AccountRecord, (line, login, key, name, email, admin, active, None))

    return make


def _any_maker(where: dict[str, int]) -> Maker:
    """:func:`row_maker` for any header: every field through its parser, or its default."""
    login_at = where["login"]
    (n_at, name), (e_at, email), (a_at, admin), (ac_at, active), (h_at, hashed) = [
        (where[field], PARSERS[field]) if field in where else (login_at, _constant(field))
        for field in FIELDS
    ]
    record = tuple.__new__

    def make(line: int, cells: list[str]) -> AccountRecord:
        login, key = parse_login(cells[login_at])
        return record(
            AccountRecord,
            (
                line,
                login,
                key,
                name(cells[n_at]),
                email(cells[e_at]),
                admin(cells[a_at]),
                active(cells[ac_at]),
                hashed(cells[h_at]),
            ),
        )

    return make
