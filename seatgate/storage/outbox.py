"""The notification outbox: events written with their cause, delivered after commit.

:func:`enqueue` runs inside the transaction that causes the event, so an
event exists exactly when its cause committed: a rolled-back claim leaves no
alert, a committed one cannot lose it. Delivery (``seatgate notify run``)
reads the outbox afterwards, one row per event and channel, and retries with
exponential backoff until the channel accepts it.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, and_, exists, literal, select, update
from sqlalchemy.dialects import postgresql, sqlite

from seatgate.clock import to_utc
from seatgate.storage.schema import notify_deliveries, notify_events

_EV = notify_events.c
_DL = notify_deliveries.c
# Retries wait 1, 2, 4 ... minutes, never more than 6 hours; there is no last
# attempt: an event is kept until its channel takes it.
FIRST_RETRY = timedelta(minutes=1)
LONGEST_RETRY = timedelta(hours=6)
ERROR_CHARS = 500


@dataclass(frozen=True)
class OutboxEvent:
    """One event as stored: what happened, and its id for receivers."""

    id: int
    event_id: str
    kind: str
    created_at: datetime
    data: Mapping[str, Any]


@dataclass(frozen=True)
class Delivery:
    """An event not yet delivered on one channel."""

    event: OutboxEvent
    channel: str
    attempts: int
    next_at: datetime
    last_error: str | None


def enqueue(
    conn: Connection,
    kind: str,
    dedupe_key: str,
    data: Mapping[str, Any],
    at: datetime,
) -> bool:
    """Add an event in the caller's transaction, unless one with ``dedupe_key`` exists.

    Returns whether it was added. An insert that ignores the conflict, so two
    processes finding the same cause at once store it once, and neither fails.
    """
    values = {
        "event_id": secrets.token_hex(16),
        "dedupe_key": dedupe_key[:256],
        "kind": kind,
        "created_at": at,
        "data": json.dumps(dict(data), sort_keys=True, default=str),
    }
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    statement = dialect.insert(notify_events).values(values).on_conflict_do_nothing()
    # RETURNING, not rowcount: psycopg counts a skipped row of an insert that
    # returns nothing as one.
    return conn.execute(statement.returning(_EV.id)).first() is not None


def open_deliveries(conn: Connection, channels: Iterable[str], at: datetime) -> None:
    """Give every event a delivery row on each of ``channels`` that it lacks, due at ``at``.

    Only events created after the channel was first seen would be fairer to
    a channel added later; sending it the backlog is what "never lost" means.
    """
    for channel in channels:
        missing = ~exists().where(and_(_DL.event == _EV.id, _DL.channel == channel))
        rows = select(_EV.id, literal(channel), literal(0), literal(at)).where(missing)
        dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
        # Ignoring conflicts: `notify list` may open the same rows as a run at once.
        statement = dialect.insert(notify_deliveries).from_select(
            ["event", "channel", "attempts", "next_at"], rows
        )
        conn.execute(statement.on_conflict_do_nothing())


def due(conn: Connection, channels: Iterable[str], now: datetime) -> list[Delivery]:
    """Undelivered rows on ``channels`` whose next try is due, oldest event first."""
    return _deliveries(conn, channels, _DL.next_at <= now)


def pending(conn: Connection) -> list[Delivery]:
    """Every undelivered row, due or waiting, oldest event first."""
    return _deliveries(conn, None, None)


def delivered(conn: Connection, event: int, channel: str, at: datetime) -> None:
    """Mark one delivery done."""
    conn.execute(
        update(notify_deliveries)
        .where(_DL.event == event, _DL.channel == channel)
        .values(delivered_at=at, attempts=_DL.attempts + 1, last_error=None)
    )


def failed(conn: Connection, event: int, channel: str, at: datetime, error: str) -> datetime:
    """Record a failed try and schedule the next one; return when it is due."""
    attempts = conn.execute(
        select(_DL.attempts).where(_DL.event == event, _DL.channel == channel)
    ).scalar_one()
    next_at = at + backoff(int(attempts) + 1)
    conn.execute(
        update(notify_deliveries)
        .where(_DL.event == event, _DL.channel == channel)
        .values(attempts=_DL.attempts + 1, next_at=next_at, last_error=error[:ERROR_CHARS])
    )
    return next_at


def backoff(attempts: int) -> timedelta:
    """The wait after the ``attempts``-th failed try: doubling from one minute, capped."""
    wait: timedelta = FIRST_RETRY * 2 ** min(attempts - 1, 20)
    return min(wait, LONGEST_RETRY)


def events_of(conn: Connection) -> list[OutboxEvent]:
    """Every stored event, oldest first."""
    return [_event(row) for row in conn.execute(select(notify_events).order_by(_EV.id))]


# -- internals --------------------------------------------------------------------------


def _deliveries(conn: Connection, channels: Iterable[str] | None, when: Any) -> list[Delivery]:
    query = (
        select(notify_events, _DL.channel, _DL.attempts, _DL.next_at, _DL.last_error)
        .join(notify_deliveries, _DL.event == _EV.id)
        .where(_DL.delivered_at.is_(None))
        .order_by(_EV.id, _DL.channel)
    )
    if channels is not None:
        query = query.where(_DL.channel.in_(list(channels)))
    if when is not None:
        query = query.where(when)
    return [
        Delivery(_event(row), row.channel, int(row.attempts), to_utc(row.next_at), row.last_error)
        for row in conn.execute(query)
    ]


def _event(row: Any) -> OutboxEvent:
    return OutboxEvent(
        id=int(row.id),
        event_id=str(row.event_id),
        kind=str(row.kind),
        created_at=to_utc(row.created_at),
        data=json.loads(row.data),
    )
