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

Someone with write access to the database can still rewrite the whole chain
from a point on; the chain makes a change visible, it cannot prevent one.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from itertools import islice
from typing import Any, Literal

from sqlalchemy import Connection, bindparam, func, insert, literal_column, select, update

from seatgate.clock import to_utc
from seatgate.errors import StorageError
from seatgate.storage.schema import audit_chain, audit_counts, audit_events

GENESIS = "0" * 64
"""The ``prev_hash`` of the first event."""

# Bumped if the encoding ever changes, so old and new hashes cannot collide.
_FORMAT = "seatgate-audit-1"
# Rows per INSERT or UPDATE batch and per fetch: large enough for executemany
# to pay off, small enough that a 200,000-event import stays memory-flat.
_CHUNK = 2000
_CONTENT = ("actor", "action", "subject", "outcome", "details")
# One encoder for every event (json.dumps with options builds a new one per call).
_ENCODER = json.JSONEncoder(ensure_ascii=True, separators=(",", ":"))

ProblemKind = Literal["edited", "inserted", "deleted"]


@dataclass(frozen=True)
class ChainProblem:
    """The first place where the log and its chain disagree.

    ``event_id`` is the event at which the problem shows (the edited one, the
    first inserted one, the one after a gap, or the last one kept when the
    newest events were deleted); None when it concerns the chain head itself.
    """

    event_id: int | None
    kind: ProblemKind
    message: str


@dataclass(frozen=True)
class ChainReport:
    """What :func:`verify` found.

    ``events`` is how many events were checked and found in order before the
    first problem (all of them when intact); ``head`` is the hash of the last
    of those (:data:`GENESIS` when there are none).
    """

    events: int
    head: str
    problem: ChainProblem | None

    @property
    def intact(self) -> bool:
        """True when no event was edited, inserted or deleted."""
        return self.problem is None


def event_hash(prev_hash: str, event: Mapping[Any, Any]) -> str:
    """The hash of one event: SHA-256 over a JSON list of ``prev_hash`` and its content.

    ``event`` has the stored fields ``at``, ``actor``, ``action``, ``subject``,
    ``outcome`` and ``details`` (the JSON text, as stored). ``at`` is hashed
    as UTC with microseconds, so a naive value read back from SQLite and an
    aware one from PostgreSQL give the same text as the value written.
    """
    at: datetime = event["at"]
    fields = [
        _FORMAT,
        prev_hash,
        to_utc(at).isoformat(timespec="microseconds"),
        event.get("actor"),
        event.get("action"),
        event.get("subject"),
        event.get("outcome"),
        event.get("details"),
    ]
    return hashlib.sha256(_ENCODER.encode(fields).encode("ascii")).hexdigest()


# Built once: append() runs at the end of almost every write transaction,
# and building a SQLAlchemy statement costs more than running it.
_LOCK_HEAD = (
    select(audit_chain.c.head_hash, audit_chain.c.events)
    .where(audit_chain.c.id == 1)
    .with_for_update()
)
# RETURNING saves a round trip under the lock (a `max(id)` query after).
_INSERT = insert(audit_events).returning(audit_events.c.id, sort_by_parameter_order=True)
_MOVE_HEAD = (
    update(audit_chain)
    .where(audit_chain.c.id == 1)
    .values(head_hash=bindparam("hash"), head_id=bindparam("last_id"), events=bindparam("events"))
)
_BUMP_COUNT = (
    update(audit_counts)
    .where(audit_counts.c.action == bindparam("act"), audit_counts.c.outcome == bindparam("out"))
    .values(count=audit_counts.c.count + bindparam("n"))
)


def init_head(conn: Connection) -> None:
    """Create the chain head of a new, empty audit log."""
    conn.execute(insert(audit_chain).values(id=1, head_hash=GENESIS, head_id=None, events=0))


def append(conn: Connection, rows: Iterable[Mapping[str, Any]]) -> None:
    """Add events (as made by :func:`seatgate.audit.log.event_row`) to the log, in order.

    Locks the chain head until the transaction ends; call it as the last
    step of a write transaction. Raises :class:`StorageError` when the
    database has no chain head (its schema was not upgraded).
    """
    head = conn.execute(_LOCK_HEAD).one_or_none()
    if head is None:
        raise StorageError("the audit log has no chain head: run `seatgate init`")
    prev = str(head.head_hash)
    added = 0
    counts: Counter[tuple[str, str]] = Counter()
    it = iter(rows)
    while chunk := list(islice(it, _CHUNK)):
        params = []
        for row in chunk:
            # Stored as UTC: what PostgreSQL and SQLite give back then hashes the same.
            event: dict[str, Any] = {"at": to_utc(row["at"])}
            event.update((name, row.get(name)) for name in _CONTENT)
            event["prev_hash"] = prev
            event["hash"] = prev = event_hash(prev, event)
            params.append(event)
            counts[(event["action"], event["outcome"] or "")] += 1
        ids = conn.execute(_INSERT, params).scalars()
        last_id = list(ids)[-1]
        added += len(params)
    if not added:
        return
    conn.execute(_MOVE_HEAD, {"hash": prev, "last_id": last_id, "events": head.events + added})
    for (action, outcome), count in counts.items():
        _add_count(conn, action, outcome, count)


