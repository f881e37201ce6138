"""Row-level helpers of the seat ledger: reading accounts, inserting seats, the capacity check.

Every function runs inside the caller's transaction; those that add a seat,
or judge whether one fits, take the seat lock (:class:`seatgate.seats.lock.SeatLock`)
instead of a bare connection.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, delete, insert, select

from seatgate.errors import AccountNotActive, LicenseInvalid, NoSeatAvailable
from seatgate.seats.lock import SeatLock
from seatgate.seats.state import SeatState, count_seats
from seatgate.storage.schema import accounts, seats


def holds(conn: Connection, account_id: int) -> bool:
    """Whether the account holds a seat."""
    return (
        conn.execute(select(seats.c.account_id).where(seats.c.account_id == account_id)).first()
        is not None
    )


def insert_seat(
    lock: SeatLock, account_id: int, now: datetime, *, assigned_by: str, pinned: bool
) -> None:
    """Insert the seat row of a new holder (the caller has checked there is room)."""
    lock.conn.execute(
        insert(seats).values(
            account_id=account_id,
            assigned_at=now,
            last_used_at=now,
            pinned=pinned,
            assigned_by=assigned_by,
        )
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


def has_room(lock: SeatLock, state: SeatState, now: datetime, reserve: int) -> bool:
    """Whether one more seat fits, keeping ``reserve`` seats free.

    The one capacity check: logins, admin assigns and automatic grants all use it.
    It wants the lock because a count read without it may be stale by the insert.
    """
    capacity = state.capacity(now)  # 0 without a valid entitlement
    return capacity is None or count_seats(lock.conn) < capacity - reserve
