"""Scoped API tokens: made, listed and revoked from the command line, used on the JSON API.

The CLI and the web gate share one database, SQLite or PostgreSQL (the
``db_url`` fixture), as a script host and a portal do.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from seatgate.gate.api_tokens import PREFIX, token_hash
from seatgate.licensing.vendor import VendorKey
from seatgate.storage import outbox
from seatgate.storage.schema import api_tokens
from tests.test_cli import ACTOR, Cli, write_config
from tests.web_support import Web


@pytest.fixture
def web(make_web: Callable[..., Web]) -> Web:
    return make_web(rate_limited=True)


@pytest.fixture
def sg(web: Web, tmp_path: Path, vendor_key: VendorKey, db_url: str) -> Cli:
    """The command line on the web gate's database."""
    return Cli(
        write_config(tmp_path / "seatgate.yaml", vendor_key, database_url=db_url), CliRunner()
    )


def make(sg: Cli, name: str, *scopes: str, expires: str | None = None) -> str:
    args = ["api-tokens", "create", name, *(a for s in scopes for a in ("--scope", s))]
    result = sg.ok(*args, *(("--expires", expires) if expires else ()))
    (token,) = result.stdout.split()
    return token


def call(
    client: FlaskClient, method: str, path: str, token: str, body: object = None
) -> TestResponse:
    headers = {"Authorization": f"Bearer {token}"}
    if method == "GET":
        return client.get(path, headers=headers)
    return client.post(path, headers=headers, json=body)


def test_a_token_is_printed_once_and_only_its_hash_is_kept(sg: Cli, web: Web) -> None:
    token = make(sg, "hr-offboarding", "accounts:write", "seats:read", expires="90d")
    assert token.startswith(PREFIX) and len(token) > 40
    (listed,) = sg.json("api-tokens", "list")
    assert listed["name"] == "hr-offboarding"
    assert listed["scopes"] == ["accounts:write", "seats:read"]
    assert listed["state"] == "active" and listed["expires_at"] is not None
    assert token not in json.dumps(listed)
    stored = web.core.db.read(lambda c: c.execute(api_tokens.select()).one())
    assert stored.token_hash == token_hash(token)
    assert token not in str(tuple(stored))
    created = web.events("api_token.created")[0]
    assert (created.actor, created.subject) == (ACTOR, "hr-offboarding")
    assert token not in str(created.details)


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (["Bad Name!", "--scope", "seats:read"], "token name"),
        (["ok", "--scope", "seats:read", "--expires", "soon"], "expiry"),
        (["ok", "--scope", "seats:read", "--expires", "0d"], "future"),
        (["ok", "--scope", "everything"], "everything"),
        (["ok"], "--scope"),
    ],
)
def test_bad_requests_are_named_and_make_nothing(sg: Cli, args: list[str], error: str) -> None:
    result = sg.run("api-tokens", "create", *args)
    assert result.exit_code != 0
    assert error in result.output
    assert sg.json("api-tokens", "list") == []


def test_a_name_is_used_once_even_after_revocation(sg: Cli) -> None:
    make(sg, "monitor", "seats:read")
    sg.ok("api-tokens", "revoke", "monitor")
    again = sg.run("api-tokens", "create", "monitor", "--scope", "seats:read")
    assert again.exit_code != 0 and "exists" in again.output
    twice = sg.run("api-tokens", "revoke", "monitor")
    assert twice.exit_code != 0 and "revoked already" in twice.output
    assert sg.run("api-tokens", "revoke", "nobody").exit_code != 0


def test_a_scoped_token_calls_what_its_scopes_allow_and_is_audited(sg: Cli, web: Web) -> None:
    reader = make(sg, "reader", "seats:read", "license:read")
    writer = make(sg, "writer", "seats:write")
    client = web.client()
    assert call(client, "GET", "/api/seats", reader).status_code == 200
    assert call(client, "GET", "/api/license", reader).status_code == 200
    refused = call(client, "POST", "/api/seats/assign", reader, {"login": "user000"})
    assert refused.status_code == 403
    assert refused.get_json()["error"] == "missing_scope"
    assert not web.holds("user000")
    done = call(client, "POST", "/api/seats/assign", writer, {"login": "user000"})
    assert done.status_code == 200
    assert web.holds("user000")
    assert web.events("seat.assigned")[0].actor == "token:writer"
    assert call(client, "GET", "/api/seats", writer).status_code == 403


