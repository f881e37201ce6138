"""The trusted-upstream door: a proxy that authenticated the user names them in a header.

The gate believes the header only from a listed proxy address (the socket's
peer, never X-Forwarded-For) carrying the shared secret; from anywhere else
it is ignored and audited in aggregate. An admitted user goes through the
same seat decision as a password login. SQLite and PostgreSQL.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from seatgate.config import config_from_mapping
from seatgate.config.upstream import TrustedIdentityConfig
from seatgate.errors import ConfigError
from seatgate.licensing.vendor import generate_key
from tests.test_gate import fill_seats
from tests.web_support import Web

EXAMPLE = Path(__file__).resolve().parent.parent / "config.example.yaml"
PROXY = "192.0.2.10"
SECRET = "s3cret-the-proxy-and-the-gate-share-0123456789"
HEADER = "X-Remote-User"
SECRET_HEADER = "X-Seatgate-Proxy-Secret"


@pytest.fixture
def upstream(make_web: Callable[..., Web], monkeypatch: pytest.MonkeyPatch) -> Web:
    monkeypatch.setenv("SEATGATE_UPSTREAM_SECRET", SECRET)
    door = TrustedIdentityConfig(HEADER, (ipaddress.ip_network("192.0.2.8/29"),))
    return make_web(trusted_identity=door)


def via(
    client: FlaskClient,
    user: str | None,
    *,
    peer: str = PROXY,
    secret: str | None = SECRET,
    **headers: str,
) -> TestResponse:
    sent = dict(headers)
    if user is not None:
        sent[HEADER] = user
    if secret is not None:
        sent[SECRET_HEADER] = secret
    return client.get("/login?next=/portal", headers=sent, environ_base={"REMOTE_ADDR": peer})


def signed_in_as(client: FlaskClient) -> str | None:
    answer = client.get("/auth/verify")
    return answer.headers.get("X-Seatgate-User") if answer.status_code == 200 else None


def test_the_proxy_s_user_is_signed_in_and_takes_a_seat(upstream: Web) -> None:
    client = upstream.client()
    answer = via(client, "user001")
    assert answer.status_code == 303
    assert answer.headers["Location"].endswith("/portal")
    assert signed_in_as(client) == "user001"
    assert upstream.holds("user001")
    event = upstream.events("login")[0]
    assert (event.subject, event.outcome, event.details["method"]) == (
        "user001",
        "allowed",
        "upstream",
    )


@pytest.mark.parametrize(
    ("peer", "secret"),
    [
        ("203.0.113.5", SECRET),  # not a listed proxy
        (PROXY, SECRET[:-1] + "x"),  # the wrong secret
        (PROXY, None),  # no secret
        ("192.0.2.16", SECRET),  # just outside the listed network
    ],
)
def test_a_header_not_from_the_proxy_is_ignored_and_audited(
    upstream: Web, peer: str, secret: str | None
) -> None:
    client = upstream.client()
    answer = via(client, "user001", peer=peer, secret=secret)
    assert answer.status_code == 200
    assert 'name="password"' in answer.get_data(as_text=True)
    assert signed_in_as(client) is None
    assert not upstream.holds("user001")
    assert upstream.events("login") == []
    (ignored,) = upstream.events("upstream.ignored")
    assert (ignored.details["address"], ignored.details["header"]) == (peer, HEADER)
    assert SECRET not in str(ignored.details)


def test_x_forwarded_for_does_not_make_a_client_the_proxy(
    make_web: Callable[..., Web], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Even with trusted_proxies set, the proxy check is on the socket's own peer."""
    monkeypatch.setenv("SEATGATE_UPSTREAM_SECRET", SECRET)
    door = TrustedIdentityConfig(HEADER, (ipaddress.ip_network("192.0.2.10/32"),))
    web = make_web(trusted_identity=door, trusted_proxies=1)
    client = web.client()
    answer = via(client, "user001", peer="203.0.113.5", **{"X-Forwarded-For": PROXY})
    assert answer.status_code == 200
    assert signed_in_as(client) is None


