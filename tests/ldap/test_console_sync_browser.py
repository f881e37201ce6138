"""The console's directory sync in a real browser (Debian's Chromium) against a real slapd.

The admin opens the directory page from the console menu, previews a first
sync (nothing changes), confirms it, then meets the safety limit: three
users disabled in the directory are more than ``max_disable_ratio`` allows,
so the preview says so and asks for the tick. A fourth user disabled after
that preview makes its confirmation stale -- the run stops, changing
nothing -- and a new preview's confirmation goes through. Without
JavaScript, with the keyboard-reachable forms only. Screenshots in English,
Spanish and at 360 px wide go to artifacts/screenshots/.

Needs both slapd and the browser: run under both flocks.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

from seatgate.adapters.flask.server import create_app
from seatgate.app import Core
from seatgate.clock import FakeClock
from tests.browser_support import axe_problems, chromium, inject_axe, require_axe, served
from tests.e2e.conftest import Gate
from tests.e2e.test_browser import SCREENSHOTS, TIMEOUT_MS, assert_png, sign_in
from tests.ldap.conftest import UniqueNames
from tests.ldap.product import PASSWORD, Installer, directory_rows, openldap_config, tag_filter
from tests.ldap.servers import OpenLDAP
from tests.web_support import ADMIN, ADMIN_PASSWORD

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

PEOPLE = 12  # three disabled are 25 %, past the default max_disable_ratio of 10 %


@pytest.fixture
def browser() -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


@pytest.fixture
def gate(
    openldap: OpenLDAP,
    names: UniqueNames,
    vendor_key: Any,
    clock: FakeClock,
    mint: Any,
    monkeypatch: pytest.MonkeyPatch,
    db_url: str,
) -> Iterator[tuple[Gate, list[str], Core]]:
    """The gate of an installation syncing this test's slapd users (SQLite, then PostgreSQL)."""
    people = openldap.add_users_bulk(names.prefix, PEOPLE, PASSWORD)
    installer = Installer(vendor_key, clock, mint, monkeypatch)
    ldap = openldap_config(
        openldap,
        tag_filter(names),
        disabled_attribute="employeeType",
        disabled_values=("disabled",),
    )
    core = installer(db_url, ldap, service_password=openldap.service_password)
    core.accounts.add(ADMIN, password=ADMIN_PASSWORD, actor="test", is_admin=True)
    try:
        with served(create_app(core=core)) as base_url:
            backend = "postgres" if db_url.startswith("postgresql") else "sqlite"
            yield Gate(base_url, people, backend), people, core
    finally:
        installer.close()


def _shoot(page: Page, name: str) -> None:
    width = page.viewport_size["width"] if page.viewport_size else 0
    shot = SCREENSHOTS / (name + ("" if width >= 800 else f"-{width}") + ".png")
    page.screenshot(path=str(shot), full_page=True)
    if width >= 800:
        assert_png(shot)
    else:
        assert shot.read_bytes().startswith(b"\x89PNG") and shot.stat().st_size > 3_000


def _preview(page: Page, *, full: bool = False) -> None:
    if full:
        page.check("#sync-full")
    page.click("#sync-preview-submit")
    page.wait_for_load_state()


def _confirm(page: Page) -> None:
    page.click("#sync-confirm-submit")
    page.wait_for_load_state()


