"""Throttled login attempts are audited in aggregate: the audit log cannot grow at request rate.

Every test runs on SQLite and on PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from sqlalchemy import func, select

from seatgate.app import Core
from seatgate.audit import log as audit
from seatgate.gate.decision import Reason
from seatgate.gate.throttles import BusyTally
from seatgate.records import AuditEvent
from seatgate.storage import schema
from tests.web_support import Web

WRONG = "Wrong-Battery-0815"
WINDOW = timedelta(minutes=15)


def audit_rows(core: Core) -> int:
    return core.db.read(
        lambda c: c.execute(select(func.count()).select_from(schema.audit_events)).scalar_one()
    )


def throttle_events(core: Core) -> list[AuditEvent]:
    events = core.db.read(lambda c: audit.recent(c, action="login", limit=50))
    return [e for e in events if e.details.get("throttled")]


def test_five_hundred_throttled_attempts_add_at_most_two_audit_rows(
    make_web: Callable[..., Web],
) -> None:
    web = make_web(rate_limited=True)
    for _ in range(5):
        assert web.core.gate.decide("user000", WRONG, address="10.0.0.1").reason is (
            Reason.INVALID_CREDENTIALS
        )
    before = audit_rows(web.core)
    for _ in range(500):
        decision = web.core.gate.decide("user000", WRONG, address="10.0.0.1")
        assert decision.reason is Reason.RATE_LIMITED
    assert audit_rows(web.core) - before <= 2
    (started,) = throttle_events(web.core)
    assert started.outcome == "rate_limited"
    assert started.details["throttled"] == "started"
    # The window passes; the next allowed attempt writes the summary with the count.
    web.clock.advance(WINDOW)
    assert web.core.gate.decide("user000", "user000-pw", address="10.0.0.1").allowed
    ended = throttle_events(web.core)[0]
    assert (ended.details["throttled"], ended.details["count"]) == ("ended", 500)
    assert web.core.db.read(lambda c: c.execute(select(schema.login_throttles)).all()) == []


def test_five_hundred_throttled_logins_each_new_from_one_address_add_at_most_two_audit_rows(
    make_web: Callable[..., Web],
) -> None:
    web = make_web(rate_limited=True, max_failures_per_address=5)
    for n in range(5):
        web.core.gate.decide(f"nobody{n}", WRONG, address="10.6.6.6")
    before = audit_rows(web.core)
    for n in range(500):
        decision = web.core.gate.decide(f"guess{n}", WRONG, address="10.6.6.6")
        assert decision.reason is Reason.RATE_LIMITED
    assert audit_rows(web.core) - before <= 2
    rows = web.core.db.read(lambda c: c.execute(select(schema.login_throttles)).all())
    assert [(r.scope, r.subject, r.count) for r in rows] == [("address", "10.6.6.6", 500)]


def test_the_next_allowed_attempt_writes_the_count_of_the_throttled_ones(
    make_web: Callable[..., Web],
) -> None:
    web = make_web(rate_limited=True, max_failures_per_login_and_address=1)
    web.core.gate.decide("user000", WRONG, address="10.0.0.2")
    for _ in range(3):
        web.core.gate.decide("user000", WRONG, address="10.0.0.2")
    web.clock.advance(timedelta(minutes=10))
    refused = web.core.gate.decide("user000", WRONG, address="10.0.0.2")
    assert refused.reason is Reason.RATE_LIMITED  # the failure is still in the window
    web.clock.advance(timedelta(minutes=10))
    assert web.core.gate.decide("user000", "user000-pw", address="10.0.0.2").allowed
    states = [(e.details["throttled"], e.details.get("count")) for e in throttle_events(web.core)]
    assert states == [("ended", 4), ("started", None)]  # newest first


def test_five_hundred_refusals_for_want_of_a_slot_add_at_most_two_audit_rows(
    make_web: Callable[..., Web],
) -> None:
    web = make_web()
    tally = BusyTally()
    before = audit_rows(web.core)
    for _ in range(500):
        tally.refused(web.core.db, web.clock.now())
    assert audit_rows(web.core) - before == 1
    web.clock.advance(WINDOW)
    tally.refused(web.core.db, web.clock.now())
    (ended, started) = throttle_events(web.core)[:2]
    assert (ended.details["throttled"], ended.details["count"]) == ("ended", 500)
    assert (started.details["throttled"], started.details["scope"]) == ("started", "busy")
