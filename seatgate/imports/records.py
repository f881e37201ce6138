"""The records an account import works with, and the report it gives."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple, Protocol

from sqlalchemy import (
    ARRAY,
    ColumnElement,
    Connection,
    CursorResult,
    Select,
    String,
    any_,
    bindparam,
    column,
    func,
    select,
)

from seatgate.errors import shorten
from seatgate.storage.schema import accounts

# Columns a source may set besides the login; a column the source lacks is
# left as it is on existing accounts.
Field = Literal["name", "email", "admin", "active", "password_hash"]
FIELDS: tuple[Field, ...] = ("name", "email", "admin", "active", "password_hash")


class AccountRecord(NamedTuple):
    """One valid row of a source: an account as the file wants it.

    A named tuple (an import makes two of them per row: reading, then applying),
    whose fields are in the order the check stages them.
    """

    line: int
    login: str
    """The display form (:func:`seatgate.accounts.logins.display_login`)."""
    key: str
    """The login key (:func:`seatgate.accounts.logins.login_key`)."""
    display_name: str | None = None
    email: str | None = None
    is_admin: bool = False
    active: bool = True
    password_hash: str | None = None
    """An argon2id hash, or None to keep the account's password as it is."""


@dataclass(frozen=True, slots=True)
class RowProblem:
    """A row that cannot be imported, and why."""

    line: int
    reason: str


class AccountSource(Protocol):
    """Rows of accounts (a CSV file)."""

    name: str
    fields: frozenset[Field]

    def rows(self) -> Iterator[AccountRecord | RowProblem]:
        """Every data row, in file order.

        Raises :class:`~seatgate.errors.ImportRejected` when the source cannot be read as a
        whole (for example, it changed while it was being read).
        """
        ...


ChangeKind = Literal["create", "update", "enable", "disable"]


@dataclass(frozen=True, slots=True)
class Change:
    """One account an import creates or changes (for dry-run listings)."""

    kind: ChangeKind
    login: str
    fields: tuple[str, ...] = ()
    seat_freed: bool = False


class ChangeJournal(Protocol):
    """Receives each change as it is made inside the import transaction."""

    def restart(self) -> None:
        """Forget what was added: the transaction is starting (again, after a retry)."""
        ...

    def add(self, change: Change) -> None:
        """Note one change."""
        ...


@dataclass
class ImportReport:
    """What an import did or, in a dry run, would do."""

    dry_run: bool
    created: int = 0
    updated: int = 0
    disabled: int = 0
    unchanged: int = 0
    seats_freed: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """The summary fields of ``seatgate accounts import-csv --json``."""
        return {
            "created": self.created,
            "updated": self.updated,
            "disabled": self.disabled,
            "unchanged": self.unchanged,
            "seats_freed": self.seats_freed,
            "dry_run": self.dry_run,
        }


def directory_reason(login: str) -> str:
    """Why a row naming a directory account is refused."""
    return (
        f"login `{shorten(login)}` belongs to the directory (an LDAP account, kept up to date "
        "by `seatgate sync ldap`); remove the row"
    )


@dataclass(frozen=True)
class ByKeys:
    """A lookup of accounts by a batch of login keys, in the form each database runs best.

    One parameter, whatever the batch size: PostgreSQL gets ``login_key =
    ANY(%(keys)s)`` (an array), SQLite ``login_key IN (SELECT value FROM
    json_each(?))`` (a JSON array; SQLite's JSON functions are built in). An
    ``IN`` list of a thousand parameters cost more for SQLAlchemy to render,
    and for psycopg to parse, than the lookup cost to run, on every batch of
    an import; both forms still look each key up in the ``login_key`` index.
    """

    listed: Select[Any]
    array: Select[Any]

    def run(self, conn: Connection, keys: list[str]) -> CursorResult[Any]:
        """The rows for ``keys`` (at most :data:`~seatgate.storage.batches.BATCH` of them)."""
        if conn.dialect.name == "postgresql":
            return conn.execute(self.array, {"keys": keys})
        return conn.execute(self.listed, {"keys": json.dumps(keys)})


def _by_keys(query: Select[Any], *conditions: ColumnElement[bool]) -> ByKeys:
    return ByKeys(
        query.where(*conditions, accounts.c.login_key.in_(_KEY_LIST)),
        query.where(*conditions, accounts.c.login_key == any_(_KEY_ARRAY)),
    )


# Built once: see seatgate.storage.batches.KEYS.
_KEY_ARRAY = bindparam("keys", type_=ARRAY(String))
_KEY_LIST: Select[Any] = select(column("value")).select_from(
    func.json_each(bindparam("keys", type_=String))
)
DIRECTORY_KEYS = _by_keys(select(accounts.c.login_key), accounts.c.source == "ldap")
EXISTING_KEYS = _by_keys(select(accounts.c.login_key))
EXISTING = _by_keys(select(accounts))
