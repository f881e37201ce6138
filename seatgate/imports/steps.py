"""Writing the batches of an import inside its transaction: accounts, their events, seats."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, update

from seatgate.audit import log as audit
from seatgate.audit.chain import EventTuple, as_event_tuple
from seatgate.clock import Clock
from seatgate.errors import ImportRejected, shorten
from seatgate.imports.records import (
    EXISTING,
    AccountRecord,
    Change,
    ChangeJournal,
    ChangeKind,
    Field,
    ImportReport,
    directory_reason,
)
from seatgate.seats.ledger import SeatLedger
from seatgate.seats.lock import SeatLock
from seatgate.sessions.service import EndReason, end_all_in
from seatgate.storage.bulk import bind_value, insert_rows
from seatgate.storage.schema import accounts

_COLUMNS = {
    "name": "display_name",
    "email": "email",
    "admin": "is_admin",
    "active": "status",
    "password_hash": "password_hash",
}


@dataclass
class Step:
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
    # Set by apply_new: every login is taken to be new, without a lookup; one that is
    # not fails the insert (the unique login key) and with it the transaction.
    new_only: bool = False

    @property
    def conn(self) -> Connection:
        """The import transaction's connection."""
        return self.lock.conn

    def apply(self, batch: list[AccountRecord]) -> None:
        now = self.clock.now()
        existing = (
            {}
            if self.new_only
            else {row.login_key: row for row in EXISTING.run(self.conn, [r.key for r in batch])}
        )
        updates: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        bound: tuple[str, ...] = ()
        if existing:
            created = self._sort(batch, existing, updates, now)
        else:  # new accounts only (every batch of a first import): in bulk
            created, bound = self._create_all(batch, now), _BOUND
        self._write_events()
        if created:
            insert_rows(self.conn, accounts, _CREATED, created, bound=bound)
        for columns, rows in updates.items():
            values: dict[str, Any] = {
                column: bindparam(f"b_{column}") for column in (*columns, "updated_at")
            }
            statement = update(accounts).where(accounts.c.id == bindparam("b_id")).values(values)
            self.conn.execute(statement, rows)
        for reason, ids in self.ending.items():
            end_all_in(self.conn, ids, now=now, actor=self.actor, reason=reason)
        self.ending = {}

    def _sort(
        self,
        batch: list[AccountRecord],
        existing: dict[str, Any],
        updates: dict[tuple[str, ...], list[dict[str, Any]]],
        now: datetime,
    ) -> list[tuple[Any, ...]]:
        """The rows of the new accounts of ``batch``; the changes of the others into ``updates``."""
        created: list[tuple[Any, ...]] = []
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
        return created

    def _created_event(self, is_admin: bool, status: str, now: datetime) -> EventTuple:
        """The event of a creation at ``now``, but for its subject (made once per kind)."""
        # Creations differ only in their subject: the event is made once per kind and
        # copied (an import of a million accounts encoded the same details a million times).
        made = self.created_events.get((is_admin, status))
        if made is None or made[0] is not now:
            made = as_event_tuple(
                audit.event_row(
                    at=now,
                    actor=self.actor,
                    action=_ACTIONS["create"],
                    subject="",
                    details={"source": "csv", "admin": is_admin, "status": status},
                )
            )
            self.created_events[(is_admin, status)] = made
        return made

    def _create_all(self, batch: list[AccountRecord], now: datetime) -> list[tuple[Any, ...]]:
        """:meth:`_create` of every record of ``batch``, a list at a time (no call per row).

        The rows' :data:`_BOUND` values are bound already, each once.
        """
        # The details of each kind, by [is_admin][active].
        details = [
            [self._created_event(admin, _STATUS[active], now)[5] for active in (False, True)]
            for admin in (False, True)
        ]
        at, actor, action, _none, outcome, _details = self._created_event(False, "active", now)
        self.events.extend(
            [
                (
                    at,
                    actor,
                    action,
                    _subject(r.login),
                    outcome,
                    details[r.is_admin][r.active],
                )
                for r in batch
            ]
        )
        self.report.created += len(batch)
        if self.journal is not None:
            for record in batch:
                self.journal.add(Change("create", record.login))
        conn = self.conn
        admin = (
            bind_value(conn, accounts, "is_admin", False),
            bind_value(conn, accounts, "is_admin", True),
        )
        created = bind_value(conn, accounts, "created_at", now)
        updated = bind_value(conn, accounts, "updated_at", now)
        return [
            (
                r.login,
                r.key,
                r.display_name,
                r.email,
                "csv",
                _STATUS[r.active],
                r.password_hash,
                admin[r.is_admin],
                created,
                updated,
            )
            for r in batch
        ]

    def _create(self, record: AccountRecord, now: datetime) -> tuple[Any, ...]:
        status = _STATUS[record.active]
        at, actor, action, _none, outcome, details = self._created_event(
            record.is_admin, status, now
        )
        self.events.append((at, actor, action, _subject(record.login), outcome, details))
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


def _subject(login: str) -> str:
    """The subject of an account's event: its login."""
    # A checked login is printable and at most 256 characters: shorten() would keep it.
    return login if len(login) <= 256 and login.isprintable() else shorten(login, 256)


_ACTIONS: dict[ChangeKind, str] = {
    "create": "account.created",
    "update": "account.updated",
    "enable": "account.enabled",
    "disable": "account.disabled",
}
_STATUS = ("disabled", "active")  # by `active`
_FIELD_OF = {column: name for name, column in _COLUMNS.items()}
# The columns of a created account, in the order Step._create gives them.
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
# The columns of the rows of _create_all that hold bound values.
_BOUND = ("is_admin", "created_at", "updated_at")
