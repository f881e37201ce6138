"""A routine seated login on PostgreSQL: seat used, last login, reservation and audit event
in one statement (:mod:`seatgate.gate.seated_login`).

The event must be the one the audit log would have appended at the commit, the chain head
must stay the last lock the transaction takes, and every other case -- the seat gone, a
keyed chain -- must go the ordinary way.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Connection, create_engine, func, select, text

from seatgate.app import Core
from seatgate.audit.chain import use_key, verify
from seatgate.audit.hashing import event_hash
from seatgate.clock import FakeClock
from seatgate.errors import ConfigError
from seatgate.gate import admission
from seatgate.licensing.vendor import VendorKey
from seatgate.storage.schema import audit_chain, audit_counts, audit_events, login_failures
from tests.conftest import make_config
from tests.test_claim_statements import counting

pytestmark = pytest.mark.postgres

ADDRESS = "10.1.2.3"
PASSWORD = "Correct-Horse-4711"
KEY = b"k" * 40
_CONTENT = ("at", "actor", "action", "subject", "outcome", "details")


@pytest.fixture
def web(
    vendor_key: VendorKey, clock: FakeClock, mint: Callable[..., str], pg_url: str
) -> Iterator[Core]:
    """A licensed installation on PostgreSQL as the web gate builds it, with bob seated."""
    app = Core.build(
        make_config(pg_url, vendor_key), clock=clock, check_schema=False, rate_limited=True
    )
    app.init_schema()
    app.licensing.install(mint("license", seats=25), actor="test")
    app.accounts.add("bob", password=PASSWORD, actor="test")
    assert app.gate.decide("bob", PASSWORD, address=ADDRESS).seat_claimed
    # Within the second: the limiter prunes expired failures at most once a second.
    clock.advance(timedelta(milliseconds=500))
    yield app
    use_key(app.db.engine, None)
    app.close()


def _read(app: Core, work: Callable[[Connection], Any]) -> Any:
    return app.db.read(work)


def _logins(app: Core) -> list[Any]:
    query = select(audit_events).where(audit_events.c.action == "login").order_by(audit_events.c.id)
    return list(_read(app, lambda c: c.execute(query).all()))


def _allowed_count(app: Core) -> int:
    query = select(audit_counts.c.count).where(
        audit_counts.c.action == "login", audit_counts.c.outcome == "allowed"
    )
    return int(_read(app, lambda c: c.execute(query).scalar_one()))


def _folded(statement: str) -> bool:
    return statement.startswith("WITH touched") and "FOR UPDATE OF audit_chain" in statement


def _head_and_total(app: Core) -> tuple[Any, Any, int]:
    head = _read(app, lambda c: c.execute(select(audit_chain)).one())
    total = _read(app, lambda c: c.execute(select(func.count()).select_from(audit_events)))
    return head, head.head_id, int(total.scalar_one())


def test_the_event_chained_with_the_touch_is_the_one_the_commit_would_have_appended(
    web: Core, monkeypatch: pytest.MonkeyPatch
) -> None:
    allowed = _allowed_count(web)
    with counting(web) as statements:
        assert web.gate.decide("bob", PASSWORD, address=ADDRESS).allowed
    # Locks; counts and reservation; account; admission read; the rest in one statement.
    assert len(statements) == 5, statements
    assert _folded(statements[-1]) and "sha256" in statements[-1]

    # The same login the ordinary way (the event appended at the commit), at the same time.
    monkeypatch.setattr(admission, "_nothing_follows", lambda conn, admission: False)
    with counting(web) as statements:
        assert web.gate.decide("bob", PASSWORD, address=ADDRESS).allowed
    assert len(statements) == 6 and not any(map(_folded, statements)), statements

    folded, ordinary = _logins(web)[-2:]
    assert [folded._mapping[c] for c in _CONTENT] == [ordinary._mapping[c] for c in _CONTENT]
    assert ordinary.prev_hash == folded.hash
    content = {c: folded._mapping[c] for c in _CONTENT}
    assert folded.hash == event_hash(folded.prev_hash, content)
    assert _allowed_count(web) == allowed + 2
    head, head_id, total = _head_and_total(web)
    assert (head_id, head.head_hash, head.events) == (ordinary.id, ordinary.hash, total)
    assert _read(web, verify).intact
    assert _read(web, lambda c: c.execute(select(login_failures)).all()) == []


def _revoking(app: Core, statement: Any) -> Any:
    """``statement`` (the admission read), which takes bob's seat away after its first run."""
    revoked: list[bool] = []

    class Revoking:
        def run(self, conn: Connection, params: Any = None) -> Any:
            rows = statement.run(conn, params)
            if not revoked:
                revoked.append(True)
                app.ledger.revoke(app.accounts.get("bob").id, actor="admin")
            return rows

    return Revoking()


def _one_claimed_login(web: Core, logins_before: int, allowed: int) -> None:
    """Exactly one new login event, a claim; its count once; the seat held again."""
    logins = _logins(web)
    assert len(logins) == logins_before + 1
    assert '"seat_claimed": true' in logins[-1].details
    assert _allowed_count(web) == allowed + 1
    assert [h.login for h in web.ledger.holders()] == ["bob"]
    assert _read(web, lambda c: c.execute(select(login_failures)).all()) == []
    assert _read(web, verify).intact


def test_a_seat_revoked_after_the_admission_read_is_claimed_with_one_event(
    web: Core, monkeypatch: pytest.MonkeyPatch
) -> None:
    logins, allowed = len(_logins(web)), _allowed_count(web)
    monkeypatch.setattr(admission, "_ADMISSION", _revoking(web, admission._ADMISSION))

    with counting(web) as statements:
        decision = web.gate.decide("bob", PASSWORD, address=ADDRESS)

    assert decision.allowed and decision.seat_claimed
    assert any(map(_folded, statements))  # tried, found the seat gone, then claimed
    _one_claimed_login(web, logins, allowed)
    (holder,) = web.ledger.holders()
    assert holder.last_login_at == web.clock.now()


def test_a_seat_revoked_during_the_verification_is_claimed_with_one_event(web: Core) -> None:
    logins, allowed = len(_logins(web)), _allowed_count(web)
    local = web.gate.verifiers["local"]

    class Revoking:
        def verify(self, account: Any, password: str) -> bool:
            web.ledger.revoke(account.id, actor="admin")
            return bool(local.verify(account, password))

    web.gate.verifiers["local"] = Revoking()

    decision = web.gate.decide("bob", PASSWORD, address=ADDRESS)

    assert decision.allowed and decision.seat_claimed
    _one_claimed_login(web, logins, allowed)


def test_a_keyed_chain_appends_the_ordinary_way(web: Core) -> None:
    use_key(web.db.engine, KEY)
    logins, allowed = len(_logins(web)), _allowed_count(web)

    with counting(web) as statements:
        assert web.gate.decide("bob", PASSWORD, address=ADDRESS).allowed

    assert not any(map(_folded, statements)), statements
    assert any("FOR UPDATE" in s and "audit_chain" in s for s in statements)
    assert len(_logins(web)) == logins + 1
    assert _allowed_count(web) == allowed + 1
    report = _read(web, lambda c: verify(c, KEY))
    assert report.intact and not report.unchecked


def test_a_keyed_chain_without_its_key_still_refuses_the_append_and_writes_nothing(
    web: Core,
) -> None:
    use_key(web.db.engine, KEY)
    assert web.gate.decide("bob", PASSWORD, address=ADDRESS).allowed  # the chain is keyed now
    use_key(web.db.engine, None)
    before = _head_and_total(web)

    with pytest.raises(ConfigError):
        web.gate.decide("bob", PASSWORD, address=ADDRESS)

    assert _head_and_total(web) == before


def _waiting_statement(probe: Connection) -> str | None:
    """The statement of a backend of this database waiting for a row lock, if any."""
    found = probe.execute(
        text(
            "SELECT query FROM pg_stat_activity WHERE datname = current_database()"
            " AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
        )
    ).first()
    probe.rollback()
    return None if found is None else str(found.query)


@pytest.mark.parametrize("table", ["seats", "accounts", "login_failures"])
def test_the_head_is_not_locked_while_the_statement_waits_for_another_row(
    web: Core, pg_url: str, table: str
) -> None:
    """Another transaction holds a row the statement writes: the statement waits for it
    without holding the chain head, which every other writer needs."""
    engine = create_engine(pg_url)
    blocker, probe = engine.connect(), engine.connect()
    local = web.gate.verifiers["local"]

    class Blocking:
        def verify(self, account: Any, password: str) -> bool:
            # After the reservation, before the admission: the rows the statement writes exist.
            blocker.execute(text(f"SELECT 1 FROM {table} FOR UPDATE"))  # noqa: S608
            return bool(local.verify(account, password))

    web.gate.verifiers["local"] = Blocking()
    decided: list[Any] = []
    login = threading.Thread(
        target=lambda: decided.append(web.gate.decide("bob", PASSWORD, address=ADDRESS))
    )
    try:
        login.start()
        deadline = time.monotonic() + 10
        while (waiting := _waiting_statement(probe)) is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert waiting is not None and _folded(waiting), waiting
        # NOWAIT: an error if the waiting login held the head.
        head = "SELECT head_hash FROM audit_chain WHERE id = 1 FOR UPDATE NOWAIT"
        assert probe.execute(text(head)).first() is not None
        probe.rollback()
    finally:
        blocker.rollback()
        login.join(timeout=10)
        blocker.close()
        probe.close()
        engine.dispose()
    assert decided and decided[0].allowed
    assert _read(web, verify).intact


def test_concurrent_seated_logins_chain_every_event_once(web: Core) -> None:
    """Logins of several seated users at once, each appending in its touch statement: every
    event chained once, the head and the counts agree with the log."""
    users = [f"user{n}" for n in range(6)]
    for n, login in enumerate(users):
        web.accounts.add(login, password=PASSWORD, actor="test")
        assert web.gate.decide(login, PASSWORD, address=f"10.9.0.{n}").seat_claimed
    logins, allowed = len(_logins(web)), _allowed_count(web)
    failures: list[BaseException] = []

    def log_in(n: int) -> None:
        try:
            for _ in range(10):
                decision = web.gate.decide(users[n], PASSWORD, address=f"10.9.0.{n}")
                assert decision.allowed and not decision.seat_claimed
        except BaseException as exc:  # reported below, in the test's thread
            failures.append(exc)

    threads = [threading.Thread(target=log_in, args=(n,)) for n in range(len(users))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert not failures, failures
    assert len(_logins(web)) == logins + 10 * len(users)
    assert _allowed_count(web) == allowed + 10 * len(users)
    head, head_id, total = _head_and_total(web)
    assert head.events == total and head_id == _logins(web)[-1].id
    assert _read(web, verify).intact
