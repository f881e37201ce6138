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

On a plain (unkeyed) chain even the head lock joins that statement
(:func:`chain_in_one`): the events' hashes depend on the head only through
``prev_hash``, so the client sends each event's hashed text in two parts and
the database hashes them around the head it has just locked (``sha256``,
PostgreSQL 11 and later). One round trip instead of two while every other
writer waits for the head.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from sqlalchemy import (
    Connection,
    Integer,
    Text,
    bindparam,
    exists,
    func,
    insert,
    literal_column,
    select,
    union_all,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import Compiled, Dialect
from sqlalchemy.sql.dml import Insert, Update
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.selectable import CTE, CompoundSelect, Select

from seatgate.audit.hashing import KEYED_ACTION, hash_parts
from seatgate.storage.driver_statement import first_row
from seatgate.storage.schema import audit_chain, audit_counts, audit_events

_EVENT_COLUMNS = ("at", "actor", "action", "subject", "outcome", "details", "prev_hash", "hash")
_Row = tuple[Any, ...]
_CONTENT = ("at", "actor", "action", "subject", "outcome", "details")
_SHAPES = 64
"""Shapes kept compiled: appends are a few events of a few actions."""
MAX_CHAINED = 16
"""The most events :func:`chain_in_one` chains in one statement (a transaction's few)."""


def chain_in_one(
    conn: Connection, events: Sequence[dict[str, Any]], counts: Counter[tuple[str, str]]
) -> bool:
    """Lock the head, chain ``events`` after it, move it and add ``counts``: one statement.

    ``events`` carry their stored content (``at`` in UTC), not yet their hashes.
    For a plain chain on PostgreSQL, at most :data:`MAX_CHAINED` events. Returns
    False, having written nothing, when there is no head or the chain is keyed:
    the caller then appends the ordinary way, which says what is wrong.
    """
    compiled = _chained(conn.dialect, len(events), len(counts))
    values = compiled.construct_params(chain_values(events, counts))
    moved = first_row(conn, compiled, values or {})
    return moved is not None


def chain_values(
    events: Sequence[dict[str, Any]], counts: Counter[tuple[str, str]]
) -> dict[str, Any]:
    """The values of :func:`chained_statement` for ``events`` (not yet hashed) and ``counts``."""
    values: dict[str, Any] = {"n": len(events)}
    for i, event in enumerate(events):
        values[f"e{i}_prefix"], values[f"e{i}_suffix"] = hash_parts(event)
        for column in _CONTENT:
            values[f"e{i}_{column}"] = event.get(column)
    for j, ((action, outcome), count) in enumerate(counts.items()):
        values.update({f"c{j}_action": action, f"c{j}_outcome": outcome, f"c{j}_count": count})
    return values


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
def _chained(dialect: Dialect, events: int, counts: int) -> Compiled:
    """:func:`chain_in_one`'s statement for ``events`` events and ``counts`` counts."""
    return chained_statement(events, counts).compile(dialect=dialect)


def chained_statement(events: int, counts: int, after: Select[Any] | None = None) -> Update:
    """:func:`chain_in_one`'s statement (values: :func:`chain_values`), not yet compiled.

    With ``after``, a query of other parts of a larger statement (its data-modifying
    ``WITH`` clauses): the head is locked only once ``after`` has run, and only if it
    found a row -- so, as a part of that statement too, the head lock is the last lock
    taken, and nothing is appended when ``after`` is empty. The statement returns the
    head's id when it appended, no row when it did not.
    """
    markers = (
        select(func.coalesce(func.sum(audit_counts.c.count), 0))
        .where(audit_counts.c.action == KEYED_ACTION)
        .scalar_subquery()
    )
    # Evaluated before a row is locked: FOR UPDATE locks only the rows its filter passes.
    gate = [audit_chain.c.id == 1, markers == 0]
    if after is not None:
        gate.append(exists(after))
    # The head, locked (FOR UPDATE gives the newest version once the lock is granted).
    head = (
        select(audit_chain.c.head_hash.label("hash"))
        .where(*gate)
        .with_for_update(of=audit_chain)
        .cte("head")
    )
    # One CTE per event: its hash, over the previous one.
    links: list[CTE] = []
    prev: CTE = head
    for i in range(events):
        link = select(prev.c.hash.label("prev"), _sha256(i, prev.c.hash).label("hash")).cte(
            f"link{i}"
        )
        links.append(link)
        prev = link
    rows = [
        select(
            *(bindparam(f"e{i}_{c}", type_=audit_events.c[c].type) for c in _CONTENT),
            link.c.prev,
            link.c.hash,
        )
        for i, link in enumerate(links)
    ]
    added = (
        insert(audit_events)
        .from_select(list(_EVENT_COLUMNS), _all(rows))
        .returning(audit_events.c.id)
        .cte("added")
    )
    counted = _counted(head, counts)
    return (
        update(audit_chain)
        .where(audit_chain.c.id == 1, exists(select(head.c.hash)))
        .values(
            head_hash=select(prev.c.hash).scalar_subquery(),
            head_id=select(func.max(added.c.id)).scalar_subquery(),
            events=audit_chain.c.events + bindparam("n", type_=Integer),
        )
        .add_cte(counted.cte("counted"))
        .returning(audit_chain.c.id)
    )


def _counted(head: CTE, counts: int) -> Insert:
    """Add ``counts`` counts (``c{j}_*``) to ``audit_counts`` when ``head`` was locked."""
    counted = pg_insert(audit_counts).from_select(
        ["action", "outcome", "count"],
        _all(
            [
                select(
                    bindparam(f"c{j}_action", type_=Text),
                    bindparam(f"c{j}_outcome", type_=Text),
                    bindparam(f"c{j}_count", type_=Integer),
                ).where(exists(select(head.c.hash)))
                for j in range(counts)
            ]
        ),
    )
    counted = counted.on_conflict_do_update(
        index_elements=[audit_counts.c.action, audit_counts.c.outcome],
        set_={"count": audit_counts.c.count + counted.excluded["count"]},
    )
    return counted


def _all(
    selects: Sequence[Select[*_Row]],
) -> Select[*_Row] | CompoundSelect[*_Row]:
    """The rows of ``selects`` in order (one select as itself)."""
    return selects[0] if len(selects) == 1 else union_all(*selects)


def _sha256(i: int, prev: ColumnElement[Any]) -> ColumnElement[str]:
    """Event ``i``'s hash after ``prev``: hex SHA-256 of its two hashed parts around ``prev``."""
    text = bindparam(f"e{i}_prefix", type_=Text) + prev + bindparam(f"e{i}_suffix", type_=Text)
    utf8 = func.convert_to(text, literal_column("'UTF8'"))
    return func.encode(func.sha256(utf8), literal_column("'hex'"), type_=Text)


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