def _add_count(conn: Connection, action: str, outcome: str, count: int) -> None:
    # Update, else insert: portable, and no other writer can race us for the
    # new row because every writer holds the chain head lock.
    bumped = conn.execute(_BUMP_COUNT, {"act": action, "out": outcome, "n": count})
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


def verify(conn: Connection) -> ChainReport:
    """Check every event against its hash and its neighbours, and the head against the log.

    Reads the log in id order, a page at a time (memory stays flat), and
    stops at the first problem. It needs one snapshot: outside a transaction
    on PostgreSQL it sets REPEATABLE READ for this connection's transaction,
    so events appended meanwhile are not mistaken for inserted ones; a SQLite
    read transaction is one snapshot anyway.
    """
    if conn.dialect.name == "postgresql" and not conn.in_transaction():
        conn.execution_options(isolation_level="REPEATABLE READ")
    head = conn.execute(
        select(audit_chain.c.head_hash, audit_chain.c.head_id, audit_chain.c.events).where(
            audit_chain.c.id == 1
        )
    ).one_or_none()
    if head is None:
        missing = ChainProblem(None, "deleted", "the chain head (table audit_chain) is missing")
        return ChainReport(0, GENESIS, missing)
    prev, prev_id, checked = GENESIS, None, 0
    result = conn.execute(
        select(audit_events).order_by(audit_events.c.id).execution_options(yield_per=_CHUNK)
    )
    try:
        for row in result:
            problem = _row_problem(conn, row, head.head_id, prev, prev_id)
            if problem is not None:
                return ChainReport(checked, prev, problem)
            prev, prev_id, checked = row.hash, row.id, checked + 1
    finally:
        result.close()
    return ChainReport(checked, prev, _head_problem(head, prev, prev_id, checked))


def _row_problem(
    conn: Connection, row: Any, head_id: int | None, prev: str, prev_id: int | None
) -> ChainProblem | None:
    """What is wrong with ``row``, given that the events before it are in order."""
    if head_id is None or row.id > head_id:
        # Core never writes past the head it records (both under one lock).
        return ChainProblem(
            row.id, "inserted", f"event #{row.id} was inserted after the last event of the chain"
        )
    if row.hash is None or row.prev_hash is None:
        return ChainProblem(
            row.id, "inserted", f"event #{row.id} has no hash: it was inserted by hand"
        )
    if event_hash(row.prev_hash, row._mapping) != row.hash:
        return ChainProblem(
            row.id, "edited", f"event #{row.id} was edited: it does not match its hash"
        )
    if row.prev_hash != prev:
        return _broken_link(conn, row.id, row.prev_hash, prev_id)
    return None


def _broken_link(
    conn: Connection, event_id: int, prev_hash: str, prev_id: int | None
) -> ChainProblem:
    """Event ``event_id`` does not follow ``prev_id``: events inserted between, or a gap."""
    earlier = conn.execute(
        select(audit_events.c.id)
        .where(audit_events.c.hash == prev_hash, audit_events.c.id < event_id)
        .order_by(audit_events.c.id.desc())
        .limit(1)
    ).scalar_one_or_none()
    if earlier is not None:
        # It links to an older event: everything in between was put there by hand.
        first = conn.execute(
            select(func.min(audit_events.c.id)).where(audit_events.c.id > earlier)
        ).scalar_one()
        return ChainProblem(
            first,
            "inserted",
            f"event #{first} was inserted: #{event_id} follows #{earlier} in the chain, "
            f"so the events from #{first} to #{prev_id} are not part of it",
        )
    where = f"between #{prev_id} and #{event_id}" if prev_id is not None else f"before #{event_id}"
    return ChainProblem(
        event_id,
        "deleted",
        f"events were deleted {where} (or the event before #{event_id} was replaced)",
    )


def _head_problem(
    head: Any, last_hash: str, last_id: int | None, checked: int
) -> ChainProblem | None:
    """Compare the chain head with the last event of an unbroken chain."""
    if head.head_id == last_id:
        if head.head_hash != last_hash:
            return ChainProblem(
                last_id,
                "edited",
                f"event #{last_id} does not match the chain head: it was replaced "
                "(or the head was edited)",
            )
        if head.events != checked:
            return ChainProblem(
                None,
                "edited",
                f"the chain head was edited: it counts {head.events} events, the log has {checked}",
            )
        return None
    after = f"after #{last_id}" if last_id is not None else "from the start"
    return ChainProblem(
        last_id,
        "deleted",
        f"events {after} were deleted: the chain ends with #{head.head_id}, "
        f"{head.events} events, the log has {checked}",
    )
