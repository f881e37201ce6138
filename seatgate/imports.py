"""Bulk account import (CSV files): check the whole source, then apply it all or nothing.

Memory stays bounded whatever the size of the source. :meth:`AccountImporter.check`
reads the source once, row by row, and stages every valid row and every bad
one in a temporary SQLite file, never in Python collections; one ``GROUP BY``
there finds the logins that appear twice. Only a source with no bad row at all
reaches :meth:`AccountImporter.apply`, which reads the staged rows back in
batches -- exactly what was checked, even if the file has changed since --
and writes every change, with its audit event, in one transaction that holds
the seat lock.

The format of the source (encodings, delimiters, column names) is the
adapter's business (:mod:`seatgate.adapters.csv`); the rules about accounts
-- which logins are the same, who owns an account, what a disable does to a
seat -- live here.
"""

from __future__ import annotations

import json
import sqlite3
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, Protocol, TypeVar

from sqlalchemy import BindParameter, Connection, bindparam, insert, select, update

from seatgate.clock import Clock
from seatgate.errors import SeatgateError, shorten
from seatgate.ledger import SeatLedger, read_state
from seatgate.storage.db import Database
from seatgate.storage.schema import accounts, audit_events

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
    """Rows of accounts (a CSV file)."""

    name: str
    fields: frozenset[Field]

    def rows(self) -> Iterator[AccountRecord | RowProblem]:
        """Every data row, in file order.

        Raises :class:`ImportRejected` when the source cannot be read as a
        whole (for example, it changed while it was being read).
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
    """A source read through once: its rows and bad rows, in a temporary SQLite file."""

    def __init__(self, source: AccountSource) -> None:
        self.source = source
        self.fields = source.fields
        self.row_count = 0
        self.problem_count = 0
        self._dir = tempfile.TemporaryDirectory(prefix="seatgate-import-")
        self._db = sqlite3.connect(Path(self._dir.name, "check.db"), isolation_level=None)
        self._db.executescript(
            """
            PRAGMA journal_mode = OFF;
            PRAGMA synchronous = OFF;
            CREATE TABLE records (
                line INTEGER PRIMARY KEY, login TEXT NOT NULL, key TEXT NOT NULL,
                name TEXT, email TEXT, admin INTEGER NOT NULL, active INTEGER NOT NULL, hash TEXT
            );
            CREATE TABLE problems (line INTEGER NOT NULL, reason TEXT NOT NULL);
            """
        )

    def problems(self) -> Iterator[RowProblem]:
        """Every bad row, by line number (read from disk as it goes)."""
        cursor = self._db.execute("SELECT line, reason FROM problems ORDER BY line, rowid")
        for line, reason in cursor:
            yield RowProblem(line, reason)

    def records(self) -> Iterator[list[AccountRecord]]:
        """The valid rows in batches, in file order (read from disk as it goes)."""
        cursor = self._db.execute("SELECT * FROM records ORDER BY line")
        while rows := cursor.fetchmany(BATCH):
            yield [
                AccountRecord(line, login, key, name, email, bool(admin), bool(active), hashed)
                for line, login, key, name, email, admin, active, hashed in rows
            ]

    def close(self) -> None:
        """Delete the temporary file."""
        self._db.close()
        self._dir.cleanup()

    def __enter__(self) -> CheckedImport:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _check(self, conn: Connection) -> None:
        db = self._db
        db.execute("BEGIN")
        for batch in _batched(self.source.rows(), _STAGE_BATCH):
            self.row_count += len(batch)
            db.executemany(
                "INSERT INTO records VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [_staged(r) for r in batch if isinstance(r, AccountRecord)],
            )
            db.executemany(
                "INSERT INTO problems VALUES (?, ?)",
                [(r.line, r.reason) for r in batch if isinstance(r, RowProblem)],
            )
        db.execute("CREATE INDEX records_key ON records (key, line)")
        twice = db.execute(
            """
            SELECT later.line, later.login, first.line, first.login
            FROM (SELECT key, MIN(line) AS line FROM records GROUP BY key HAVING COUNT(*) > 1)
                 AS dup
            JOIN records AS first ON first.line = dup.line
            JOIN records AS later ON later.key = dup.key AND later.line > dup.line
            """
        )
        while found := twice.fetchmany(BATCH):
            db.executemany(
                "INSERT INTO problems VALUES (?, ?)",
                [
                    (
                        line,
                        f"login `{shorten(login)}` is the same as `{shorten(first)}` on line "
                        f"{first_line} (logins that differ only in case, spaces or width are one)",
                    )
                    for line, login, first_line, first in found
                ],
            )
        _plan_each_batch(conn)
        staged = db.execute("SELECT line, key, login FROM records ORDER BY line")
        while rows := staged.fetchmany(BATCH):
            lines = {key: (line, login) for line, key, login in rows}
            taken = conn.execute(_DIRECTORY_KEYS, {"keys": list(lines)}).scalars()
            db.executemany(
                "INSERT INTO problems VALUES (?, ?)",
                [(lines[key][0], directory_reason(lines[key][1])) for key in taken],
            )
        db.execute("COMMIT")
        self.problem_count = int(db.execute("SELECT COUNT(*) FROM problems").fetchone()[0])


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
            self.db.read(checked._check)
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
        on_progress: Callable[[int], None] | None = None,
    ) -> ImportReport:
        """Write the checked rows in one transaction (or, for a dry run, roll it back).

        New logins become ``csv`` accounts; existing accounts, matched by
        login key, get the values of the columns the source has. A row whose
        ``active`` is false disables the account and frees its seat.
        Accounts the source does not name are left alone. Each change is
        audited. ``on_progress`` hears how many rows are done. Raises
        :class:`ImportRejected` (nothing written) when the check found bad
        rows, or a directory account took one of the logins since the check.
        """
        if checked.problem_count:
            raise ImportRejected(None, f"{checked.problem_count} bad row(s); nothing was written")

        def work(conn: Connection) -> ImportReport:
            if journal is not None:
                journal.restart()
            read_state(conn, lock=True)
            _plan_each_batch(conn)
            report = ImportReport(dry_run=dry_run)
            step = _Step(conn, self.ledger, actor, self.clock, checked.fields, report, journal)
            done = 0
            for batch in checked.records():
                step.apply(batch)
                done += len(batch)
                if on_progress is not None:
                    on_progress(done)
            if dry_run:
                raise _DryRun(report)
            return report

        try:
            return self.db.write(work)
        except _DryRun as rollback:
            return rollback.report


# Built once: a statement per batch leaves reference cycles that only a full
# garbage collection frees, and memory then grows with the number of batches.
_KEYS: BindParameter[str] = bindparam("keys", expanding=True)
_DIRECTORY_KEYS = select(accounts.c.login_key).where(
    accounts.c.source == "ldap", accounts.c.login_key.in_(_KEYS)
)
_EXISTING = select(accounts).where(accounts.c.login_key.in_(_KEYS))

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
    events: list[dict[str, Any]] = field(default_factory=list)

    def apply(self, batch: list[AccountRecord]) -> None:
        now = self.clock.now()
        existing = {
            row.login_key: row
            for row in self.conn.execute(_EXISTING, {"keys": [r.key for r in batch]})
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
            self._change(row, changes, now)
            params = {f"b_{column}": new for column, (_old, new) in changes.items()}
            updates.setdefault(tuple(sorted(changes)), []).append(
                {**params, "b_id": row.id, "b_updated_at": now}
            )
        self._write_events()
        if created:
            self.conn.execute(insert(accounts), created)
        for columns, rows in updates.items():
            values: dict[str, Any] = {
                column: bindparam(f"b_{column}") for column in (*columns, "updated_at")
            }
            statement = update(accounts).where(accounts.c.id == bindparam("b_id")).values(values)
            self.conn.execute(statement, rows)

    def _create(self, record: AccountRecord, now: datetime) -> dict[str, Any]:
        status = "active" if record.active else "disabled"
        self._event(
            now,
            "create",
            record.login,
            {"source": "csv", "admin": record.is_admin, "status": status},
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

    def _change(self, row: Any, changes: dict[str, tuple[Any, Any]], now: datetime) -> None:
        new_status = changes["status"][1] if "status" in changes else None
        kind: ChangeKind = (
            "disable" if new_status == "disabled" else "enable" if new_status else "update"
        )
        changed = {
            column: "replaced" if column == "password_hash" else [old, new]
            for column, (old, new) in changes.items()
        }
        self._event(now, kind, row.login, {"source": "csv", "changed": changed})
        freed = False
        if kind == "disable":
            self.report.disabled += 1
            # The account's event first, then the seat's (as Accounts.set_status
            # writes them); the seat row before the account row, so that the
            # import and a login never lock the two in opposite orders.
            self._write_events()
            freed = self.ledger.release_in(
                self.conn, row.id, actor=self.actor, reason="account_disabled"
            )
            if freed:
                self.report.seats_freed.append(row.login)
        else:
            self.report.updated += 1
        if self.journal is not None:
            names = tuple(_FIELD_OF[column] for column in sorted(changes))
            self.journal.add(Change(kind, row.login, names, freed))

    def _event(self, now: datetime, kind: ChangeKind, login: str, details: dict[str, Any]) -> None:
        # The row audit.record() writes, kept for one executemany per batch:
        # audit.record() builds and compiles a statement per event, which made
        # a 200,000-account import spend 30 s on its audit log alone.
        self.events.append(
            {
                "at": now,
                "actor": shorten(self.actor, 256),
                "action": _ACTIONS[kind],
                "subject": shorten(login, 256),
                "outcome": None,
                "details": json.dumps(details, sort_keys=True, default=str),
            }
        )

    def _write_events(self) -> None:
        if self.events:
            self.conn.execute(insert(audit_events), self.events)
            self.events = []


_ACTIONS: dict[ChangeKind, str] = {
    "create": "account.created",
    "update": "account.updated",
    "enable": "account.enabled",
    "disable": "account.disabled",
}
_FIELD_OF = {column: name for name, column in _COLUMNS.items()}


def _plan_each_batch(conn: Connection) -> None:
    # psycopg prepares a statement run five times, and PostgreSQL then keeps a
    # generic plan made when `accounts` was small (a sequential scan that
    # compares every row with all the keys): a 200,000-row import took 170 s
    # instead of 10. Custom plans, for this transaction only, use the index.
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("SET LOCAL plan_cache_mode = force_custom_plan")


def _staged(r: AccountRecord) -> tuple[object, ...]:
    return (r.line, r.login, r.key, r.display_name, r.email, r.is_admin, r.active, r.password_hash)


def _batched(items: Iterable[T], size: int) -> Iterator[list[T]]:
    batch: list[T] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch
