"""Bulk account import (CSV files): check the whole source, then apply it all or nothing.

Two streaming passes over the source, so memory stays bounded whatever its
size. :meth:`AccountImporter.check` reads every row once and keeps what it
needs to find duplicates -- each row's login key and line -- in a temporary
SQLite file, never in a Python set; one ``GROUP BY`` then finds the logins
that appear twice. Only a source with no bad row at all reaches
:meth:`AccountImporter.apply`, which reads it again and writes every change,
with its audit event, in one transaction that holds the seat lock.

The format of the source (encodings, delimiters, column names) is the
adapter's business (:mod:`seatgate.adapters.csv`); the rules about accounts
-- which logins are the same, who owns an account, what a disable does to a
seat -- live here.
"""

from __future__ import annotations

import sqlite3
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Protocol, TypeVar

from sqlalchemy import Connection, bindparam, insert, select, update

from seatgate import audit
from seatgate.clock import Clock
from seatgate.errors import SeatgateError, shorten
from seatgate.ledger import SeatLedger, read_state
from seatgate.storage.db import Database
from seatgate.storage.schema import accounts

T = TypeVar("T")

# Columns a source may set besides the login; a column the source lacks is
# left as it is on existing accounts.
Field = Literal["name", "email", "admin", "active", "password_hash"]
FIELDS: tuple[Field, ...] = ("name", "email", "admin", "active", "password_hash")
# Logins looked up per SELECT ... WHERE login_key IN (...); well under every
# database's bound-parameter limit.
BATCH = 1000
_STAGE_BATCH = 5000


@dataclass(frozen=True, slots=True)
class AccountRecord:
    """One valid row of a source: an account as the file wants it."""

    line: int
    login: str
    """The display form (:func:`seatgate.logins.display_login`)."""
    key: str
    """The login key (:func:`seatgate.logins.login_key`)."""
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
    """Rows of accounts, readable more than once (a CSV file)."""

    name: str
    fields: frozenset[Field]

    def rows(self) -> Iterator[AccountRecord | RowProblem]:
        """Read every data row again from the start, in file order.

        Raises :class:`ImportRejected` when the source cannot be read as a
        whole (for example, it changed since it was first read).
        """
        ...


class ImportRejected(SeatgateError):
    """The source cannot be imported; nothing was written. ``line`` is None for the whole file."""

    def __init__(self, line: int | None, reason: str) -> None:
        self.line = line
        self.reason = reason
        super().__init__(f"line {line}: {reason}" if line is not None else reason)


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


class CheckedImport:
    """A source read through once: its rows and bad rows, kept on disk until closed."""

    def __init__(self, source: AccountSource) -> None:
        self.source = source
        self.rows = 0
        self.problem_count = 0
        self._dir = tempfile.TemporaryDirectory(prefix="seatgate-import-")
        self._db = sqlite3.connect(Path(self._dir.name, "check.db"), isolation_level=None)
        self._db.executescript(
            """
            PRAGMA journal_mode = OFF;
            PRAGMA synchronous = OFF;
            CREATE TABLE logins (line INTEGER PRIMARY KEY, key TEXT NOT NULL, login TEXT NOT NULL);
            CREATE TABLE problems (line INTEGER NOT NULL, reason TEXT NOT NULL);
            """
        )

    def problems(self) -> Iterator[RowProblem]:
        """Every bad row, by line number (read from disk as it goes)."""
        cursor = self._db.execute("SELECT line, reason FROM problems ORDER BY line, rowid")
        for line, reason in cursor:
            yield RowProblem(line, reason)

    def close(self) -> None:
        """Delete the temporary files."""
        self._db.close()
        self._dir.cleanup()

    def __enter__(self) -> CheckedImport:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _stage(self, rows: Iterable[AccountRecord | RowProblem]) -> None:
        self._db.execute("BEGIN")
        for batch in _batched(rows, _STAGE_BATCH):
            self.rows += len(batch)
            self._db.executemany(
                "INSERT INTO logins VALUES (?, ?, ?)",
                [(r.line, r.key, shorten(r.login)) for r in batch if isinstance(r, AccountRecord)],
            )
            self._db.executemany(
                "INSERT INTO problems VALUES (?, ?)",
                [(r.line, r.reason) for r in batch if isinstance(r, RowProblem)],
            )
        self._db.execute("COMMIT")

    def _find_duplicates(self) -> None:
        self._db.execute("CREATE INDEX logins_key ON logins (key, line)")
        self._db.execute(
            """
            INSERT INTO problems (line, reason)
            SELECT later.line,
                   'login `' || later.login || '` is the same as `' || first.login
                   || '` on line ' || first.line
                   || ' (logins that differ only in case, spaces or character width are one)'
            FROM (SELECT key, MIN(line) AS line FROM logins GROUP BY key HAVING COUNT(*) > 1) AS dup
            JOIN logins AS first ON first.line = dup.line
            JOIN logins AS later ON later.key = dup.key AND later.line > dup.line
            """
        )

    def _flag_logins(
        self, owned: Callable[[list[str]], Iterable[str]], why: Callable[[str], str]
    ) -> None:
        """Report each staged login that ``owned(keys)`` names, with the reason ``why(login)``."""
        self._db.execute("BEGIN")
        cursor = self._db.execute("SELECT line, key, login FROM logins ORDER BY line")
        while batch := cursor.fetchmany(BATCH):
            lines = {key: (line, login) for line, key, login in batch}
            self._db.executemany(
                "INSERT INTO problems VALUES (?, ?)",
                [(lines[key][0], why(lines[key][1])) for key in owned(list(lines))],
            )
        self._db.execute("COMMIT")

    def _count(self) -> None:
        self.problem_count = int(self._db.execute("SELECT COUNT(*) FROM problems").fetchone()[0])


