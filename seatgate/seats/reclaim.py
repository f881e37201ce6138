"""Idle-seat reclaim: seats whose holders stopped logging in go back to the pool.

A seat is idle when it is not pinned, its holder is no administrator, and
its ``last_used_at`` is more than ``seats.reclaim_idle_days`` days ago.
``last_used_at`` moves at every login on the seat and starts at the time
the seat was claimed or assigned, so a holder who never logged in since
counts from then: a seat an admin just assigned is never idle at once.

``seatgate seats reclaim`` releases every idle seat, least recently used
first, in one transaction under the seat lock. With
``seats.reclaim_on_demand`` a first login that finds no free seat takes the
longest-idle seat instead of being refused (:func:`take_idle_seat_in`),
inside the claim's own transaction and under its seat lock: two claims at
once never take the same seat, and the seat count never passes the bound.
Every reclaimed seat is audited ``seat.reclaimed`` and its holder's
sessions end, as for a revoke.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from sqlalchemy import Connection, false, select

from seatgate.clock import Clock, to_utc
from seatgate.config.seats import SeatsConfig
from seatgate.errors import ConfigError
from seatgate.seats.lock import SeatLock, take_seat_lock
from seatgate.storage.db import Database
from seatgate.storage.schema import accounts, seats

RECLAIMED = "seat.reclaimed"


class SeatLedger(Protocol):
    """What reclaiming needs of :class:`seatgate.seats.ledger.SeatLedger` (which calls it)."""

    config: SeatsConfig

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
        """Release a seat under ``lock``, audited as ``action``."""
        ...

    def observe_usage_in(self, lock: SeatLock, *, actor: str) -> None:
        """Record seat use once after the changes."""
        ...


@dataclass(frozen=True)
class IdleSeat:
    """A seat idle enough to be reclaimed: its holder and when it was last used."""

    account_id: int
    login: str
    last_used_at: datetime


def idle_seats(conn: Connection, cutoff: datetime, limit: int | None = None) -> list[IdleSeat]:
    """Unpinned seats of non-admins last used before ``cutoff``, least recently used first."""
    query = (
        select(seats.c.account_id, accounts.c.login, seats.c.last_used_at)
        .join(accounts, accounts.c.id == seats.c.account_id)
        .where(
            seats.c.pinned == false(),
            accounts.c.is_admin == false(),
            seats.c.last_used_at < cutoff,
        )
        .order_by(seats.c.last_used_at, seats.c.assigned_at, seats.c.account_id)
        .limit(limit)
    )
    return [
        IdleSeat(int(r.account_id), str(r.login), to_utc(r.last_used_at))
        for r in conn.execute(query)
    ]


def _release(ledger: SeatLedger, lock: SeatLock, seat: IdleSeat, *, actor: str, why: str) -> None:
    ledger.release_in(
        lock,
        seat.account_id,
        actor=actor,
        reason=why,
        action=RECLAIMED,
        details={"last_used_at": seat.last_used_at.isoformat()},
        observe=False,
    )


def take_idle_seat_in(
    ledger: SeatLedger, lock: SeatLock, claimant: str, now: datetime
) -> str | None:
    """Release the longest-idle seat for ``claimant``'s claim, under its ``lock``.

    Returns the login that lost the seat, or None (on-demand reclaim off, or
    no seat idle). The caller inserts the claimant's seat in the same
    transaction, so the seat count is the same before and after.
    """
    days = ledger.config.reclaim_idle_days
    if not ledger.config.reclaim_on_demand or days is None:
        return None
    found = idle_seats(lock.conn, now - timedelta(days=days), limit=1)
    if not found:
        return None
    _release(ledger, lock, found[0], actor=claimant, why="on_demand")
    return found[0].login


class SeatReclaimer:
    """``seatgate seats reclaim``: release every idle seat, or list them (dry run)."""

    def __init__(self, db: Database, clock: Clock, ledger: SeatLedger) -> None:
        self.db = db
        self.clock = clock
        self.ledger = ledger

    def idle_days(self, given: int | None) -> int:
        """``given``, else ``seats.reclaim_idle_days``; :class:`ConfigError` when neither is set."""
        days = given if given is not None else self.ledger.config.reclaim_idle_days
        if days is None:
            raise ConfigError("seats.reclaim_idle_days", "is not set; set it or pass --idle-days N")
        if days < 1:
            raise ConfigError("--idle-days", "must be at least 1")
        return days

    def idle(self, days: int) -> list[IdleSeat]:
        """The seats a reclaim would release now (a plain read: nothing changes)."""
        cutoff = self.clock.now() - timedelta(days=days)
        return self.db.read(lambda conn: idle_seats(conn, cutoff))

    def reclaim(self, days: int, *, actor: str) -> list[IdleSeat]:
        """Release every seat idle for more than ``days`` days, in one transaction."""

        def work(conn: Connection) -> list[IdleSeat]:
            lock = take_seat_lock(conn)
            found = idle_seats(conn, self.clock.now() - timedelta(days=days))
            for seat in found:
                _release(self.ledger, lock, seat, actor=actor, why="idle")
            if found:
                self.ledger.observe_usage_in(lock, actor=actor)
            return found

        return self.db.write(work)
