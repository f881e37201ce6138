"""`seatgate sessions` against the web gate's database: listing and ending sessions.

The CLI runs through click's CliRunner with its own engine on the same
database as the Flask app, like an admin's shell next to a running portal.
Every test runs on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from flask.testing import FlaskClient

from seatgate.cli.main import cli
from seatgate.licensing.vendor import VendorKey
from tests.conftest import write_config
from tests.web_support import Web

Run = Callable[..., Result]


@pytest.fixture
def run(web: Web, tmp_path: Path, db_url: str, vendor_key: VendorKey) -> Run:
    """run(*args) -> `seatgate --config <same database> args...` as the admin `ops`."""
    config = write_config(tmp_path / "seatgate.yaml", db_url, vendor_key)

    def _run(*args: str) -> Result:
        result = CliRunner().invoke(
            cli,
            ["--config", str(config), *args],
            obj={"clock": web.clock},
            env={"LOGNAME": "ops", "SEATGATE_CONFIG": None},
        )
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise result.exception
        return result

    return _run


def signed_in(web: Web, login: str) -> FlaskClient:
    client = web.client()
    assert web.login(client, login).status_code == 303
    assert client.get("/").status_code == 200
    return client


def verify(web: Web, client: FlaskClient) -> int:
    """What /auth/verify answers the nginx subrequest carrying ``client``'s cookie."""
    cookie = client.get_cookie("session")
    assert cookie is not None
    nginx = web.app.test_client(use_cookies=False)
    return nginx.get("/auth/verify", headers={"Cookie": f"session={cookie.value}"}).status_code


def test_a_session_ended_from_the_cli_refuses_its_next_request(web: Web, run: Run) -> None:
    """The gate and /auth/verify both refuse the next request of a session ended by the CLI."""
    client = signed_in(web, "user000")
    other = signed_in(web, "user001")
    assert verify(web, client) == 200

    ended = run("sessions", "end", "user000")
    assert ended.exit_code == 0, ended.output
    assert ended.stdout.strip() == "ended 1 session of user000"

    assert verify(web, client) == 401
    page = client.get("/")
    assert page.status_code == 302
    assert page.headers["Location"].startswith("/login")
    me = client.get("/api/me")
    assert me.status_code == 401
    assert me.get_json()["error"] == "unauthenticated"
    # The refused cookie is anonymous now: no reason to give any more.
    assert "reason" not in me.get_json()
    # Another account's session goes on.
    assert other.get("/").status_code == 200
    assert verify(web, other) == 200
    (event,) = web.events("session.ended")
    assert (event.actor, event.subject, event.outcome) == ("cli:ops", "user000", "ended_by_admin")
    # Signing in again opens a new session.
    assert web.login(client, "user000").status_code == 303
    assert client.get("/").status_code == 200


def test_the_json_refusal_says_why_the_session_ended(web: Web, run: Run) -> None:
    client = web.client()
    assert web.api_login(client, "user000").status_code == 200
    assert run("sessions", "end", "user000").exit_code == 0
    me = client.get("/api/me")
    assert me.status_code == 401
    assert me.get_json()["reason"] == "session_ended"
    seated = web.client()
    assert web.api_login(seated, "user001").status_code == 200
    web.core.ledger.revoke(web.core.accounts.get("user001").id, actor="test")
    assert seated.get("/api/me").get_json()["reason"] == "seat_revoked"


def test_end_all_ends_every_session(web: Web, run: Run) -> None:
    clients = [signed_in(web, login) for login in ("user000", "user001", "user000")]
    admin = web.admin_client()
    result = run("sessions", "end", "--all")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "ended 4 sessions"
    for client in [*clients, admin]:
        assert verify(web, client) == 401
        assert client.get("/").status_code == 302
    assert run("sessions", "end", "--all").stdout.strip() == "ended 0 sessions"


