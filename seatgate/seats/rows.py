"""Row-level helpers of the seat ledger: reading accounts, inserting seats, the capacity check.

Every function runs inside the caller's transaction; those that add a seat,
or judge whether one fits, take the seat lock (:class:`seatgate.seats.lock.SeatLock`)
instead of a bare connection.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import (
    Boolean,
    Connection,
    Integer,
    and_,
    bindparam,
    case,
    delete,
    exists,
    false,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.sql.dml import ReturningInsert
from sqlalchemy.sql.selectable import CTE

from seatgate.clock import to_utc
from seatgate.errors import AccountNotActive, LicenseInvalid, NoSeatAvailable
from seatgate.records import SeatHolder
from seatgate.seats.lock import SeatLock
from seatgate.seats.state import SeatState, count_seats
from seatgate.storage.driver_statement import DriverStatement
from seatgate.storage.schema import Timestamp, accounts, seats

_SEAT_VALUES = ("account_id", "assigned_at", "last_used_at", "pinned", "assigned_by")


def holds(conn: Connection, account_id: int) -> bool:
    """Whether the account holds a seat."""
    return (
        conn.execute(select(seats.c.account_id).where(seats.c.account_id == account_id)).first()
        is not None
    )


# Built once, its values given when run: building `.values(...)` on every claim cost
# more than running the insert on SQLite. Run on SQLite's own cursor, as the claim's
# other statements under the lock are (seatgate.storage.driver_statement).
_INSERT_SEAT = DriverStatement(
    insert(seats).values({name: bindparam(name) for name in _SEAT_VALUES})
)


def insert_seat(
    lock: SeatLock, account_id: int, now: datetime, *, assigned_by: str, pinned: bool
) -> None:
    """Insert the seat row of a new holder (the caller has checked there is room)."""
    _INSERT_SEAT.run(
        lock.conn,
        {
            "account_id": account_id,
            "assigned_at": now,
            "last_used_at": now,
            "pinned": pinned,
            "assigned_by": assigned_by,
        },
    )


# Built once: every seated login on SQLite runs it (on the driver's cursor).
_TOUCH = DriverStatement(
    update(seats)
    .where(seats.c.account_id == bindparam("who"))
    .values(last_used_at=bindparam("now"))
)


def touch_seat(conn: Connection, account_id: int, now: datetime) -> bool:
    """Mark the account's seat as used at ``now``; False when it holds none."""
    return bool(_TOUCH.run(conn, {"who": account_id, "now": now}).rowcount)


def claim_insert(who: CTE) -> ReturningInsert[tuple[int]]:
    """The seat insert of a claim in one statement, for :mod:`seatgate.seats.one_statement_claim`
    (PostgreSQL, under the seat lock): inserts when ``who``, the claimant's row with the seats
    ``used`` and the ``capacity`` in force, may have a seat by the same rules as
    :meth:`seatgate.seats.ledger.SeatLedger.claim_in`'s portable path. A seat the account
    got since ``who`` was read is a conflict: nothing is inserted.
    """
    now = bindparam("now", type_=Timestamp)
    kept_free = case((who.c.is_admin, 0), else_=bindparam("reserve", type_=Integer))
    allowed = and_(
        who.c.status == "active",
        ~who.c.held,
        or_(~bindparam("manual", type_=Boolean), who.c.is_admin),
        who.c.used < who.c.capacity - kept_free,
    )
    return (
        pg_insert(seats)
        .from_select(
            ["account_id", "assigned_at", "last_used_at", "pinned", "assigned_by"],
            select(bindparam("who", type_=Integer), now, now, false(), who.c.login).where(allowed),
        )
        .on_conflict_do_nothing(index_elements=[seats.c.account_id])
        .returning(seats.c.account_id)
    )


def delete_seat(lock: SeatLock, account_id: int) -> bool:
    """Delete the account's seat row; return whether it held one."""
    deleted = lock.conn.execute(delete(seats).where(seats.c.account_id == account_id)).rowcount
    return bool(deleted)


