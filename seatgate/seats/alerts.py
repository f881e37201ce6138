"""Seat events for the notification outbox, written in the transaction of their cause.

Each is deduplicated per cause (:func:`seatgate.storage.outbox.enqueue`):
a threshold crossed again the same day, or a seat request repeated by the
same account, adds no second alert.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection

from seatgate.clock import to_utc
from seatgate.storage import outbox

THRESHOLD = "seats.threshold"
REQUEST = "seats.request"
OVERAGE = "seats.overage"


def threshold_crossed_in(
    conn: Connection, threshold: int, used: int, total: int | None, at: datetime
) -> None:
    """Seat use reached ``threshold`` % upward (called once per crossing, under the seat lock).

    At most one alert per threshold and UTC day: seat use that hovers
    around 80 % as people log in and out must not mail the admins each time.
    """
    data = {"threshold": threshold, "used": used, "total": total}
    key = f"{THRESHOLD}:{threshold}:{to_utc(at):%Y-%m-%d}"
    outbox.enqueue(conn, THRESHOLD, key, data, at)


def seat_requested_in(conn: Connection, login: str, at: datetime) -> None:
    """A refused account asked for a seat: one alert per account and UTC day.

    The hook for the seat-request queue, to call in the transaction that
    records the request.
    """
    key = f"{REQUEST}:{login}:{to_utc(at):%Y-%m-%d}"
    outbox.enqueue(conn, REQUEST, key, {"login": login}, at)


def overage_used_in(conn: Connection, used: int, seats: int, allowed: int, at: datetime) -> None:
    """A claim went beyond the entitled seats into the vendor-signed overage allowance.

    The hook for the overage allowance, to call in the transaction of the
    claim; one alert per number of seats over the entitlement and UTC day.
    """
    over = used - seats
    key = f"{OVERAGE}:{over}:{to_utc(at):%Y-%m-%d}"
    data = {"used": used, "seats": seats, "over": over, "allowed": allowed}
    outbox.enqueue(conn, OVERAGE, key, data, at)
