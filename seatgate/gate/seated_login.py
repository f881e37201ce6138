"""A login on a held seat, on PostgreSQL: its writes in as few statements as they can be.

The seat is marked used and the last login written in one statement (the
account is updated only if its seat still was there), with the rate
limiter's reservation given back in it for a routine success.

When that statement is the last thing the transaction does -- a routine
success on a plain (unkeyed) audit chain, no new password hash to store, no
other audit event waiting -- the login's audit event joins it too
(:func:`admit_in_one`): the transaction is then the admission read, this
statement and the commit. The event is the one the audit log would have
chained at the commit, with the same hash and counts, and the chain head is
still the last lock the transaction takes: the head is locked only after
the seat, the account and the reservation (the head's ``FOR UPDATE`` waits
for them, see :func:`seatgate.audit.single_statement.chained_statement`),
and only if the seat was still held. Otherwise nothing is chained and the
caller goes on as it would have: claiming a seat, or appending the event at
the commit.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import Connection, bindparam, exists, func, select, update
from sqlalchemy.engine import Compiled, Dialect

from seatgate.audit.chain import unchained
from seatgate.audit.single_statement import chain_values, chained_statement
from seatgate.gate import ratelimit_rows as rows
from seatgate.storage.driver_statement import first_row
from seatgate.storage.schema import accounts, seats

LAST_LOGIN = (
    update(accounts).where(accounts.c.id == bindparam("who")).values(last_login_at=bindparam("now"))
)
_TOUCHED = (
    update(seats)
    .where(seats.c.account_id == bindparam("who"))
    .values(last_used_at=bindparam("now"))
    .returning(seats.c.account_id)
    .cte("touched")
)
TOUCH_AND_LAST_LOGIN = LAST_LOGIN.where(exists(select(_TOUCHED.c.account_id))).returning(
    accounts.c.id
)
"""The held seat marked used and the last login written (params ``who``, ``now``): the
account's id, or no row when its seat was gone."""
TOUCH_LAST_LOGIN_AND_FORGET = TOUCH_AND_LAST_LOGIN.add_cte(rows.FORGOTTEN)
"""The same, and the rate limiter's reservation (param ``row``) given back, whatever the touch
found: a refusal gives it back all the same."""


@dataclass(frozen=True)
class InOne:
    """What :func:`admit_in_one` did: ``held``, the seat was there (and is marked used, with
    the last login); ``chained``, the event was appended too."""

    held: bool
    chained: bool


def admit_in_one(
    conn: Connection, *, who: int, now: datetime, row: int, event: Mapping[str, Any]
) -> InOne:
    """:data:`TOUCH_LAST_LOGIN_AND_FORGET`, and when the seat was held ``event`` (as made by
    :func:`seatgate.audit.log.event_row`) appended to a plain audit chain: one statement.

    Only as the last work of its transaction. ``chained`` is False, with nothing appended,
    when the seat was gone, the chain is keyed or has no head: the caller then writes
    the event the ordinary way.
    """
    events, counts = unchained([event])
    compiled = _compiled(conn.dialect)
    values = {"who": who, "now": now, "row": row, **chain_values(events, counts)}
    done = first_row(conn, compiled, compiled.construct_params(values) or {})
    if done is None:  # pragma: no cover - a SELECT without FROM gives one row
        raise AssertionError("the seated login's statement returned no row")
    return InOne(held=done.admitted is not None, chained=bool(done.chained))


@lru_cache(maxsize=4)
def _compiled(dialect: Dialect) -> Compiled:
    """:func:`admit_in_one`'s statement, compiled once: SQLAlchemy cannot cache it (see
    :mod:`seatgate.audit.single_statement`)."""
    admitted = TOUCH_AND_LAST_LOGIN.cte("admitted")
    # count(*) reads the deletion to its end: the reservation's row is locked before the head.
    forgotten = select(func.count()).select_from(rows.FORGOTTEN).scalar_subquery()
    after = select(admitted.c.id).where(forgotten >= 0)
    chained = chained_statement(1, 1, after=after).cte("chained")
    statement = select(
        select(admitted.c.id).scalar_subquery().label("admitted"),
        exists(select(chained.c.id)).label("chained"),
    )
    return statement.compile(dialect=dialect)