def test_list_shows_the_sessions_and_their_state(web: Web, run: Run) -> None:
    laptop = signed_in(web, "user000")
    web.clock.advance(timedelta(minutes=5))
    signed_in(web, "user000")
    signed_in(web, "user001")
    laptop.post("/logout", data={"csrf_token": web.csrf(laptop, "/")})

    listed = run("sessions", "list", "--json")
    assert listed.exit_code == 0, listed.output
    document = json.loads(listed.stdout)
    assert [(s["login"], s["state"], s["check"], s["ended_reason"]) for s in document] == [
        ("user000", "open", "allowed", None),
        ("user000", "ended", "session_ended", "logout"),
        ("user001", "open", "allowed", None),
    ]
    assert document[0]["opened_at"] == "2026-03-02T09:05:00Z"
    assert document[0]["expires_at"] == "2026-03-02T21:05:00Z"
    assert document[0]["client_address"] == "127.0.0.1"
    assert document[0]["user_agent"].startswith("Werkzeug/")
    assert set(document[0]) == {
        "login",
        "state",
        "check",
        "opened_at",
        "last_seen_at",
        "expires_at",
        "ended_at",
        "ended_reason",
        "client_address",
        "user_agent",
    }

    mine = json.loads(run("sessions", "list", "--login", "user001", "--json").stdout)
    assert [s["login"] for s in mine] == ["user001"]

    table = run("sessions", "list").stdout.splitlines()
    assert table[0].split()[:3] == ["LOGIN", "STATE", "CHECK"]
    assert [line.split()[:3] for line in table[1:]] == [
        ["user000", "open", "allowed"],
        ["user000", "ended", "session_ended"],
        ["user001", "open", "allowed"],
    ]


def test_a_disabled_account_shows_in_the_list_as_ended_and_refused(web: Web, run: Run) -> None:
    signed_in(web, "user002")
    web.core.accounts.set_status("user002", "disabled", actor="test")
    (row,) = json.loads(run("sessions", "list", "--json").stdout)
    assert (row["state"], row["check"]) == ("ended", "account_disabled")
    assert row["ended_reason"] == "account_disabled"


def test_unknown_logins_are_refused_naming_them(web: Web, run: Run) -> None:
    for args in (("sessions", "end", "nobody"), ("sessions", "list", "--login", "nobody")):
        result = run(*args)
        assert result.exit_code == 1, args
        assert "nobody" in result.stderr
        assert result.stdout == ""


def test_end_needs_a_login_or_all_but_not_both(web: Web, run: Run) -> None:
    signed_in(web, "user000")
    for args in (("sessions", "end"), ("sessions", "end", "user000", "--all")):
        result = run(*args)
        assert result.exit_code == 2, args
        assert "LOGIN" in result.stderr
    assert [s["state"] for s in json.loads(run("sessions", "list", "--json").stdout)] == ["open"]


def test_ending_an_account_without_sessions_says_so(web: Web, run: Run) -> None:
    result = run("sessions", "end", "user002")
    assert result.exit_code == 0
    assert result.stdout.strip() == "user002 had no open session"
    assert web.events("session.ended") == []


def test_expire_records_expired_sessions_as_ended(web: Web, run: Run) -> None:
    client = signed_in(web, "user000")
    web.clock.advance(timedelta(hours=13))
    result = run("sessions", "expire")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "ended 1 session past expiry; removed 0 old records"
    assert client.get("/").status_code == 302
    (row,) = json.loads(run("sessions", "list", "--json").stdout)
    assert (row["state"], row["ended_reason"], row["ended_at"]) == (
        "ended",
        "expired",
        "2026-03-02T21:00:00Z",
    )


def test_signing_in_again_audits_the_replaced_session(web: Web) -> None:
    client = signed_in(web, "user000")
    assert web.login(client, "user001").status_code == 303
    (event,) = web.events("session.ended")
    assert (event.actor, event.subject, event.outcome) == ("user001", "user000", "replaced")
    assert event.details["address"] == "127.0.0.1"
