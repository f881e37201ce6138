"""Console pages: audit search, export and chain check; open sessions; seat requests."""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Callable
from datetime import timedelta

import pytest
from flask.testing import FlaskClient
from sqlalchemy import update

from seatgate.audit import search as audit_search
from seatgate.storage.schema import audit_events
from tests.web_support import ADMIN, Web

PAGES = ["/admin/audit", "/admin/sessions", "/admin/requests"]


def _post(web: Web, client: FlaskClient, page: str, path: str, **form: str) -> str:
    token = web.csrf(client, page)
    answer = client.post(path, data={"csrf_token": token, **form})
    assert answer.status_code == 303, answer.get_data(as_text=True)
    assert answer.headers["Location"] == page
    return client.get(page).get_data(as_text=True)


def _ids(html: str) -> list[int]:
    return [int(found) for found in re.findall(r'<tr data-id="(\d+)"', html)]


@pytest.mark.parametrize("path", PAGES)
def test_only_admins_see_the_console_pages(web: Web, path: str) -> None:
    assert web.client().get(path).status_code == 302
    client = web.client()
    web.login(client, "user000")
    assert client.get(path).status_code == 403
    html = web.admin_client().get(path).get_data(as_text=True)
    assert 'id="console-nav"' in html


def test_users_cannot_end_sessions_or_decide_requests(web: Web) -> None:
    client = web.client()
    web.login(client, "user001")
    token = web.csrf(client, "/")
    for path in ("/admin/sessions/end", "/admin/requests/deny", "/admin/audit/verify"):
        answer = client.post(path, data={"csrf_token": token, "login": "user001", "confirm": "yes"})
        assert answer.status_code == 403
    assert (
        web.core.sessions.list(account_id=web.core.accounts.get("user001").id)[0].ended_at is None
    )


def test_the_audit_search_filters_and_pages_by_id(make_web: Callable[..., Web]) -> None:
    web = make_web(users=3)
    for login in ("user000", "user001"):
        web.core.ledger.assign(web.core.accounts.get(login).id, actor="test")
    for _ in range(60):
        web.core.ledger.set_pinned(web.core.accounts.get("user000").id, True, actor="ops")
        web.core.ledger.set_pinned(web.core.accounts.get("user000").id, False, actor="ops")
    client = web.admin_client()
    first = client.get("/admin/audit?actor=ops").get_data(as_text=True)
    ids = _ids(first)
    assert len(ids) == audit_search.PAGE_SIZE and ids == sorted(ids, reverse=True)
    older = re.search(r'id="audit-older" href="([^"]+)"', first)
    assert older is not None
    second = client.get(older.group(1).replace("&amp;", "&")).get_data(as_text=True)
    assert _ids(second) and max(_ids(second)) < min(ids)
    assert 'id="audit-newest"' in second
    by_subject = client.get("/admin/audit?subject=user001&action=seat.assigned")
    rows = re.findall(r"<tr data-id=\"\d+\">(.*?)</tr>", by_subject.get_data(as_text=True))
    assert len(rows) == 1 and "user001" in rows[0] and "seat.assigned" in rows[0]
    none = client.get("/admin/audit?actor=ops&until=2000-01-01").get_data(as_text=True)
    assert 'id="audit-none"' in none


@pytest.mark.parametrize(
    ("query", "field"),
    [("since=yesterday", "since"), ("until=2026-13-01", "until"), ("before=x", "before")],
)
def test_a_bad_search_field_is_named(web: Web, query: str, field: str) -> None:
    answer = web.admin_client().get(f"/admin/audit?{query}")
    assert answer.status_code == 400
    assert f"The field {field} is not a" in answer.get_data(as_text=True)


def test_a_range_that_ends_before_it_starts_is_refused(web: Web) -> None:
    answer = web.admin_client().get("/admin/audit?since=2026-03-02&until=2026-03-01")
    assert answer.status_code == 400
    assert "ends before it starts" in answer.get_data(as_text=True)
    export = web.admin_client().get("/admin/audit/export.csv?since=2026-03-02&until=2026-03-01")
    assert export.status_code == 400


def test_exports_hold_the_search_as_csv_and_json(web: Web) -> None:
    web.core.accounts.add("eve", password="eve-pw-long-enough", actor="=SUM(A1)")
    client = web.admin_client()
    as_json = client.get("/admin/audit/export.json?action=account.created")
    assert as_json.status_code == 200
    assert "attachment" in as_json.headers["Content-Disposition"]
    documents = json.loads(as_json.get_data(as_text=True))
    assert documents and {d["action"] for d in documents} == {"account.created"}
    assert [d["id"] for d in documents] == sorted((d["id"] for d in documents), reverse=True)
    as_csv = client.get("/admin/audit/export.csv?action=account.created")
    assert as_csv.mimetype == "text/csv"
    rows = list(csv.DictReader(io.StringIO(as_csv.get_data(as_text=True))))
    assert [int(r["id"]) for r in rows] == [d["id"] for d in documents]
    # A cell a spreadsheet would run as a formula starts with a quote.
    assert "'=SUM(A1)" in {r["actor"] for r in rows}
    assert client.get("/admin/audit/export.xml").status_code == 404


