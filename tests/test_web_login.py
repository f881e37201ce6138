"""The login and logout pages, and how sessions end: the Flask test client."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from seatgate.gate.decision import Reason
from tests.web_support import ADMIN, Web


def test_login_page_has_the_fields_a_browser_drives(web: Web) -> None:
    page = web.client().get("/login")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    for marker in ('name="login"', 'name="password"', 'id="login-submit"', 'name="csrf_token"'):
        assert marker in html


def test_a_seat_holder_signs_in_and_reaches_the_portal(web: Web) -> None:
    client = web.client()
    answer = web.login(client, "user000")
    assert answer.status_code == 303
    assert answer.headers["Location"] == "/"
    home = client.get("/")
    assert home.status_code == 200
    assert "user000" in home.get_data(as_text=True)
    assert web.holds("user000")


def test_the_portal_sends_anonymous_visitors_to_the_login_page(web: Web) -> None:
    answer = web.client().get("/")
    assert answer.status_code == 302
    assert answer.headers["Location"].startswith("/login?next=/")


def test_unknown_login_and_wrong_password_read_the_same(web: Web) -> None:
    unknown = web.login(web.client(), "nobody", "whatever-pw")
    wrong = web.login(web.client(), "user000", "wrong-pw")
    assert unknown.status_code == wrong.status_code == 401
    message = "Unknown login or wrong password."
    assert message in unknown.get_data(as_text=True)
    assert message in wrong.get_data(as_text=True)


def test_no_seat_says_how_many_seats_and_to_ask_an_administrator(
    make_web: Callable[..., Web],
) -> None:
    web = make_web(users=26)
    for login in web.users[:25]:
        assert web.core.gate.decide(login, f"{login}-pw").allowed
    refused = web.login(web.client(), web.users[25])
    assert refused.status_code == 403
    html = refused.get_data(as_text=True)
    assert "All 25 seats of the licence are in use" in html
    assert "Ask an administrator" in html
    assert f'data-reason="{Reason.NO_SEAT_AVAILABLE}"' in html


def test_manual_assignment_says_no_seat_is_assigned(make_web: Callable[..., Web]) -> None:
    web = make_web(assignment="manual")
    refused = web.login(web.client(), "user000")
    assert refused.status_code == 403
    assert "No seat is assigned to this account" in refused.get_data(as_text=True)


def test_a_disabled_account_is_told_so_after_the_password(web: Web) -> None:
    web.core.accounts.set_status("user000", "disabled", actor="test")
    refused = web.login(web.client(), "user000")
    assert refused.status_code == 403
    assert "This account is disabled" in refused.get_data(as_text=True)


def test_without_a_licence_the_login_says_so(make_web: Callable[..., Web]) -> None:
    web = make_web(licence=False)
    refused = web.login(web.client(), "user000")
    assert refused.status_code == 403
    assert "no valid licence" in refused.get_data(as_text=True)


def test_repeated_failures_are_rate_limited(make_web: Callable[..., Web]) -> None:
    web = make_web(rate_limited=True, max_failures_per_login_and_address=3)
    client = web.client()
    for _ in range(3):
        assert web.login(client, "user000", "wrong").status_code == 401
    limited = web.login(client, "user000")
    assert limited.status_code == 429
    assert "Too many failed attempts" in limited.get_data(as_text=True)


def test_next_is_followed_only_within_the_site(web: Web) -> None:
    assert (
        web.login(web.client(), "user000", next="/wiki/page?x=1").headers["Location"]
        == "/wiki/page?x=1"
    )
    for hostile in ("//evil.example/", "https://evil.example/", "/\\evil.example"):
        answer = web.login(web.client(), "user000", next=hostile)
        assert answer.headers["Location"] == "/"


# -- sessions ----------------------------------------------------------------


def _session_cookie(client: object) -> str | None:
    cookie = client.get_cookie("session")  # type: ignore[attr-defined]
    return None if cookie is None else str(cookie.value)


def test_login_issues_a_new_session_and_the_old_cookie_stays_anonymous(web: Web) -> None:
    client = web.client()
    web.csrf(client)
    before = _session_cookie(client)
    assert before is not None
    assert web.login(client, "user000").status_code == 303
    after = _session_cookie(client)
    assert after is not None and after != before
    # A fixated (pre-login) cookie does not become the signed-in session.
    attacker = web.client()
    attacker.set_cookie("session", before)
    assert attacker.get("/api/me").status_code == 401


def test_logout_ends_the_session_on_the_server(web: Web) -> None:
    client = web.client()
    web.login(client, "user000")
    stolen = _session_cookie(client)
    assert stolen is not None
    token = web.csrf(client, "/")
    answer = client.post("/logout", data={"csrf_token": token})
    assert answer.status_code == 303
    assert client.get("/api/me").status_code == 401
    replay = web.client()
    replay.set_cookie("session", stolen)
    assert replay.get("/api/me").status_code == 401
    assert replay.get("/auth/verify").status_code == 401


def test_logout_of_one_session_leaves_the_others(web: Web) -> None:
    laptop, phone = web.client(), web.client()
    web.login(laptop, "user000")
    web.login(phone, "user000")
    laptop.post("/logout", data={"csrf_token": web.csrf(laptop, "/")})
    assert laptop.get("/api/me").status_code == 401
    assert phone.get("/api/me").status_code == 200


def test_a_revoked_seat_ends_the_session_at_the_next_request(web: Web) -> None:
    client = web.client()
    web.login(client, "user000")
    assert client.get("/").status_code == 200
    web.core.ledger.revoke(web.core.accounts.get("user000").id, actor=ADMIN)
    assert client.get("/").status_code == 302
    assert client.get("/api/me").status_code == 401


def test_a_seat_given_back_later_does_not_revive_the_old_session(web: Web) -> None:
    client = web.client()
    web.login(client, "user000")
    account_id = web.core.accounts.get("user000").id
    web.core.ledger.revoke(account_id, actor=ADMIN)
    web.clock.advance(timedelta(minutes=1))
    web.core.ledger.assign(account_id, actor=ADMIN)
    assert client.get("/api/me").status_code == 401


def test_a_disabled_account_loses_its_session_at_the_next_request(web: Web) -> None:
    client = web.client()
    web.login(client, "user000")
    web.core.accounts.set_status("user000", "disabled", actor=ADMIN)
    assert client.get("/api/me").status_code == 401


def test_an_expired_trial_ends_the_session_without_a_write(
    make_web: Callable[..., Web], mint: Callable[..., str]
) -> None:
    web = make_web(licence=False)
    web.core.licensing.install(mint("trial", seats=25), actor="test")
    client = web.client()
    assert web.login(client, "user000").status_code == 303
    assert client.get("/api/me").status_code == 200
    web.clock.advance(timedelta(days=31))
    events = len(web.events())
    assert client.get("/api/me").status_code == 401
    assert len(web.events()) == events  # the re-check only reads


def test_a_session_ends_after_session_hours(make_web: Callable[..., Web]) -> None:
    web = make_web(session_hours=2)
    client = web.client()
    web.login(client, "user000")
    web.clock.advance(timedelta(hours=1, minutes=59))
    assert client.get("/api/me").status_code == 200
    web.clock.advance(timedelta(minutes=2))
    assert client.get("/api/me").status_code == 401


def test_remember_me_is_off_by_default_the_cookie_dies_with_the_browser(web: Web) -> None:
    answer = web.login(web.client(), "user000", remember="1")
    (cookie,) = [c for c in answer.headers.getlist("Set-Cookie") if c.startswith("session=")]
    assert "Expires=" not in cookie
    assert "remember_token" not in " ".join(answer.headers.getlist("Set-Cookie"))


def test_remember_me_when_enabled_keeps_the_cookie_for_the_session_hours(
    make_web: Callable[..., Web],
) -> None:
    web = make_web(remember_me=True)
    assert 'id="remember"' in web.client().get("/login").get_data(as_text=True)
    answer = web.login(web.client(), "user000", remember="1")
    (cookie,) = [c for c in answer.headers.getlist("Set-Cookie") if c.startswith("session=")]
    assert "Expires=" in cookie


def test_signing_in_again_ends_the_replaced_session(web: Web) -> None:
    client = web.client()
    web.login(client, "user000")
    first = client.get_cookie("session")
    assert first is not None
    web.login(client, "user001")
    replay = web.client()
    replay.set_cookie("session", first.value)
    assert replay.get("/api/me").status_code == 401
    assert client.get("/api/me").get_json()["login"] == "user001"


def test_logout_is_audited(web: Web) -> None:
    client = web.client()
    web.login(client, "user000")
    client.post("/logout", data={"csrf_token": web.csrf(client, "/")})
    (event,) = web.events("session.ended")
    assert (event.actor, event.subject, event.outcome) == ("user000", "user000", "logout")
