"""The console's accounts page in a real browser (Debian's Chromium), without JavaScript help.

The admin searches, checks two accounts, disables them through the
confirmation page and enables them again; the page is saved in English and
Spanish, on a desktop and at 360 px wide, to artifacts/screenshots/. Then
every other account action: add a local account, set its password (a
mismatch refused), end its session (the user's next page is the sign-in),
pin, unpin, reassign, assign and revoke its seat, each confirmed and audited
as the admin.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from tests.e2e.conftest import ADMIN, ADMIN_PASSWORD, Gate
from tests.e2e.test_browser import SCREENSHOTS, TIMEOUT_MS, assert_png, sign_in

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

WIDTHS = {"desktop": 1280, "360": 360}


@pytest.fixture
def admin_page(browser: Browser, gate: Gate) -> Iterator[Page]:
    """A signed-in administrator's page on a desktop-sized window."""
    context = browser.new_context(locale="en-US", viewport={"width": 1280, "height": 900})
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    assert sign_in(page, gate, ADMIN, ADMIN_PASSWORD) == 303
    yield page
    context.close()


def _act_on_selection(page: Page, action: str) -> None:
    for login in ("user001", "user002"):
        page.check(f'tr[data-login="{login}"] input[type=checkbox]')
    page.click(f"#selected-{action}")
    page.wait_for_selector("#confirm-logins")
    assert page.inner_text("#confirm-logins").split() == ["user001", "user002"]
    page.click("#confirm-submit")
    page.wait_for_load_state()


def test_search_select_confirm_and_screenshots(admin_page: Page, gate: Gate) -> None:
    page = admin_page
    page.goto(gate.url("/admin"))
    page.click("#console-accounts-link")
    page.fill("#f-q", "user00")
    page.click("#filter-submit")
    assert "q=user00" in page.url
    assert page.locator("tr[data-login]").count() == 10

    _act_on_selection(page, "disable")
    assert "user001 is disabled." in page.inner_text("main")
    assert page.inner_text('tr[data-login="user001"] td:nth-child(6)') == "disabled"
    assert "q=user00" in page.url  # back on the same view

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    # The screenshots on one backend only (see tests/e2e/conftest.py); the flow on both.
    for language in ("en", "es") if gate.shoots else ("es",):
        page.goto(gate.url(f"/language/{language}?next=/admin/accounts?q=user00"))
        for name, width in WIDTHS.items() if gate.shoots else ():
            page.set_viewport_size({"width": width, "height": 900})
            shot = SCREENSHOTS / f"console-accounts-{language}-{name}.png"
            page.screenshot(path=str(shot), full_page=True)
            if width >= 800:
                assert_png(shot)
    page.set_viewport_size({"width": 1280, "height": 900})
    assert "Añadir una cuenta local" in page.inner_text("main")

    _act_on_selection(page, "enable")
    assert page.inner_text('tr[data-login="user002"] td:nth-child(6)') == "active"


def _row(page: Page, login: str, action: str) -> None:
    """Press ``action`` on ``login``'s row and confirm it."""
    page.goto(f"{page.url.split('/admin')[0]}/admin/accounts?q={login}")
    page.click(f'tr[data-login="{login}"] button.row-{action}')
    page.wait_for_selector("#confirm-logins")
    assert page.inner_text("#confirm-logins").split() == [login]
    page.click("#confirm-submit")
    page.wait_for_load_state()


def test_add_set_password_end_sessions_and_every_seat_action(
    admin_page: Page, gate: Gate, browser: Browser
) -> None:
    """Each account action through the browser, on what the user and the table then show."""
    from playwright.sync_api import expect

    page = admin_page
    page.goto(gate.url("/admin/accounts"))
    page.fill("#add-login", "newcomer")
    page.fill("#add-name", "New Comer")
    page.fill("#add-password", "first-pw-1")
    page.fill("#add-password-again", "first-pw-1")
    page.click("#add-submit")
    page.wait_for_load_state()
    expect(page.locator("main")).to_contain_text("Account newcomer created.")

    page.fill("#password-login", "newcomer")
    page.fill("#password-new", "second-pw-2")
    page.fill("#password-again", "not-the-same")
    page.click("#password-submit")
    page.wait_for_load_state()
    expect(page.locator("main")).to_contain_text("The two passwords differ")
    page.fill("#password-login", "newcomer")
    page.fill("#password-new", "second-pw-2")
    page.fill("#password-again", "second-pw-2")
    page.click("#password-submit")
    page.wait_for_load_state()
    expect(page.locator("main")).to_contain_text("Password set for newcomer.")

    # The new account signs in with the new password (and takes a free seat)...
    user_context = browser.new_context(locale="en-US")
    user_context.set_default_timeout(TIMEOUT_MS)
    user = user_context.new_page()
    try:
        assert sign_in(user, gate, "newcomer", "first-pw-1") != 303
        assert sign_in(user, gate, "newcomer", "second-pw-2") == 303
        # ... and its session ends when the admin ends it.
        _row(page, "newcomer", "end_sessions")
        expect(page.locator("main")).to_contain_text("Sessions of newcomer ended: 1.")
        user.goto(gate.url("/"))
        assert user.url.startswith(gate.url("/login")), user.url
    finally:
        user_context.close()

    seat = page.locator('tr[data-login="newcomer"]')
    expect(seat).to_have_attribute("data-seat", "yes")
    _row(page, "newcomer", "pin")
    expect(page.locator('tr[data-login="newcomer"]')).to_have_attribute("data-seat", "pinned")
    _row(page, "newcomer", "unpin")
    expect(page.locator('tr[data-login="newcomer"]')).to_have_attribute("data-seat", "yes")

    # Reassign the seat to user010 (who holds none), confirmed on its own page.
    page.fill("#reassign-from", "newcomer")
    page.fill("#reassign-to", "user010")
    page.click("#reassign-submit")
    page.wait_for_selector("#confirm-what")
    expect(page.locator("#confirm-what")).to_have_text("Move the seat of newcomer to user010?")
    page.click("#confirm-submit")
    page.wait_for_load_state()
    page.goto(gate.url("/admin/accounts?q=user010"))
    expect(page.locator('tr[data-login="user010"]')).to_have_attribute("data-seat", "yes")
    page.goto(gate.url("/admin/accounts?q=newcomer"))
    expect(page.locator('tr[data-login="newcomer"]')).to_have_attribute("data-seat", "no")

    _row(page, "newcomer", "assign")
    expect(page.locator('tr[data-login="newcomer"]')).to_have_attribute("data-seat", "yes")
    _row(page, "newcomer", "revoke")
    expect(page.locator('tr[data-login="newcomer"]')).to_have_attribute("data-seat", "no")

    # Every change is in the audit log as the admin's (its JSON export, with the admin's cookie).
    exported = page.context.request.get(gate.url("/admin/audit/export.json?subject=newcomer"))
    assert exported.ok
    done = {(event["action"], event["actor"]) for event in exported.json()}
    for action in (
        "account.created",
        "account.password_set",
        "session.ended",
        "seat.pinned",
        "seat.unpinned",
        "seat.assigned",
        "seat.released",
    ):
        assert (action, ADMIN) in done, (action, sorted(done))
    moved = page.context.request.get(gate.url("/admin/audit/export.json?action=seat.reassigned"))
    assert [(e["actor"], e["subject"]) for e in moved.json()] == [(ADMIN, "user010")]
