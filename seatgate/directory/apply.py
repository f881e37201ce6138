"""Writing a directory sync's changes, in batches, inside its one transaction.

A statement per entry made a 30,000-entry sync spend 37 s writing: a lookup
of the login key per entry, an ``INSERT`` built per new account and an audit
event appended one at a time. Here each batch of entries costs one
``login_key IN (...)`` lookup, one executemany ``INSERT`` for its new
accounts, one executemany ``UPDATE`` per set of changed columns and one
:func:`audit.record_many`. The result, audit events included, is the same as
applying the entries one by one in order: whatever a later entry of the batch
would have read from the database is read from the batch's lookup plus the
keys claimed earlier in the batch, and the buffered writes are flushed before
anything else touches the database (a status change, a seat release).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Update, bindparam, insert, select, update

from seatgate.accounts.logins import confusable_mix, display_login
from seatgate.accounts.service import change_status_in
from seatgate.audit import log as audit
from seatgate.clock import Clock
from seatgate.directory.model import DirectoryEntry, SyncReport
from seatgate.seats.ledger import SeatLedger
from seatgate.seats.lock import SeatLock
from seatgate.storage.batches import KEYS, batched
from seatgate.storage.schema import accounts

ACTOR = "sync:ldap"
# Marks keys of accounts that no longer own their login (deleted, or mid-rename).
# login_key() refuses control characters, so no real login can collide with one.
TOMBSTONE = "\x1f"
BATCH_SIZE = 1000
"""Entries per lookup and per flush: big enough that statements are few, small
enough that the ``IN`` list stays well inside every driver's parameter limit."""

# Built once (not per batch): see seatgate.storage.batches.KEYS.
_HOLDERS = select(accounts.c.id, accounts.c.source, accounts.c.login_key).where(
    accounts.c.login_key.in_(KEYS)
)
_PARK = (
    update(accounts)
    .where(accounts.c.id == bindparam("b_id"))
    .values(login_key=bindparam("b_login_key"))
)


@dataclass
class Known:
    """An existing directory account."""

    id: int
    login: str
    login_key: str
    external_id: str
    dn: str | None
    display_name: str | None
    email: str | None
    groups: tuple[str, ...]
    status: str


@dataclass(frozen=True)
class _Holder:
    """Who holds a login key: ``id`` is None for an account created in this batch."""

    id: int | None
    source: str


Pending = tuple[Known | None, DirectoryEntry, str]
"""An entry with a valid login: its account (None: new), the entry, its login key."""


def parked_key(account_id: int) -> str:
    """The key an account holds while its login changes (no login can match it)."""
    return f"{TOMBSTONE}renaming{TOMBSTONE}{account_id}"


def groups_json(groups: Iterable[str]) -> str:
    """The stored form of an entry's groups: sorted, so that a reorder is no change."""
    return json.dumps(sorted(groups))


