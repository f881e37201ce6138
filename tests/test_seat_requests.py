"""Seat requests: refused logins ask for a seat; admins list, approve and deny them.

Through the command line (in-process, the test's fake clock) and the JSON
API (an admin's session and scoped tokens), on SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, inspect, select
from werkzeug.test import TestResponse

from seatgate.clock import FakeClock
from seatgate.storage import migrations
from seatgate.storage.schema import notify_events, seat_requests
from tests import schema_history
from tests.conftest import add_users
from tests.seat_ops_support import Site
from tests.web_support import ADMIN, Web

REQUESTED_EN = "Your request for a seat was recorded for the administrators."
REQUESTED_ES = "Su solicitud de plaza quedó registrada para los administradores."


def rows(s: Site) -> int:
    return int(
        s.core.db.read(
            lambda c: c.execute(select(func.count()).select_from(seat_requests)).scalar()
        )
    )


def test_a_refused_login_records_one_request_however_often_it_is_refused(
    site: Callable[..., Site], clock: FakeClock
) -> None:
    s = site(seat_count=0)
    add_users(s.core, 2)
    first = s.core.gate.decide("user000", "user000-pw")
    assert first.reason is not None and first.reason.value == "no_seat_available"
    assert first.message.endswith(REQUESTED_EN)
    for _ in range(5):
        clock.advance(timedelta(minutes=1))
        assert not s.login("user000")
    # A wrong password records nothing: the request comes after the password verified.
    wrong = s.core.gate.decide("user001", "nope")
    assert wrong.reason is not None and wrong.reason.value == "invalid_credentials"
    assert REQUESTED_EN not in wrong.message

    assert rows(s) == 1
    (listed,) = s.json("seats", "requests")
    assert listed["login"] == "user000"
    assert listed["attempts"] == 6
    assert listed["last_at"] > listed["first_at"]
    assert [e.subject for e in s.events("seat.requested")] == ["user000"]  # once, not per attempt
    # One alert for the admins, in the outbox with the request, not one per attempt.
    alerts = s.core.db.read(
        lambda c: c.execute(select(notify_events.c.kind, notify_events.c.data)).all()
    )
    assert [(kind, json.loads(data)) for kind, data in alerts if kind == "seats.request"] == [
        ("seats.request", {"login": "user000"})
    ]
    status = s.json("license", "status")
    assert status["seat_requests_pending"] == 1
    assert "seatgate_seat_requests_pending 1" in s.run("metrics").stdout
    assert "1 seat request(s) pending" in s.run("license", "status").stdout


def test_a_request_lapses_after_request_days_and_a_later_refusal_starts_a_new_one(
    site: Callable[..., Site], clock: FakeClock
) -> None:
    s = site(seat_count=0, request_days=7)
    add_users(s.core, 1)
    assert not s.login("user000")
    assert not s.login("user000")
    clock.advance(timedelta(days=8))
    assert s.json("seats", "requests") == []
    assert s.json("license", "status")["seat_requests_pending"] == 0
    denied = s.run("seats", "deny", "user000")
    assert denied.exit_code == 1 and "no pending seat request" in denied.stderr
    assert not s.login("user000")
    (listed,) = s.json("seats", "requests")
    assert listed["attempts"] == 1
    assert len(s.events("seat.requested")) == 2
    assert rows(s) == 1


def test_approve_into_a_free_seat_or_by_replacing_a_holder_and_deny(
    site: Callable[..., Site], clock: FakeClock
) -> None:
    s = site(seat_count=1)
    add_users(s.core, 4)
    assert s.login("user000")
    for login in ("user001", "user002", "user003"):
        assert not s.login(login)
    assert [r["login"] for r in s.json("seats", "requests")] == ["user001", "user002", "user003"]

    # No free seat: refused, and nothing changes (the request stays).
    full = s.run("seats", "approve", "user001")
    assert full.exit_code == 1
    assert len(s.json("seats", "requests")) == 3
    # Replacing an account that holds no seat changes nothing either.
    wrong = s.run("seats", "approve", "user001", "--replace", "user002")
    assert wrong.exit_code == 1 and "holds no seat" in wrong.stderr
    assert s.holders() == {"user000"}

    moved = s.run("seats", "approve", "user001", "--replace", "user000")
    assert moved.exit_code == 0, moved.output
    assert s.holders() == {"user001"}
    (approved,) = s.events("seat.request_approved")
    assert (approved.subject, approved.details["replaced"]) == ("user001", "user000")
    assert [e.subject for e in s.events("seat.reassigned")] == ["user001"]
    assert s.login("user001")  # holds the seat now

    s.core.ledger.revoke(s.core.accounts.get("user001").id, actor="test")
    assert s.run("seats", "approve", "user002").exit_code == 0
    assert s.holders() == {"user002"}
    assert s.run("seats", "deny", "user003").exit_code == 0
    (denied,) = s.events("seat.request_denied")
    assert denied.subject == "user003"
    assert s.json("seats", "requests") == []
    again = s.run("seats", "approve", "user003")
    assert again.exit_code == 1 and "no pending seat request" in again.stderr
    unknown = s.run("seats", "approve", "nobody")
    assert unknown.exit_code == 1


def test_a_request_of_an_account_that_got_a_seat_is_no_longer_pending(
    site: Callable[..., Site],
) -> None:
    s = site(seat_count=1)
    add_users(s.core, 2)
    assert s.login("user000") and not s.login("user001")
    s.run("seats", "revoke", "user000")
    assert s.login("user001")
    assert s.json("seats", "requests") == []


# -- the web gate ----------------------------------------------------------------------------


@pytest.fixture
def full(make_web: Callable[..., Web]) -> Web:
    """Every seat held by pinned accounts; `admin` holds one of them; user000..user002 have none."""
    web = make_web(users=3)
    core = web.core
    core.ledger.assign(core.accounts.get(ADMIN).id, actor="test", pinned=True)
    for login in add_users(core, 24, prefix="fill"):
        core.ledger.assign(core.accounts.get(login).id, actor="test", pinned=True)
    return web


def test_the_refusal_page_and_json_answer_say_the_request_was_recorded(full: Web) -> None:
    answer = full.api_login(full.client(), "user000")
    assert answer.status_code == 403
    body = answer.get_json()
    assert body["error"] == "no_seat_available"
    assert body["seat_request"] == "recorded"
    assert body["message"].endswith(REQUESTED_EN)
    spanish = full.client().post(
        "/api/login",
        json={"login": "user000", "password": "user000-pw"},
        headers={"Accept-Language": "es"},
    )
    assert spanish.get_json()["message"].endswith(REQUESTED_ES)
    page = full.login(full.client(), "user001")
    assert REQUESTED_EN in page.get_data(as_text=True)
    wrong = full.api_login(full.client(), "user002", "wrong")
    assert "seat_request" not in wrong.get_json()


def test_the_json_api_lists_approves_and_denies_requests(full: Web, tmp_path: Path) -> None:
    for login in ("user000", "user001", "user002"):
        assert full.api_login(full.client(), login).status_code == 403
    reader = full.core.api_tokens.create("reader", ["seats:read"], expires_in=None, actor="test")
    writer = full.core.api_tokens.create("writer", ["seats:write"], expires_in=None, actor="test")
    client = full.client()

    def call(method: str, path: str, token: str, body: object = None) -> TestResponse:
        headers = {"Authorization": f"Bearer {token}"}
        if method == "GET":
            return client.get(path, headers=headers)
        return client.post(path, headers=headers, json=body)

    listed = call("GET", "/api/seats/requests", reader)
    assert listed.status_code == 200
    logins = [r["login"] for r in listed.get_json()["requests"]]
    assert logins == ["user000", "user001", "user002"]
    assert call("GET", "/api/seats/requests", writer).status_code == 403
    no_scope = call("POST", "/api/seats/deny", reader, {"login": "user002"})
    assert no_scope.status_code == 403

    full_house = call("POST", "/api/seats/approve", writer, {"login": "user000"})
    assert full_house.status_code == 409
    assert full_house.get_json()["error"] == "no_seat_available"
    moved = call("POST", "/api/seats/approve", writer, {"login": "user000", "replace": "fill000"})
    assert moved.status_code == 200, moved.get_json()
    assert full.holds("user000") and not full.holds("fill000")
    (approved,) = full.events("seat.request_approved")
    assert approved.actor == "token:writer"

    denied = call("POST", "/api/seats/deny", writer, {"login": "user001"})
    assert denied.status_code == 200
    again = call("POST", "/api/seats/deny", writer, {"login": "user001"})
    assert again.status_code == 404
    assert again.get_json()["error"] == "no_seat_request"
    bad = call("POST", "/api/seats/approve", writer, {"login": "user002", "replace": 5})
    assert bad.status_code == 400

    admin = full.admin_client()
    remaining = admin.get("/api/seats/requests").get_json()["requests"]
    assert [r["login"] for r in remaining] == ["user002"]
    status = admin.get("/api/license").get_json()
    assert status["seat_requests_pending"] == 1


# -- the schema ------------------------------------------------------------------------------


def test_init_upgrades_a_version_6_database_keeping_its_seats(
    site: Callable[..., Site], clock: FakeClock
) -> None:
    s = site(seat_count=1)
    add_users(s.core, 2)
    assert s.login("user000")
    before = {h.login for h in s.core.ledger.holders()}
    s.core.db.engine.dispose()
    with s.core.db.engine.begin() as conn:
        schema_history.back_to_version_6(conn)
    assert s.core.db.read(migrations.current_version) == 6
    assert not s.core.db.read(lambda c: inspect(c).has_table("seat_requests"))
    stale = s.run("seats", "requests")
    assert stale.exit_code == 2 and "seatgate init" in stale.stderr

    result = s.run("init")
    assert result.exit_code == 0, result.output
    assert f"from version 6 to {migrations.SCHEMA_VERSION}" in result.stdout
    assert {h.login for h in s.core.ledger.holders()} == before
    assert not s.login("user001")
    assert [r["login"] for r in s.json("seats", "requests")] == ["user001"]
