"""The stored entitlement as the seat ledger sees it, and the seat counts.

Reads here take no lock; the seat lock is :func:`seatgate.seats.lock.take_seat_lock`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Label, Row, func, select

from seatgate.clock import to_utc
from seatgate.storage.schema import license_state, seats


@dataclass(frozen=True)
class SeatState:
    """The stored entitlement, as the seat ledger sees it."""

    valid: bool
    reason: str | None
    edition: str | None
    seats_total: int
    unlimited: bool
    trial: bool
    expires_at: datetime | None
    base_jti: str | None
    overage_seats: int = 0
    """Seats the licence's ``overage`` claim allows beyond ``seats_total``."""
    # Bookkeeping of the time seen, not part of the entitlement: two states
    # that differ only here are the same entitlement.
    clock_high_water: datetime | None = field(default=None, compare=False)

    def trusted(self, now: datetime) -> datetime:
        """The time expiries are judged by: a clock set back does not undo one."""
        if self.clock_high_water is None:
            return now
        return max(now, self.clock_high_water)

    def is_valid(self, now: datetime) -> bool:
        """Whether the entitlement allows logins at ``now``."""
        return self.valid and not self.stale(now)

    def stale(self, now: datetime) -> bool:
        """Whether a stored valid entitlement has passed its expiry and must be recomputed."""
        return self.valid and self.expires_at is not None and self.trusted(now) >= self.expires_at

    def capacity(self, now: datetime) -> int | None:
        """Seats that may be held at ``now``: None for no cap, 0 without a valid licence."""
        if not self.is_valid(now):
            return 0
        return None if self.unlimited else self.seats_total

    def limit(self, now: datetime) -> int | None:
        """Seats that may be held at most at ``now``: :meth:`capacity` plus the overage."""
        capacity = self.capacity(now)
        return capacity if not capacity else capacity + self.overage_seats

    def summary(self) -> dict[str, object]:
        """The entitlement in a few fields, for ``license.changed`` audit events."""
        return {
            "valid": self.valid,
            "edition": self.edition,
            "seats": None if self.unlimited else self.seats_total,
            "unlimited": self.unlimited,
            "trial": self.trial,
            "base": self.base_jti,
            "overage_seats": self.overage_seats,
        }

    def invalid_reason(self, now: datetime) -> str:
        """Why there is no valid entitlement at ``now``."""
        if self.stale(now):
            what = "trial" if self.trial else "licence"
            return f"the {what} ended on {self.expires_at:%Y-%m-%d %H:%M} UTC"
        return self.reason or "no licence is installed"


STATE_COLUMNS = (
    "valid",
    "reason",
    "edition",
    "seats_total",
    "unlimited",
    "trial",
    "expires_at",
    "base_jti",
    "overage_seats",
    "clock_high_water",
)


def read_state(conn: Connection) -> SeatState:
    """Read the stored entitlement (a plain read: no lock)."""
    return state_from_row(conn.execute(select(license_state).where(license_state.c.id == 1)).one())


def state_columns(prefix: str) -> list[Label[Any]]:
    """The ``license_state`` columns a SeatState needs, labelled ``prefix + name``.

    For a read that fetches the entitlement together with other rows in one
    statement (the web gate's per-request check); see :func:`state_from_row`.
    """
    return [license_state.c[name].label(prefix + name) for name in STATE_COLUMNS]


def state_from_row(row: Row[Any], prefix: str = "") -> SeatState:
    """The SeatState in ``row`` (columns named as in ``license_state``, after ``prefix``)."""
    return state_from_mapping(row._mapping, prefix)


def state_from_mapping(m: Mapping[Any, Any], prefix: str = "") -> SeatState:
    """:func:`state_from_row` for a row given as a mapping by column label."""

    def when(name: str) -> datetime | None:
        value = m[prefix + name]
        return to_utc(value) if value is not None else None

    return SeatState(
        valid=bool(m[prefix + "valid"]),
        reason=m[prefix + "reason"],
        edition=m[prefix + "edition"],
        seats_total=int(m[prefix + "seats_total"]),
        unlimited=bool(m[prefix + "unlimited"]),
        trial=bool(m[prefix + "trial"]),
        expires_at=when("expires_at"),
        base_jti=m[prefix + "base_jti"],
        overage_seats=int(m[prefix + "overage_seats"]),
        clock_high_water=when("clock_high_water"),
    )


def count_seats(conn: Connection) -> int:
    """Return the number of held seats."""
    return int(conn.execute(select(func.count()).select_from(seats)).scalar_one())


def count_pinned(conn: Connection) -> int:
    """Return the number of pinned seats."""
    return int(
        conn.execute(select(func.count()).select_from(seats).where(seats.c.pinned)).scalar_one()
    )
