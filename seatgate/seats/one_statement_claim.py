"""A first-login seat claim on PostgreSQL, as one statement that takes the seat lock.

Written the portable way, a claim takes the seat lock, reads the claimant
and the seat count, inserts the seat and raises the month's and the day's
seat use: five statements, each a round trip on PostgreSQL, four of them
while every other first login waits for the lock. Data-modifying ``WITH``
clauses make them one statement with the same rules: the seat is inserted
only when the licence is valid, the account is active, holds no seat, may
claim (``assignment: manual`` lets only admins), and one more seat fits with
the reserve for admins kept free; the month's and the day's rows are written
only when the seat was inserted.

Why one statement can both lock and decide, when each statement of a
``READ COMMITTED`` transaction reads a snapshot taken before it waited for
the lock: what the decision needs is read from rows the statement locks,
and a locked row is read in its newest version once its lock is granted.
The ``license_state`` row (:data:`seatgate.seats.lock.LOCKED_STATE`) gives
the entitlement and ``seats_held``, the count the database keeps on it
(:mod:`seatgate.storage.seat_counter`); the claimant's ``accounts`` row is
locked ``FOR SHARE`` after it -- every status change holds the seat lock, so
that version is the status in force. Whether the account already holds a
seat may be older: a seat inserted since is a conflict on the primary key,
skipped (``ON CONFLICT DO NOTHING``), and then nothing else is written. The
account's row is locked only once the seat lock is held (the lock is a
one-time filter of its scan), in the order every other seat change takes
them.

Whatever this statement does not grant -- no seat left, an overage seat, an
idle seat to reclaim, a refusal -- the ledger decides with the portable
statements, under the lock this one took.

Like :mod:`seatgate.audit.single_statement`, it is compiled once per dialect
and run as driver SQL: SQLAlchemy does not cache a ``WITH`` holding an
``INSERT``, and compiling it costs more than running it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache

from sqlalchemy import (
    Connection,
    Integer,
    String,
    and_,
    bindparam,
    case,
    exists,
    func,
    null,
    or_,
    select,
    true,
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
from seatgate.seats.lock import LOCKED_STATE, SeatLock, take_seat_lock_with
from seatgate.seats.rows import AccountFacts, Claimant, claim_insert, has_room
from seatgate.storage.schema import Timestamp, accounts, seat_days, seat_usage, seats

MAX_STATEMENT_LENGTH = 4096
"""psycopg 3 caches the conversion of statements up to this long (``_queries``)."""
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


def claim_with_lock(
    conn: Connection, account_id: int, now: datetime, config: SeatsConfig
) -> tuple[SeatLock, ClaimedInOne | None]:
    """Take the seat lock and claim a seat for ``account_id`` if the rules allow.

    Returns the lock and what the claim found; None when there is no such
    account. ``config`` says who may claim (``assignment``) and how many seats
    stay free for admins (``reserved_for_admins``).
    """
    compiled = _compiled(conn.dialect)
    params = compiled.construct_params(
        {
            "who": account_id,
            "now": now,
            "reserve": config.reserved_for_admins,
            "manual": config.assignment == "manual",
            "this_month": usage.month_of(now),
            "this_day": day_of(now),
        }
    )
    lock, row = take_seat_lock_with(conn, compiled, params)
    if row is None or row.login is None:
        return lock, None
    found = ClaimedInOne(
        AccountFacts(row.login, row.status, bool(row.is_admin)),
        bool(row.held),
        int(row.used),
        bool(row.inserted),
        bool(row.month_recorded),
        bool(row.day_recorded),
    )
    if found.inserted and not _allowed(lock, found, now, config):
        # Never expected: the statement's rules and SeatState's disagree. The
        # transaction rolls back rather than keep a seat the ledger would refuse.
        raise RuntimeError(f"the claim statement granted a seat the ledger refuses: {found}")
    return lock, found


def _allowed(lock: SeatLock, found: ClaimedInOne, now: datetime, config: SeatsConfig) -> bool:
    """The ledger's rules, for the seat the statement inserted (as the portable path)."""
    account, state = found.account, lock.state
    reserve = 0 if account.is_admin else config.reserved_for_admins
    return (
        state.is_valid(now)
        and account.status == "active"
        and not found.held
        and (config.assignment != "manual" or account.is_admin)
        and has_room(lock, state, now, reserve, found.used)
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
    """The claim statement, compiled for ``dialect`` (PostgreSQL).

    Kept under psycopg's :data:`MAX_STATEMENT_LENGTH`: psycopg parses a longer
    statement's placeholders again on every execution, in the claiming process,
    while first logins queue for the lock.
    """
    st = LOCKED_STATE
    now = bindparam("now", type_=Timestamp)
    trusted = func.greatest(now, func.coalesce(st.c.clock_high_water, now))
    # SeatState.is_valid and .capacity, on the locked row.
    valid = and_(st.c.valid, or_(st.c.expires_at.is_(None), trusted < st.c.expires_at))
    seats_total = case((st.c.unlimited, null()), else_=st.c.seats_total)
    who = (
        select(
            accounts.c.login,
            accounts.c.status,
            accounts.c.is_admin,
            exists().where(seats.c.account_id == accounts.c.id).label("held"),
            select(st.c.seats_held).scalar_subquery().label("used"),
            select(st.c.seats_held + 1).scalar_subquery().label("after"),
            select(case((~valid, 0), (st.c.unlimited, UNLIMITED), else_=st.c.seats_total))
            .scalar_subquery()
            .label("capacity"),
            select(seats_total).scalar_subquery().label("entitled"),
        )
        # The seat lock first: a condition on it alone is checked before the scan.
        .where(
            accounts.c.id == bindparam("who", type_=Integer), select(st.c.id).scalar_subquery() == 1
        )
        .with_for_update(read=True, of=accounts)
        .cte("who")
    )
    added = claim_insert(who).cte("added")
    month = _raise_peak(who, added).cte("month_row")
    day = _count_day(who, added).cte("day_row")
    statement = (
        select(
            # Unlabelled (the statement must stay short: see _compiled's docstring).
            *(c for c in st.c if c.name != "id"),
            who.c.login,
            who.c.status,
            who.c.is_admin,
            who.c.held,
            who.c.used,
            exists(select(added.c.account_id)).label("inserted"),
            exists(select(month.c.month)).label("month_recorded"),
            exists(select(day.c.day)).label("day_recorded"),
        )
        .select_from(st.outerjoin(who, true()))
        .add_cte(added)
        .add_cte(month)
        .add_cte(day)
    )
    return statement.compile(dialect=dialect)


def _count_day(who: CTE, added: CTE) -> ReturningInsert[tuple[str]]:
    """Today's row after one more seat (as :func:`seatgate.seats.days.record_day`): raised
    when it is there, else made, starting from what the last recorded day ended with."""
    used = select(who.c.after).scalar_subquery()
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
            who.c.entitled,
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
    used = select(who.c.after).scalar_subquery()
    raises = used > su.peak
    return (
        update(seat_usage)
        .where(su.month == bindparam("this_month"), exists(select(added.c.account_id)))
        .values(
            peak=case((raises, used), else_=su.peak),
            peak_at=case((raises, bindparam("now", type_=Timestamp)), else_=su.peak_at),
            seats_total=case(
                (raises, select(who.c.entitled).scalar_subquery()), else_=su.seats_total
            ),
            last=used,
        )
        .returning(su.month)
    )