class _DryRun(Exception):
    """Carries a dry run's report out of the transaction it rolls back."""

    def __init__(self, report: ImportReport) -> None:
        self.report = report


class AccountImporter:
    """Creates and updates accounts from an :class:`AccountSource`, all or nothing."""

    def __init__(self, db: Database, clock: Clock, ledger: SeatLedger) -> None:
        self.db = db
        self.clock = clock
        self.ledger = ledger

    def check(self, source: AccountSource) -> CheckedImport:
        """Read the whole source once and find every bad row.

        Bad rows are those the source reports, logins that appear twice
        after normalisation, and logins of directory accounts. The result is
        a context manager; close it to delete its temporary file. Raises
        :class:`ImportRejected` when the source cannot be read at all.
        """
        checked = CheckedImport(source)
        try:
            checked._stage(source.rows())
            checked._find_duplicates()
            self.db.read(
                lambda conn: checked._flag_logins(
                    lambda keys: _directory_keys(conn, keys), directory_reason
                )
            )
            checked._count()
        except BaseException:
            checked.close()
            raise
        return checked

    def apply(
        self,
        checked: CheckedImport,
        *,
        actor: str,
        dry_run: bool = False,
        journal: ChangeJournal | None = None,
    ) -> ImportReport:
        """Write every row of a checked source in one transaction (or none, for a dry run).

        New logins become ``csv`` accounts; existing accounts, matched by
        login key, get the values of the columns the source has. A row whose
        ``active`` is false disables the account and frees its seat.
        Accounts the source does not name are left alone. Each change is
        audited. Raises :class:`ImportRejected` (nothing written) when the
        check found bad rows, or a bad row appears now: the source changed,
        or a directory account took one of its logins meanwhile.
        """
        if checked.problem_count:
            raise ImportRejected(None, f"{checked.problem_count} bad row(s); nothing was written")
        source = checked.source

        def work(conn: Connection) -> ImportReport:
            if journal is not None:
                journal.restart()
            read_state(conn, lock=True)
            report = ImportReport(dry_run=dry_run)
            step = _Step(conn, self.ledger, actor, self.clock, source.fields, report, journal)
            for batch in _batched(_valid(source.rows()), BATCH):
                step.apply(batch)
            if dry_run:
                raise _DryRun(report)
            return report

        try:
            return self.db.write(work)
        except _DryRun as rollback:
            return rollback.report


def _valid(rows: Iterable[AccountRecord | RowProblem]) -> Iterator[AccountRecord]:
    for row in rows:
        if isinstance(row, RowProblem):
            raise ImportRejected(row.line, f"{row.reason} (the file changed since it was checked)")
        yield row


def _directory_keys(conn: Connection, keys: list[str]) -> Iterable[str]:
    return conn.execute(
        select(accounts.c.login_key).where(
            accounts.c.source == "ldap", accounts.c.login_key.in_(keys)
        )
    ).scalars()


_COLUMNS = {
    "name": "display_name",
    "email": "email",
    "admin": "is_admin",
    "active": "status",
    "password_hash": "password_hash",
}


