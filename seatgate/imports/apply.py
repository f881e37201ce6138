"""Applying a checked import: one transaction, every change audited."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, update

from seatgate.audit import log as audit
from seatgate.audit.chain import EventTuple, as_event_tuple
from seatgate.clock import Clock
from seatgate.errors import ImportRejected, shorten
from seatgate.imports.check import CheckedImport, confusable_rows
from seatgate.imports.records import (
    EXISTING,
    AccountRecord,
    AccountSource,
    Change,
    ChangeJournal,
    ChangeKind,
    Field,
    ImportReport,
    RowProblem,
    directory_reason,
)
from seatgate.seats.ledger import SeatLedger
from seatgate.seats.lock import SeatLock, take_seat_lock
from seatgate.sessions.service import EndReason, end_all_in
from seatgate.storage.batches import BATCH, batched, plan_each_batch
from seatgate.storage.bulk import insert_rows
from seatgate.storage.db import Database
from seatgate.storage.schema import accounts


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
            self.db.read(checked.run)
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
            lock = take_seat_lock(conn)
            plan_each_batch(conn)
            report = ImportReport(dry_run=dry_run)
            step = _Step(lock, self.ledger, actor, self.clock, checked.fields, report, journal)
            done = 0
            for batch in checked.records():
                step.apply(batch)
                done += len(batch)
                if on_progress is not None:
                    on_progress(done)
            # Once for the whole import: each row's own count would cost a
            # query per freed seat on imports of thousands.
            self.ledger.observe_usage_in(lock, actor=actor)
            return report

        return self.db.write(work, rollback=dry_run)

    def apply_new(
        self,
        source: AccountSource,
        *,
        actor: str,
        dry_run: bool = False,
        journal: ChangeJournal | None = None,
    ) -> ImportReport | None:
        """Check and write a source of new accounts in one pass and one transaction.

        The usual import -- every row a valid account the installation does
        not have yet -- read once and written as it is read, without staging
        its rows between :meth:`check` and :meth:`apply`. Returns None, with
        nothing written, at the first row that is bad, names an existing
        account, or names a login an earlier row named: such a source goes
        through :meth:`check` (which lists every bad row) and :meth:`apply`.
        Raises :class:`ImportRejected` (nothing written) when the source
        cannot be read as a whole.
        """

        def work(conn: Connection) -> ImportReport:
            if journal is not None:
                journal.restart()
            lock = take_seat_lock(conn)
            plan_each_batch(conn)
            report = ImportReport(dry_run=dry_run)
            step = _Step(lock, self.ledger, actor, self.clock, source.fields, report, journal)
            step.new_only = True
            for batch in batched(source.rows(), BATCH):
                step.apply(_all_new(conn, batch))
            self.ledger.observe_usage_in(lock, actor=actor)
            return report

        try:
            return self.db.write(work, rollback=dry_run)
        except _NotAllNew:
            return None


class _NotAllNew(Exception):
    """A row :meth:`AccountImporter.apply_new` leaves to the check (its transaction rolls back)."""


def _all_new(conn: Connection, batch: list[AccountRecord | RowProblem]) -> list[AccountRecord]:
    """``batch`` if every row is valid, its login unique in it and not confusable.

    Logins an earlier batch or the database already has are found by the
    lookup of existing accounts (:attr:`_Step.new_only`).
    """
    good = [r for r in batch if isinstance(r, AccountRecord)]
    if len(good) < len(batch):
        raise _NotAllNew
    lines = {r.key: (r.line, r.login) for r in good}
    if len(lines) < len(good) or confusable_rows(conn, lines):
        raise _NotAllNew
    return good


_COLUMNS = {
    "name": "display_name",
    "email": "email",
    "admin": "is_admin",
    "active": "status",
    "password_hash": "password_hash",
}


@dataclass
class _Step:
    """Applies batches of records inside the import transaction (which holds ``lock``)."""

    lock: SeatLock
    ledger: SeatLedger
    actor: str
    clock: Clock
    fields: frozenset[Field]
    report: ImportReport
    journal: ChangeJournal | None
    events: list[dict[str, Any] | EventTuple] = field(default_factory=list)
    created_events: dict[tuple[bool, str], EventTuple] = field(default_factory=dict)
    # Accounts whose sessions end with this batch: a new password, or disabled.
    ending: dict[EndReason, list[int]] = field(default_factory=dict)
    # Set by apply_new: an account that exists (before or by this import) stops the pass.
    new_only: bool = False

    @property
    def conn(self) -> Connection:
        """The import transaction's connection."""
        return self.lock.conn

    def apply(self, batch: list[AccountRecord]) -> None:
        now = self.clock.now()
        existing = {row.login_key: row for row in EXISTING.run(self.conn, [r.key for r in batch])}
        if existing and self.new_only:
            raise _NotAllNew
        created: list[tuple[Any, ...]] = []
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
            insert_rows(self.conn, accounts, _CREATED, created)
        for columns, rows in updates.items():
            values: dict[str, Any] = {
                column: bindparam(f"b_{column}") for column in (*columns, "updated_at")
            }
            statement = update(accounts).where(accounts.c.id == bindparam("b_id")).values(values)
            self.conn.execute(statement, rows)
        for reason, ids in self.ending.items():
            end_all_in(self.conn, ids, now=now, actor=self.actor, reason=reason)
        self.ending = {}

    def _create(self, record: AccountRecord, now: datetime) -> tuple[Any, ...]:
        status = "active" if record.active else "disabled"
        # Creations differ only in their subject: the event is made once per kind and
        # copied (an import of a million accounts encoded the same details a million times).
        made = self.created_events.get((record.is_admin, status))
        if made is None or made[0] is not now:
            made = as_event_tuple(
                audit.event_row(
                    at=now,
                    actor=self.actor,
                    action=_ACTIONS["create"],
                    subject="",
                    details={"source": "csv", "admin": record.is_admin, "status": status},
                )
            )
            self.created_events[(record.is_admin, status)] = made
        at, actor, action, _subject, outcome, details = made
        login = record.login
        # A checked login is printable and at most 256 characters: shorten() would keep it.
        subject = login if len(login) <= 256 and login.isprintable() else shorten(login, 256)
        self.events.append((at, actor, action, subject, outcome, details))
        self.report.created += 1
        if self.journal is not None:
            self.journal.add(Change("create", record.login))
        return (
            record.login,
            record.key,
            record.display_name,
            record.email,
            "csv",
            status,
            record.password_hash,
            record.is_admin,
            now,
            now,
        )

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
        if kind == "disable":
            self.ending.setdefault(EndReason.ACCOUNT_DISABLED, []).append(row.id)
        elif "password_hash" in changes:
            self.ending.setdefault(EndReason.PASSWORD_CHANGED, []).append(row.id)
        freed = False
        if kind == "disable":
            self.report.disabled += 1
            # The account's event first, then the seat's (as Accounts.set_status
            # writes them); the seat row before the account row, so that the
            # import and a login never lock the two in opposite orders.
            self._write_events()
            freed = self.ledger.release_in(
                self.lock, row.id, actor=self.actor, reason="account_disabled", observe=False
            )
            if freed:
                self.report.seats_freed.append(row.login)
        else:
            self.report.updated += 1
        if self.journal is not None:
            names = tuple(_FIELD_OF[column] for column in sorted(changes))
            self.journal.add(Change(kind, row.login, names, freed))

    def _event(self, now: datetime, kind: ChangeKind, login: str, details: dict[str, Any]) -> None:
        # Kept for one executemany per batch: a statement per event made a
        # 200,000-account import spend 30 s on its audit log alone.
        self.events.append(
            audit.event_row(
                at=now, actor=self.actor, action=_ACTIONS[kind], subject=login, details=details
            )
        )

    def _write_events(self) -> None:
        audit.record_many(self.conn, self.events)
        self.events = []


_ACTIONS: dict[ChangeKind, str] = {
    "create": "account.created",
    "update": "account.updated",
    "enable": "account.enabled",
    "disable": "account.disabled",
}
_FIELD_OF = {column: name for name, column in _COLUMNS.items()}
# The columns of a created account, in the order _Step._create gives them.
_CREATED = (
    "login",
    "login_key",
    "display_name",
    "email",
    "source",
    "status",
    "password_hash",
    "is_admin",
    "created_at",
    "updated_at",
)
