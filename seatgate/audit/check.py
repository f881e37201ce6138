"""Checking the audit chain: every event against its hash and neighbours, the head against the log.

See :mod:`seatgate.audit.chain` for how the chain is written.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import Connection, func, select

from seatgate.audit.hashing import GENESIS, KEYED_ACTION, event_hash
from seatgate.errors import StorageError
from seatgate.storage.schema import audit_chain, audit_events

_CHUNK = 2000

ProblemKind = Literal["edited", "inserted", "deleted", "unkeyed"]


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

    ``keyed_from`` is the id of the marker event where keying starts (None:
    not keyed); ``unchecked`` is True when the chain is keyed and no key was
    given, so the events from ``keyed_from`` on could not be checked.
    """

    events: int
    head: str
    problem: ChainProblem | None
    keyed_from: int | None = None
    unchecked: bool = False

    @property
    def intact(self) -> bool:
        """True when every event was checked and none was edited, inserted or deleted."""
        return self.problem is None and not self.unchecked


@dataclass(frozen=True)
class ChainHead:
    """The head of the chain, to keep elsewhere: a later rewrite cannot reproduce it."""

    head_id: int | None
    head_hash: str
    events: int
    keyed_from: int | None


def verify(conn: Connection, key: bytes | None = None) -> ChainReport:
    """Check every event against its hash and its neighbours, and the head against the log.

    Reads the log in id order, a page at a time (memory stays flat), and
    stops at the first problem. It needs one snapshot: outside a transaction
    on PostgreSQL it sets REPEATABLE READ for this connection's transaction,
    so events appended meanwhile are not mistaken for inserted ones; a SQLite
    read transaction is one snapshot anyway.

    Events from the marker (:data:`KEYED_ACTION`) on are checked with
    ``key``; without one the report stops there, ``unchecked``. Given a key,
    a chain with no marker is a problem (``unkeyed``): it was rewritten
    without the key, or nothing was written since the key was set.
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
    prev, prev_id, checked, keyed_from = GENESIS, None, 0, None
    result = conn.execute(
        select(audit_events).order_by(audit_events.c.id).execution_options(yield_per=_CHUNK)
    )
    try:
        for row in result:
            if keyed_from is None and row.action == KEYED_ACTION:
                keyed_from = row.id
                if key is None:
                    return ChainReport(checked, prev, None, keyed_from, unchecked=True)
            row_key = key if keyed_from is not None else None
            problem = _row_problem(conn, row, head.head_id, prev, prev_id, row_key)
            if problem is not None:
                return ChainReport(checked, prev, problem, keyed_from)
            prev, prev_id, checked = row.hash, row.id, checked + 1
    finally:
        result.close()
    problem = _head_problem(head, prev, prev_id, checked)
    if problem is None and key is not None and keyed_from is None:
        problem = ChainProblem(
            None,
            "unkeyed",
            "no event is keyed although a key was given: the chain was rewritten without "
            "the key, or nothing was written since audit.key_env was set",
        )
    return ChainReport(checked, prev, problem, keyed_from)


def head_of(conn: Connection) -> ChainHead:
    """The chain head and where keying starts (:class:`StorageError` when there is no head)."""
    head = conn.execute(
        select(audit_chain.c.head_hash, audit_chain.c.head_id, audit_chain.c.events).where(
            audit_chain.c.id == 1
        )
    ).one_or_none()
    if head is None:
        raise StorageError("the audit log has no chain head: run `seatgate init`")
    keyed_from = conn.execute(
        select(func.min(audit_events.c.id)).where(audit_events.c.action == KEYED_ACTION)
    ).scalar_one_or_none()
    return ChainHead(head.head_id, str(head.head_hash), int(head.events), keyed_from)


def _row_problem(
    conn: Connection,
    row: Any,
    head_id: int | None,
    prev: str,
    prev_id: int | None,
    key: bytes | None,
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
    if event_hash(row.prev_hash, row._mapping, key) != row.hash:
        # With a key, a wrong key shows here too, at the first keyed event.
        wrong_key = " (or the key is wrong)" if key is not None else ""
        return ChainProblem(
            row.id,
            "edited",
            f"event #{row.id} was edited: it does not match its hash{wrong_key}",
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
