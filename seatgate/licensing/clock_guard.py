"""A clock set back cannot stretch a trial (or any token with a hard expiry).

The ``license_state`` row keeps a high-water mark: the latest time the
installation has seen. Hard expiries are judged by the later of the clock and
that mark, so setting the clock back never brings an ended trial back.

How the mark moves depends on what else can tell the time:

- With a second clock -- the database server's, on PostgreSQL -- the mark is
  simply the latest time either clock has shown.
- With the host clock alone (SQLite, one host), the mark moves on by the time
  that clock advanced since it was last read, and ignores a jump back. A
  clock set back two days therefore keeps costing the trial real time
  instead of giving two days back. (A clock then set forward again costs
  the trial those days twice: a trial can lose time this way, never gain it.)

A clock more than a day behind the mark is reported: one ``clock.set_back``
audit event when it is first seen, and a line in ``license status``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, func, select, update

from seatgate.audit import log as audit
from seatgate.clock import to_utc
from seatgate.records import SYSTEM_ACTOR
from seatgate.seats.lock import SeatLock
from seatgate.storage.schema import license_state

# Clocks of several hosts and NTP corrections disagree by seconds, not days.
TOLERANCE = timedelta(days=1)


@dataclass(frozen=True)
class ClockCheck:
    """The time hard expiries are judged by, and how far the clock lags it."""

    now: datetime
    high_water: datetime

    @property
    def trusted_now(self) -> datetime:
        """The later of the clock and the high-water mark."""
        return max(self.now, self.high_water)

    @property
    def behind(self) -> timedelta:
        """How far the clock is behind the latest time seen (zero when it is not)."""
        return max(timedelta(0), self.high_water - self.now)

    @property
    def set_back(self) -> bool:
        """Whether the clock is more than a day behind the latest time seen."""
        return self.behind > TOLERANCE

    def explain(self) -> str | None:
        """A sentence for ``license status`` when the clock was set back."""
        if not self.set_back:
            return None
        return (
            f"the system clock is {self.behind.days} day(s) behind the latest time this "
            f"installation has seen ({self.high_water:%Y-%m-%d %H:%M} UTC); expiry dates are "
            "judged by that time, so setting the clock back does not extend a trial"
        )


def advance(
    high_water: datetime | None,
    last_seen: datetime | None,
    now: datetime,
    witness: datetime | None = None,
) -> datetime:
    """The new high-water mark after the clock shows ``now`` (pure).

    ``witness`` is an independent clock (the database server's), when there is one.
    """
    if witness is not None:
        return max(t for t in (high_water, now, witness) if t is not None)
    if high_water is None:
        return now
    elapsed = now - last_seen if last_seen is not None and now > last_seen else timedelta(0)
    return max(high_water + elapsed, now)


def observe_in(lock: SeatLock, now: datetime, *, database_clock: bool) -> ClockCheck:
    """Move the stored high-water mark for ``now``, under the seat lock.

    The lock keeps two transactions from both reading the old mark and
    writing their own. ``database_clock`` also reads the PostgreSQL server's
    clock as a witness.
    """
    conn = lock.conn
    row = conn.execute(
        select(license_state.c.clock_high_water, license_state.c.clock_last_seen).where(
            license_state.c.id == 1
        )
    ).one()
    before = to_utc(row.clock_high_water) if row.clock_high_water is not None else None
    last_seen = to_utc(row.clock_last_seen) if row.clock_last_seen is not None else None
    witness = _server_now(conn) if database_clock else None
    high_water = advance(before, last_seen, now, witness)
    if (before, last_seen) != (high_water, now):
        conn.execute(
            update(license_state)
            .where(license_state.c.id == 1)
            .values(clock_high_water=high_water, clock_last_seen=now)
        )
    check = ClockCheck(now, high_water)
    was_behind = before is not None and last_seen is not None and before - last_seen > TOLERANCE
    if check.set_back and not was_behind:
        audit.record(
            conn,
            at=now,
            actor=SYSTEM_ACTOR,
            action="clock.set_back",
            outcome="detected",
            details={
                "clock": now.isoformat(),
                "latest_seen": high_water.isoformat(),
                "behind_days": round(check.behind / timedelta(days=1), 2),
            },
        )
    return check


def _server_now(conn: Connection) -> datetime | None:
    if conn.dialect.name != "postgresql":
        return None
    value = conn.execute(select(func.now())).scalar_one()
    return to_utc(value) if isinstance(value, datetime) else None
