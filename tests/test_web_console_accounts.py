"""The console's accounts page: filtered, sorted, paged in SQL; confirmed, audited actions."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta

from flask.testing import FlaskClient

from tests.web_support import ADMIN, Web

PAGE = "/admin/accounts"


def _logins(html: str) -> list[str]:
    return re.findall(r'<tr data-login="([^"]+)"', html)


def _post(web: Web, client: FlaskClient, action: str, **form: object) -> str:
    token = web.csrf(client, PAGE)
    answer = client.post(f"{PAGE}/{action}", data={"csrf_token": token, **form})
    assert answer.status_code == 303, answer.get_data(as_text=True)
    return client.get(answer.headers["Location"]).get_data(as_text=True)


def _confirmed(web: Web, client: FlaskClient, action: str, **form: object) -> str:
    """Post ``action``, check it asks for confirmation and changed nothing, then confirm."""
    token = web.csrf(client, PAGE)
    asked = client.post(f"{PAGE}/{action}", data={"csrf_token": token, **form})
    assert asked.status_code == 200
    assert 'id="confirm-form"' in asked.get_data(as_text=True)
    return _post(web, client, action, confirmed="1", **form)


def test_only_admins_see_or_change_accounts(web: Web) -> None:
    assert web.client().get(PAGE).status_code == 302
    client = web.client()
    web.login(client, "user000")
    assert client.get(PAGE).status_code == 403
    token = web.csrf(client, "/")
    data = {"csrf_token": token, "login": "user001", "confirmed": "1"}
    assert client.post(f"{PAGE}/disable", data=data).status_code == 403
    assert web.core.accounts.get("user001").status == "active"


def test_paged_searched_and_counted(make_web: Callable[..., Web]) -> None:
    web = make_web(users=60)
    web.app.config["SEATGATE_PAGE_SIZE"] = 25
    client = web.admin_client()
    first = client.get(PAGE).get_data(as_text=True)
    assert "61 accounts match" in first and "Page 1 of 3" in first
    assert _logins(first)[:2] == ["admin", "user000"]
    last = client.get(f"{PAGE}?page=3").get_data(as_text=True)
    assert len(_logins(last)) == 11
    found = client.get(f"{PAGE}?q=USER04").get_data(as_text=True)
    assert _logins(found) == [f"user04{n}" for n in range(10)]
    assert _logins(client.get(f"{PAGE}?q=adm").get_data(as_text=True)) == [ADMIN]
    assert _logins(client.get(f"{PAGE}?q=ser04").get_data(as_text=True)) == []  # prefix only
    # Paging keeps the filters.
    paged = client.get(f"{PAGE}?q=user0&seat=none").get_data(as_text=True)
    assert 'id="page-next" href="/admin/accounts?page=2&amp;q=user0&amp;seat=none"' in paged


def test_filters_and_sorting(make_web: Callable[..., Web]) -> None:
    web = make_web(users=4)
    client = web.admin_client()  # admin signs in: a seat and a last login
    web.core.ledger.assign(web.core.accounts.get("user001").id, actor="test")
    web.core.ledger.set_pinned(web.core.accounts.get("user001").id, True, actor="test")
    web.core.ledger.assign(web.core.accounts.get("user002").id, actor="test")
    web.core.accounts.set_status("user003", "disabled", actor="test")

    def listed(query: str) -> list[str]:
        answer = client.get(f"{PAGE}?{query}")
        assert answer.status_code == 200
        return _logins(answer.get_data(as_text=True))

    assert listed("seat=held") == ["admin", "user001", "user002"]
    assert listed("seat=pinned") == ["user001"]
    assert listed("seat=none") == ["user000", "user003"]
    assert listed("status=disabled") == ["user003"]
    assert listed("admin=yes") == [ADMIN]
    assert listed("source=csv") == []
    assert listed("sort=login&order=desc")[0] == "user003"
    assert listed("sort=last_login&order=desc")[0] == ADMIN
    web.clock.advance(timedelta(days=40))
    client = web.admin_client()  # a new sign-in: the admin is not idle
    # user001/002's seats were last used at assignment, 40 days ago.
    assert listed("idle=30") == ["user000", "user001", "user002", "user003"]
    web.login(web.client(), "user002")
    assert "user002" not in listed("idle=30")


def test_search_by_the_start_of_a_name_or_an_email(web: Web) -> None:
    web.core.accounts.add(
        "zeta", password="z-pw", actor="test", display_name="Ana Lind", email="al@corp.example"
    )
    client = web.admin_client()
    for query in ("ana", "ANA%20L", "al@", "zet"):
        assert _logins(client.get(f"{PAGE}?q={query}").get_data(as_text=True)) == ["zeta"]
    assert _logins(client.get(f"{PAGE}?q=lind").get_data(as_text=True)) == []
    assert _logins(client.get(f"{PAGE}?q=%25").get_data(as_text=True)) == []  # no wildcard


def test_a_bad_filter_is_named(web: Web) -> None:
    client = web.admin_client()
    for query, field in (("seat=some", "seat"), ("idle=-3", "idle"), ("sort=password", "sort")):
        answer = client.get(f"{PAGE}?{query}")
        assert answer.status_code == 400
        assert f"`{field}`" in answer.get_data(as_text=True)


def test_selection_actions_are_confirmed_and_audited(web: Web) -> None:
    client = web.admin_client()
    logins = ["user001", "user002"]
    html = _confirmed(web, client, "assign", login=logins)
    assert "user001 now holds a seat" in html or all(web.holds(x) for x in logins)
    assert all(web.holds(x) for x in logins)
    _confirmed(web, client, "pin", login=["user001"])
    assert [h.pinned for h in web.core.ledger.holders() if h.login == "user001"] == [True]
    _confirmed(web, client, "disable", login=logins)
    assert {web.core.accounts.get(x).status for x in logins} == {"disabled"}
    assert not any(web.holds(x) for x in logins)
    _confirmed(web, client, "enable", login=["user001"])
    assert web.core.accounts.get("user001").status == "active"
    actors = {e.actor for e in web.events("account.disabled")}
    assert actors == {ADMIN}


def test_a_refusal_is_shown_and_the_rest_is_done(web: Web) -> None:
    client = web.admin_client()
    web.core.ledger.assign(web.core.accounts.get("user001").id, actor="test")
    html = _confirmed(web, client, "revoke", login=["user000", "user001"])
    assert "`user000` holds no seat." in html
    assert not web.holds("user001")


def test_end_sessions_of_an_account(web: Web) -> None:
    user = web.client()
    assert web.login(user, "user000").status_code == 303
    assert user.get("/").status_code == 200
    html = _confirmed(web, web.admin_client(), "end_sessions", login=["user000"])
    assert "Sessions of user000 ended: 1." in html
    assert user.get("/").status_code != 200


def test_add_a_local_account_and_set_its_password(web: Web) -> None:
    client = web.admin_client()
    form = {"login": "nuevo", "name": "Nuevo", "email": "nuevo@example.org"}
    html = _post(web, client, "add", password="a-pw", password_again="b-pw", **form)
    assert "The two passwords differ" in html
    assert web.core.accounts.find("nuevo") is None
    html = _post(web, client, "add", password="s3cret-pw", password_again="s3cret-pw", **form)
    assert "Account nuevo created." in html
    assert web.core.accounts.get("nuevo").email == "nuevo@example.org"
    assert web.login(web.client(), "nuevo", "s3cret-pw").status_code == 303
    html = _post(web, client, "password", login="nuevo", password="n2", password_again="n2")
    assert "Password set for nuevo." in html
    assert web.login(web.client(), "nuevo", "n2").status_code == 303
    assert "s3cret" not in str([e.details for e in web.events()])
    html = _post(web, client, "add", password="x", password_again="x", **form)
    assert "nuevo" in html and web.core.accounts.count() == 5


def test_reassign_from_one_account_to_another(web: Web) -> None:
    client = web.admin_client()
    web.core.ledger.assign(web.core.accounts.get("user000").id, actor="test")
    _confirmed(web, client, "reassign", **{"from": "user000", "to": "user001"})
    assert web.holds("user001") and not web.holds("user000")
    assert [e.actor for e in web.events("seat.reassigned")] == [ADMIN]


def test_without_the_csrf_token_nothing_changes(web: Web) -> None:
    client = web.admin_client()
    data = {"login": "user001", "confirmed": "1"}
    assert client.post(f"{PAGE}/disable", data=data).status_code == 400
    assert web.core.accounts.get("user001").status == "active"


def test_the_page_is_in_spanish_too(web: Web) -> None:
    client = web.admin_client()
    client.set_cookie("seatgate_lang", "es")
    html = client.get(PAGE).get_data(as_text=True)
    assert "Añadir una cuenta local" in html
    assert "4 cuentas coinciden" in html