def test_an_offboarding_script_disables_an_account_and_frees_its_seat(sg: Cli, web: Web) -> None:
    token = make(sg, "hr", "accounts:read", "accounts:write")
    web.core.ledger.assign(web.core.accounts.get("user001").id, actor="test")
    client = web.client()
    before = call(client, "GET", "/api/accounts/user001", token)
    assert before.get_json()["has_seat"] is True
    answer = call(client, "POST", "/api/accounts/disable", token, {"login": "user001"})
    assert answer.status_code == 200
    assert web.core.accounts.get("user001").status == "disabled"
    assert not web.holds("user001")
    assert web.events("account.disabled")[0].actor == "token:hr"
    assert (
        call(client, "POST", "/api/accounts/enable", token, {"login": "user001"}).status_code == 200
    )
    assert web.core.accounts.get("user001").status == "active"
    missing = call(client, "GET", "/api/accounts/nobody", token)
    assert missing.status_code == 404


def test_revoked_expired_and_unknown_tokens_are_refused(sg: Cli, web: Web) -> None:
    revoked = make(sg, "old", "seats:read")
    # Made on the web gate's (fake) clock, which the test moves on.
    short = web.core.api_tokens.create(
        "short", ["seats:read"], expires_in=timedelta(hours=1), actor="test"
    )
    sg.ok("api-tokens", "revoke", "old")
    client = web.client()
    answers = {
        "revoked": call(client, "GET", "/api/seats", revoked),
        "garbage": call(client, "GET", "/api/seats", "sgt_" + "x" * 43),
    }
    web.clock.advance(timedelta(hours=2))
    answers["expired"] = call(client, "GET", "/api/seats", short)
    assert {k: (a.status_code, a.get_json()["error"]) for k, a in answers.items()} == {
        "revoked": (401, "token_revoked"),
        "garbage": (401, "invalid_token"),
        "expired": (401, "token_expired"),
    }
    now = web.clock.now()
    states = {t.name: t.state(now) for t in web.core.api_tokens.list()}
    assert states == {"old": "revoked", "short": "expired"}


def test_a_token_opens_no_session_and_takes_no_seat(sg: Cli, web: Web) -> None:
    token = make(sg, "everything", "seats:read", "accounts:read")
    client = web.client()
    answer = call(client, "GET", "/api/seats", token)
    assert answer.status_code == 200
    assert "Set-Cookie" not in answer.headers
    assert call(client, "GET", "/api/me", token).status_code == 401
    assert web.core.ledger.used() == 0


def test_guessing_tokens_is_throttled_per_address(sg: Cli, web: Web) -> None:
    client = web.client()
    codes = [call(client, "GET", "/api/seats", f"sgt_guess{i}").status_code for i in range(8)]
    assert codes[:5] == [401] * 5
    assert codes[-1] == 429
    throttled = call(client, "GET", "/api/seats", "sgt_another")
    assert throttled.headers.get("Retry-After") is not None


def test_an_admin_session_still_reaches_the_token_endpoints(web: Web) -> None:
    admin = web.admin_client()
    assert admin.get("/api/accounts/user000").status_code == 200
    user = web.client()
    assert web.login(user, "user002").status_code == 303
    assert user.get("/api/accounts/user000").status_code == 403


def test_undelivered_notifications_are_listed_to_a_licence_reader(
    sg: Cli, web: Web, tmp_path: Path, vendor_key: VendorKey, db_url: str
) -> None:
    now = web.core.clock.now()
    web.core.db.write(
        lambda c: outbox.enqueue(c, "seats.threshold", "t:80", {"threshold": 80}, now)
    )
    # The host that runs `notify run` has the channels; its listing opens their deliveries.
    hook = {"url": "https://hooks.example.com/seatgate", "secret_env": "SEATGATE_HOOK_SECRET"}
    notifying = Cli(
        write_config(
            tmp_path / "notify.yaml",
            vendor_key,
            database_url=db_url,
            notify={"webhooks": [hook]},
        ),
        CliRunner(),
    )
    listed = notifying.json("notify", "list")
    assert [n["kind"] for n in listed] == ["seats.threshold"]
    reader = make(sg, "monitor", "license:read")
    other = make(sg, "seats", "seats:read")
    client = web.app.test_client()
    assert call(client, "GET", "/api/notifications", other).status_code == 403
    answer = call(client, "GET", "/api/notifications", reader)
    assert answer.status_code == 200
    assert answer.json is not None
    # The same fields as `seatgate notify list --json`, from the same database.
    assert answer.json["notifications"] == listed
