"""GET /auth/verify, exercised the way nginx auth_request calls it.

nginx sends a subrequest that carries the visitor's Cookie header and
nothing else of theirs; it forwards 2xx, turns 401 into a login redirect,
and copies X-Seatgate-User into the request to the portal.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote

from tests.web_support import ADMIN, Web

ROOT = Path(__file__).resolve().parent.parent


def _cookie_header(web: Web, login: str) -> str:
    client = web.client()
    assert web.login(client, login).status_code == 303
    cookie = client.get_cookie("session")
    assert cookie is not None
    return f"session={cookie.value}"


def _subrequest(web: Web, cookie: str | None) -> object:
    nginx = web.app.test_client(use_cookies=False)
    headers = {"X-Original-URI": "/wiki/"} | ({"Cookie": cookie} if cookie else {})
    return nginx.get("/auth/verify", headers=headers)


def test_a_seat_holder_passes_with_the_user_header(web: Web) -> None:
    answer = _subrequest(web, _cookie_header(web, "user000"))
    assert answer.status_code == 200  # type: ignore[attr-defined]
    headers = answer.headers  # type: ignore[attr-defined]
    assert headers["X-Seatgate-User"] == "user000"
    assert headers["X-Seatgate-Admin"] == "false"
    assert "no-store" in headers["Cache-Control"]


def test_no_cookie_is_401(web: Web) -> None:
    answer = _subrequest(web, None)
    assert answer.status_code == 401  # type: ignore[attr-defined]
    assert "X-Seatgate-User" not in answer.headers  # type: ignore[attr-defined]


def test_a_forged_cookie_is_401(web: Web) -> None:
    assert _subrequest(web, "session=forged.value.sig").status_code == 401  # type: ignore[attr-defined]


def test_a_revoked_seat_is_401_at_the_next_subrequest(web: Web) -> None:
    cookie = _cookie_header(web, "user000")
    assert _subrequest(web, cookie).status_code == 200  # type: ignore[attr-defined]
    web.core.ledger.revoke(web.core.accounts.get("user000").id, actor=ADMIN)
    assert _subrequest(web, cookie).status_code == 401  # type: ignore[attr-defined]


def test_groups_and_non_ascii_logins_are_percent_encoded(web: Web) -> None:
    web.core.accounts.add("maría.peña", password="maría.peña-pw", actor="test")
    answer = _subrequest(web, _cookie_header(web, "maría.peña"))
    user = answer.headers["X-Seatgate-User"]  # type: ignore[attr-defined]
    assert user.isascii()
    assert unquote(user) == "maría.peña"
    assert answer.headers["X-Seatgate-Groups"] == ""  # type: ignore[attr-defined]


def test_an_admin_is_flagged(web: Web) -> None:
    client = web.admin_client()
    cookie = client.get_cookie("session")
    assert cookie is not None
    answer = _subrequest(web, f"session={cookie.value}")
    assert answer.headers["X-Seatgate-Admin"] == "true"  # type: ignore[attr-defined]


def test_the_nginx_example_asks_verify_and_passes_only_the_cookie() -> None:
    conf = (ROOT / "adapters" / "nginx" / "seatgate-auth.conf").read_text(encoding="utf-8")
    assert "auth_request /_seatgate/verify;" in conf
    assert "/auth/verify" in conf
    assert "proxy_pass_request_body off;" in conf
    assert "proxy_set_header X-Seatgate-User $seatgate_user;" in conf


def test_every_stored_group_passes_in_one_header_line_that_splits_back_exactly(web: Web) -> None:
    import json

    from sqlalchemy import update

    from seatgate.storage.schema import accounts

    # What a sync with nested groups stores: the direct group and those above it,
    # one with a comma-laden DN, one with `;` and a line break that must not
    # become a header line of its own.
    groups = [
        "CN=Wiki Editors,OU=Groups,DC=corp,DC=example",
        "CN=Staff\\, Madrid,OU=Groups,DC=corp,DC=example",
        "CN=x;y\r\nX-Seatgate-Admin: true,DC=corp",
    ]
    web.core.db.write(
        lambda c: c.execute(
            update(accounts).where(accounts.c.login == "user000").values(groups=json.dumps(groups))
        )
    )
    answer = _subrequest(web, _cookie_header(web, "user000"))
    raw = answer.headers["X-Seatgate-Groups"]  # type: ignore[attr-defined]
    assert raw.isascii() and "\r" not in raw and "\n" not in raw
    assert [unquote(part) for part in raw.split(";")] == groups
    assert answer.headers.getlist("X-Seatgate-Admin") == ["false"]  # type: ignore[attr-defined]
