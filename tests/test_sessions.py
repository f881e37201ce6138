"""The core's web sessions: the service (open, end, list, expire) and the per-request check.

Every test runs on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import json
import re
import tempfile
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import event, select, update

from seatgate.app import Core
from seatgate.audit import log as audit
from seatgate.clock import FakeClock, to_utc
from seatgate.records import AuditEvent
from seatgate.sessions.check import SessionRefusal, session_id
from seatgate.sessions.service import (
    ENDED_KEPT_FOR,
    ENDED_KEPT_PER_ACCOUNT,
    MAX_SESSIONS_PER_ACCOUNT,
    USER_AGENT_LENGTH,
    EndReason,
    SessionState,
)
from seatgate.storage.schema import license_state, sessions
from tests.conftest import add_users

LIFETIME = timedelta(hours=12)


@pytest.fixture
def seated(app: Core, mint: Callable[..., str]) -> Core:
    """A 25-seat licence and user000..user002, of whom user000 and user001 hold seats."""
    app.licensing.install(mint("license", seats=25), actor="test")
    add_users(app, 3)
    for login in ("user000", "user001"):
        assert app.gate.decide(login, f"{login}-pw").allowed
    return app


def account_id(app: Core, login: str) -> int:
    return app.accounts.get(login).id


def stored(app: Core) -> list[Any]:
    return app.db.read(lambda conn: conn.execute(select(sessions)).all())


def ended_events(app: Core) -> list[AuditEvent]:
    return app.db.read(lambda conn: audit.recent(conn, limit=500, action="session.ended"))


@contextmanager
def sent_to_the_database(app: Core) -> Iterator[list[str]]:
    """What the driver sends the database inside the block, below SQLAlchemy.

    SQLite: every statement SQLite runs (its trace callback), BEGIN and
    ROLLBACK included. PostgreSQL: every round trip (libpq's protocol trace) on
    pooled connections and on the connection this thread's next session check uses,
    named by its statement's first word (``BEGIN`` and ``ROLLBACK`` are round
    trips of their own), or ``PREPARED`` for a statement psycopg prepared.
    """
    seen: list[str] = []
    traced: list[Any] = []
    files = ExitStack()

    def on_checkout(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
        if app.db.is_sqlite:
            dbapi_connection.set_trace_callback(
                lambda sql: seen.append(sql.lstrip().split(None, 1)[0].upper())
            )
        else:
            trace = files.enter_context(tempfile.TemporaryFile())  # noqa: SIM115 - the stack closes it
            dbapi_connection.pgconn.trace(trace.fileno())
            dbapi_connection.pgconn.set_trace_flags(1)  # PQTRACE_SUPPRESS_TIMESTAMPS
            traced.append((dbapi_connection, trace))

    event.listen(app.db.engine, "checkout", on_checkout)
    if not app.db.is_sqlite:  # the check reads outside the pool
        on_checkout(app.sessions.check_connection(), None, None)
    try:
        yield seen
    finally:
        event.remove(app.db.engine, "checkout", on_checkout)
        for dbapi_connection, trace in traced:
            dbapi_connection.pgconn.untrace()
            trace.seek(0)
            seen.extend(_round_trips(trace.read().decode()))
        files.close()


def _round_trips(trace: str) -> list[str]:
    """The round trips in a libpq protocol trace, each named by its first statement word."""
    trips: list[str] = []
    name = ""
    for line in trace.splitlines():  # a statement's own line breaks continue a line
        sent = _FIRST_WORD.match(line)
        if sent is not None and not name:
            name = (sent.group(1) or sent.group(2) or "PREPARED").upper()
        elif line.startswith("B\t") and "\tReadyForQuery\t" in line:
            trips.append(name)
            name = ""
    return trips


# What the client sends first in a round trip: a simple query, a statement to
# parse, or (for a prepared statement) a Bind naming it.
_FIRST_WORD = re.compile(r'F\t\d+\t(?:Query\t "(\w+)|Parse\t "[^"]*" "(\w+)|Bind\t)')


# -- open ----------------------------------------------------------------------------------


def test_open_returns_a_token_and_stores_only_its_hash(seated: Core) -> None:
    token = seated.sessions.open(
        account_id(seated, "user000"), address="10.1.2.3", user_agent="Mozilla/5.0 (X11)"
    )
    (row,) = stored(seated)
    assert row.id == session_id(token) != token
    assert token not in json.dumps([str(value) for value in row])
    assert row.account_id == account_id(seated, "user000")
    assert (row.client_address, row.user_agent) == ("10.1.2.3", "Mozilla/5.0 (X11)")
    now = seated.clock.now()
    assert to_utc(row.created_at) == to_utc(row.last_seen_at) == now
    assert to_utc(row.expires_at) == now + LIFETIME
    assert row.ended_at is None
    # A second session of the same account has a different token.
    assert seated.sessions.open(account_id(seated, "user000")) != token


def test_a_long_user_agent_is_cut_short(seated: Core) -> None:
    seated.sessions.open(account_id(seated, "user000"), user_agent="A" * 5000)
    (row,) = stored(seated)
    assert len(row.user_agent) == USER_AGENT_LENGTH
    assert row.user_agent.startswith("AAAA")


# -- the per-request check: each answer ----------------------------------------------------


def test_an_open_session_of_a_seat_holder_is_allowed_with_its_account(seated: Core) -> None:
    token = seated.sessions.open(account_id(seated, "user001"))
    answer = seated.sessions.check(token)
    assert answer.allowed
    assert answer.refusal is None
    assert answer.account is not None and answer.account.login == "user001"
    assert answer.seat is not None and not answer.seat.pinned
    assert answer.expires_at == seated.clock.now() + LIFETIME


@pytest.mark.parametrize("token", ["", "no-such-token", "x" * 10_000, "1:abc:1700000000"])
def test_an_unknown_token_is_session_ended(seated: Core, token: str) -> None:
    seated.sessions.open(account_id(seated, "user000"))
    answer = seated.sessions.check(token)
    assert answer.refusal is SessionRefusal.SESSION_ENDED
    assert answer.account is None


def test_an_ended_session_is_session_ended(seated: Core) -> None:
    token = seated.sessions.open(account_id(seated, "user000"))
    assert seated.sessions.end(token, actor="user000")
    assert seated.sessions.check(token).refusal is SessionRefusal.SESSION_ENDED
    # Ending it again changes nothing.
    assert not seated.sessions.end(token, actor="user000")
    assert len(ended_events(seated)) == 1


def test_a_session_past_its_expiry_is_session_ended(seated: Core, clock: FakeClock) -> None:
    token = seated.sessions.open(account_id(seated, "user000"))
    clock.advance(LIFETIME - timedelta(seconds=1))
    assert seated.sessions.check(token).allowed
    clock.advance(timedelta(seconds=1))
    assert seated.sessions.check(token).refusal is SessionRefusal.SESSION_ENDED
    # The check takes the time it is given.
    assert seated.sessions.check(token, clock.now() - timedelta(minutes=1)).allowed


def test_a_disabled_account_is_account_disabled(seated: Core) -> None:
    token = seated.sessions.open(account_id(seated, "user000"))
    seated.accounts.set_status("user000", "disabled", actor="test")
    answer = seated.sessions.check(token)
    assert answer.refusal is SessionRefusal.ACCOUNT_DISABLED
    assert not answer.allowed


def test_a_revoked_seat_is_seat_revoked(seated: Core) -> None:
    token = seated.sessions.open(account_id(seated, "user000"))
    seated.ledger.revoke(account_id(seated, "user000"), actor="test")
    assert seated.sessions.check(token).refusal is SessionRefusal.SEAT_REVOKED


def test_an_account_without_a_seat_is_seat_revoked(seated: Core) -> None:
    token = seated.sessions.open(account_id(seated, "user002"))
    assert seated.sessions.check(token).refusal is SessionRefusal.SEAT_REVOKED


def test_a_seat_granted_again_does_not_revive_an_older_session(
    seated: Core, clock: FakeClock
) -> None:
    user = account_id(seated, "user000")
    old = seated.sessions.open(user)
    seated.ledger.revoke(user, actor="test")
    clock.advance(timedelta(minutes=1))
    seated.ledger.assign(user, actor="test")
    assert seated.sessions.check(old).refusal is SessionRefusal.SEAT_REVOKED
    # A session opened after the new grant is fine.
    clock.advance(timedelta(seconds=1))
    assert seated.sessions.check(seated.sessions.open(user)).allowed


def test_an_ended_trial_is_license_invalid(
    app: Core, mint: Callable[..., str], clock: FakeClock
) -> None:
    app.licensing.install(mint("trial", seats=25), actor="test")
    add_users(app, 1)
    assert app.gate.decide("user000", "user000-pw").allowed
    token = app.sessions.open(account_id(app, "user000"))
    assert app.sessions.check(token).allowed
    clock.advance(timedelta(days=31))
    token = app.sessions.open(account_id(app, "user000"))
    assert app.sessions.check(token).refusal is SessionRefusal.LICENSE_INVALID


def test_the_check_is_one_read_and_writes_nothing(seated: Core) -> None:
    token = seated.sessions.open(account_id(seated, "user000"))
    before = stored(seated)
    with sent_to_the_database(seated) as seen:
        assert seated.sessions.check(token).allowed
        assert not seated.sessions.check("unknown").allowed
    # One read each, outside a transaction: no BEGIN, COMMIT or ROLLBACK (on
    # PostgreSQL each would be a round trip of its own). SQLite first asks
    # whether anything changed (PRAGMA data_version; nothing is kept yet).
    # PostgreSQL: the statement prepared once on the check's own connection.
    reads = ["PRAGMA", "SELECT"] if seated.db.is_sqlite else ["PREPARED"]
    assert seen == reads * 2
    assert stored(seated) == before


def test_a_repeated_check_on_sqlite_reads_only_whether_anything_changed(seated: Core) -> None:
    token = seated.sessions.open(account_id(seated, "user000"))
    assert seated.sessions.check(token).allowed
    with sent_to_the_database(seated) as seen:
        assert seated.sessions.check(token).allowed
    assert seen == (["PRAGMA"] if seated.db.is_sqlite else ["PREPARED"])


def _end_sessions(app: Core) -> None:
    app.sessions.end_all_for_account(account_id(app, "user000"), actor="cli:ops")


def _disable(app: Core) -> None:
    app.accounts.set_status("user000", "disabled", actor="cli:ops")


def _revoke(app: Core) -> None:
    app.ledger.revoke(account_id(app, "user000"), actor="cli:ops")


def _licence_gone(app: Core) -> None:
    app.db.write(
        lambda conn: conn.execute(update(license_state).values(valid=False, reason="removed"))
    )


CHANGES = {
    "session_ended": (_end_sessions, SessionRefusal.SESSION_ENDED),
    "account_disabled": (_disable, SessionRefusal.ACCOUNT_DISABLED),
    "seat_revoked": (_revoke, SessionRefusal.SEAT_REVOKED),
    "licence_gone": (_licence_gone, SessionRefusal.LICENSE_INVALID),
}


@pytest.mark.parametrize("change", sorted(CHANGES))
@pytest.mark.parametrize("where", ["another engine", "the same pool"])
def test_a_change_is_seen_by_the_next_check_after_checks_that_kept_the_row(
    seated: Core, build_app: Callable[..., Core], db_url: str, change: str, where: str
) -> None:
    """Another engine is another process's connections; the same pool may commit the
    change on the very connection the checks use (which SQLite's data_version does not show)."""
    token = seated.sessions.open(account_id(seated, "user000"))
    for _ in range(3):
        assert seated.sessions.check(token).allowed
    make_change, refusal = CHANGES[change]
    make_change(build_app(db_url) if where == "another engine" else seated)
    assert seated.sessions.check(token).refusal is refusal


def test_checks_leave_pooled_connections_in_transactions_for_everything_else(
    seated: Core,
) -> None:
    token = seated.sessions.open(account_id(seated, "user000"))
    for _ in range(12):  # past psycopg's threshold for preparing a statement
        assert seated.sessions.check(token).allowed
    with sent_to_the_database(seated) as seen:
        assert seated.sessions.check(token).allowed
        seated.db.read(lambda conn: conn.execute(select(sessions.c.id)).all())
    begin = seen.index("BEGIN")
    assert seen[:begin] in (["PRAGMA"], ["SELECT"], ["PREPARED"])  # the check alone
    # The next user of the pooled connection reads in a transaction again
    # (psycopg may follow the ROLLBACK with a DEALLOCATE of what it prepared).
    assert seen[begin : begin + 3] == ["BEGIN", "SELECT", "ROLLBACK"]
    assert set(seen[begin + 3 :]) <= {"DEALLOCATE"}


def test_a_change_committed_elsewhere_is_seen_by_the_next_check(
    seated: Core, build_app: Callable[..., Core], db_url: str
) -> None:
    token = seated.sessions.open(account_id(seated, "user000"))
    assert seated.sessions.check(token).allowed
    other = build_app(db_url)  # another process's engine and pool
    assert other.sessions.end_all_for_account(account_id(other, "user000"), actor="cli:ops") == 1
    assert seated.sessions.check(token).refusal is SessionRefusal.SESSION_ENDED


# -- ending, audited -----------------------------------------------------------------------


def test_every_end_is_audited_without_the_token_or_its_hash(seated: Core) -> None:
    tokens = [
        seated.sessions.open(account_id(seated, "user000"), address="10.0.0.1"),
        seated.sessions.open(account_id(seated, "user000")),
        seated.sessions.open(account_id(seated, "user001")),
    ]
    assert seated.sessions.end(tokens[0], actor="user000", reason=EndReason.LOGOUT)
    assert seated.sessions.end_all_for_account(account_id(seated, "user000"), actor="cli:a") == 1
    assert seated.sessions.end_all(actor="cli:b") == 1
    events = list(reversed(ended_events(seated)))
    assert [(e.actor, e.subject, e.outcome) for e in events] == [
        ("user000", "user000", "logout"),
        ("cli:a", "user000", "ended_by_admin"),
        ("cli:b", "user001", "ended_by_admin"),
    ]
    assert events[0].details == {
        "opened_at": seated.clock.now().isoformat(timespec="seconds"),
        "address": "10.0.0.1",
    }
    everything = json.dumps([(e.details, e.subject, e.actor) for e in events])
    for token in tokens:
        assert token not in everything
        assert session_id(token) not in everything
        assert session_id(token)[:16] not in everything
    assert all(not seated.sessions.check(t).allowed for t in tokens)


def test_end_all_for_an_account_leaves_the_others(seated: Core) -> None:
    mine = [seated.sessions.open(account_id(seated, "user000")) for _ in range(3)]
    theirs = seated.sessions.open(account_id(seated, "user001"))
    assert seated.sessions.end_all_for_account(account_id(seated, "user000"), actor="t") == 3
    assert [seated.sessions.check(t).allowed for t in mine] == [False] * 3
    assert seated.sessions.check(theirs).allowed
    # Nothing left to end: no change and no event.
    events = len(ended_events(seated))
    assert seated.sessions.end_all_for_account(account_id(seated, "user000"), actor="t") == 0
    assert len(ended_events(seated)) == events


def test_the_oldest_open_session_ends_beyond_the_cap(seated: Core, clock: FakeClock) -> None:
    user = account_id(seated, "user000")
    tokens = []
    for _ in range(MAX_SESSIONS_PER_ACCOUNT + 2):
        tokens.append(seated.sessions.open(user))
        clock.advance(timedelta(seconds=1))
    allowed = [seated.sessions.check(t).allowed for t in tokens]
    assert allowed == [False, False] + [True] * MAX_SESSIONS_PER_ACCOUNT
    events = ended_events(seated)
    assert [(e.actor, e.outcome) for e in events] == [("system", "too_many_sessions")] * 2
    open_now = [s for s in seated.sessions.list() if s.state is SessionState.OPEN]
    assert len(open_now) == MAX_SESSIONS_PER_ACCOUNT


# -- expiry and pruning --------------------------------------------------------------------


def test_expire_ends_expired_sessions_and_prunes_old_ones(seated: Core, clock: FakeClock) -> None:
    user = account_id(seated, "user000")
    expiring = seated.sessions.open(user)
    clock.advance(timedelta(hours=6))
    lasting = seated.sessions.open(user)
    clock.advance(timedelta(hours=7))  # the first is past its expiry, the second is not
    assert seated.sessions.expire().ended == 1
    rows = {row.id: row for row in stored(seated)}
    first = rows[session_id(expiring)]
    assert (first.ended_reason, to_utc(first.ended_at)) == ("expired", to_utc(first.expires_at))
    assert rows[session_id(lasting)].ended_at is None
    (expired_event,) = ended_events(seated)
    assert (expired_event.actor, expired_event.outcome) == ("system", "expired")
    # Kept for ENDED_KEPT_FOR after it ended (12 h after it opened), then removed.
    clock.advance(ENDED_KEPT_FOR - timedelta(hours=2))
    result = seated.sessions.expire()
    assert (result.ended, result.pruned) == (1, 0)  # the second one expired meanwhile
    clock.advance(timedelta(hours=2))
    assert seated.sessions.expire().pruned == 1
    assert [row.id for row in stored(seated)] == [session_id(lasting)]


def test_opening_a_session_ends_the_accounts_expired_ones(seated: Core, clock: FakeClock) -> None:
    user = account_id(seated, "user000")
    old = seated.sessions.open(user)
    other = seated.sessions.open(account_id(seated, "user001"))
    clock.advance(LIFETIME + timedelta(minutes=1))
    seated.sessions.open(user)
    rows = {row.id: row for row in stored(seated)}
    assert rows[session_id(old)].ended_reason == "expired"
    # Another account's expired session waits for its own next login or `expire`.
    assert rows[session_id(other)].ended_at is None


def test_an_account_keeps_a_bounded_number_of_ended_sessions(
    seated: Core, clock: FakeClock
) -> None:
    user = account_id(seated, "user000")
    for _ in range(ENDED_KEPT_PER_ACCOUNT + 5):
        seated.sessions.end(seated.sessions.open(user), actor="user000")
        clock.advance(timedelta(seconds=1))
    seated.sessions.open(user)
    rows = stored(seated)
    assert sum(1 for r in rows if r.ended_at is not None) == ENDED_KEPT_PER_ACCOUNT
    assert sum(1 for r in rows if r.ended_at is None) == 1


# -- list ----------------------------------------------------------------------------------


def test_list_shows_each_sessions_state_and_what_the_check_answers(
    seated: Core, clock: FakeClock
) -> None:
    expired = seated.sessions.open(account_id(seated, "user000"), address="10.0.0.1")
    clock.advance(LIFETIME)
    ended = seated.sessions.open(account_id(seated, "user000"))
    seated.sessions.end(ended, actor="user000")
    clock.advance(timedelta(seconds=1))
    seated.sessions.open(account_id(seated, "user000"), user_agent="Phone")
    seated.sessions.open(account_id(seated, "user002"))
    listed = seated.sessions.list()
    assert [(s.login, s.state, s.check) for s in listed] == [
        ("user000", SessionState.OPEN, "allowed"),
        ("user000", SessionState.ENDED, "session_ended"),
        ("user000", SessionState.ENDED, "session_ended"),
        ("user002", SessionState.OPEN, "seat_revoked"),
    ]
    assert listed[0].user_agent == "Phone"
    assert listed[2].ended_reason == "expired"
    assert listed[2].client_address == "10.0.0.1"
    assert listed[1].ended_reason == "logout"
    mine = seated.sessions.list(account_id=account_id(seated, "user002"))
    assert [s.login for s in mine] == ["user002"]
    # A session past expiry that nothing has recorded as ended yet.
    seated.db.write(
        lambda conn: conn.execute(
            update(sessions)
            .where(sessions.c.id == session_id(expired))
            .values(ended_at=None, ended_reason=None)
        )
    )
    states = {s.state for s in seated.sessions.list(account_id=account_id(seated, "user000"))}
    assert SessionState.EXPIRED in states