def test_sync_now_preview_and_confirm_in_a_real_browser(
    browser: Browser,
    gate: tuple[Gate, list[str], Core],
    openldap: OpenLDAP,
) -> None:
    from playwright.sync_api import expect

    site, people, core = gate
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    context = browser.new_context(
        locale="en-US", viewport={"width": 1280, "height": 900}, java_script_enabled=False
    )
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    try:
        assert sign_in(page, site, ADMIN, ADMIN_PASSWORD) == 303
        page.goto(site.url("/admin"))
        page.click("#nav-directory")
        expect(page.locator("h1")).to_have_text("Directory sync")
        expect(page.locator("#runs-none")).to_be_visible()

        # 1. The first sync: a preview that changes nothing, then the run.
        _preview(page)
        expect(page.locator("#count-created")).to_have_text(str(PEOPLE))
        expect(page.locator("#list-created li")).to_have_count(PEOPLE)
        _shoot(page, "console-directory-preview-en")
        _confirm(page)
        expect(page.locator(".notice")).to_contain_text(f"Sync done: {PEOPLE} created")
        expect(page.locator("#runs-table tbody tr")).to_have_count(1)
        expect(page.locator("#runs-table .run-actor")).to_have_text(ADMIN)

        # 2. Past the safety limit: the preview holds, and says what to confirm.
        for uid in people[:3]:
            openldap.modify(uid, {"employeeType": "disabled"})
        _preview(page, full=True)
        expect(page.locator("#held-disables")).to_contain_text("3 of 12")
        expect(page.locator("#list-disabled li")).to_have_count(3)
        _shoot(page, "console-directory-held-en")
        # The box must be ticked: the browser does not send the form without it.
        page.click("#sync-confirm-submit")
        expect(page.locator("#held-disables")).to_be_visible()

        # 3. The directory changes after the preview: that confirmation is stale.
        openldap.modify(people[3], {"employeeType": "disabled"})
        page.check("#confirm-held")
        _confirm(page)
        expect(page.locator("#sync-error")).to_contain_text("changed since the preview")
        expect(page.locator("#sync-error")).to_contain_text("4 of 12")
        expect(page.locator("#runs-table tbody tr")).to_have_count(1)

        # 4. A new preview, confirmed: applied.
        _preview(page, full=True)
        expect(page.locator("#held-disables")).to_contain_text("4 of 12")
        page.check("#confirm-held")
        _confirm(page)
        expect(page.locator(".notice")).to_contain_text("4 disabled")
        expect(page.locator("#runs-table tbody tr")).to_have_count(2)
        _shoot(page, "console-directory-en")
        statuses = {row["login"]: row["status"] for row in directory_rows(core).values()}
        assert sorted(login for login, s in statuses.items() if s == "disabled") == people[:4]

        # 5. In Spanish, and at phone width.
        page.goto(site.url("/language/es?next=/admin/directory"))
        expect(page.locator("h1")).to_have_text("Sincronización con el directorio")
        _shoot(page, "console-directory-es")
        _preview(page)
        expect(page.locator("#preview-nothing")).to_have_text("No cambiaría nada.")
        _shoot(page, "console-directory-preview-es")
        page.set_viewport_size({"width": 360, "height": 800})
        for language in ("es", "en"):
            page.goto(site.url(f"/language/{language}?next=/admin/directory"))
            _shoot(page, f"console-directory-{language}")
            # Nothing wider than the phone: the runs table scrolls in its own box.
            assert page.evaluate("document.documentElement.scrollWidth") <= 360
        openldap.modify(people[4], {"employeeType": "disabled"})
        openldap.modify(people[5], {"employeeType": "disabled"})
        _preview(page, full=True)
        expect(page.locator("#held-disables")).to_be_visible()
        assert page.evaluate("document.documentElement.scrollWidth") <= 360
        _shoot(page, "console-directory-held-en")
    finally:
        context.close()


def test_the_directory_pages_pass_axe_in_both_languages_and_at_phone_width(
    browser: Browser,
    gate: tuple[Gate, list[str], Core],
    openldap: OpenLDAP,
) -> None:
    """axe-core finds no serious or critical violation on the directory page and its previews."""
    require_axe()
    site, people, _core = gate
    # The pages allow no script of their own: axe is injected past their policy.
    context = browser.new_context(
        locale="en-US", viewport={"width": 1280, "height": 900}, bypass_csp=True
    )
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    problems: list[str] = []

    def check(name: str) -> None:
        inject_axe(page)
        for width in (1280, 360):
            page.set_viewport_size({"width": width, "height": 900})
            problems.extend(f"{name} at {width} px: {found}" for found in axe_problems(page))

    try:
        assert sign_in(page, site, ADMIN, ADMIN_PASSWORD) == 303
        for language in ("en", "es"):
            page.set_viewport_size({"width": 1280, "height": 900})
            page.goto(site.url(f"/language/{language}?next=/admin/directory"))
            check(f"directory ({language})")
            _preview(page)
            check(f"first preview ({language})")
        _confirm(page)
        check("after a run")
        for uid in people[:3]:
            openldap.modify(uid, {"employeeType": "disabled"})
        page.set_viewport_size({"width": 1280, "height": 900})
        _preview(page, full=True)
        check("preview held at the safety limit")
    finally:
        context.close()
    assert not problems, "\n".join(problems)
