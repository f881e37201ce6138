"""The JSON API: JSON bodies only, the same checks as the form and the CLI."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from flask.testing import FlaskClient

from tests.web_support import ADMIN, ADMIN_PASSWORD, Web


def _admin(web: Web) -> FlaskClient:
    client = web.client()
    assert web.api_login(client, ADMIN, ADMIN_PASSWORD).status_code == 200
    return client


def test_login_answers_who_signed_in(web: Web) -> None:
    client = web.client()
    answer = web.api_login(client, "user000")
    assert answer.status_code == 200
    body = answer.get_json()
    assert body["login"] == "user000" and body["admin"] is False
    me = client.get("/api/me")
    assert me.status_code == 200
    assert me.get_json()["seat"]["pinned"] is False


@pytest.mark.parametrize(
    ("login", "password"), [("nobody", "x-pw"), ("user000", "wrong"), ("user000", "")]
)
def test_bad_credentials_are_401_and_read_the_same(web: Web, login: str, password: str) -> None:
    answer = web.client().post("/api/login", json={"login": login, "password": password})
    assert answer.status_code == 401
    assert answer.get_json() == {
        "error": "invalid_credentials",
        "message": "Unknown login or wrong password.",
    }


def test_no_seat_is_403_with_the_seat_count(make_web: Callable[..., Web]) -> None:
    web = make_web(users=26)
    for login in web.users[:25]:
        web.core.gate.decide(login, f"{login}-pw")
    answer = web.api_login(web.client(), web.users[25])
    assert answer.status_code == 403
    body = answer.get_json()
    assert body["error"] == "no_seat_available"
    assert "25 seats" in body["message"]


def test_disabled_and_unlicensed_are_403(make_web: Callable[..., Web]) -> None:
    web = make_web(licence=False)
    answer = web.api_login(web.client(), "user000")
    assert (answer.status_code, answer.get_json()["error"]) == (403, "license_invalid")
    web.core.accounts.set_status("user001", "disabled", actor="test")
    answer = web.api_login(web.client(), "user001")
    assert (answer.status_code, answer.get_json()["error"]) == (403, "account_disabled")


def test_rate_limited_is_429(make_web: Callable[..., Web]) -> None:
    web = make_web(rate_limited=True, max_failures_per_login_and_address=1)
    client = web.client()
    assert web.api_login(client, "user000", "wrong").status_code == 401
    answer = web.api_login(client, "user000")
    assert (answer.status_code, answer.get_json()["error"]) == (429, "rate_limited")


@pytest.mark.parametrize(
    ("content_type", "data"),
    [
        ("application/x-www-form-urlencoded", "login=user000&password=user000-pw"),
        ("multipart/form-data; boundary=x", "--x--"),
        ("text/plain", '{"login": "user000", "password": "user000-pw"}'),
    ],
)
def test_anything_but_json_is_415(web: Web, content_type: str, data: str) -> None:
    client = web.client()
    answer = client.post("/api/login", data=data, headers={"Content-Type": content_type})
    assert answer.status_code == 415
    assert answer.get_json()["error"] == "unsupported_media_type"
    assert client.get("/api/me").status_code == 401


def test_admin_calls_refuse_form_bodies_too(web: Web) -> None:
    client = _admin(web)
    answer = client.post("/api/seats/assign", data={"login": "user000"})
    assert answer.status_code == 415
    assert not web.holds("user000")


@pytest.mark.parametrize("body", [[], "x", {"login": 3}, {"login": ""}, {}])
def test_malformed_bodies_are_400(web: Web, body: object) -> None:
    answer = _admin(web).post("/api/seats/assign", json=body)
    assert answer.status_code == 400
    assert answer.get_json()["error"] == "bad_request"


def test_me_without_a_session_is_401(web: Web) -> None:
    answer = web.client().get("/api/me")
    assert answer.status_code == 401
    assert answer.get_json()["error"] == "unauthenticated"


def test_logout_ends_the_session_server_side(web: Web) -> None:
    client = web.client()
    web.api_login(client, "user000")
    stolen = client.get_cookie("session")
    assert stolen is not None
    assert client.post("/api/logout", json={}).status_code == 200
    assert client.get("/api/me").status_code == 401
    replay = web.client()
    replay.set_cookie("session", stolen.value)
    assert replay.get("/api/me").status_code == 401


def test_logout_needs_a_json_body(web: Web) -> None:
    client = web.client()
    web.api_login(client, "user000")
    assert client.post("/api/logout").status_code == 415
    assert client.get("/api/me").status_code == 200


ADMIN_CALLS = [
    ("get", "/api/seats", None),
    ("post", "/api/seats/assign", {"login": "user001"}),
    ("post", "/api/seats/revoke", {"login": "user001"}),
    ("post", "/api/seats/reassign", {"from": "user001", "to": "user002"}),
    ("get", "/api/license", None),
    ("post", "/api/license", {"token": "x"}),
]


@pytest.mark.parametrize(("method", "path", "body"), ADMIN_CALLS)
def test_admin_calls_are_401_without_a_session(
    web: Web, method: str, path: str, body: object
) -> None:
    answer = getattr(web.client(), method)(path, json=body)
    assert answer.status_code == 401
    assert answer.get_json()["error"] == "unauthenticated"


@pytest.mark.parametrize(("method", "path", "body"), ADMIN_CALLS)
def test_admin_calls_are_403_for_users(web: Web, method: str, path: str, body: object) -> None:
    client = web.client()
    web.api_login(client, "user000")
    answer = getattr(client, method)(path, json=body)
    assert answer.status_code == 403
    assert answer.get_json()["error"] == "forbidden"


def test_seats_lists_use_and_holders(web: Web) -> None:
    client = _admin(web)
    body = client.get("/api/seats").get_json()
    assert body["seats_total"] == 25
    assert body["seats_used"] == 1
    assert body["seats_free"] == 24
    assert [h["login"] for h in body["holders"]] == [ADMIN]


def test_assign_revoke_reassign_are_audited_as_the_admin(web: Web) -> None:
    client = _admin(web)
    assert client.post("/api/seats/assign", json={"login": "user001"}).status_code == 200
    assert web.holds("user001")
    moved = client.post("/api/seats/reassign", json={"from": "user001", "to": "user002"})
    assert moved.status_code == 200
    assert web.holds("user002") and not web.holds("user001")
    assert client.post("/api/seats/revoke", json={"login": "user002"}).status_code == 200
    assert not web.holds("user002")
    actions = {e.action: e.actor for e in web.events() if e.action.startswith("seat.")}
    assert actions["seat.assigned"] == ADMIN
    assert actions["seat.reassigned"] == ADMIN
    assert actions["seat.released"] == ADMIN


@pytest.mark.parametrize(
    ("path", "body", "status", "code"),
    [
        ("/api/seats/assign", {"login": "ghost"}, 404, "unknown_account"),
        ("/api/seats/assign", {"login": ADMIN}, 409, "seat_already_held"),
        ("/api/seats/revoke", {"login": "user001"}, 409, "seat_not_held"),
        ("/api/seats/reassign", {"from": "user001", "to": "user002"}, 409, "seat_not_held"),
        ("/api/seats/reassign", {"from": ADMIN, "to": "ghost"}, 404, "unknown_account"),
    ],
)
def test_seat_refusals_name_the_reason(
    web: Web, path: str, body: dict[str, str], status: int, code: str
) -> None:
    answer = _admin(web).post(path, json=body)
    assert answer.status_code == status
    assert answer.get_json()["error"] == code


def test_assign_to_a_disabled_account_is_refused(web: Web) -> None:
    web.core.accounts.set_status("user001", "disabled", actor="test")
    answer = _admin(web).post("/api/seats/assign", json={"login": "user001"})
    assert (answer.status_code, answer.get_json()["error"]) == (409, "account_not_active")


def test_assign_with_every_seat_taken_is_refused(make_web: Callable[..., Web]) -> None:
    web = make_web(users=26)
    client = _admin(web)
    for login in web.users[:24]:
        web.core.gate.decide(login, f"{login}-pw")
    answer = client.post("/api/seats/assign", json={"login": web.users[25]})
    assert (answer.status_code, answer.get_json()["error"]) == (409, "no_seat_available")


def test_license_status_has_the_cli_fields(web: Web) -> None:
    body = _admin(web).get("/api/license").get_json()
    for field in ("valid", "edition", "unlimited", "seats_total", "seats_used", "seats_free"):
        assert field in body
    assert body["valid"] is True and body["seats_total"] == 25


def test_license_install(web: Web, mint: Callable[..., str]) -> None:
    client = _admin(web)
    base = web.core.ledger.state().base_jti
    addon = mint("addon", seats=5, lic=base, purchased_at=web.clock.now())
    answer = client.post("/api/license", json={"token": addon})
    assert answer.status_code == 200, answer.get_json()
    assert answer.get_json()["license"]["seats_total"] == 30
    (event,) = web.events("license.installed")[:1]
    assert event.actor == ADMIN


def test_a_bad_token_is_400_and_changes_nothing(web: Web) -> None:
    answer = _admin(web).post("/api/license", json={"token": "not.a.token"})
    assert (answer.status_code, answer.get_json()["error"]) == (400, "token_rejected")
    assert web.core.ledger.state().seats_total == 25
