"""One page of accounts, searched, filtered and sorted in the database.

The admin console lists accounts from here. Everything -- the search, the
filters, the order, the page and the total -- is one SQL query plus one
count, so a page of 100,000 accounts costs about what a page of 1,000 does.

The search is a case-folded *prefix* match on the login, the display name
or the email, written as a range (``key >= 'abc' AND key < 'abd'``) so that
an index serves it on SQLite and PostgreSQL alike: the login against
``accounts.login_key`` (already normalised and uniquely indexed), name and
email against the indexes on ``lower(display_name)`` and ``lower(email)``
(schema version 10). Substring search was left out on purpose:
``LIKE '%text%'`` reads every row on every keystroke. (``lower`` folds
ASCII letters on SQLite, every letter on PostgreSQL.)
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from sqlalchemy import (
    ColumnElement,
    Connection,
    and_,
    false,
    func,
    or_,
    select,
    true,
)

from seatgate.accounts.logins import login_key
from seatgate.errors import InvalidLogin
from seatgate.records import Account
from seatgate.storage.db import Database
from seatgate.storage.schema import accounts, seats

SeatFilter = Literal["held", "pinned", "none"]
SortKey = Literal["login", "last_login", "source"]
SORT_KEYS: tuple[SortKey, ...] = ("login", "last_login", "source")
SEAT_FILTERS: tuple[SeatFilter, ...] = ("held", "pinned", "none")
MAX_SEARCH_LENGTH = 100


@dataclass(frozen=True)
class AccountQuery:
    """What to list: every field optional; ``None`` means no filter."""

    text: str = ""
    source: str | None = None
    status: str | None = None
    seat: SeatFilter | None = None
    admin: bool | None = None
    idle_days: int | None = None
    sort: SortKey = "login"
    descending: bool = False


@dataclass(frozen=True)
class AccountRow:
    """An account on a page, with its seat if it holds one."""

    account: Account
    has_seat: bool
    pinned: bool
    seat_last_used_at: datetime | None


@dataclass(frozen=True)
class AccountPage:
    """One page of a listing and how many accounts match in all."""

    rows: list[AccountRow]
    total: int
    page: int
    pages: int


def browse(
    db: Database, query: AccountQuery, *, page: int, page_size: int, now: datetime
) -> AccountPage:
    """The ``page``-th page (from 1; clamped to the last) of accounts matching ``query``."""
    condition = _condition(query, now)
    joined = accounts.outerjoin(seats, seats.c.account_id == accounts.c.id)

    def work(conn: Connection) -> AccountPage:
        # The seat join only when a filter needs it: counting stays on one index.
        source = joined if query.seat or query.idle_days is not None else accounts
        counted = select(func.count()).select_from(source).where(condition)
        total = int(conn.execute(counted).scalar_one())
        pages = max(1, -(-total // page_size))
        shown = min(max(1, page), pages)
        statement = (
            select(
                accounts,
                seats.c.account_id.label("seat_account_id"),
                seats.c.pinned.label("seat_pinned"),
                seats.c.last_used_at.label("seat_last_used_at"),
            )
            .select_from(joined)
            .where(condition)
            .order_by(*_order(query, conn.dialect.name))
            .limit(page_size)
            .offset((shown - 1) * page_size)
        )
        rows = [
            AccountRow(
                Account.from_row(row),
                has_seat=row.seat_account_id is not None,
                pinned=bool(row.seat_pinned),
                seat_last_used_at=row.seat_last_used_at,
            )
            for row in conn.execute(statement)
        ]
        return AccountPage(rows, total, shown, pages)

    return db.read(work)


def _condition(query: AccountQuery, now: datetime) -> ColumnElement[bool]:
    parts: list[ColumnElement[bool]] = [_search(query.text)]
    if query.source:
        parts.append(accounts.c.source == query.source)
    if query.status:
        parts.append(accounts.c.status == query.status)
    if query.seat == "held":
        parts.append(seats.c.account_id.is_not(None))
    elif query.seat == "pinned":
        parts.append(seats.c.pinned == true())
    elif query.seat == "none":
        parts.append(seats.c.account_id.is_(None))
    if query.admin is not None:
        parts.append(accounts.c.is_admin == (true() if query.admin else false()))
    if query.idle_days is not None:
        cutoff = now - timedelta(days=query.idle_days)
        # Idle: neither signed in nor used a seat since the cutoff (never counts as idle).
        parts.append(
            and_(
                or_(accounts.c.last_login_at.is_(None), accounts.c.last_login_at < cutoff),
                or_(seats.c.last_used_at.is_(None), seats.c.last_used_at < cutoff),
            )
        )
    return and_(*parts)


def _search(text: str) -> ColumnElement[bool]:
    text = text.strip()[:MAX_SEARCH_LENGTH]
    if not text:
        return true()
    try:
        key = login_key(text)
    except InvalidLogin:
        key = text.casefold()
    lowered = text.lower()
    return or_(
        _prefix(accounts.c.login_key, key),
        _prefix(func.lower(accounts.c.display_name), lowered),
        _prefix(func.lower(accounts.c.email), lowered),
    )


def _prefix(column: ColumnElement[str], prefix: str) -> ColumnElement[bool]:
    """``column`` starts with ``prefix``: the range of strings from it to its successor."""
    below = prefix[:-1] + chr(min(ord(prefix[-1]) + 1, 0x10FFFF))
    return and_(column >= prefix, column < below)


def _order(query: AccountQuery, dialect: str) -> list[ColumnElement[object]]:
    def way(column: ColumnElement[object]) -> ColumnElement[object]:
        return column.desc() if query.descending else column.asc()

    # The login key last: a stable order, so pages never repeat or skip a row.
    if query.sort == "last_login":
        # Never signed in is the longest idle: first oldest-first, last newest-first.
        column = way(accounts.c.last_login_at)
        return [
            column.nulls_last() if query.descending else column.nulls_first(),
            way(accounts.c.login_key),
        ]
    if query.sort == "source":
        return [way(accounts.c.source), way(accounts.c.login_key)]
    return [way(accounts.c.login_key)]
