"""A short append to the audit chain on PostgreSQL, as one statement.

A write transaction usually ends with one or two audit events (a login, a
seat claim). Written the portable way that is three statements after the
head lock -- insert the events, move the head, add to the counts -- and on
PostgreSQL each is a round trip while the head lock, and often the seat
lock, is held. Data-modifying ``WITH`` clauses make them one statement with
the same effect: the events inserted, the head moved to the newest of them,
each count added to (or created) with ``ON CONFLICT DO UPDATE``.

SQLAlchemy cannot cache the compiled form of such a statement (a
multi-row ``VALUES`` in a ``WITH`` has no cache key), and compiling it cost
more than the whole rest of a login. So the statement is compiled once per
shape (how many events, how many counts) with named parameters, and run as
driver SQL with this append's values.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from sqlalchemy import Connection, bindparam, func, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import Compiled, Dialect

from seatgate.storage.schema import audit_chain, audit_counts, audit_events

_EVENT_COLUMNS = ("at", "actor", "action", "subject", "outcome", "details", "prev_hash", "hash")
_SHAPES = 64
"""Shapes kept compiled: appends are a few events of a few actions."""


def append_in_one(
    conn: Connection,
    events: Sequence[dict[str, Any]],
    head_hash: str,
    total: int,
    counts: Counter[tuple[str, str]],
) -> None:
    """Insert ``events`` (chained already), make ``head_hash`` and ``total`` the head's, add
    ``counts``; the caller holds the head lock (PostgreSQL only)."""
    values: dict[str, Any] = {"head_hash": head_hash, "total": total}
    for i, event in enumerate(events):
        for column in _EVENT_COLUMNS:
            values[f"e{i}_{column}"] = event.get(column)
    for j, ((action, outcome), count) in enumerate(counts.items()):
        values.update({f"c{j}_action": action, f"c{j}_outcome": outcome, f"c{j}_count": count})
    compiled = _compiled(conn.dialect, len(events), len(counts))
    conn.exec_driver_sql(compiled.string, compiled.construct_params(values))


@lru_cache(maxsize=_SHAPES)
def _compiled(dialect: Dialect, events: int, counts: int) -> Compiled:
    """The statement for ``events`` events and ``counts`` counts, compiled for ``dialect``."""
    added = (
        insert(audit_events)
        .values([{c: bindparam(f"e{i}_{c}") for c in _EVENT_COLUMNS} for i in range(events)])
        .returning(audit_events.c.id)
        .cte("added")
    )
    counted = pg_insert(audit_counts).values(
        [
            {
                "action": bindparam(f"c{j}_action"),
                "outcome": bindparam(f"c{j}_outcome"),
                "count": bindparam(f"c{j}_count"),
            }
            for j in range(counts)
        ]
    )
    counted = counted.on_conflict_do_update(
        index_elements=[audit_counts.c.action, audit_counts.c.outcome],
        set_={"count": audit_counts.c.count + counted.excluded["count"]},
    )
    statement = (
        update(audit_chain)
        .where(audit_chain.c.id == 1)
        .values(
            head_hash=bindparam("head_hash"),
            head_id=select(func.max(added.c.id)).scalar_subquery(),
            events=bindparam("total"),
        )
        .add_cte(counted.cte("counted"))
    )
    return statement.compile(dialect=dialect)
