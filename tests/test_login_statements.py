"""A seated login behind the rate limiter (the web gate's build): few statements, same effects.

On PostgreSQL the limiter's counts and its reservation are one statement, and
a routine success gives the reservation back in the statement that marks the
seat used and the last login, which appends its audit event too. The
reservation's transaction commits without waiting for the disk unless it
writes an audit event (see
:mod:`seatgate.gate.ratelimit_rows`). SQLite keeps the portable statements;
both must end in the same rows.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta

import pytest
from sqlalchemy import Connection, Table, func, select, text

from seatgate.app import Core
from seatgate.clock import FakeClock
from seatgate.gate.decision import Reason
from seatgate.gate.ratelimit import DatabaseRateLimiter
from seatgate.licensing.vendor import VendorKey
from seatgate.storage.schema import audit_events, login_failures
from tests.conftest import make_config
from tests.test_claim_statements import counting

ADDRESS = "10.1.2.3"
PASSWORD = "Correct-Horse-4711"
WRONG = "Wrong-Battery-0815"


@pytest.fixture
def web(
    vendor_key: VendorKey, clock: FakeClock, mint: Callable[..., str], db_url: str
) -> Iterator[Core]:
    """A licensed installation as the web gate builds it (rate limiter on), with bob seated."""
    config = make_config(db_url, vendor_key)
    app = Core.build(config, clock=clock, check_schema=False, rate_limited=True)
    app.init_schema()
    app.licensing.install(mint("license", seats=25), actor="test")
    app.accounts.add("bob", password=PASSWORD, actor="test")
    assert app.gate.decide("bob", PASSWORD, address=ADDRESS).seat_claimed
    yield app
    app.close()


def rows_of(app: Core, table: Table) -> int:
    return app.db.read(lambda c: c.execute(select(func.count()).select_from(table)).scalar_one())


def test_a_routine_seated_login_gives_its_reservation_back_in_five_statements_on_postgresql(
    web: Core, clock: FakeClock
) -> None:
    # Within the second: the limiter prunes expired failures at most once a second.
    clock.advance(timedelta(milliseconds=500))
    events = rows_of(web, audit_events)

    with counting(web) as statements:
        decision = web.gate.decide("bob", PASSWORD, address=ADDRESS)

    assert decision.allowed and not decision.seat_claimed
    (holder,) = web.ledger.holders()
    assert (holder.last_used_at, holder.last_login_at) == (clock.now(), clock.now())
    assert rows_of(web, login_failures) == 0  # the reservation was given back
    assert rows_of(web, audit_events) == events + 1  # one event for the login
    if web.db.engine.dialect.name == "postgresql":
        # Locks; counts and reservation; account; status, licence and seat; then seat used,
        # last login, reservation given back and the event appended under the audit head's
        # lock, all in one statement (an unkeyed chain, nothing else left to write).
        assert len(statements) == 5, statements
        last = statements[-1]
        assert last.startswith("WITH touched AS (UPDATE seats"), last
        assert "UPDATE accounts" in last and "DELETE FROM login_failures" in last
        assert "FOR UPDATE OF audit_chain" in last and "sha256" in last


def test_a_failure_stays_recorded_and_a_throttled_attempt_records_nothing_more(
    web: Core,
) -> None:
    for _ in range(5):
        assert web.gate.decide("bob", WRONG, address=ADDRESS).reason is Reason.INVALID_CREDENTIALS
    assert rows_of(web, login_failures) == 5

    throttled = web.gate.decide("bob", PASSWORD, address=ADDRESS)

    assert throttled.reason is Reason.RATE_LIMITED
    assert rows_of(web, login_failures) == 5


def _setting_after_reserve(limiter: DatabaseRateLimiter, address: str) -> Callable[..., str]:
    def work(conn: Connection) -> str:
        limiter.reserve_in(conn, "bob", address)
        return str(conn.execute(text("SHOW synchronous_commit")).scalar_one())

    return work


@pytest.mark.postgres
def test_a_reservation_commits_without_waiting_for_the_disk_unless_it_writes_an_audit_event(
    build_app: Callable[..., Core], pg_url: str, clock: FakeClock
) -> None:
    app = build_app(pg_url)
    limiter = DatabaseRateLimiter(
        app.db, clock, per_login_and_address=2, per_address=100, per_login=30
    )

    assert app.db.write(_setting_after_reserve(limiter, ADDRESS)) == "off"
    assert app.db.write(_setting_after_reserve(limiter, ADDRESS)) == "off"
    # The third attempt is throttled: its audit event is written, so its commit waits.
    assert app.db.write(_setting_after_reserve(limiter, ADDRESS)) == "on"
    # Only that transaction: the next one on the pool commits as configured.
    show = text("SHOW synchronous_commit")
    assert app.db.write(lambda conn: conn.execute(show).scalar_one()) == "on"
    assert rows_of(app, login_failures) == 2
