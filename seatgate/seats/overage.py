"""The overage allowance: seats a licence lets be held beyond its entitled ones.

A licence may carry a vendor-signed ``overage`` claim, a share from 0 to 0.5
of its seats (add-ons' seats included). Up to ``floor(seats x overage)``
seats may then be held beyond the entitled ones; the vendor bills them at
the true-up from the monthly overage peak (:mod:`seatgate.seats.usage`).
The stored entitlement keeps that number in ``license_state.overage_seats``,
so the seat invariant becomes ``held <= seats_total + overage_seats`` and is
checked exactly as before: counted under the seat lock, in the transaction
that inserts the seat.

Only first-login claims go into overage (:meth:`SeatLedger.claim_in
<seatgate.seats.ledger.SeatLedger.claim_in>`), in this order: a free
entitled seat; else, with ``seats.reclaim_on_demand``, the longest-idle seat
(an idle seat costs nothing at the true-up); else an overage seat; else the
claim is refused. Admin assigns and directory grants stay within the
entitled seats. ``seats.reserved_for_admins`` keeps its seats at the top of
the whole allowance, so administrators can still sign in when non-admins
have used the overage.

Each claim that raises the seats held beyond the entitled ones is audited
``seat.overage``.
"""

from __future__ import annotations

import enum
from datetime import datetime

from seatgate.audit import log as audit
from seatgate.seats import alerts
from seatgate.seats.lock import SeatLock
from seatgate.seats.state import SeatState

OVERAGE_ACTION = "seat.overage"


class Room(enum.Enum):
    """Where one more seat would go."""

    FREE = "free"
    """Within the entitled seats."""
    OVERAGE = "overage"
    """Beyond the entitled seats, within the licence's overage allowance."""
    NONE = "none"
    """Nowhere: every seat the licence allows (less the admins' reserve) is held."""


def room_for(state: SeatState, now: datetime, reserve: int, used: int) -> Room:
    """Where a claim would put one more seat with ``used`` seats held (counted under the lock).

    ``reserve``: seats kept free for administrators at the top of the allowance.
    Without an overage claim this is the check the ledger always made:
    ``used < seats - reserve``.
    """
    capacity = state.capacity(now)  # None: no cap; 0: no valid entitlement
    if capacity is None:
        return Room.FREE
    limit = capacity + state.overage_seats if capacity else 0
    if used >= limit - reserve:
        return Room.NONE
    return Room.FREE if used < capacity else Room.OVERAGE


def overage_used(used: int, capacity: int | None) -> int:
    """Seats held beyond the entitled ones (0 without a cap or without a valid licence)."""
    if not capacity:
        return 0
    return max(0, used - capacity)


def record_in(lock: SeatLock, now: datetime, login: str, used: int) -> None:
    """Audit ``seat.overage`` for ``login``'s claim, which made ``used`` seats held."""
    state = lock.state
    audit.record(
        lock.conn,
        at=now,
        actor=login,
        action=OVERAGE_ACTION,
        subject=login,
        details={
            "used": used,
            "seats": state.seats_total,
            "overage_allowed": state.overage_seats,
            "overage_used": overage_used(used, state.capacity(now)),
        },
    )
    # The admins hear of it with the claim (one alert per seats-over count and day).
    entitled = state.capacity(now)
    alerts.overage_used_in(
        lock.conn,
        used,
        state.seats_total if entitled is None else entitled,
        state.overage_seats,
        now,
    )
