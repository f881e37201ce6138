"""Cookies, CSRF, security headers, client addresses and languages of the web gate."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.web_support import ADMIN, ADMIN_PASSWORD, Web


def _set_cookie(answer: object, name: str) -> str:
    headers = answer.headers.getlist("Set-Cookie")  # type: ignore[attr-defined]
    (cookie,) = [c for c in headers if c.startswith(f"{name}=")]
    return str(cookie)


def test_session_cookie_is_httponly_samesite_lax_and_secure(web: Web) -> None:
    cookie = _set_cookie(web.login(web.client(), "user000"), "session")
    assert "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie
    assert "Secure" in cookie


def test_secure_flag_can_be_dropped_for_plain_http_only_by_configuration(
    make_web: Callable[..., Web],
) -> None:
    web = make_web(secure_cookies=False)
    cookie = _set_cookie(web.login(web.client(), "user000"), "session")
    assert "Secure" not in cookie
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie


@pytest.mark.parametrize("path", ["/login", "/api/me", "/admin"])
def test_security_headers(web: Web, path: str) -> None:
    client = web.admin_client()
    answer = client.get(path)
    csp = answer.headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in csp
    assert "script-src 'none'" in csp
    assert answer.headers["X-Content-Type-Options"] == "nosniff"
    assert answer.headers["X-Frame-Options"] == "DENY"


def test_login_without_a_csrf_token_is_refused(web: Web) -> None:
    client = web.client()
    web.csrf(client)
    answer = client.post("/login", data={"login": "user000", "password": "user000-pw"})
    assert answer.status_code == 400
    assert client.get("/api/me").status_code == 401


def test_login_with_a_wrong_csrf_token_is_refused(web: Web) -> None:
    client = web.client()
    web.csrf(client)
    form = {"login": "user000", "password": "user000-pw", "csrf_token": "forged"}
    assert client.post("/login", data=form).status_code == 400


def test_a_token_from_another_session_is_refused(web: Web) -> None:
    other = web.client()
    foreign = web.csrf(other)
    client = web.client()
    web.csrf(client)
    form = {"login": "user000", "password": "user000-pw", "csrf_token": foreign}
    assert client.post("/login", data=form).status_code == 400


def test_logout_without_a_csrf_token_does_not_log_out(web: Web) -> None:
    client = web.client()
    web.login(client, "user000")
    assert client.post("/logout").status_code == 400
    assert client.get("/api/me").status_code == 200


@pytest.mark.parametrize("token", [None, "forged"])
def test_admin_changes_without_the_csrf_token_change_nothing(web: Web, token: str | None) -> None:
    client = web.admin_client()
    form = {"login": "user000"} | ({"csrf_token": token} if token else {})
    assert client.post("/admin/assign", data=form).status_code == 400
    assert not web.holds("user000")


def _logged_address(web: Web) -> object:
    (event,) = [e for e in web.events("login")][:1]
    return event.details.get("address")


def test_x_forwarded_for_is_ignored_without_trusted_proxies(web: Web) -> None:
    client = web.client()
    token = web.csrf(client)
    form = {"login": "user000", "password": "user000-pw", "csrf_token": token}
    client.post("/login", data=form, headers={"X-Forwarded-For": "203.0.113.9"})
    assert _logged_address(web) == "127.0.0.1"


def test_x_forwarded_for_is_honoured_with_trusted_proxies(make_web: Callable[..., Web]) -> None:
    web = make_web(trusted_proxies=1)
    client = web.client()
    token = web.csrf(client)
    form = {"login": "user000", "password": "user000-pw", "csrf_token": token}
    # The client claims 198.51.100.1; the trusted proxy saw 203.0.113.9.
    headers = {"X-Forwarded-For": "198.51.100.1, 203.0.113.9"}
    client.post("/login", data=form, headers=headers)
    assert _logged_address(web) == "203.0.113.9"


def test_a_spoofed_address_does_not_escape_the_rate_limit(make_web: Callable[..., Web]) -> None:
    web = make_web(rate_limited=True, max_failures_per_login_and_address=2)
    client = web.client()
    for number in range(2):
        headers = {"X-Forwarded-For": f"198.51.100.{number}"}
        bad = {"login": "user000", "password": "wrong"}
        assert client.post("/api/login", json=bad, headers=headers).status_code == 401
    answer = client.post(
        "/api/login",
        json={"login": "user000", "password": "user000-pw"},
        headers={"X-Forwarded-For": "198.51.100.77"},
    )
    assert answer.status_code == 429
    assert answer.get_json()["error"] == "rate_limited"


# -- languages ---------------------------------------------------------------


def test_accept_language_chooses_spanish(web: Web) -> None:
    page = web.client().get("/login", headers={"Accept-Language": "es-ES,es;q=0.9,en;q=0.5"})
    html = page.get_data(as_text=True)
    assert "Iniciar sesión" in html
    assert '<html lang="es">' in html


def test_english_is_the_default(web: Web) -> None:
    assert "Sign in" in web.client().get("/login").get_data(as_text=True)


def test_the_switch_overrides_accept_language(web: Web) -> None:
    client = web.client()
    answer = client.get("/language/en?next=/login")
    assert answer.status_code == 303
    assert answer.headers["Location"] == "/login"
    html = client.get("/login", headers={"Accept-Language": "es"}).get_data(as_text=True)
    assert '<html lang="en">' in html
    client.get("/language/es")
    assert "Contraseña" in client.get("/login").get_data(as_text=True)


def test_the_switch_refuses_an_offsite_next(web: Web) -> None:
    answer = web.client().get("/language/es?next=//evil.example/")
    assert answer.headers["Location"] == "/login"


def test_configured_language_applies_without_a_switch(make_web: Callable[..., Web]) -> None:
    web = make_web(language="es")
    html = web.client().get("/login", headers={"Accept-Language": "en"}).get_data(as_text=True)
    assert "Iniciar sesión" in html


def test_refusals_are_in_the_visitors_language(make_web: Callable[..., Web]) -> None:
    web = make_web(users=26)
    for login in web.users[:25]:
        web.core.gate.decide(login, f"{login}-pw")
    client = web.client()
    client.get("/language/es")
    refused = web.login(client, web.users[25])
    assert "Las 25 plazas de la licencia están ocupadas" in refused.get_data(as_text=True)
    api = client.post("/api/login", json={"login": "nobody", "password": "x"})
    assert api.get_json()["message"] == "Usuario desconocido o contraseña incorrecta."


def test_admin_login_is_audited_as_the_admin(web: Web) -> None:
    web.login(web.client(), ADMIN, ADMIN_PASSWORD)
    assert web.events("login")[0].actor == ADMIN
