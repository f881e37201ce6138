"""A real nginx as the authenticating proxy in front of the gate's trusted-identity door.

nginx (Debian's, installed by scripts/ensure-nginx) authenticates users with
HTTP basic auth, connects to the gate from its own loopback address
(127.0.0.2, the one listed in ``web.trusted_identity.from``) and sets the
identity and secret headers itself, replacing whatever a client sent. A
client that talks to the gate directly (from 127.0.0.1) is ignored, whatever
headers it forges.
"""

from __future__ import annotations

import http.client
import ipaddress
import threading
from base64 import b64encode
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from werkzeug.serving import make_server

from seatgate.config.upstream import TrustedIdentityConfig
from tests.test_gate import fill_seats
from tests.test_nginx_forward_auth import _free_port, running_nginx
from tests.web_support import Web

SECRET = "nginx-and-the-gate-share-this-secret-0123456789"
PROXY_ADDRESS = "127.0.0.2"


@pytest.fixture
def web(make_web: Callable[..., Web], monkeypatch: pytest.MonkeyPatch) -> Web:
    monkeypatch.setenv("SEATGATE_UPSTREAM_SECRET", SECRET)
    door = TrustedIdentityConfig("X-Remote-User", (ipaddress.ip_network(PROXY_ADDRESS),))
    return make_web(trusted_identity=door, secure_cookies=False)


@pytest.fixture
def gate(web: Web) -> Iterator[int]:
    server = make_server("127.0.0.1", 0, web.app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.port
    server.shutdown()
    server.server_close()


def _conf(prefix: Path, listen: int, gate: int) -> str:
    temp = {name: prefix / name for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")}
    for path in temp.values():
        path.mkdir()
    # nginx's own password file format: {PLAIN} is enough for a test user.
    (prefix / "htpasswd").write_text(
        "user000:{PLAIN}user000-pw\nuser001:{PLAIN}user001-pw\n", encoding="utf-8"
    )
    # Workers run as root here: they read the password file from the test's
    # private temporary directory.
    return f"""
user root;
error_log {prefix / "error.log"} warn;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {temp["client_body"]};
    proxy_temp_path {temp["proxy"]};
    fastcgi_temp_path {temp["fastcgi"]};
    uwsgi_temp_path {temp["uwsgi"]};
    scgi_temp_path {temp["scgi"]};
    server {{
        listen 127.0.0.1:{listen};
        location / {{
            auth_basic "intranet";
            auth_basic_user_file {prefix / "htpasswd"};
            proxy_bind {PROXY_ADDRESS};
            proxy_set_header Host $host;
            proxy_set_header X-Remote-User $remote_user;
            proxy_set_header X-Seatgate-Proxy-Secret "{SECRET}";
            proxy_pass http://127.0.0.1:{gate};
        }}
    }}
}}
"""


@pytest.fixture
def nginx(tmp_path: Path, gate: int) -> Iterator[int]:
    """nginx authenticating with basic auth in front of the gate; its port."""
    prefix = tmp_path / "nginx"
    prefix.mkdir()
    port = _free_port()
    with running_nginx(prefix, _conf(prefix, port, gate), port):
        yield port


def get(port: int, path: str, headers: dict[str, str]) -> http.client.HTTPResponse:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path, headers={"Host": "intranet.example.com", **headers})
        response = conn.getresponse()
        response.read()
        return response
    finally:
        conn.close()


def basic(login: str) -> dict[str, str]:
    return {"Authorization": "Basic " + b64encode(f"{login}:{login}-pw".encode()).decode()}


def test_a_user_nginx_authenticated_is_signed_in_with_a_seat(web: Web, nginx: int) -> None:
    answer = get(nginx, "/login?next=/portal", basic("user000"))
    assert answer.status == 303
    assert answer.getheader("Location", "").endswith("/portal")
    assert "session" in (answer.getheader("Set-Cookie") or "")
    assert web.holds("user000")
    event = web.events("login")[0]
    assert (event.subject, event.outcome, event.details["method"]) == (
        "user000",
        "allowed",
        "upstream",
    )


def test_a_header_the_client_sends_through_nginx_is_replaced(web: Web, nginx: int) -> None:
    """nginx sets the identity itself: a client's own X-Remote-User never arrives."""
    answer = get(nginx, "/login?next=/portal", {**basic("user001"), "X-Remote-User": "admin"})
    assert answer.status == 303
    assert web.events("login")[0].subject == "user001"
    assert not web.holds("admin") and web.holds("user001")


def test_without_basic_auth_nginx_lets_nobody_through(web: Web, nginx: int) -> None:
    assert get(nginx, "/login", {"X-Remote-User": "user000"}).status == 401
    assert web.events("login") == []


def test_a_client_forging_both_headers_at_the_gate_itself_is_ignored(web: Web, gate: int) -> None:
    forged = {"X-Remote-User": "user000", "X-Seatgate-Proxy-Secret": SECRET}
    answer = get(gate, "/login?next=/portal", {**forged, "X-Forwarded-For": PROXY_ADDRESS})
    assert answer.status == 200
    assert not web.holds("user000")
    assert web.events("login") == []
    (ignored,) = web.events("upstream.ignored")
    assert ignored.details["address"] == "127.0.0.1"


def test_a_user_without_a_seat_gets_the_no_seat_page_through_nginx(web: Web, nginx: int) -> None:
    fill_seats(web.core, 25 - web.core.ledger.used())
    answer = get(nginx, "/login?next=/portal", basic("user000"))
    assert answer.status == 403
    assert web.events("login")[0].outcome == "no_seat_available"