@dataclass(frozen=True)
class AccountFacts:
    """What a seat change needs to know about an account."""

    login: str
    status: str
    is_admin: bool


# Built once: every first login of an account runs it, under the seat lock.
_CLAIMANT = DriverStatement(
    select(
        accounts.c.login,
        accounts.c.status,
        accounts.c.is_admin,
        exists().where(seats.c.account_id == accounts.c.id).label("held"),
    ).where(accounts.c.id == bindparam("who"))
)


@dataclass(frozen=True)
class Claimant:
    """An account claiming a seat: its facts, whether it holds one, and the seats held."""

    account: AccountFacts
    held: bool
    used: int


def claimant(lock: SeatLock, account_id: int) -> Claimant | None:
    """The account's facts and whether it holds a seat -- one statement, under the lock --
    with the seats held as counted with the lock (:attr:`SeatLock.seats_held`: the caller
    has changed no seat since); None when gone."""
    row = _CLAIMANT.run(lock.conn, {"who": account_id}).first()
    if row is None:
        return None
    facts = AccountFacts(row.login, row.status, bool(row.is_admin))
    return Claimant(facts, bool(row.held), lock.seats_held)


def account_row(conn: Connection, account_id: int) -> AccountFacts | None:
    """The account's login, status and admin flag; None when there is no such account."""
    row = conn.execute(
        select(accounts.c.login, accounts.c.status, accounts.c.is_admin).where(
            accounts.c.id == account_id
        )
    ).first()
    return AccountFacts(row.login, row.status, bool(row.is_admin)) if row is not None else None


def login_of(conn: Connection, account_id: int) -> str:
    """The account's login, or ``#id`` when it is gone."""
    login = conn.execute(select(accounts.c.login).where(accounts.c.id == account_id)).scalar()
    return str(login) if login is not None else f"#{account_id}"


def require_active(conn: Connection, account_id: int) -> AccountFacts:
    """The account, or :class:`AccountNotActive` when it is disabled, deleted or missing."""
    account = account_row(conn, account_id)
    if account is None or account.status != "active":
        login = account.login if account else f"#{account_id}"
        raise AccountNotActive(login, account.status if account else "unknown")
    return account


def require_room(lock: SeatLock, state: SeatState, now: datetime) -> None:
    """Raise unless an admin may add one seat now (no reserve applies to admins)."""
    if not state.is_valid(now):
        raise LicenseInvalid(state.invalid_reason(now))
    if not has_room(lock, state, now, reserve=0):
        raise NoSeatAvailable(state.seats_total)


def has_room(
    lock: SeatLock, state: SeatState, now: datetime, reserve: int, used: int | None = None
) -> bool:
    """Whether one more seat fits, keeping ``reserve`` seats free.

    The one capacity check: logins, admin assigns and automatic grants all use it.
    It wants the lock because a count read without it may be stale by the insert;
    ``used``: the seats counted under this same lock, if the caller has counted them.
    """
    capacity = state.capacity(now)  # 0 without a valid entitlement
    if capacity is None:
        return True
    return (count_seats(lock.conn) if used is None else used) < capacity - reserve


def seat_holders(conn: Connection) -> list[SeatHolder]:
    """Every seat holder, longest-held first."""
    query = (
        select(
            seats,
            accounts.c.login,
            accounts.c.display_name,
            accounts.c.is_admin,
            accounts.c.last_login_at,
        )
        .join(accounts, accounts.c.id == seats.c.account_id)
        .order_by(seats.c.assigned_at, seats.c.account_id)
    )
    return [
        SeatHolder(
            account_id=r.account_id,
            login=r.login,
            display_name=r.display_name,
            is_admin=bool(r.is_admin),
            pinned=bool(r.pinned),
            assigned_at=to_utc(r.assigned_at),
            last_used_at=to_utc(r.last_used_at),
            assigned_by=r.assigned_by,
            last_login_at=to_utc(r.last_login_at) if r.last_login_at else None,
        )
        for r in conn.execute(query)
    ]
