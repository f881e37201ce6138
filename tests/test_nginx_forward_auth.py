"""The shipped nginx example in front of the gate and a portal, with a real nginx.

nginx (Debian's, installed by scripts/ensure-nginx) runs the server and
upstream blocks of adapters/nginx/seatgate-auth.conf, with only the ports
and the TLS listener changed, on free loopback ports. The gate is served by
a werkzeug thread, the portal is an http.server thread that records the
headers each request brings. Nothing outlives the test.
"""

from __future__ import annotations

import http.client
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from werkzeug.serving import make_server

from seatgate.adapters.flask import forward_auth as forward_auth_module
from tests.web_support import Web

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "adapters" / "nginx" / "seatgate-auth.conf"
NGINX = "/usr/sbin/nginx"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Portal:
    """The upstream portal: every request's headers, as (name, value) pairs."""

    port: int
    seen: list[list[tuple[str, str]]] = field(default_factory=list)

    def seatgate_headers(self) -> list[tuple[str, str]]:
        assert self.seen, "no request reached the portal"
        return [(k.lower(), v) for k, v in self.seen[-1] if k.lower().startswith("x-seatgate")]


@pytest.fixture
def portal() -> Iterator[Portal]:
    record = Portal(0)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            record.seen.append(list(self.headers.items()))
            self.send_response(200)
            self.send_header("Content-Length", "6")
            self.end_headers()
            self.wfile.write(b"portal")

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    record.port = int(server.server_address[1])
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield record
    server.shutdown()
    server.server_close()


