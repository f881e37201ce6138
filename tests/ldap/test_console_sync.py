"""The console's directory page against a real OpenLDAP slapd, through Flask's test client.

"Sync now" previews (a dry run that changes nothing), then the confirmed run
applies through the same core call as ``seatgate sync ldap``, audited as the
admin; past the safety limits the confirmation carries the counts the admin
saw, and a directory that changed since the preview makes the run stop.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest
from flask.testing import FlaskClient

from seatgate.adapters.flask import console_sync
from seatgate.adapters.flask.server import create_app
from seatgate.audit import log as audit
from seatgate.clock import FakeClock
from seatgate.config.ldap import LdapConfig
from seatgate.storage.locks import job_lock
from tests.conftest import add_users
from tests.ldap.conftest import UniqueNames
from tests.ldap.product import (
    PASSWORD,
    Installer,
    directory_rows,
    make_sync,
    next_second,
    openldap_config,
    reader,
    seat_logins,
    snapshot,
    tag_filter,
)
from tests.ldap.servers import OpenLDAP
from tests.web_support import ADMIN, ADMIN_PASSWORD, Web


@pytest.fixture
def console(
    install: Installer, openldap: OpenLDAP, names: UniqueNames, clock: FakeClock
) -> Callable[..., Web]:
    """console(url, **ldap_options) -> the web gate of an installation syncing from slapd."""

    def _console(url: str, ldap: LdapConfig | None = None, **options: Any) -> Web:
        settings: dict[str, Any] = {
            "disabled_attribute": "employeeType",
            "disabled_values": ("disabled",),
            **options,
        }
        config = ldap or openldap_config(openldap, tag_filter(names), **settings)
        core = install(url, config, service_password=openldap.service_password)
        core.accounts.add(ADMIN, password=ADMIN_PASSWORD, actor="test", is_admin=True)
        users = add_users(core, 1)
        app = create_app(core=core)
        app.config["TESTING"] = True
        return Web(core, app, clock, users)

    return _console


def csrf(web: Web, client: FlaskClient) -> str:
    return web.csrf(client, "/admin/directory")


def preview(web: Web, client: FlaskClient, **form: str) -> Any:
    return client.post("/admin/directory/preview", data={"csrf_token": csrf(web, client), **form})


def confirm(web: Web, client: FlaskClient, **form: str) -> Any:
    return client.post("/admin/directory/sync", data={"csrf_token": csrf(web, client), **form})


def text(response: Any) -> str:
    return str(response.get_data(as_text=True))


def figure(page: str, name: str) -> str:
    found = re.search(rf'id="count-{name}">([^<]*)<', page)
    assert found is not None, f"no count-{name} on the page"
    return found.group(1)


def test_preview_changes_nothing_and_the_confirmed_run_applies_as_the_admin(
    openldap: OpenLDAP, names: UniqueNames, console: Callable[..., Web], db_url: str
) -> None:
    people = openldap.add_users_bulk(names.prefix, 6, PASSWORD)
    web = console(db_url)
    client = web.admin_client()
    page = client.get("/admin/directory")
    assert page.status_code == 200
    assert 'id="sync-preview-form"' in text(page) and 'id="runs-none"' in text(page)
    before = snapshot(web.core)

    shown = preview(web, client)

    assert shown.status_code == 200, text(shown)
    assert figure(text(shown), "created") == "6"
    assert all(login in text(shown) for login in people)
    assert snapshot(web.core) == before

    done = confirm(web, client, full="0")

    assert done.status_code == 303
    assert {row["login"] for row in directory_rows(web.core).values()} == set(people)
    events = web.core.db.read(lambda conn: audit.recent(conn, limit=20))
    assert events[0].action == "directory.synced" and events[0].actor == ADMIN
    assert events[0].details["created"] == 6 and events[0].details["server"] == openldap.url
    created = {e.subject for e in events if e.action == "account.created" and e.actor == ADMIN}
    assert created == set(people)
    listed = client.get("/admin/directory")
    assert "Sync done: 6 created" in text(listed)
    assert re.search(r'class="run-actor">admin</td>', text(listed))
    assert "6 created, 0 updated" in text(listed)


def test_past_the_safety_limit_the_confirmation_carries_the_counts_seen(
    openldap: OpenLDAP, names: UniqueNames, console: Callable[..., Web], sqlite_url: str
) -> None:
    people = openldap.add_users_bulk(names.prefix, 20, PASSWORD)
    web = console(sqlite_url)
    make_sync(web.core).run(reader(web.core))  # the scheduled job's first run
    for uid in people[:3]:
        openldap.modify(uid, {"employeeType": "disabled"})
    client = web.admin_client()

    shown = preview(web, client, full="1")

    page = text(shown)
    assert shown.status_code == 200
    assert 'id="held-disables"' in page and "disable or delete 3 of 20" in page
    assert 'name="confirm_disables" value="3"' in page
    assert figure(page, "disabled") == "3"
    assert all(uid in page for uid in people[:3])
    before = snapshot(web.core)

    # Without the counts, or without the tick, the run stops and changes nothing.
    unconfirmed = confirm(web, client, full="1")
    assert unconfirmed.status_code == 409
    assert "disable or delete accounts (3 of 20" in text(unconfirmed)
    untucked = confirm(web, client, full="1", confirm_disables="3")
    assert untucked.status_code == 400 and "Tick the confirmation box" in text(untucked)
    assert snapshot(web.core) == before

    # The directory changes after the preview: the confirmation of 3 is stale.
    openldap.modify(people[3], {"employeeType": "disabled"})
    stale = confirm(web, client, full="1", confirm_disables="3", confirm_held="1")
    assert stale.status_code == 409
    assert "The directory changed since the preview" in text(stale)
    assert "(4 of 20" in text(stale)
    assert snapshot(web.core) == before

    again = preview(web, client, full="1")
    assert 'name="confirm_disables" value="4"' in text(again)
    done = confirm(web, client, full="1", confirm_disables="4", confirm_held="1")
    assert done.status_code == 303
    statuses = {row["login"]: row["status"] for row in directory_rows(web.core).values()}
    assert sorted(login for login, status in statuses.items() if status == "disabled") == sorted(
        people[:4]
    )
    synced = web.core.db.read(lambda conn: audit.recent(conn, limit=1, action="directory.synced"))
    assert synced[0].details["confirmed_disables"] == 4
    listed = text(client.get("/admin/directory"))
    assert "past the safety limits, confirmed" in listed
    assert 'class="run-actor">sync:ldap</td>' in listed  # the scheduled run too


def test_only_admins_with_a_csrf_token_may_preview_or_sync(
    openldap: OpenLDAP, names: UniqueNames, console: Callable[..., Web], sqlite_url: str
) -> None:
    openldap.add_users_bulk(names.prefix, 2, PASSWORD)
    web = console(sqlite_url)
    user = web.client()
    assert web.login(user, web.users[0]).status_code == 303
    token = web.csrf(user, "/")
    assert user.get("/admin/directory").status_code == 403
    for path in ("/admin/directory/preview", "/admin/directory/sync"):
        assert user.post(path, data={"csrf_token": token}).status_code == 403
    anonymous = web.client()
    assert anonymous.post("/admin/directory/sync").status_code in (302, 303)

    admin = web.admin_client()
    for path in ("/admin/directory/preview", "/admin/directory/sync"):
        refused = admin.post(path, data={"csrf_token": "forged"})
        assert refused.status_code == 400
    assert directory_rows(web.core) == {}


def test_bad_fields_are_refused_by_name_and_change_nothing(
    openldap: OpenLDAP, names: UniqueNames, console: Callable[..., Web], sqlite_url: str
) -> None:
    openldap.add_users_bulk(names.prefix, 2, PASSWORD)
    web = console(sqlite_url)
    client = web.admin_client()
    for form, field in (
        ({"full": "yes"}, "full"),
        ({"confirm_disables": "-1"}, "confirm_disables"),
        ({"confirm_seat_revocations": "3x"}, "confirm_seat_revocations"),
    ):
        refused = confirm(web, client, **form)
        assert refused.status_code == 400 and field in text(refused), form
    assert client.get("/admin/directory?before=abc").status_code == 400
    assert directory_rows(web.core) == {}


def test_no_ldap_section_says_so(make_web: Callable[..., Web]) -> None:
    web = make_web()
    client = web.admin_client()
    page = client.get("/admin/directory")
    assert page.status_code == 200
    assert 'id="not-configured"' in text(page) and "no `ldap:` section" in text(page)
    assert 'id="sync-preview-form"' not in text(page)
    refused = preview(web, client)
    assert refused.status_code == 409 and "no `ldap:` section" in text(refused)


def test_a_sync_already_running_is_said_plainly(
    openldap: OpenLDAP, names: UniqueNames, console: Callable[..., Web], db_url: str
) -> None:
    openldap.add_users_bulk(names.prefix, 2, PASSWORD)
    web = console(db_url)
    client = web.admin_client()
    token = csrf(web, client)
    with job_lock(web.core.db, "ldap-sync"):  # as the scheduled job holds it
        for path in ("/admin/directory/preview", "/admin/directory/sync"):
            busy = client.post(path, data={"csrf_token": token})
            assert busy.status_code == 409
            assert "A sync is already running" in text(busy)
    assert directory_rows(web.core) == {}


def test_an_unreachable_directory_changes_nothing(
    openldap: OpenLDAP, names: UniqueNames, console: Callable[..., Web], sqlite_url: str
) -> None:
    base = openldap_config(openldap, tag_filter(names))
    web = console(sqlite_url, ldap=replace(base, url="ldap://127.0.0.1:9", timeout_seconds=2))
    client = web.admin_client()
    before = snapshot(web.core)
    for answer in (preview(web, client), confirm(web, client)):
        assert answer.status_code == 503
        assert "The directory could not be reached; nothing was changed" in text(answer)
    assert snapshot(web.core) == before


def test_a_directory_read_past_the_time_limit_is_abandoned(
    openldap: OpenLDAP,
    names: UniqueNames,
    console: Callable[..., Web],
    sqlite_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    openldap.add_users_bulk(names.prefix, 5, PASSWORD)
    web = console(sqlite_url, page_size=2)
    client = web.admin_client()
    before = snapshot(web.core)
    monkeypatch.setattr(console_sync, "READ_SECONDS", 0)
    slow = confirm(web, client)
    assert slow.status_code == 504
    assert "took longer than 0 seconds (2 entries read)" in text(slow)
    assert snapshot(web.core) == before


def test_the_last_runs_are_listed_newest_first_a_page_at_a_time(
    openldap: OpenLDAP,
    names: UniqueNames,
    console: Callable[..., Web],
    sqlite_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    people = openldap.add_users_bulk(names.prefix, 3, PASSWORD)
    web = console(sqlite_url)
    sync = make_sync(web.core)
    sync.run(reader(web.core))
    openldap.modify(people[0], {"mail": "new@example.com"})
    sync.run(reader(web.core), full=True, actor="someone")
    sync.run(reader(web.core), full=True)
    monkeypatch.setattr(console_sync, "RUNS_PER_PAGE", 2)
    client = web.admin_client()

    first = text(client.get("/admin/directory"))
    rows = re.findall(r'class="run-actor">([^<]*)</td>', first)
    assert rows == ["sync:ldap", "someone"]
    assert "0 created, 1 updated" in first
    older = re.search(r'id="runs-older" href="([^"]+)"', first)
    assert older is not None
    second = text(client.get(older.group(1).replace("&amp;", "&")))
    assert re.findall(r'class="run-actor">([^<]*)</td>', second) == ["sync:ldap"]
    assert "3 created, 0 updated" in second
    assert 'id="runs-older"' not in second and 'id="runs-newest"' in second


def test_exclusive_seat_revocations_past_the_limit_are_confirmed_by_their_own_count(
    openldap: OpenLDAP, names: UniqueNames, console: Callable[..., Web], db_url: str
) -> None:
    people = openldap.add_users_bulk(names.prefix, 10, PASSWORD)
    seat = openldap.add_group(names("seat"), people)
    web = console(db_url, seat_groups=(seat,), seat_groups_mode="exclusive")
    make_sync(web.core).run(reader(web.core))
    assert seat_logins(web.core) - {ADMIN} == set(people)
    next_second()
    openldap.remove_members(seat.split(",", 1)[0].split("=", 1)[1], people[:2])  # 2 of 10
    client = web.admin_client()

    shown = text(preview(web, client))

    assert 'id="held-revocations"' in shown and 'id="held-disables"' not in shown
    assert "revoke the seats of 2 of 10" in shown
    assert 'name="confirm_seat_revocations" value="2"' in shown
    assert figure(shown, "revoked") == "2"
    assert seat_logins(web.core) - {ADMIN} == set(people)
    # A disables confirmation does not confirm revocations.
    wrong = confirm(web, client, confirm_disables="2", confirm_held="1")
    assert wrong.status_code == 409 and "revoke seats (2 of 10" in text(wrong)
    assert seat_logins(web.core) - {ADMIN} == set(people)

    done = confirm(web, client, confirm_seat_revocations="2", confirm_held="1")

    assert done.status_code == 303
    assert seat_logins(web.core) - {ADMIN} == set(people[2:])
    released = web.core.db.read(lambda conn: audit.recent(conn, limit=20, action="seat.released"))
    assert {(e.subject, e.actor) for e in released} == {(p, ADMIN) for p in people[:2]}
