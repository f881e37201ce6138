"""The admin page: admins only, seat figures, searchable paged accounts, audited changes."""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from flask.testing import FlaskClient

from tests.conftest import add_users
from tests.test_claim_statements import counting
from tests.web_support import ADMIN, Web


def _post(web: Web, client: FlaskClient, action: str, **form: str) -> str:
    token = web.csrf(client, "/admin")
    answer = client.post(f"/admin/{action}", data={"csrf_token": token, **form})
    assert answer.status_code == 303
    assert answer.headers["Location"] == "/admin"
    return client.get("/admin").get_data(as_text=True)


def test_anonymous_visitors_are_sent_to_sign_in(web: Web) -> None:
    answer = web.client().get("/admin")
    assert answer.status_code == 302
    assert answer.headers["Location"].startswith("/login?next=/admin")


@pytest.mark.parametrize("path", ["/admin", "/admin/assign"])
def test_users_get_403(web: Web, path: str) -> None:
    client = web.client()
    web.login(client, "user000")
    token = web.csrf(client, "/")
    answer = (
        client.get(path)
        if path == "/admin"
        else client.post(path, data={"csrf_token": token, "login": "user001"})
    )
    assert answer.status_code == 403
    assert not web.holds("user001")


def test_the_page_shows_seats_and_the_licence(web: Web) -> None:
    html = web.admin_client().get("/admin").get_data(as_text=True)
    assert re.search(r'id="seats-used">1<', html)
    assert re.search(r'id="seats-total">25<', html)
    assert re.search(r'id="seats-free">24<', html)
    assert re.search(r'id="seats-reserved">0<', html)
    assert re.search(r'id="edition">bizspace<', html)
    assert re.search(r'id="licence-valid">valid', html)
    for form in ("assign-form", "revoke-form", "reassign-form", "pin-form", "license-form"):
        assert f'id="{form}"' in html
    assert 'name="q"' in html


def test_the_page_shows_a_trial_and_its_end(
    make_web: Callable[..., Web], mint: Callable[..., str]
) -> None:
    web = make_web(licence=False)
    web.core.licensing.install(mint("trial", seats=25), actor="test")
    html = web.admin_client().get("/admin").get_data(as_text=True)
    # Dates are written the visitor's locale's way (here en: month, day, year).
    assert "trial until Apr 1, 2026" in html


def test_accounts_are_searchable_and_paged(make_web: Callable[..., Web]) -> None:
    web = make_web(users=60)
    web.app.config["SEATGATE_PAGE_SIZE"] = 25
    client = web.admin_client()
    first = client.get("/admin").get_data(as_text=True)
    assert "Page 1 of 3" in first
    assert first.count("<tr data-login=") == 25
    last = client.get("/admin?page=3").get_data(as_text=True)
    assert last.count("<tr data-login=") == 61 - 50
    found = client.get("/admin?q=user04").get_data(as_text=True)
    assert found.count("<tr data-login=") == 10
    assert 'data-login="user040" data-seat="no"' in found
    assert 'data-login="admin" data-seat="yes"' in client.get("/admin?q=ADM").get_data(as_text=True)


def test_the_accounts_list_is_one_page_from_sql_not_every_account(
    make_web: Callable[..., Web], monkeypatch: pytest.MonkeyPatch
) -> None:
    web = make_web(users=60)
    web.app.config["SEATGATE_PAGE_SIZE"] = 25
    client = web.admin_client()

    def every_account(*_args: object) -> None:
        raise AssertionError("/admin loaded every account")

    monkeypatch.setattr(type(web.core.accounts), "list", every_account)
    with counting(web.core) as statements:
        html = client.get("/admin?q=user05").get_data(as_text=True)
    assert html.count("<tr data-login=") == 10 and 'data-login="user059"' in html
    listed = [s for s in statements if "FROM accounts" in s and "ORDER BY" in s]
    assert listed, statements
    # Every ordered read of accounts is bounded by the page: LIMIT 25.
    assert all(" LIMIT " in s for s in listed), listed
    with counting(web.core) as more:
        client.get("/admin?q=user05")
    add_users(web.core, 100, prefix="extra")
    with counting(web.core) as after:
        client.get("/admin?q=user05")
    assert len(after) == len(more)  # no statement per account


def test_assign_revoke_reassign_pin_from_the_page(web: Web) -> None:
    client = web.admin_client()
    html = _post(web, client, "assign", login="user000")
    assert "Seat assigned to user000." in html and web.holds("user000")
    html = _post(web, client, "pin", login="user000", pinned="1")
    assert "Seat of user000 pinned." in html
    assert web.core.ledger.holders()[1].pinned
    html = _post(web, client, "pin", login="user000", pinned="0")
    assert "unpinned" in html
    html = _post(web, client, "reassign", **{"from": "user000", "to": "user001"})
    assert "Seat moved from user000 to user001." in html
    assert web.holds("user001") and not web.holds("user000")
    html = _post(web, client, "revoke", login="user001")
    assert "Seat of user001 revoked." in html and not web.holds("user001")
    changes = [e for e in web.events() if e.action.startswith("seat.")]
    assert {e.actor for e in changes} == {ADMIN}
    assert {e.action for e in changes} >= {
        "seat.assigned",
        "seat.pinned",
        "seat.unpinned",
        "seat.reassigned",
        "seat.released",
    }
    assert "seat.reassigned" in html  # the latest audit events


