"""The web gate serves only the licensed sites, on SQLite and PostgreSQL.

Requests go through the Flask test client with the Host each one names; the
socket peer is the test client's 127.0.0.1 unless a test sets another.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from tests.web_support import ADMIN, Web

PORTAL = "portal.example.com"

Mint = Callable[..., str]


@pytest.fixture
def sited(make_web: Callable[..., Web], mint: Mint) -> Web:
    """A 25-seat licence for PORTAL only; `admin` and user000..user002."""
    web = make_web(licence=False)
    web.core.licensing.install(mint("license", jti="L", sites=(PORTAL,)), actor="test")
    return web


class HostClient(FlaskClient):
    """A test client whose every request names ``host`` in its Host header."""

    host = "localhost"

    def open(self, *args: Any, **kwargs: Any) -> TestResponse:
        kwargs["headers"] = {**dict(kwargs.get("headers") or {}), "Host": self.host}
        return super().open(*args, **kwargs)


def client_for(web: Web, host: str, *, peer: str = "192.0.2.10") -> HostClient:
    client = HostClient(web.app, web.app.response_class, use_cookies=True)
    client.host = host
    client.environ_base["REMOTE_ADDR"] = peer
    return client


def sign_in(web: Web, client: FlaskClient, login: str) -> None:
    assert web.login(client, login).status_code == 303


def test_without_a_licensed_site_every_host_is_served(web: Web) -> None:
    client = client_for(web, "anything.example.net:8080")
    assert client.get("/login").status_code == 200
    sign_in(web, client, "user000")
    assert client.get("/api/me").status_code == 200


@pytest.mark.parametrize(
    "host", [PORTAL, "PORTAL.Example.COM", f"{PORTAL}:8443", f"{PORTAL}.", f"{PORTAL.upper()}.:443"]
)
def test_the_licensed_host_is_served_in_any_case_with_a_port_or_trailing_dot(
    sited: Web, host: str
) -> None:
    client = client_for(sited, host)
    assert client.get("/login").status_code == 200
    sign_in(sited, client, "user000")
    assert client.get("/api/me").get_json()["login"] == "user000"
    assert client.get("/auth/verify").status_code == 200


@pytest.mark.parametrize(
    "host", ["other.example.com", "portal.example.com.evil.test", "192.0.2.1", "", "[zz]"]
)
def test_any_other_host_gets_the_clear_page_and_nothing_else(sited: Web, host: str) -> None:
    client = client_for(sited, host)
    page = client.get("/login")
    assert page.status_code == 403
    text = page.get_data(as_text=True)
    assert "not licensed for the address" in text
    assert page.headers["Content-Security-Policy"]
    # The login form is not there, and a login attempt changes nothing.
    assert 'name="password"' not in text
    refused = client.post("/login", data={"login": "user000", "password": "user000-pw"})
    assert refused.status_code == 403
    assert not sited.holds("user000")


def test_the_json_answer_names_the_code_and_the_host(sited: Web) -> None:
    client = client_for(sited, "other.example.com:8080")
    answer = client.post("/api/login", json={"login": "user000", "password": "user000-pw"})
    assert answer.status_code == 403
    body = answer.get_json()
    assert body["error"] == "site_not_licensed"
    assert "other.example.com" in body["message"]
    assert client.get("/auth/verify").status_code == 403
    assert not sited.holds("user000")


def test_the_page_is_in_spanish_for_a_spanish_visitor(sited: Web) -> None:
    client = client_for(sited, "other.example.com")
    page = client.get("/login", headers={"Accept-Language": "es"})
    assert page.status_code == 403
    assert "no tiene licencia para la dirección other.example.com" in page.get_data(as_text=True)


def test_a_session_opened_on_the_site_is_refused_on_another_host(sited: Web) -> None:
    client = client_for(sited, PORTAL)
    sign_in(sited, client, "user000")
    client.host = "other.example.com"
    assert client.get("/api/me").status_code == 403


def test_x_forwarded_host_is_never_read(sited: Web) -> None:
    client = client_for(sited, "other.example.com")
    answer = client.get("/login", headers={"X-Forwarded-Host": PORTAL})
    assert answer.status_code == 403
    # ...nor does it take a licensed Host away.
    assert (
        client_for(sited, PORTAL).get("/login", headers={"X-Forwarded-Host": "x"}).status_code
        == 200
    )


@pytest.mark.parametrize("host", ["localhost", "localhost:8080", "127.0.0.1:8080", "[::1]:8080"])
def test_on_the_machine_itself_admins_are_served_and_others_are_not(sited: Web, host: str) -> None:
    admin = client_for(sited, host, peer="127.0.0.1")
    assert admin.get("/login").status_code == 200
    # Not signed in: sent to sign in, as anywhere.
    assert admin.get("/admin").status_code == 302
    assert admin.get("/api/me").status_code == 401
    sign_in(sited, admin, ADMIN)
    assert admin.get("/admin").status_code == 200
    assert admin.get("/api/me").get_json()["login"] == ADMIN

    user = client_for(sited, host, peer="::1")
    sign_in(sited, user, "user001")
    refused = user.get("/api/me")
    assert refused.status_code == 403
    assert refused.get_json()["error"] == "site_admins_only"
    page = user.get("/")
    assert page.status_code == 403
    assert "administrators only" in page.get_data(as_text=True)


def test_a_loopback_host_from_elsewhere_or_through_a_proxy_is_not_the_machine(sited: Web) -> None:
    remote = client_for(sited, "localhost")
    assert remote.get("/login").status_code == 403
    proxied = client_for(sited, "localhost", peer="127.0.0.1")
    assert proxied.get("/login", headers={"X-Forwarded-For": "192.0.2.10"}).status_code == 403


def test_a_site_token_adds_a_host_and_removing_it_takes_it_away(sited: Web, mint: Mint) -> None:
    second = client_for(sited, "portal2.example.com")
    assert second.get("/login").status_code == 403
    sited.core.licensing.install(
        mint("site", jti="S2", lic="L", host="portal2.example.com"), actor="test"
    )
    assert second.get("/login").status_code == 200
    assert client_for(sited, PORTAL).get("/login").status_code == 200
    sited.core.licensing.remove("S2", actor="test")
    assert second.get("/login").status_code == 403


def test_metrics_are_not_held_to_the_sites(make_web: Callable[..., Web], mint: Mint) -> None:
    web = make_web(licence=False, metrics=True)
    web.core.licensing.install(mint("license", sites=(PORTAL,)), actor="test")
    assert client_for(web, "10.0.0.5:9100").get("/metrics").status_code == 200


def test_the_admin_page_lists_the_licensed_sites(sited: Web, mint: Mint) -> None:
    sited.core.licensing.install(
        mint("site", jti="S2", lic="L", host="portal2.example.com"), actor="test"
    )
    admin = client_for(sited, PORTAL)
    sign_in(sited, admin, ADMIN)
    page = admin.get("/admin", headers={"Accept-Language": "es"}).get_data(as_text=True)
    assert "Sitios" in page
    assert '<dd id="sites">portal.example.com, portal2.example.com</dd>' in page