def test_ignored_headers_are_audited_once_per_window_with_a_count(upstream: Web) -> None:
    for _ in range(30):
        via(upstream.client(), "user001", peer="203.0.113.5")
    assert len(upstream.events("upstream.ignored")) == 1
    upstream.clock.advance(timedelta(minutes=16))
    via(upstream.client(), "user001", peer="203.0.113.5")
    newest = upstream.events("upstream.ignored")[0]
    assert (newest.details["throttled"], newest.details["count"]) == ("ended", 30)


def test_without_the_header_the_proxy_s_visitors_get_the_form(upstream: Web) -> None:
    assert via(upstream.client(), None).status_code == 200
    assert via(upstream.client(), "   ").status_code == 200
    assert upstream.events("upstream.ignored") == []


def test_a_user_without_a_seat_sees_the_no_seat_page(upstream: Web) -> None:
    fill_seats(upstream.core, 25 - upstream.core.ledger.used())
    answer = via(upstream.client(), "user002")
    assert answer.status_code == 403
    assert 'data-reason="no_seat_available"' in answer.get_data(as_text=True)
    assert upstream.events("login")[0].details["method"] == "upstream"


@pytest.mark.parametrize(
    ("user", "status"),
    [("user000", 403), ("nobody", 401)],
)
def test_disabled_and_unknown_users_are_refused(upstream: Web, user: str, status: int) -> None:
    upstream.core.accounts.set_status("user000", "disabled", actor="test")
    client = upstream.client()
    assert via(client, user).status_code == status
    assert signed_in_as(client) is None


def test_the_gate_refuses_to_start_without_the_secret(
    make_web: Callable[..., Web], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SEATGATE_UPSTREAM_SECRET", "short")
    door = TrustedIdentityConfig(HEADER, (ipaddress.ip_network(PROXY),))
    with pytest.raises(ConfigError, match="SEATGATE_UPSTREAM_SECRET"):
        make_web(trusted_identity=door)


@pytest.mark.parametrize(
    ("section", "error"),
    [
        ({"from": [PROXY]}, "header"),
        ({"header": HEADER}, "proxy addresses"),
        ({"header": HEADER, "from": ["0.0.0.0/0"]}, "trusts every address"),
        ({"header": HEADER, "from": ["::/0"]}, "trusts every address"),
        ({"header": HEADER, "from": ["proxy.example"]}, "not an address"),
        ({"header": "X-Forwarded-For", "from": [PROXY]}, "set by clients"),
        ({"header": "Bad Header", "from": [PROXY]}, "not a header name"),
        ({"header": HEADER, "secret_header": HEADER, "from": [PROXY]}, "must differ"),
        ({"header": HEADER, "from": [PROXY], "secret": "inline"}, "secret"),
    ],
)
def test_configuration_mistakes_are_named(
    section: dict[str, Any], error: str, tmp_path: Path
) -> None:
    generate_key(tmp_path / "vendor-k1.pem", "k1")
    data = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    data.setdefault("web", {})["trusted_identity"] = section
    with pytest.raises(ConfigError, match=error):
        config_from_mapping(data, tmp_path)


def test_a_valid_section_is_read(tmp_path: Path) -> None:
    generate_key(tmp_path / "vendor-k1.pem", "k1")
    data = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    section = {"header": HEADER, "from": ["192.0.2.10", "2001:db8::/64"], "secret_env": "PROXY_S"}
    data.setdefault("web", {})["trusted_identity"] = section
    door = config_from_mapping(data, tmp_path).web.trusted_identity
    assert door is not None
    assert (door.header, door.secret_env, door.secret_header) == (HEADER, "PROXY_S", SECRET_HEADER)
    assert [str(n) for n in door.networks] == ["192.0.2.10/32", "2001:db8::/64"]