def test_refusals_are_shown_and_change_nothing(web: Web) -> None:
    client = web.admin_client()
    assert "`user000` holds no seat." in _post(web, client, "revoke", login="user000")
    assert "No account has the login `ghost`." in _post(web, client, "assign", login="ghost")
    assert "The request is missing `login`" in _post(web, client, "assign")
    assert not web.holds("user000")


def test_an_unknown_action_is_404(web: Web) -> None:
    client = web.admin_client()
    token = web.csrf(client, "/admin")
    assert client.post("/admin/nonsense", data={"csrf_token": token}).status_code == 404


def test_a_pasted_licence_token_is_installed(web: Web, mint: Callable[..., str]) -> None:
    client = web.admin_client()
    base = web.core.ledger.state().base_jti
    addon = mint("addon", seats=5, lic=base, purchased_at=web.clock.now(), jti="addon-5")
    html = _post(web, client, "license", token=addon)
    assert "Licence token addon-5 installed." in html
    assert re.search(r'id="seats-total">30<', html)
    assert web.events("license.installed")[0].actor == ADMIN


def test_an_uploaded_licence_file_is_installed(web: Web, mint: Callable[..., str]) -> None:
    client = web.admin_client()
    base = web.core.ledger.state().base_jti
    addon = mint("addon", seats=2, lic=base, purchased_at=web.clock.now(), jti="addon-2")
    token = web.csrf(client, "/admin")
    answer = client.post(
        "/admin/license",
        data={"csrf_token": token, "token_file": (io.BytesIO(addon.encode() + b"\n"), "a.jwt")},
        content_type="multipart/form-data",
    )
    assert answer.status_code == 303
    assert web.core.ledger.state().seats_total == 27


def test_a_rejected_token_says_why(web: Web) -> None:
    html = _post(web, web.admin_client(), "license", token="eyJhbGciOiJub25lIn0.e30.")
    assert "The licence token was rejected" in html
    assert web.core.ledger.state().seats_total == 25


def test_the_admin_page_is_in_spanish_too(web: Web) -> None:
    client = web.admin_client()
    client.get("/language/es")
    html = client.get("/admin").get_data(as_text=True)
    assert "Administración de plazas" in html and "Plazas ocupadas" in html


def test_the_page_shows_each_updates_period_and_renewal_quote(
    make_web: Callable[..., Web], mint: Callable[..., str]
) -> None:
    web = make_web(licence=False)
    web.core.licensing.install(
        mint("license", jti="lic-web", price=(Decimal("1990.00"), "USD")), actor="test"
    )
    web.clock.set(datetime(2027, 3, 31, 9, 0, tzinfo=UTC))  # day 29 after the period
    html = web.admin_client().get("/admin").get_data(as_text=True)
    row = re.search(r'<tr data-jti="lic-web">(.*?)</tr>', html, re.S)
    assert row is not None
    assert "Mar 2, 2026, 09:00" in row.group(1)  # activated
    assert "Mar 2, 2027, 09:00" in row.group(1) and "ended 29 days ago" in row.group(1)
    assert "22% = $437.80 until Apr 1, 2027" in row.group(1)
    web.clock.set(datetime(2027, 4, 3, 9, 0, tzinfo=UTC))
    client = web.admin_client()
    assert "60% = $1,194.00" in client.get("/admin").get_data(as_text=True)
    client.get("/language/es")
    html = client.get("/admin").get_data(as_text=True)
    row = re.search(r'<tr data-jti="lic-web">(.*?)</tr>', html, re.S)
    assert row is not None
    # Spanish: day first, hours without a leading zero, no-break spaces before % and US$.
    assert "2 mar 2026, 9:00" in row.group(1) and "terminó hace 32 días" in row.group(1)
    assert "60\u00a0% = 1.194,00\u00a0US$" in row.group(1)


def test_the_api_reports_the_updates_period(
    make_web: Callable[..., Web], mint: Callable[..., str]
) -> None:
    web = make_web(licence=False)
    web.core.licensing.install(mint("license", jti="lic-api"), actor="test")
    document = web.admin_client().get("/api/license").get_json()
    (token,) = document["tokens"]
    assert token["activated_at"] == "2026-03-02T09:00:00Z"
    assert token["updates_until"] == "2027-03-02T09:00:00Z"
    assert token["renewal"]["rate"] == 0.22