@dataclass
class _Step:
    """Applies batches of records inside the import transaction."""

    conn: Connection
    ledger: SeatLedger
    actor: str
    clock: Clock
    fields: frozenset[Field]
    report: ImportReport
    journal: ChangeJournal | None

    def apply(self, batch: list[AccountRecord]) -> None:
        now = self.clock.now()
        existing = {
            row.login_key: row
            for row in self.conn.execute(
                select(accounts).where(accounts.c.login_key.in_([r.key for r in batch]))
            )
        }
        created: list[dict[str, Any]] = []
        updates: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        for record in batch:
            row = existing.get(record.key)
            if row is None:
                created.append(self._create(record, now))
                continue
            if row.source == "ldap":
                raise ImportRejected(record.line, directory_reason(record.login))
            changes = self._changes(row, record)
            if not changes:
                self.report.unchanged += 1
                continue
            self._audit_update(row, changes, now)
            params = {f"b_{column}": new for column, (_old, new) in changes.items()}
            updates.setdefault(tuple(sorted(changes)), []).append(
                {**params, "b_id": row.id, "b_updated_at": now}
            )
        if created:
            self.conn.execute(insert(accounts), created)
        for columns, rows in updates.items():
            values: dict[str, Any] = {
                column: bindparam(f"b_{column}") for column in (*columns, "updated_at")
            }
            statement = update(accounts).where(accounts.c.id == bindparam("b_id")).values(values)
            self.conn.execute(statement, rows)

    def _create(self, record: AccountRecord, now: Any) -> dict[str, Any]:
        status = "active" if record.active else "disabled"
        audit.record(
            self.conn,
            at=now,
            actor=self.actor,
            action=_ACTIONS["create"],
            subject=record.login,
            details={"source": "csv", "admin": record.is_admin, "status": status},
        )
        self.report.created += 1
        if self.journal is not None:
            self.journal.add(Change("create", record.login))
        return {
            "login": record.login,
            "login_key": record.key,
            "display_name": record.display_name,
            "email": record.email,
            "source": "csv",
            "status": status,
            "password_hash": record.password_hash,
            "is_admin": record.is_admin,
            "created_at": now,
            "updated_at": now,
        }

    def _changes(self, row: Any, record: AccountRecord) -> dict[str, tuple[Any, Any]]:
        """Column -> (old, new) for each column the source sets to a new value."""
        wanted: dict[str, Any] = {}
        if "name" in self.fields:
            wanted["display_name"] = record.display_name
        if "email" in self.fields:
            wanted["email"] = record.email
        if "admin" in self.fields:
            wanted["is_admin"] = record.is_admin
        if "password_hash" in self.fields and record.password_hash is not None:
            wanted["password_hash"] = record.password_hash
        if "active" in self.fields:
            # `active: no` disables; a deleted account stays deleted.
            if record.active:
                wanted["status"] = "active"
            elif row.status == "active":
                wanted["status"] = "disabled"
        current = row._mapping
        return {
            column: (current[column], new)
            for column, new in wanted.items()
            if (bool(current[column]) if column == "is_admin" else current[column]) != new
        }

    def _audit_update(self, row: Any, changes: dict[str, tuple[Any, Any]], now: Any) -> None:
        new_status = changes["status"][1] if "status" in changes else None
        kind: ChangeKind = (
            "disable" if new_status == "disabled" else "enable" if new_status else "update"
        )
        freed = False
        if kind == "disable":
            # Seat row before account row, as everywhere: no deadlock with a login.
            freed = self.ledger.release_in(
                self.conn, row.id, actor=self.actor, reason="account_disabled"
            )
            if freed:
                self.report.seats_freed.append(row.login)
            self.report.disabled += 1
        else:
            self.report.updated += 1
        audit.record(
            self.conn,
            at=now,
            actor=self.actor,
            action=_ACTIONS[kind],
            subject=row.login,
            details={
                "source": "csv",
                "changed": {
                    column: "replaced" if column == "password_hash" else [old, new]
                    for column, (old, new) in changes.items()
                },
            },
        )
        if self.journal is not None:
            names = tuple(_FIELD_OF[column] for column in sorted(changes))
            self.journal.add(Change(kind, row.login, names, freed))


_ACTIONS: dict[ChangeKind, str] = {
    "create": "account.created",
    "update": "account.updated",
    "enable": "account.enabled",
    "disable": "account.disabled",
}
_FIELD_OF = {column: name for name, column in _COLUMNS.items()}


def _batched(items: Iterable[T], size: int) -> Iterator[list[T]]:
    batch: list[T] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch
