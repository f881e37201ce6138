"""The seat ledger: who holds a seat, and the rule that never bends.

Invariant: the number of seat holders never exceeds the entitled seats plus
the licence's signed overage allowance (:mod:`seatgate.seats.overage`).

How it holds across processes and hosts: every transaction that adds,
removes or moves a seat first takes the seat lock
(:func:`seatgate.seats.lock.take_seat_lock`: the single ``license_state``
row, ``SELECT ... FOR UPDATE`` on PostgreSQL; on SQLite the whole write
transaction is ``BEGIN IMMEDIATE``), then reads the seats held and compares
with the entitlement stored in that same row. The seats held are counted by
the database on that row (``seats_held``, kept by triggers on ``seats``:
:mod:`seatgate.storage.seat_counter`); no count is ever kept in Python memory.
The methods that change seats inside a caller's transaction take the
:class:`~seatgate.seats.lock.SeatLock` itself, so a seat change without the
lock does not type-check. Checking a seat that is already held is a plain
read and takes no lock.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from datetime import datetime

from sqlalchemy import Connection, select, update

from seatgate.audit import log as audit
from seatgate.clock import Clock
from seatgate.config.seats import SeatsConfig
from seatgate.errors import (
    LicenseInvalid,
    SeatAlreadyHeld,
    SeatNotHeld,
)
from seatgate.records import SeatHolder
from seatgate.seats import overage, reclaim, usage
from seatgate.seats.lock import SeatLock, take_seat_lock
from seatgate.seats.one_statement_claim import claim_with_lock, record_claim
from seatgate.seats.overage import Room
from seatgate.seats.rows import (
    Claimant,
    claimant,
    delete_seat,
    has_room,
    holds,
    insert_seat,
    login_of,
    require_active,
    require_room,
    seat_holders,
    touch_seat,
)
from seatgate.seats.state import SeatState, count_seats, read_state
from seatgate.storage.db import Database
from seatgate.storage.schema import seats


class Claim(enum.Enum):
    """What a seat claim at login came to."""

    GRANTED = "granted"
    HELD = "held"
    NO_SEAT = "no_seat_available"
    LICENSE_INVALID = "license_invalid"
    NOT_ACTIVE = "account_disabled"
    NOT_ALLOWED = "not_assigned"


# hook(conn, account_id, actor=, cause=, now=); cause: the release reason or `reassigned`.
SeatLossHook = Callable[..., object]


class SeatLedger:
    """Grants, moves and releases seats; each method is one transaction.

    ``on_seat_lost`` hears of every seat taken away, in the transaction taking
    it: the composition root ends the account's sessions there.
    """

    def __init__(
        self,
        db: Database,
        clock: Clock,
        config: SeatsConfig,
        *,
        on_seat_lost: SeatLossHook | None = None,
    ) -> None:
        self.db = db
        self.clock = clock
        self.config = config
        self.on_seat_lost = on_seat_lost

    # -- reads (no lock) ---------------------------------------------------

    def holds_seat(self, account_id: int) -> bool:
        """Whether the account holds a seat: a plain read, no lock."""
        return self.db.read(lambda conn: holds(conn, account_id))

    def state(self) -> SeatState:
        """The stored entitlement (a plain read)."""
        return self.db.read(read_state)

    def used(self) -> int:
        """Number of seats held."""
        return self.db.read(count_seats)

    def holders(self) -> list[SeatHolder]:
        """Every seat holder, longest-held first."""
        return self.db.read(seat_holders)

    # -- writes ------------------------------------------------------------

    def claim_in(self, conn: Connection, account_id: int, now: datetime) -> Claim:
        """Claim a free seat for a login, inside the caller's transaction.

        Takes the seat lock. Honours ``assignment`` (manual: only admins may
        claim, so they cannot be locked out) and ``reserved_for_admins``
        (non-admins never take the last N free seats). With no free entitled
        seat: with ``reclaim_on_demand``, the longest-idle seat under the same
        lock (:func:`seatgate.seats.reclaim.take_idle_seat_in`); else a seat of
        the licence's overage allowance, audited ``seat.overage``.
        """
        details: dict[str, object] = {"assignment": self.config.assignment}
        # Few statements under the lock: every first login waits for them.
        if conn.dialect.name == "postgresql":
            lock, claimed = claim_with_lock(conn, account_id, now, self.config)
            if claimed is not None and claimed.inserted:
                record_claim(
                    lock, claimed, now, details, claimed.month_recorded, claimed.day_recorded
                )
                return Claim.GRANTED
        else:
            lock = take_seat_lock(conn)
        state = lock.state
        if not state.is_valid(now):
            return Claim.LICENSE_INVALID
        # The portable path, under the lock: what the one statement did not grant.
        found = claimant(lock, account_id)
        if found is None or found.account.status != "active":
            return Claim.NOT_ACTIVE
        account, used = found.account, found.used
        if found.held:
            return Claim.HELD
        if self.config.assignment == "manual" and not account.is_admin:
            return Claim.NOT_ALLOWED
        reserve = 0 if account.is_admin else self.config.reserved_for_admins
        room = overage.room_for(state, now, reserve, used)
        if room is not Room.FREE:
            # An idle seat before an overage seat: it costs nothing at the true-up. Only
            # when one seat fewer makes room: admins may hold the reserve.
            taken = overage.room_for(state, now, reserve, used - 1) is not Room.NONE and (
                reclaim.take_idle_seat_in(self, lock, account.login, now)
            )
            if taken:
                details["reclaimed_from"], room, used = taken, Room.FREE, used - 1
            elif room is Room.NONE:
                return Claim.NO_SEAT
            else:
                details["overage"] = True
        insert_seat(lock, account_id, now, assigned_by=account.login, pinned=False)
        record_claim(lock, Claimant(account, False, used), now, details, False)
        if room is Room.OVERAGE:
            overage.record_in(lock, now, account.login, used + 1)
        return Claim.GRANTED

    def assign(self, account_id: int, *, actor: str, pinned: bool = False) -> None:
        """Give the account a seat (an admin's act: may use seats reserved for admins).

        Raises :class:`SeatAlreadyHeld`, :class:`AccountNotActive`,
        :class:`LicenseInvalid` or :class:`NoSeatAvailable`.
        """

        self.db.write(lambda conn: self.assign_in(take_seat_lock(conn), account_id, actor, pinned))

    def assign_in(self, lock: SeatLock, account_id: int, actor: str, pinned: bool = False) -> None:
        """:meth:`assign` inside the transaction that holds ``lock``."""
        conn, state, now = lock.conn, lock.state, self.clock.now()
        account = require_active(conn, account_id)
        if holds(conn, account_id):
            raise SeatAlreadyHeld(account.login)
        require_room(lock, state, now)
        insert_seat(lock, account_id, now, assigned_by=actor, pinned=pinned)
        audit.record(
            conn,
            at=now,
            actor=actor,
            action="seat.assigned",
            subject=account.login,
            details={"pinned": pinned},
        )
        usage.observe_in(lock, now, state.capacity(now), actor=actor)

    def revoke(self, account_id: int, *, actor: str) -> None:
        """Take the account's seat away. Raises :class:`SeatNotHeld`."""

        def work(conn: Connection) -> None:
            lock = take_seat_lock(conn)
            login = login_of(conn, account_id)
            if not self.release_in(lock, account_id, actor=actor, reason="revoked"):
                raise SeatNotHeld(login)

        self.db.write(work)

    def reassign(self, from_id: int, to_id: int, *, actor: str) -> None:
        """Move a seat from one account to another in one transaction.

        The seat keeps its pin. Nothing changes unless both halves can be done.
        Raises :class:`SeatNotHeld`, :class:`SeatAlreadyHeld`,
        :class:`AccountNotActive` or :class:`LicenseInvalid`.
        """

        self.db.write(lambda conn: self.reassign_in(take_seat_lock(conn), from_id, to_id, actor))

    def reassign_in(self, lock: SeatLock, from_id: int, to_id: int, actor: str) -> None:
        """:meth:`reassign` inside the transaction that holds ``lock``."""
        conn, state, now = lock.conn, lock.state, self.clock.now()
        if not state.is_valid(now):
            raise LicenseInvalid(state.invalid_reason(now))
        source_login = login_of(conn, from_id)
        pinned = conn.execute(
            select(seats.c.pinned).where(seats.c.account_id == from_id)
        ).scalar_one_or_none()
        if pinned is None:
            raise SeatNotHeld(source_login)
        target = require_active(conn, to_id)
        if holds(conn, to_id):
            raise SeatAlreadyHeld(target.login)
        delete_seat(lock, from_id)
        self._seat_lost(conn, from_id, actor=actor, cause="reassigned", now=now)
        insert_seat(lock, to_id, now, assigned_by=actor, pinned=bool(pinned))
        audit.record(
            conn,
            at=now,
            actor=actor,
            action="seat.reassigned",
            subject=target.login,
            details={"from": source_login, "to": target.login, "pinned": bool(pinned)},
        )
        # The count is unchanged; observing keeps the month's record current.
        usage.observe_in(lock, now, state.capacity(now), actor=actor)

    def set_pinned(self, account_id: int, pinned: bool, *, actor: str) -> None:
        """Pin a seat (never released automatically) or unpin it. Raises :class:`SeatNotHeld`."""

        def work(conn: Connection) -> None:
            take_seat_lock(conn)
            login = login_of(conn, account_id)
            changed = conn.execute(
                update(seats).where(seats.c.account_id == account_id).values(pinned=pinned)
            ).rowcount
            if not changed:
                raise SeatNotHeld(login)
            audit.record(
                conn,
                at=self.clock.now(),
                actor=actor,
                action="seat.pinned" if pinned else "seat.unpinned",
                subject=login,
            )

        self.db.write(work)

    def touch_in(self, conn: Connection, account_id: int, now: datetime) -> bool:
        """Mark a held seat as used now (for least-recently-used release).

        Returns False if the seat is gone. Takes no seat lock: it only
        updates the holder's own row.
        """
        return touch_seat(conn, account_id, now)

    # -- used by the account and licence services ---------------------------

    def release_in(
        self,
        lock: SeatLock,
        account_id: int,
        *,
        actor: str,
        reason: str,
        observe: bool = True,
        action: str = "seat.released",
        details: dict[str, object] | None = None,
    ) -> bool:
        """Release the account's seat inside the transaction that holds ``lock``.

        Returns whether there was a seat to release. Audited as ``action``
        (``seat.reclaimed`` for an idle seat) with ``reason`` as its outcome.
        Bulk callers pass ``observe=False`` and call :meth:`observe_usage_in` once.
        """
        conn = lock.conn
        released = delete_seat(lock, account_id)
        if released:
            now = self.clock.now()
            audit.record(
                conn,
                at=now,
                actor=actor,
                action=action,
                subject=login_of(conn, account_id),
                outcome=reason,
                details=details,
            )
            self._seat_lost(conn, account_id, actor=actor, cause=reason, now=now)
            if observe:
                self.observe_usage_in(lock, actor=actor)
        return released

    def _seat_lost(
        self, conn: Connection, account_id: int, *, actor: str, cause: str, now: datetime
    ) -> None:
        if self.on_seat_lost is not None:
            self.on_seat_lost(conn, account_id, actor=actor, cause=cause, now=now)

    def observe_usage_in(self, lock: SeatLock, *, actor: str) -> None:
        """Record seat use after seat changes, under ``lock``.

        Threshold events and the monthly peak (:mod:`seatgate.seats.usage`); bulk
        paths call it once per transaction, after their last change.
        """
        now = self.clock.now()
        usage.observe_in(lock, now, read_state(lock.conn).capacity(now), actor=actor)

    def enforce_capacity_in(self, lock: SeatLock, capacity: int | None, *, actor: str) -> list[str]:
        """Release seats until at most ``capacity`` are held, under ``lock``.

        Unpinned seats go first, least recently used first. Pinned seats are
        never released while unpinned ones remain; only if the pinned seats
        alone exceed the entitlement are they released too (same order),
        because the invariant comes before the pin. Returns the logins that
        lost their seats, each release audited. Records no seat use: the
        caller does, once, after its last change (:func:`usage.observe_in`).
        """
        conn = lock.conn
        if capacity is None:
            return []
        excess = count_seats(conn) - capacity
        if excess <= 0:
            return []
        released: list[str] = []
        for pinned in (False, True):
            if excess <= 0:
                break
            victims = (
                conn.execute(
                    select(seats.c.account_id)
                    .where(seats.c.pinned == pinned)
                    .order_by(seats.c.last_used_at, seats.c.assigned_at, seats.c.account_id)
                    .limit(excess)
                )
                .scalars()
                .all()
            )
            for account_id in victims:
                reason = "entitlement_below_pinned_seats" if pinned else "entitlement_shrank"
                login = login_of(conn, account_id)
                self.release_in(lock, account_id, actor=actor, reason=reason, observe=False)
                released.append(login)
            excess -= len(victims)
        return released

    def has_room_in(self, lock: SeatLock) -> bool:
        """Whether an automatic grant could still find a seat, under ``lock``."""
        state = read_state(lock.conn)
        return has_room(lock, state, self.clock.now(), self.config.reserved_for_admins)

    def grant_in(
        self,
        lock: SeatLock,
        account_id: int,
        *,
        actor: str,
        reason: str,
        observe: bool = True,
    ) -> bool:
        """Give a seat if one is free, inside the transaction that holds ``lock``.

        Used by automatic grants (directory seat groups): seats reserved for
        admins are respected. Returns whether a seat was granted. Bulk
        callers pass ``observe=False`` and call :meth:`observe_usage_in` once.
        """
        conn = lock.conn
        if holds(conn, account_id) or not self.has_room_in(lock):
            return False
        now = self.clock.now()
        insert_seat(lock, account_id, now, assigned_by=actor, pinned=False)
        audit.record(
            conn,
            at=now,
            actor=actor,
            action="seat.assigned",
            subject=login_of(conn, account_id),
            outcome=reason,
        )
        if observe:
            self.observe_usage_in(lock, actor=actor)
        return True
