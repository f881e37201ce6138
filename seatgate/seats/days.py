"""Seats held per day (UTC), for the seat-use chart of the admin console.

One row per day with a seat change: the most seats held that day, the count
it ended with and the entitlement then. Written by
:func:`seatgate.seats.usage.observe_in` in the transaction that changed the
seats, under the seat lock, so it is exact and costs one statement in the
common case. A day without a row held what the day before ended with. Rows
are a few hundred a year; nothing prunes them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import Connection, bindparam, case, insert, select, update

from seatgate.clock import to_utc
from seatgate.storage.driver_statement import DriverStatement
from seatgate.storage.schema import seat_days

_SD = seat_days.c
_RAISES = bindparam("used") > _SD.peak
_DAY = DriverStatement(
    update(seat_days)
    .where(_SD.day == bindparam("this_day"))
    .values(
        peak=case((_RAISES, bindparam("used")), else_=_SD.peak),
        last=bindparam("used"),
        seats_total=bindparam("capacity"),
    )
)


@dataclass(frozen=True)
class DayUse:
    """One day's most seats held and the seats entitled (None: unlimited)."""

    day: date
    held: int
    entitled: int | None


def day_of(when: datetime) -> str:
    """The UTC day of ``when`` as ``YYYY-MM-DD``."""
    return f"{to_utc(when):%Y-%m-%d}"


def record_day(conn: Connection, now: datetime, used: int, capacity: int | None) -> None:
    """Fold ``used`` seats held at ``now`` into today's row (under the seat lock)."""
    day = day_of(now)
    params = {"this_day": day, "used": used, "capacity": capacity}
    if _DAY.run(conn, params).rowcount:
        return
    before = conn.execute(
        select(_SD.last).where(_SD.day < day).order_by(_SD.day.desc()).limit(1)
    ).scalar_one_or_none()
    # The day began with what the last recorded day ended with.
    peak = max(used, int(before or 0))
    conn.execute(insert(seat_days).values(day=day, peak=peak, last=used, seats_total=capacity))


def daily_use(
    conn: Connection, now: datetime, days: int, held_now: int, entitled_now: int | None
) -> list[DayUse]:
    """The ``days`` days up to ``now``'s, oldest first, from one bounded range read.

    A day without a row carries the previous day's end (and entitlement);
    before the first row, and on today, at least what is held now counts.
    """
    today = to_utc(now).date()
    first = today - timedelta(days=days - 1)
    rows = {
        row.day: row for row in conn.execute(select(seat_days).where(_SD.day >= first.isoformat()))
    }
    carried = conn.execute(
        select(_SD.last, _SD.seats_total)
        .where(_SD.day < first.isoformat())
        .order_by(_SD.day.desc())
        .limit(1)
    ).first()
    held, entitled = (int(carried.last), carried.seats_total) if carried else (0, entitled_now)
    report: list[DayUse] = []
    for offset in range(days):
        day = first + timedelta(days=offset)
        row = rows.get(day.isoformat())
        if row is not None:
            report.append(DayUse(day, int(row.peak), row.seats_total))
            held, entitled = int(row.last), row.seats_total
        else:
            report.append(DayUse(day, held, entitled))
    if report and rows.get(today.isoformat()) is None:
        report[-1] = DayUse(today, max(report[-1].held, held_now), entitled_now)
    return report
