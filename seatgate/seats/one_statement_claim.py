"""A first-login seat claim on PostgreSQL, as one statement after the seat lock.

Written the portable way, a claim under the seat lock reads the claimant and
the seat count, inserts the seat and raises the month's peak: three statements,
each a round trip on PostgreSQL while every other first login waits for the
lock. Data-modifying ``WITH`` clauses make them one statement with the same
rules: the seat is inserted only when the account is active, holds no seat,
may claim (``assignment: manual`` lets only admins), and one more seat fits
with the reserve for admins kept free; the month's row is updated only when
the seat was inserted.

It runs after :func:`seatgate.seats.lock.take_seat_lock`, as a statement of
its own: PostgreSQL gives each statement of a ``READ COMMITTED`` transaction a
snapshot taken when it starts, so this one sees every seat committed before
the lock was granted, and the count it checks is exact until the commit.

Like :mod:`seatgate.audit.single_statement`, it is compiled once per dialect
and run as driver SQL: SQLAlchemy does not cache a ``WITH`` holding an
``INSERT``, and compiling it costs more than running it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache

from sqlalchemy import (
    Integer,
    String,
    bindparam,
    case,
    exists,
    func,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import Compiled, Dialect
from sqlalchemy.sql.dml import ReturningInsert, ReturningUpdate
from sqlalchemy.sql.selectable import CTE

from seatgate.audit import log as audit
from seatgate.config.seats import SeatsConfig
from seatgate.seats import usage
from seatgate.seats.days import day_of
from seatgate.seats.lock import SeatLock
from seatgate.seats.rows import AccountFacts, Claimant, claim_insert
from seatgate.storage.schema import Timestamp, accounts, seat_days, seat_usage, seats

UNLIMITED = 2**31 - 1
"""The capacity passed for an unlimited entitlement: every count fits under it."""


@dataclass(frozen=True)
class ClaimedInOne:
    """What the one-statement claim found and did."""

    account: AccountFacts
    held: bool
    """The account already held a seat (nothing inserted)."""
    used: int
    """Seats held when the lock was taken, before this claim."""
    inserted: bool
    """The seat was inserted."""
    month_recorded: bool
    """The month's peak row was there and updated (else the caller records the month)."""
    day_recorded: bool = False
    """The day's row (:mod:`seatgate.seats.days`) was made or updated for the new seat."""


def claim_in_one(
    lock: SeatLock,
    account_id: int,
    now: datetime,
    config: SeatsConfig,
) -> ClaimedInOne | None:
    """Claim a seat for ``account_id`` if the rules allow; None when there is no such account.

    The seats in force are the entitlement read with ``lock``; ``config`` says
    who may claim (``assignment``) and how many seats stay free for admins
    (``reserved_for_admins``).
    """
    conn = lock.conn
    capacity = lock.state.capacity(now)
    compiled = _compiled(conn.dialect)
    params = compiled.construct_params(
        {
            "who": account_id,
            "now": now,
            "capacity": UNLIMITED if capacity is None else capacity,
            "reserve": config.reserved_for_admins,
            "manual": config.assignment == "manual",
            "this_month": usage.month_of(now),
            "this_day": day_of(now),
            "seats_total": capacity,
        }
    )
    row = conn.exec_driver_sql(compiled.string, params).first()
    if row is None:
        return None
    login, status, is_admin, held, used, inserted, month_recorded, day_recorded = row
    return ClaimedInOne(
        AccountFacts(login, status, bool(is_admin)),
        bool(held),
        int(used),
        bool(inserted),
        bool(month_recorded),
        bool(day_recorded),
    )


def record_claim(
    lock: SeatLock,
    found: Claimant | ClaimedInOne,
    now: datetime,
    details: dict[str, object],
    month_recorded: bool,
    day_recorded: bool = False,
) -> None:
    """Audit the seat just inserted for ``found``'s claim and record the seat use, under
    ``lock`` (either path: this statement's or the portable one)."""
    login = found.account.login
    audit.record(
        lock.conn, at=now, actor=login, action="seat.claimed", subject=login, details=details
    )
    usage.observe_in(
        lock,
        now,
        lock.state.capacity(now),
        actor=login,
        used=found.used + 1,
        level_as_locked=True,
        month_recorded=month_recorded,
        day_recorded=day_recorded,
    )


@lru_cache(maxsize=4)
def _compiled(dialect: Dialect) -> Compiled:
    """The claim statement, compiled for ``dialect`` (PostgreSQL)."""
    who = (
        select(
            accounts.c.login,
            accounts.c.status,
            accounts.c.is_admin,
            exists().where(seats.c.account_id == accounts.c.id).label("held"),
            select(func.count()).select_from(seats).scalar_subquery().label("used"),
        )
        .where(accounts.c.id == bindparam("who", type_=Integer))
        .cte("who")
    )
    added = claim_insert(who).cte("added")
    month = _raise_peak(who, added).cte("month_row")
    day = _count_day(who, added).cte("day_row")
    statement = (
        select(
            who.c.login,
            who.c.status,
            who.c.is_admin,
            who.c.held,
            who.c.used,
            exists(select(added.c.account_id)).label("inserted"),
            exists(select(month.c.month)).label("month_recorded"),
            exists(select(day.c.day)).label("day_recorded"),
        )
        .add_cte(added)
        .add_cte(month)
        .add_cte(day)
    )
    return statement.compile(dialect=dialect)


def _count_day(who: CTE, added: CTE) -> ReturningInsert[tuple[str]]:
    """Today's row after one more seat (as :func:`seatgate.seats.days.record_day`): raised
    when it is there, else made, starting from what the last recorded day ended with."""
    used = select(who.c.used + 1).scalar_subquery()
    this_day = bindparam("this_day", type_=String)
    before = (
        select(seat_days.c.last)
        .where(seat_days.c.day < this_day)
        .order_by(seat_days.c.day.desc())
        .limit(1)
        .scalar_subquery()
    )
    made = pg_insert(seat_days).from_select(
        ["day", "peak", "last", "seats_total"],
        select(
            this_day,
            func.greatest(used, func.coalesce(before, 0)),
            used,
            bindparam("seats_total", type_=Integer),
        ).where(exists(select(added.c.account_id))),
    )
    raises = made.excluded.last > seat_days.c.peak
    return made.on_conflict_do_update(
        index_elements=[seat_days.c.day],
        set_={
            "peak": case((raises, made.excluded.last), else_=seat_days.c.peak),
            "last": made.excluded.last,
            "seats_total": made.excluded.seats_total,
        },
    ).returning(seat_days.c.day)


def _raise_peak(who: CTE, added: CTE) -> ReturningUpdate[tuple[str]]:
    """The month's row after one more seat (as :func:`seatgate.seats.usage.observe_in`)."""
    su = seat_usage.c
    used = select(who.c.used + 1).scalar_subquery()
    raises = used > su.peak
    return (
        update(seat_usage)
        .where(su.month == bindparam("this_month"), exists(select(added.c.account_id)))
        .values(
            peak=case((raises, used), else_=su.peak),
            peak_at=case((raises, bindparam("now", type_=Timestamp)), else_=su.peak_at),
            seats_total=case(
                (raises, bindparam("seats_total", type_=Integer)), else_=su.seats_total
            ),
            last=used,
        )
        .returning(su.month)
    )
