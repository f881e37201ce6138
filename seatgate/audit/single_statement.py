"""A short append to the audit chain on PostgreSQL, as one statement.

A write transaction usually ends with one or two audit events (a login, a
seat claim). Written the portable way that is three statements after the
head lock -- insert the events, move the head, add to the counts -- and on
PostgreSQL each is a round trip while the head lock, and often the seat
lock, is held. Data-modifying ``WITH`` clauses make them one statement with
the same effect: the events inserted, the head moved to the newest of them,
each count added to (or created) with ``ON CONFLICT DO UPDATE``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, func, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert

from seatgate.storage.schema import audit_chain, audit_counts, audit_events


def append_in_one(
    conn: Connection,
    events: Sequence[dict[str, Any]],
    head_hash: str,
    total: int,
    counts: Counter[tuple[str, str]],
) -> None:
    """Insert ``events`` (chained already), make ``head_hash`` and ``total`` the head's, add
    ``counts``; the caller holds the head lock (PostgreSQL only)."""
    added = insert(audit_events).values(list(events)).returning(audit_events.c.id).cte("added")
    counted = pg_insert(audit_counts).values(
        [{"action": a, "outcome": o, "count": n} for (a, o), n in counts.items()]
    )
    counted = counted.on_conflict_do_update(
        index_elements=[audit_counts.c.action, audit_counts.c.outcome],
        set_={"count": audit_counts.c.count + counted.excluded["count"]},
    )
    statement = (
        update(audit_chain)
        .where(audit_chain.c.id == 1)
        .values(
            head_hash=head_hash,
            head_id=select(func.max(added.c.id)).scalar_subquery(),
            events=total,
        )
        .add_cte(counted.cte("counted"))
    )
    conn.execute(statement)