def test_an_export_of_too_many_events_is_refused(web: Web, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(audit_search, "EXPORT_LIMIT", 3)
    monkeypatch.setattr(audit_search, "EXPORT_CHUNK", 2)
    client = web.admin_client()
    answer = client.get("/admin/audit/export.csv")
    assert answer.status_code == 400
    assert "Narrow it" in answer.get_data(as_text=True)
    small = client.get(f"/admin/audit/export.json?actor={ADMIN}&action=login")
    assert small.status_code == 200
    assert len(json.loads(small.get_data(as_text=True))) == 1


def test_the_chain_is_checked_on_demand_and_an_edit_shows(web: Web) -> None:
    client = web.admin_client()
    page = client.get("/admin/audit").get_data(as_text=True)
    assert 'id="chain-head"' in page and 'id="chain-state"' not in page
    token = web.csrf(client, "/admin/audit")
    intact = client.post("/admin/audit/verify", data={"csrf_token": token}).get_data(as_text=True)
    assert 'data-intact="yes"' in intact
    web.core.db.write(
        lambda conn: conn.execute(
            update(audit_events).where(audit_events.c.id == 2).values(actor="someone else")
        )
    )
    broken = client.post("/admin/audit/verify", data={"csrf_token": token}).get_data(as_text=True)
    assert 'data-intact="no"' in broken
    assert client.post("/admin/audit/verify", data={}).status_code == 400


def test_open_sessions_are_listed_and_ended_for_one_account(web: Web) -> None:
    user = web.client()
    web.login(user, "user000")
    assert user.get("/").status_code == 200
    client = web.admin_client()
    page = client.get("/admin/sessions").get_data(as_text=True)
    assert 'data-login="user000"' in page and f'data-login="{ADMIN}"' in page
    only = client.get("/admin/sessions?login=USER000").get_data(as_text=True)
    assert 'data-login="user000"' in only and f'data-login="{ADMIN}"' not in only
    # Unconfirmed: nothing changes.
    refused = _post(web, client, "/admin/sessions", "/admin/sessions/end", login="user000")
    assert "Tick the confirmation box" in refused and 'data-login="user000"' in refused
    ended = _post(
        web, client, "/admin/sessions", "/admin/sessions/end", login="user000", confirm="yes"
    )
    assert "1 session of user000 ended." in ended
    assert 'data-login="user000"' not in ended
    assert user.get("/").status_code == 302
    (event,) = web.events("session.ended")[:1]
    assert event.actor == ADMIN and event.subject == "user000"
    assert event.outcome == "ended_by_admin"
    unknown = _post(
        web, client, "/admin/sessions", "/admin/sessions/end", login="nobody", confirm="yes"
    )
    assert "nobody" in unknown


def test_seat_requests_are_approved_and_denied(make_web: Callable[..., Web]) -> None:
    web = make_web(users=3)
    for login in ("user001", "user002"):
        web.core.seat_requests.record(web.core.accounts.get(login).id, login)
    client = web.admin_client()
    page = client.get("/admin/requests").get_data(as_text=True)
    assert 'data-login="user001"' in page and 'data-login="user002"' in page
    refused = _post(web, client, "/admin/requests", "/admin/requests/deny", login="user002")
    assert "Tick the confirmation box" in refused and 'data-login="user002"' in refused
    denied = _post(
        web, client, "/admin/requests", "/admin/requests/deny", login="user002", confirm="yes"
    )
    assert 'data-login="user002"' not in denied
    assert web.events("seat.request_denied")[0].actor == ADMIN
    assert not web.holds("user001")
    _post(web, client, "/admin/requests", "/admin/requests/approve", login="user001", confirm="yes")
    assert web.holds("user001")
    assert 'id="requests-none"' in client.get("/admin/requests").get_data(as_text=True)


def test_an_approval_can_take_someone_elses_seat(make_web: Callable[..., Web]) -> None:
    web = make_web(seats=25, users=26)
    client = web.admin_client()
    for n in range(24):
        web.core.ledger.assign(web.core.accounts.get(f"user{n:03}").id, actor="test")
    web.core.seat_requests.record(web.core.accounts.get("user025").id, "user025")
    full = _post(
        web, client, "/admin/requests", "/admin/requests/approve", login="user025", confirm="yes"
    )
    assert 'class="notice error"' in full and not web.holds("user025")
    _post(
        web,
        client,
        "/admin/requests",
        "/admin/requests/approve",
        login="user025",
        replace="user000",
        confirm="yes",
    )
    assert web.holds("user025") and not web.holds("user000")
    (event,) = web.events("seat.request_approved")
    assert event.actor == ADMIN and event.subject == "user025"


def test_the_pages_speak_spanish(web: Web) -> None:
    client = web.admin_client()
    client.set_cookie("seatgate_lang", "es")
    assert "Registro de auditoría" in client.get("/admin/audit").get_data(as_text=True)
    assert "Sesiones abiertas" in client.get("/admin/sessions").get_data(as_text=True)
    assert "Solicitudes de plaza" in client.get("/admin/requests").get_data(as_text=True)


def test_one_session_is_ended_and_the_others_stay(web: Web) -> None:
    phone, laptop = web.client(), web.client()
    web.login(phone, "user000")
    web.clock.advance(timedelta(seconds=5))
    web.login(laptop, "user000")
    client = web.admin_client()
    page = client.get("/admin/sessions?login=user000").get_data(as_text=True)
    opened = re.findall(r'name="opened" value="([^"]+)"', page)
    assert len(opened) == 2  # newest first: the laptop's
    ended = _post(
        web,
        client,
        "/admin/sessions",
        "/admin/sessions/end",
        login="user000",
        opened=opened[0],
        confirm="yes",
    )
    assert "1 session of user000 ended." in ended
    assert laptop.get("/").status_code == 302
    assert phone.get("/").status_code == 200
    (event,) = web.events("session.ended")[:1]
    assert event.actor == ADMIN and event.outcome == "ended_by_admin"
    bad = _post(
        web,
        client,
        "/admin/sessions",
        "/admin/sessions/end",
        login="user000",
        opened="yesterday",
        confirm="yes",
    )
    assert "opened" in bad and phone.get("/").status_code == 200
