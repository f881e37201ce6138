"""The audit append as one statement on PostgreSQL: the head lock, the hashes and the events.

On a plain chain the database hashes each event around the head it has just
locked (:func:`seatgate.audit.single_statement.chain_in_one`); the client only
sends each event's hashed text in two parts (:func:`seatgate.audit.hashing.hash_parts`).
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

import pytest
from sqlalchemy import Connection, select

from seatgate.app import Core
from seatgate.audit import log as audit
from seatgate.audit.chain import verify
from seatgate.audit.hashing import event_hash, hash_parts
from seatgate.storage.schema import audit_chain, audit_events
from tests.test_claim_statements import counting


@pytest.mark.parametrize(
    "subject", ["plain", 'ñandú \u2603 "quoted" \\ back', None], ids=["ascii", "escaped", "none"]
)
def test_the_hashed_text_split_around_prev_hash_hashes_as_the_event(subject: str | None) -> None:
    """What the database hashes on PostgreSQL (prefix + prev_hash + suffix) is exactly the
    text :func:`event_hash` hashes, whatever the content needs escaped."""
    event = {
        "at": datetime(2026, 3, 1, 12, 0, 0, 5, tzinfo=UTC),
        "actor": "ádmin",
        "action": "seat.claimed",
        "subject": subject,
        "outcome": None,
        "details": '{"assignment": "auto"}',
    }
    prev = hashlib.sha256(b"any head").hexdigest()
    prefix, suffix = hash_parts(event)
    data = (prefix + prev + suffix).encode("ascii")
    assert hashlib.sha256(data).hexdigest() == event_hash(prev, event)


def test_a_short_append_is_one_statement_with_the_head_lock_on_postgresql(app: Core) -> None:
    """Two events of one transaction: on PostgreSQL one statement locks the head and chains
    both (portable statements elsewhere); the chain verifies and the head is the newest."""

    def work(conn: Connection) -> None:
        now = app.clock.now()
        audit.record(conn, at=now, actor="t", action="test.one", subject="a")
        audit.record(conn, at=now, actor="t", action="test.two", subject="b", outcome="ok")

    with counting(app) as statements:
        app.db.write(work)

    if app.db.engine.dialect.name == "postgresql":
        assert len(statements) == 1, statements
        assert "FOR UPDATE" in statements[0] and "sha256" in statements[0]
    rows = app.db.read(
        lambda conn: conn.execute(select(audit_events).order_by(audit_events.c.id)).all()
    )
    head = app.db.read(lambda conn: conn.execute(select(audit_chain)).one())
    assert [r.subject for r in rows[-2:]] == ["a", "b"]
    assert rows[-1].prev_hash == rows[-2].hash
    assert (head.head_id, head.head_hash, head.events) == (rows[-1].id, rows[-1].hash, len(rows))
    assert app.db.read(verify).intact
