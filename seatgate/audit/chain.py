"""The audit log as a hash chain: an edited, inserted or deleted event shows.

Each event stores ``prev_hash``, the hash of the event before it (64 zeros for
the first), and ``hash``, the SHA-256 of its own content and ``prev_hash``.
The single ``audit_chain`` row holds the head: the last event's id and hash
and how many events the chain has, so deleting the newest events shows too.
Ids are not hashed (the database assigns them); the chain order is the id
order because events are only inserted while the head row is locked.

The head lock is the last lock a write transaction takes (its events wait
in :data:`seatgate.audit.log.PENDING`, a before-commit hook that runs after
every other), so it never waits while holding it. The same lock keeps the ``audit_counts`` totals.
One writer chains its event in its own last statement instead: a routine
login on a held seat on PostgreSQL (:mod:`seatgate.gate.seated_login`),
whose statement locks the head after every other row it writes, when
nothing else is left for its transaction to do.

Someone with write access to the database can still rewrite the whole chain
from a point on; the chain makes a change visible, it cannot prevent one.

Keyed chains: given a key (:func:`use_key`, at least 32 bytes), events are
chained with HMAC-SHA256 under that key instead of plain SHA-256, so
rewriting the chain needs the key as well as the database. An unkeyed chain
switches at its first append with a key: that append starts with a marker
event (action :data:`KEYED_ACTION`), the first event hashed with the key;
events before it keep their plain hashes, and every event from it on is
keyed. The marker's HMAC covers the plain hash before it, so the older
events cannot be rewritten either. Once keyed, a chain is never appended to
without the key (:class:`ConfigError`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sized
from datetime import datetime
from itertools import chain as chained
from itertools import groupby, islice
from operator import itemgetter
from typing import Any

from sqlalchemy import (
    Connection,
    bindparam,
    func,
    insert,
    literal_column,
    select,
    update,
)

from seatgate.audit.check import (
    ChainHead,
    ChainProblem,
    ChainReport,
    ProblemKind,
    head_of,
    verify,
)
from seatgate.audit.hashing import (
    ENCODER,
    FORMAT_KEYED,
    GENESIS,
    KEYED_ACTION,
    MIN_KEY_BYTES,
    RunHasher,
    check_key,
    event_hash,
    key_for,
    use_key,
)
from seatgate.audit.single_statement import MAX_CHAINED, append_in_one, chain_in_one
from seatgate.clock import to_utc
from seatgate.errors import ConfigError, StorageError
from seatgate.storage.bulk import insert_rows
from seatgate.storage.driver_statement import DriverStatement
from seatgate.storage.schema import audit_chain, audit_counts, audit_events

# Rows per INSERT or UPDATE batch and per fetch: large enough for executemany
# to pay off, small enough that a 200,000-event import stays memory-flat.
_CHUNK = 2000
_CONTENT = ("actor", "action", "subject", "outcome", "details")
_COLUMNS = ("at", *_CONTENT, "prev_hash", "hash")
# Chunks at least this long are written through seatgate.storage.bulk (an
# import's, a sync's); shorter ones, a login's say, by one INSERT .. RETURNING.
_BULK = 64

__all__ = [
    "GENESIS",
    "KEYED_ACTION",
    "MIN_KEY_BYTES",
    "ChainHead",
    "ChainProblem",
    "ChainReport",
    "ProblemKind",
    "append",
    "check_key",
    "event_hash",
    "head_of",
    "use_key",
    "verify",
]


# Built once: append() runs at the end of almost every write transaction,
# and building a SQLAlchemy statement costs more than running it.
# Whether the chain is keyed comes with the head, in the same round trip:
# the marker is counted in audit_counts like every event.
_MARKERS = (
    select(func.coalesce(func.sum(audit_counts.c.count), 0))
    .where(audit_counts.c.action == KEYED_ACTION)
    .scalar_subquery()
)
_LOCK_HEAD = DriverStatement(
    select(audit_chain.c.head_hash, audit_chain.c.events, _MARKERS.label("markers"))
    .where(audit_chain.c.id == 1)
    .with_for_update(of=audit_chain)
)
# RETURNING saves a round trip under the lock (a `max(id)` query after).
_INSERT = insert(audit_events).returning(audit_events.c.id, sort_by_parameter_order=True)
# One event (a login's, a claim's), on SQLite's own cursor under the write lock.
_INSERT_ONE = DriverStatement(
    insert(audit_events)
    .values({name: bindparam(name) for name in _COLUMNS})
    .returning(audit_events.c.id)
)
_LAST_ID = select(func.max(audit_events.c.id))
_MOVE_HEAD = DriverStatement(
    update(audit_chain)
    .where(audit_chain.c.id == 1)
    .values(head_hash=bindparam("hash"), head_id=bindparam("last_id"), events=bindparam("events"))
)
_BUMP_COUNT = DriverStatement(
    update(audit_counts)
    .where(audit_counts.c.action == bindparam("act"), audit_counts.c.outcome == bindparam("out"))
    .values(count=audit_counts.c.count + bindparam("n"))
)


def init_head(conn: Connection) -> None:
    """Create the chain head of a new, empty audit log."""
    conn.execute(insert(audit_chain).values(id=1, head_hash=GENESIS, head_id=None, events=0))


EventTuple = tuple[datetime, str, str, str | None, str | None, str | None]
"""One event as ``(at, actor, action, subject, outcome, details)``: the compact form
bulk writers keep many events in (the stored forms of :func:`seatgate.audit.log.event_row`)."""


def as_event_tuple(row: Mapping[str, Any] | EventTuple) -> EventTuple:
    """``row`` (as made by :func:`seatgate.audit.log.event_row`, or already a tuple) as a tuple."""
    if isinstance(row, tuple):
        return row
    return (row["at"], row["actor"], row["action"], *(row.get(n) for n in _CONTENT[2:]))


def append(conn: Connection, rows: Iterable[Mapping[str, Any] | EventTuple]) -> None:
    """Add events (as made by :func:`seatgate.audit.log.event_row`, or their
    :data:`EventTuple`) to the log, in order.

    Locks the chain head until the transaction ends; call it as the last
    step of a write transaction. Raises :class:`StorageError` when the
    database has no chain head (its schema was not upgraded).
    """
    key = key_for(conn.engine)
    if key is None and conn.dialect.name == "postgresql" and _chained_in_one(conn, rows):
        return
    head = _LOCK_HEAD.run(conn).first()
    if head is None:
        raise StorageError("the audit log has no chain head: run `seatgate init`")
    it = _with_marker(map(as_event_tuple, rows), key, keyed=bool(head.markers))
    prev = str(head.head_hash)
    added = 0
    counts: Counter[tuple[str, str]] = Counter()
    bulk = False
    while chunk := list(islice(it, _CHUNK)):
        if len(chunk) >= _BULK:
            chained_rows, prev = _chained(chunk, prev, key, counts)
            added += insert_rows(conn, audit_events, _COLUMNS, chained_rows)
            bulk = True
            continue
        bulk = False
        params = []
        for row in chunk:
            # Stored as UTC: what PostgreSQL and SQLite give back then hashes the same.
            event: dict[str, Any] = {"at": to_utc(row[0])}
            event.update(zip(_CONTENT, row[1:], strict=True))
            event["prev_hash"] = prev
            event["hash"] = prev = event_hash(prev, event, key)
            params.append(event)
            counts[(event["action"], event["outcome"] or "")] += 1
        if not added and len(chunk) < _CHUNK and conn.dialect.name == "postgresql":
            # The whole append is this chunk: one statement on PostgreSQL.
            append_in_one(conn, params, prev, head.events + len(params), counts)
            return
        if len(params) == 1:
            last_id = _INSERT_ONE.run(conn, params[0]).scalar_one()
        else:
            last_id = list(conn.execute(_INSERT, params).scalars())[-1]
        added += len(params)
    if not added:
        return
    if bulk:
        # Every writer of events holds the head lock: the newest id is this append's.
        last_id = conn.execute(_LAST_ID).scalar_one()
    _MOVE_HEAD.run(conn, {"hash": prev, "last_id": last_id, "events": head.events + added})
    for (action, outcome), count in counts.items():
        _add_count(conn, action, outcome, count)


def _chained_in_one(conn: Connection, rows: Iterable[Mapping[str, Any] | EventTuple]) -> bool:
    """A few events on a plain chain: the head lock and the append as one statement
    (:func:`seatgate.audit.single_statement.chain_in_one`). False when not done."""
    if not isinstance(rows, Sized) or len(rows) > MAX_CHAINED:
        return False
    events, counts = unchained(rows)
    return bool(events) and chain_in_one(conn, events, counts)


def unchained(
    rows: Iterable[Mapping[str, Any] | EventTuple],
) -> tuple[list[dict[str, Any]], Counter[tuple[str, str]]]:
    """``rows`` as the events and counts :func:`seatgate.audit.single_statement.chain_values`
    takes: their stored content, not yet hashed, and how many of each action and outcome."""
    events: list[dict[str, Any]] = []
    counts: Counter[tuple[str, str]] = Counter()
    for row in map(as_event_tuple, rows):
        # Stored as UTC: what PostgreSQL gives back then hashes the same.
        event: dict[str, Any] = {"at": to_utc(row[0])}
        event.update(zip(_CONTENT, row[1:], strict=True))
        events.append(event)
        counts[(event["action"], event["outcome"] or "")] += 1
    return events, counts


def _chained(
    chunk: list[EventTuple], prev: str, key: bytes | None, counts: Counter[tuple[str, str]]
) -> tuple[list[tuple[Any, ...]], str]:
    """The rows of many events, in :data:`_COLUMNS` order, chained from ``prev``; the new head.

    Hashes as the one-event path does (:class:`RunHasher` is :func:`event_hash`), with
    each distinct timestamp formatted once.
    """
    rows: list[tuple[Any, ...]] = []
    hasher = RunHasher(key)
    # Runs of events with one timestamp (all of a batch's, as a rule): each formatted once.
    for at, run in groupby(chunk, itemgetter(0)):
        events = list(run)
        utc = to_utc(at)
        hashes = hasher.chain(prev, utc.isoformat(timespec="microseconds"), events)
        rows += [
            (utc, actor, action, subject, outcome, details, before, own)
            for (_at, actor, action, subject, outcome, details), before, own in zip(
                events, [prev, *hashes], hashes, strict=False
            )
        ]
        prev = hashes[-1]
    # Counted in C, then an outcome of None counted as "".
    for (action, outcome), count in Counter(map(itemgetter(2, 4), chunk)).items():
        counts[(action, outcome or "")] += count
    return rows, prev


def _with_marker(
    rows: Iterator[EventTuple], key: bytes | None, *, keyed: bool
) -> Iterator[EventTuple]:
    """``rows``, led by the marker event when this append starts keying the chain."""
    if keyed and key is None:
        raise ConfigError(
            "audit.key_env",
            "the audit chain is keyed (HMAC): set audit.key_env to its key to write to it",
        )
    if keyed or key is None:
        return rows
    first = next(rows, None)
    if first is None:
        return rows
    marker: EventTuple = (
        first[0],
        "seatgate",
        KEYED_ACTION,
        None,
        "ok",
        ENCODER.encode({"format": FORMAT_KEYED}),
    )
    return chained([marker, first], rows)


def _add_count(conn: Connection, action: str, outcome: str, count: int) -> None:
    # Update, else insert: portable, and no other writer can race us for the
    # new row because every writer holds the chain head lock.
    bumped = _BUMP_COUNT.run(conn, {"act": action, "out": outcome, "n": count})
    if bumped.rowcount == 0:
        conn.execute(insert(audit_counts).values(action=action, outcome=outcome, count=count))


def adopt_existing(conn: Connection) -> None:
    """Chain the events of a log written before the chain existed (schema upgrade).

    Hashes every event in id order, fills ``prev_hash`` and ``hash``, creates
    the chain head and the ``audit_counts`` totals. Their content is taken as
    it is: the chain can only show changes made after this.
    """
    prev, last_id, total = GENESIS, 0, 0
    stamp = (
        update(audit_events)
        .where(audit_events.c.id == bindparam("event_id"))
        .values(prev_hash=bindparam("new_prev"), hash=bindparam("new_hash"))
    )
    while True:
        # Pages by id rather than one open cursor: the updates run on the same
        # connection, and each page is held in memory only while it is hashed.
        page = conn.execute(
            select(audit_events)
            .where(audit_events.c.id > last_id)
            .order_by(audit_events.c.id)
            .limit(_CHUNK)
        ).all()
        if not page:
            break
        params = []
        for row in page:
            new_hash = event_hash(prev, row._mapping)
            params.append({"event_id": row.id, "new_prev": prev, "new_hash": new_hash})
            prev = new_hash
        conn.execute(stamp, params)
        last_id = page[-1].id
        total += len(page)
    conn.execute(
        insert(audit_chain).values(
            id=1, head_hash=prev, head_id=last_id if total else None, events=total
        )
    )
    outcome = func.coalesce(audit_events.c.outcome, literal_column("''"))
    conn.execute(
        insert(audit_counts).from_select(
            ["action", "outcome", "count"],
            select(audit_events.c.action, outcome, func.count()).group_by(
                audit_events.c.action, outcome
            ),
        )
    )