@pytest.fixture
def gate(web: Web) -> Iterator[int]:
    server = make_server("127.0.0.1", 0, web.app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.port
    server.shutdown()
    server.server_close()


def _config(example: str, *, listen: int, gate: int, portal: int, prefix: Path) -> str:
    body = (
        example.replace("listen 443 ssl;", f"listen 127.0.0.1:{listen};")
        .replace("server 127.0.0.1:8080;", f"server 127.0.0.1:{gate};")
        .replace("server 127.0.0.1:9000;", f"server 127.0.0.1:{portal};")
    )
    assert f"127.0.0.1:{listen}" in body and f"127.0.0.1:{gate}" in body
    temp = {name: prefix / name for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")}
    for path in temp.values():
        path.mkdir()
    return (
        f"error_log {prefix / 'error.log'} warn;\n"
        "events { worker_connections 64; }\n"
        "http {\n"
        f"    access_log off;\n"
        f"    client_body_temp_path {temp['client_body']};\n"
        f"    proxy_temp_path {temp['proxy']};\n"
        f"    fastcgi_temp_path {temp['fastcgi']};\n"
        f"    uwsgi_temp_path {temp['uwsgi']};\n"
        f"    scgi_temp_path {temp['scgi']};\n"
        f"{body}\n"
        "}\n"
    )


@pytest.fixture
def nginx(tmp_path: Path, gate: int, portal: Portal) -> Iterator[int]:
    """The example nginx on a free loopback port; its port."""
    prefix = tmp_path / "nginx"
    prefix.mkdir()
    port = _free_port()
    example = EXAMPLE.read_text(encoding="utf-8")
    conf = _config(example, listen=port, gate=gate, portal=portal.port, prefix=prefix)
    with running_nginx(prefix, conf, port):
        yield port


@contextmanager
def running_nginx(prefix: Path, conf: str, port: int) -> Iterator[None]:
    """Debian's nginx with configuration ``conf`` in ``prefix``, until the block ends.

    Skipped (failed under CI) when nginx is not installed.
    """
    if not os.access(NGINX, os.X_OK):
        if os.environ.get("CI") == "true":
            pytest.fail(f"{NGINX} is missing: run scripts/ensure-nginx")
        pytest.skip(f"{NGINX} is missing: run scripts/ensure-nginx")
    path = prefix / "nginx.conf"
    path.write_text(conf, encoding="utf-8")
    directives = f"daemon off; pid {prefix / 'nginx.pid'};"
    process = subprocess.Popen(
        [NGINX, "-p", str(prefix), "-c", str(path), "-g", directives],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        _wait_for(port, process)
        yield
    finally:
        process.send_signal(signal.SIGQUIT)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        shutil.rmtree(prefix / "proxy", ignore_errors=True)


def _wait_for(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if process.poll() is not None:
            errors = process.stderr.read().decode() if process.stderr else ""
            pytest.fail(f"nginx did not start: {errors}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    pytest.fail("nginx did not listen within 10 s")


Send = Callable[..., http.client.HTTPResponse]


@pytest.fixture
def send(nginx: int) -> Iterator[Send]:
    """send(path, headers as (name, value) pairs) -> the response through nginx."""
    opened: list[http.client.HTTPConnection] = []

    def _send(path: str, headers: list[tuple[str, str]]) -> http.client.HTTPResponse:
        conn = http.client.HTTPConnection("127.0.0.1", nginx, timeout=10)
        opened.append(conn)
        conn.putrequest("GET", path, skip_host=True)
        conn.putheader("Host", "intranet.example.com")
        for name, value in headers:
            conn.putheader(name, value)
        conn.endheaders()
        response = conn.getresponse()
        response.read()
        return response

    yield _send
    for conn in opened:
        conn.close()


def _cookie(web: Web, login: str) -> str:
    client = web.client()
    assert web.login(client, login).status_code == 303
    cookie = client.get_cookie("session")
    assert cookie is not None
    return f"session={cookie.value}"


FORGED = [
    ("X-Seatgate-Admin", "true"),
    ("X-Seatgate-User", "admin"),
    ("X-Seatgate-Groups", "cn=admins"),
]
GATE_VALUES = [("x-seatgate-admin", "false"), ("x-seatgate-user", "user000")]


@pytest.fixture
def proxy_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    """The gate's own refusal of X-Seatgate-* requests off: nginx's clearing alone is tested."""
    monkeypatch.setattr(forward_auth_module, "_OWN_PREFIX", "\0never")


def test_a_signed_in_user_claiming_admin_through_nginx_is_refused(
    web: Web, send: Send, portal: Portal
) -> None:
    answer = send("/wiki/", [("Cookie", _cookie(web, "user000")), *FORGED])
    assert answer.status == 403
    assert not portal.seen


@pytest.mark.parametrize(
    "forged",
    [
        FORGED,
        [("x-seatgate-admin", "true"), ("x-seatgate-user", "admin")],
        [("X-SEATGATE-ADMIN", "true"), ("X-SEATGATE-USER", "admin")],
        [("X-Seatgate-Admin", "true"), ("X-Seatgate-Admin", "true"), ("X-Seatgate-User", "a")],
        [("X-Seatgate-Role", "admin")],
    ],
    ids=["every-name", "lower-case", "upper-case", "duplicates", "unknown-name"],
)
def test_forged_gate_headers_in_any_spelling_never_reach_the_portal(
    web: Web, send: Send, portal: Portal, forged: list[tuple[str, str]]
) -> None:
    answer = send("/wiki/", [("Cookie", _cookie(web, "user000")), *forged])
    assert answer.status == 403
    assert not portal.seen


@pytest.mark.parametrize(
    "forged",
    [
        FORGED,
        [("x-seatgate-admin", "true"), ("x-seatgate-user", "admin")],
        [("X-SEATGATE-ADMIN", "true"), ("X-SEATGATE-GROUPS", "cn=admins")],
        [("X-Seatgate-Admin", "true"), ("X-Seatgate-Admin", "true"), ("X-Seatgate-User", "a")],
        [("X_Seatgate_Admin", "true"), ("X_Seatgate_User", "admin")],
    ],
    ids=["every-name", "lower-case", "upper-case", "duplicates", "underscores"],
)
@pytest.mark.usefixtures("proxy_alone")
def test_a_user_claiming_admin_reaches_the_portal_with_the_gates_values_only(
    web: Web, send: Send, portal: Portal, forged: list[tuple[str, str]]
) -> None:
    answer = send("/wiki/", [("Cookie", _cookie(web, "user000")), *forged])
    assert answer.status == 200
    # user000 has no groups: an empty value removes the header.
    assert sorted(portal.seatgate_headers()) == GATE_VALUES
    assert not [name for name, _ in portal.seen[-1] if "_" in name]


def test_an_admin_is_named_admin_by_the_gate(web: Web, send: Send, portal: Portal) -> None:
    assert send("/wiki/", [("Cookie", _cookie(web, "admin"))]).status == 200
    assert ("x-seatgate-admin", "true") in portal.seatgate_headers()


@pytest.mark.usefixtures("proxy_alone")
def test_an_anonymous_client_claiming_a_user_is_sent_to_the_login_page(
    send: Send, portal: Portal
) -> None:
    for forged in ([], FORGED):
        answer = send("/wiki/page", forged)
        assert answer.status == 302
        assert answer.getheader("Location", "").endswith("/login?next=/wiki/page")
    assert not portal.seen


def _licensed_site(web: Web, mint: Callable[..., str], host: str) -> None:
    base = web.core.ledger.state().base_jti
    web.core.licensing.install(mint("site", lic=base, host=host), actor="test")


def test_with_licensed_sites_the_subrequest_carries_the_visitors_host(
    web: Web, send: Send, portal: Portal, mint: Callable[..., str]
) -> None:
    _licensed_site(web, mint, "intranet.example.com")
    answer = send("/wiki/", [("Cookie", _cookie(web, "user000"))])
    assert answer.status == 200
    assert ("x-seatgate-user", "user000") in portal.seatgate_headers()


def test_an_unlicensed_host_through_nginx_never_reaches_the_portal(
    web: Web, nginx: int, portal: Portal, mint: Callable[..., str]
) -> None:
    _licensed_site(web, mint, "portal2.example.com")
    conn = http.client.HTTPConnection("127.0.0.1", nginx, timeout=10)
    try:
        for host in ("intranet.example.com", "localhost"):
            conn.putrequest("GET", "/wiki/", skip_host=True)
            conn.putheader("Host", host)
            conn.putheader("Cookie", _cookie(web, "admin"))
            conn.endheaders()
            answer = conn.getresponse()
            answer.read()
            # localhost through a proxy is not this machine: X-Forwarded-For says so.
            assert answer.status == 403, host
    finally:
        conn.close()
    assert not portal.seen
