"""The figures behind the console's seat-use charts, and their CSV downloads.

Three reads, each bounded by the time range it shows: seats held against
entitled per day (``seat_days``), the monthly peaks a true-up bills
(``seat_usage``), and login decisions per day by outcome, counted by one
grouped query over the ``login`` audit events of the range (the index on
``audit_events.at`` bounds it). Days are UTC days.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import Connection, func, select

from seatgate.clock import to_utc
from seatgate.gate.decision import Reason
from seatgate.seats.days import DayUse, daily_use
from seatgate.seats.state import count_seats, read_state
from seatgate.seats.usage import MonthUsage, monthly_peaks
from seatgate.storage.schema import audit_events

DAYS = 90
ALLOWED = "allowed"
LOGIN_ACTION = "login"
# Every outcome a login decision can have, in the order the chart stacks them.
OUTCOMES = (ALLOWED, *(reason.value for reason in Reason))


@dataclass(frozen=True)
class LoginDay:
    """One day's login decisions by outcome (every outcome of :data:`OUTCOMES` present)."""

    day: date
    counts: dict[str, int]


@dataclass(frozen=True)
class SeatFigures:
    """What the three charts show."""

    days: list[DayUse]
    months: list[MonthUsage]
    logins: list[LoginDay]


def read_figures(conn: Connection, now: datetime, days: int = DAYS) -> SeatFigures:
    """The figures of the ``days`` days up to ``now`` and every recorded month."""
    state = read_state(conn)
    entitled = state.capacity(now)
    held = count_seats(conn)
    return SeatFigures(
        days=daily_use(conn, now, days, held, entitled),
        months=monthly_peaks(conn, now),
        logins=login_days(conn, now, days),
    )


def login_days(conn: Connection, now: datetime, days: int = DAYS) -> list[LoginDay]:
    """Login decisions per UTC day by outcome over the ``days`` days up to ``now``'s."""
    today = to_utc(now).date()
    first = today - timedelta(days=days - 1)
    start = datetime(first.year, first.month, first.day, tzinfo=now.tzinfo)
    at = audit_events.c.at
    # PostgreSQL stores instants and answers in the session's zone; SQLite
    # stores the UTC text as written.
    day = (
        func.date(func.timezone("UTC", at)) if conn.dialect.name == "postgresql" else func.date(at)
    )
    rows = conn.execute(
        select(day.label("day"), audit_events.c.outcome, func.count().label("n"))
        .where(at >= to_utc(start), audit_events.c.action == LOGIN_ACTION)
        .group_by(day, audit_events.c.outcome)
    )
    table = {first + timedelta(days=i): dict.fromkeys(OUTCOMES, 0) for i in range(days)}
    for row in rows:
        key = row.day if isinstance(row.day, date) else date.fromisoformat(str(row.day)[:10])
        counts = table.get(key)
        if counts is not None and row.outcome:
            counts[row.outcome] = counts.get(row.outcome, 0) + int(row.n)
    return [LoginDay(key, counts) for key, counts in sorted(table.items())]


def days_csv(days: Iterable[DayUse]) -> str:
    """``day,seats_held,seats_entitled`` (entitled empty when unlimited)."""
    return _csv(
        ("day", "seats_held", "seats_entitled"),
        ((d.day.isoformat(), d.held, "" if d.entitled is None else d.entitled) for d in days),
    )


def months_csv(months: Iterable[MonthUsage]) -> str:
    """``month,peak_seats,peak_at,seats_entitled,overage_peak``: the true-up figures."""
    return _csv(
        ("month", "peak_seats", "peak_at", "seats_entitled", "overage_peak"),
        (
            (
                m.month,
                m.peak_seats,
                to_utc(m.peak_at).isoformat(),
                "" if m.seats_total is None else m.seats_total,
                m.overage_peak,
            )
            for m in months
        ),
    )


def logins_csv(logins: Sequence[LoginDay]) -> str:
    """``day`` then one column per outcome (``allowed`` and every refusal reason)."""
    outcomes = list(OUTCOMES)
    for item in logins:
        outcomes += [o for o in item.counts if o not in outcomes]
    return _csv(
        ("day", *outcomes),
        ((item.day.isoformat(), *(item.counts.get(o, 0) for o in outcomes)) for item in logins),
    )


def _csv(header: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue()
