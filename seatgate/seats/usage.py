"""Seat use over time: threshold events and the peak seats held per month.

Two records are kept, both written by :func:`observe_in` inside the
transaction that changed the seats, under the seat lock (it takes the
:class:`~seatgate.seats.lock.SeatLock`):

- ``license_state.usage_level``, the highest of 80, 90 and 100 % of the
  entitled seats already reported. Crossing a threshold upward writes one
  ``seats.usage`` audit event and an alert in the notification outbox
  (:mod:`seatgate.seats.alerts`); falling back is stored silently, so the next
  crossing is reported again.
- ``seat_usage``, one row per calendar month (UTC): the peak number of seats
  held, when it was reached, the entitlement at that moment, and the count the
  month ended with, and the most seats held beyond the entitled ones at
  once (the overage peak, :mod:`seatgate.seats.overage`). A vendor true-up
  bills the monthly peaks.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Row, bindparam, case, insert, select, update

from seatgate.audit import log as audit
from seatgate.clock import to_utc
from seatgate.records import SYSTEM_ACTOR
from seatgate.seats import alerts
from seatgate.seats.days import record_day
from seatgate.seats.lock import SeatLock
from seatgate.seats.overage import overage_used
from seatgate.seats.state import count_seats, read_state
from seatgate.storage.driver_statement import DriverStatement
from seatgate.storage.schema import license_state, seat_usage

THRESHOLDS = (80, 90, 100)
USAGE_ACTION = "seats.usage"


@dataclass(frozen=True)
class MonthUsage:
    """The most seats held at once in one calendar month (UTC)."""

    month: str
    """``YYYY-MM``."""
    peak_seats: int
    peak_at: datetime
    """When the peak was first reached; the month's first instant when the
    seats were already held as it began."""
    seats_total: int | None
    """The entitled seats when the peak was reached; None when unlimited."""
    overage_peak: int = 0
    """The most seats held beyond the entitled ones at once in the month."""


def month_of(when: datetime) -> str:
    """The UTC calendar month of ``when`` as ``YYYY-MM``."""
    utc = to_utc(when)
    return f"{utc.year:04d}-{utc.month:02d}"  # not strftime: this runs on every claim


def usage_level(used: int, capacity: int | None) -> int:
    """The highest threshold (80, 90, 100) that ``used`` seats reach; 0 for none.

    Always 0 without a cap: unlimited (None) or no valid licence (0).
    """
    if not capacity:
        return 0
    return max((t for t in THRESHOLDS if used * 100 >= t * capacity), default=0)


def observe_in(
    lock: SeatLock,
    now: datetime,
    capacity: int | None,
    *,
    actor: str = SYSTEM_ACTOR,
    used: int | None = None,
    level_as_locked: bool = False,
    month_recorded: bool = False,
    day_recorded: bool = False,
) -> None:
    """Record seat use after a change, inside the transaction that holds ``lock``.

    The caller has already made its seat changes; ``capacity`` is the
    entitlement in force (``SeatState.capacity(now)``: None unlimited, 0
    without a valid licence). Counts the seats once (unless given ``used``,
    counted under this lock), so bulk changes call this once at the end.
    ``level_as_locked``: nothing in this transaction reported a level since the
    lock was taken, so the level it read holds. ``month_recorded``: the caller has
    already raised this month's row for ``used`` (:mod:`seatgate.seats.one_statement_claim`);
    ``day_recorded`` likewise today's row (:mod:`seatgate.seats.days`).
    """
    conn = lock.conn
    if used is None:
        used = count_seats(conn)
    if not month_recorded:
        _record_month(conn, now, used, capacity)
    if not day_recorded:
        record_day(conn, now, used, capacity)
    _report_level(conn, now, used, capacity, actor, lock.usage_level if level_as_locked else None)


def monthly_peaks(conn: Connection, now: datetime) -> list[MonthUsage]:
    """Every month from the first one recorded (or the current one) to ``now``'s, in order.

    A month without seat changes has no row of its own: the count the
    previous month ended with was held all through it. The current month's
    peak is at least the number of seats held now.
    """
    rows = {row.month: row for row in conn.execute(select(seat_usage))}
    current = month_of(now)
    months = _months_between(min([current, *rows]), max([current, *rows]))
    report: list[MonthUsage] = []
    carried: Row[Any] | None = None
    for month in months:
        row = rows.get(month)
        if row is not None:
            peak, at, total = int(row.peak), to_utc(row.peak_at), row.seats_total
            report.append(MonthUsage(month, peak, at, total, int(row.overage_peak)))
            carried = row
        elif carried is not None:
            last, total = int(carried.last), carried.seats_total
            over = overage_used(last, total)
            report.append(MonthUsage(month, last, _month_start(month), total, over))
        if month == current:
            report = _with_current_count(conn, now, report, month)
    return report


# -- internals ------------------------------------------------------------------


# Built once: they run in every transaction that changes seats.
_REPORTED = select(license_state.c.usage_level).where(license_state.c.id == 1)
_SU = seat_usage.c
_RAISES = bindparam("used") > _SU.peak
_MONTH = DriverStatement(
    update(seat_usage)
    .where(_SU.month == bindparam("this_month"))
    .values(
        peak=case((_RAISES, bindparam("used")), else_=_SU.peak),
        peak_at=case((_RAISES, bindparam("now")), else_=_SU.peak_at),
        seats_total=case((_RAISES, bindparam("capacity")), else_=_SU.seats_total),
        last=bindparam("used"),
        overage_peak=case(
            (bindparam("over") > _SU.overage_peak, bindparam("over")), else_=_SU.overage_peak
        ),
    )
)


def _record_month(conn: Connection, now: datetime, used: int, capacity: int | None) -> None:
    month = month_of(now)
    # The common case, the month's row already there, is one statement.
    over = overage_used(used, capacity)
    params = {"this_month": month, "used": used, "now": now, "capacity": capacity, "over": over}
    if _MONTH.run(conn, params).rowcount:
        return
    before = conn.execute(
        select(seat_usage).where(_SU.month < month).order_by(_SU.month.desc()).limit(1)
    ).first()
    if before is not None and before.last >= used:
        # The month began with the seats the last recorded month ended
        # with; this change did not raise them, so that is the peak.
        peak, peak_at, total = int(before.last), _month_start(month), before.seats_total
    else:
        peak, peak_at, total = used, now, capacity
    if before is not None:
        # The month began in overage if the last one ended there.
        over = max(over, overage_used(int(before.last), capacity))
    conn.execute(
        insert(seat_usage).values(
            month=month, peak=peak, peak_at=peak_at, last=used, seats_total=total, overage_peak=over
        )
    )


def _report_level(
    conn: Connection,
    now: datetime,
    used: int,
    capacity: int | None,
    actor: str,
    reported: int | None,
) -> None:
    level = usage_level(used, capacity)
    if reported is None:
        reported = int(conn.execute(_REPORTED).scalar_one())
    if level == reported:
        return
    # A jump past several thresholds at once (a bulk grant, a smaller
    # licence) reports each of them: alerts keyed on one level still fire.
    for threshold in THRESHOLDS:
        if reported < threshold <= level:
            audit.record(
                conn,
                at=now,
                actor=actor,
                action=USAGE_ACTION,
                subject=f"{threshold}%",
                outcome="crossed",
                details={"used": used, "total": capacity, "threshold": threshold},
            )
            alerts.threshold_crossed_in(conn, threshold, used, capacity, now)
    conn.execute(update(license_state).where(license_state.c.id == 1).values(usage_level=level))


def _with_current_count(
    conn: Connection, now: datetime, report: list[MonthUsage], month: str
) -> list[MonthUsage]:
    """``report`` with the current month's peak raised to the seats held now.

    Seats changed by a path that does not observe (an older version's
    transaction before an upgrade) still show in the month they are held.
    """
    used = count_seats(conn)
    entry = report[-1] if report and report[-1].month == month else None
    if entry is not None and entry.peak_seats >= used:
        return report
    capacity = read_state(conn).capacity(now)
    over = max(overage_used(used, capacity), entry.overage_peak if entry else 0)
    now_entry = MonthUsage(month, used, to_utc(now), capacity, over)
    return [*report[:-1], now_entry] if entry is not None else [*report, now_entry]


def _month_start(month: str) -> datetime:
    year, number = (int(part) for part in month.split("-"))
    return datetime(year, number, 1, tzinfo=UTC)


def _months_between(first: str, last: str) -> list[str]:
    year, month = (int(part) for part in first.split("-"))
    months: list[str] = []
    while (key := f"{year:04d}-{month:02d}") <= last:
        months.append(key)
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return months