@dataclass
class SyncWriter:
    """Applies a sync's account changes; call :meth:`flush` before the transaction ends.

    The transaction holds ``lock``: a status change may release a seat.
    ``actor`` is who the audit events name: the sync job, or the admin who ran it.
    """

    lock: SeatLock
    ledger: SeatLedger
    clock: Clock
    report: SyncReport
    now: datetime
    actor: str = ACTOR
    _events: list[dict[str, Any]] = field(default_factory=list)
    _parks: list[dict[str, Any]] = field(default_factory=list)
    _created: list[dict[str, Any]] = field(default_factory=list)
    _updates: dict[tuple[str, ...], list[dict[str, Any]]] = field(default_factory=dict)
    _statements: dict[tuple[str, ...], Update] = field(default_factory=dict)
    # Holders of the current batch's keys: its lookup, then every key claimed
    # since. Within the entries' pass keys are only ever claimed (freed ones
    # were parked or tombstoned before it), so this is what the database holds.
    _holders: dict[str, _Holder] = field(default_factory=dict)

    @property
    def conn(self) -> Connection:
        """The sync transaction's connection."""
        return self.lock.conn

    # -- the first pass: park the old keys of renamed accounts ---------------

    def park(self, account: Known) -> None:
        """Free the account's key (written at the next flush)."""
        self._parks.append({"b_id": account.id, "b_login_key": parked_key(account.id)})

    # -- the second pass: entries with a valid login --------------------------

    def apply(self, pending: Sequence[Pending]) -> None:
        """Create or update an account per entry, in order, a batch at a time."""
        self.flush()
        for batch in batched(pending, BATCH_SIZE):
            self._apply_batch(batch)
            self.flush()

    def _apply_batch(self, batch: list[Pending]) -> None:
        keys = {key for _, _, key in batch}
        # A conflicting rename gives the account its old key back if still free.
        keys.update(
            account.login_key
            for account, _, key in batch
            if account is not None and account.login_key != key
        )
        self._holders = {
            row.login_key: _Holder(row.id, row.source)
            for row in self.conn.execute(_HOLDERS, {"keys": sorted(keys)})
        }
        for account, entry, key in batch:
            holder = self._holders.get(key)
            if holder is not None and (account is None or holder.id != account.id):
                owner = (
                    "directory account with another id"
                    if holder.source == "ldap"
                    else f"{holder.source} account"
                )
                self.report.conflicts.append(
                    f"{entry.dn}: login `{entry.login}` is already used by a {owner}; skipped "
                    "(a --full run resolves a re-created directory user)"
                )
                if account is not None:
                    if account.login_key != key:
                        self._unpark(account)
                    # The name is in dispute, the status is not: a user disabled
                    # in the directory loses the seat whatever it is called.
                    self.follow_status(account, entry)
                continue
            if account is None:
                self._create(entry, key)
            else:
                self._update(account, entry, key)

    def _create(self, entry: DirectoryEntry, key: str) -> None:
        status = "disabled" if entry.disabled else "active"
        shown = display_login(entry.login)
        self._created.append(
            {
                "login": shown,
                "login_key": key,
                "display_name": entry.display_name,
                "email": entry.email,
                "source": "ldap",
                "external_id": entry.external_id,
                "dn": entry.dn,
                "groups": groups_json(entry.groups),
                "status": status,
                "password_hash": None,
                "is_admin": False,
                "created_at": self.now,
                "updated_at": self.now,
            }
        )
        self._holders[key] = _Holder(None, "ldap")
        self._event("account.created", shown, {"source": "ldap", "dn": entry.dn, "status": status})
        self.report.created.append(shown)
        self._flag_if_confusable(shown, entry)

    def _update(self, account: Known, entry: DirectoryEntry, key: str) -> None:
        shown = display_login(entry.login)
        changes: dict[str, Any] = {}
        if shown != account.login or key != account.login_key:
            changes.update(login=shown, login_key=key)
        for column, old, new in (
            ("dn", account.dn, entry.dn),
            ("display_name", account.display_name, entry.display_name),
            ("email", account.email, entry.email),
        ):
            if old != new:
                changes[column] = new
        if tuple(sorted(account.groups)) != tuple(sorted(entry.groups)):
            changes["groups"] = groups_json(entry.groups)
        if changes:
            params = {f"b_{column}": value for column, value in changes.items()}
            self._updates.setdefault(tuple(sorted(changes)), []).append(
                {**params, "b_id": account.id, "b_updated_at": self.now}
            )
            self._holders[key] = _Holder(account.id, "ldap")
            if "login" in changes and shown != account.login:
                self.report.renamed.append((account.login, shown))
                self._event("account.renamed", shown, {"from": account.login, "to": shown})
                self._flag_if_confusable(shown, entry)
            else:
                self.report.updated.append(shown)
                self._event(
                    "account.updated",
                    shown,
                    {"fields": sorted(c for c in changes if c != "login_key")},
                )
        account.login = shown
        account.login_key = key
        self.follow_status(account, entry)

    def _unpark(self, account: Known) -> None:
        """Give a parked account its old key back, unless someone took it this run."""
        if account.login_key not in self._holders:
            self.conn.execute(
                update(accounts)
                .where(accounts.c.id == account.id)
                .values(login_key=account.login_key)
            )
            self._holders[account.login_key] = _Holder(account.id, "ldap")
        else:
            # It keeps the parked key (no login matches it) until the
            # directory names it something free.
            account.login_key = parked_key(account.id)

    # -- status changes (either pass, and for vanished accounts) -------------

    def follow_status(self, account: Known, entry: DirectoryEntry) -> None:
        """Give the account the status its entry says (and free its seat if it loses it)."""
        wanted = "disabled" if entry.disabled else "active"
        if account.status != wanted:
            self.set_status(account, wanted)
            (self.report.disabled if wanted == "disabled" else self.report.enabled).append(
                account.login
            )

    def set_status(self, account: Known, status: str) -> None:
        """Change the account's status now, after every write buffered before it."""
        values: dict[str, Any] = {}
        if status == "deleted":
            # Free the login for a re-created user; the row itself stays.
            values["login_key"] = f"{account.login_key}{TOMBSTONE}deleted{TOMBSTONE}{account.id}"
        elif account.status == "deleted":
            values["login_key"] = account.login_key.split(TOMBSTONE, 1)[0]
        # It writes its own audit events and reads the account's row (for a
        # seat release): both must come after this run's earlier changes.
        self.flush()
        if change_status_in(
            self.lock,
            self.ledger,
            account.id,
            account.login,
            status,
            actor=self.actor,
            now=self.clock.now(),
            **values,
        ):
            self.report.seats_freed.append(account.login)
        if "login_key" in values:
            self._holders[values["login_key"]] = _Holder(account.id, "ldap")
        account.status = status

    # -- buffered writes ----------------------------------------------------

    def flush(self) -> None:
        """Write everything buffered: parked keys, new accounts, updates, audit events."""
        if self._parks:
            self.conn.execute(_PARK, self._parks)
            self._parks = []
        if self._created:
            self.conn.execute(insert(accounts), self._created)
            self._created = []
        for columns, rows in self._updates.items():
            self.conn.execute(self._statement(columns), rows)
        self._updates = {}
        if self._events:
            audit.record_many(self.conn, self._events)
            self._events = []

    def _statement(self, columns: tuple[str, ...]) -> Update:
        statement = self._statements.get(columns)
        if statement is None:
            values: dict[str, Any] = {
                column: bindparam(f"b_{column}") for column in (*columns, "updated_at")
            }
            statement = update(accounts).where(accounts.c.id == bindparam("b_id")).values(values)
            self._statements[columns] = statement
        return statement

    def _flag_if_confusable(self, shown: str, entry: DirectoryEntry) -> None:
        # The directory owns its logins, so a confusable one is accepted, but
        # reported and audited for a person to look at (new local logins are refused).
        why = confusable_mix(shown)
        if why is not None:
            self.report.flagged.append({"login": shown, "dn": entry.dn, "reason": why})
            self._event("account.flagged", shown, {"dn": entry.dn, "confusable": why})

    def _event(self, action: str, subject: str, details: dict[str, Any]) -> None:
        self._events.append(
            audit.event_row(
                at=self.now, actor=self.actor, action=action, subject=subject, details=details
            )
        )
