"""The console's accounts page in a real browser (Debian's Chromium), without JavaScript help.

The admin searches, checks two accounts, disables them through the
confirmation page and enables them again; the page is saved in English and
Spanish, on a desktop and at 360 px wide, to artifacts/screenshots/.
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
