"""The console's CSV import in a real browser (Debian's Chromium), without JavaScript help.

A user signs in (taking a seat); the admin uploads a file with a bad row and
sees it refused by line, then a good file that disables that user: the
preview names who would lose a seat, and confirming imports it. The pages are
saved in English and Spanish, on a desktop and at 360 px wide, to
artifacts/screenshots/.
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
BAD = b"login,name,email\nfresh1,Fresh One,fresh1@example.com\nfresh2,Fresh Two,not-an-email\n"
GOOD = (
    b"login,name,email,active\n"
    b"fresh1,Fresh One,fresh1@example.com,yes\n"
    b"fresh2,Fresh Two,fresh2@example.com,yes\n"
    b"user001,,,no\n"
)


@pytest.fixture
def admin_page(browser: Browser, gate: Gate) -> Iterator[Page]:
    """A signed-in administrator's page, after user001 signed in and took a seat."""
    user = browser.new_context(locale="en-US")
    user.set_default_timeout(TIMEOUT_MS)
    assert sign_in(user.new_page(), gate, "user001", "user001-pw") == 303
    user.close()
    context = browser.new_context(locale="en-US", viewport={"width": 1280, "height": 900})
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    assert sign_in(page, gate, ADMIN, ADMIN_PASSWORD) == 303
    yield page
    context.close()


def _upload(page: Page, gate: Gate, data: bytes) -> None:
    page.goto(gate.url("/admin"))
    page.click("#nav-imports")
    page.set_input_files(
        "#import-file", files=[{"name": "accounts.csv", "mimeType": "text/csv", "buffer": data}]
    )
    page.click("#import-submit")
    page.wait_for_selector("#import-outcome")


def _screenshots(page: Page, gate: Gate, name: str) -> None:
    """Save the current page in both languages and widths; it must fit 360 px."""
    path = page.url.removeprefix(gate.base_url)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for language in ("en", "es"):
        page.goto(gate.url(f"/language/{language}?next={path}"))
        for label, width in WIDTHS.items():
            page.set_viewport_size({"width": width, "height": 900})
            shot = SCREENSHOTS / f"console-import-{name}-{language}-{label}.png"
            page.screenshot(path=str(shot), full_page=True)
            assert page.evaluate("document.documentElement.scrollWidth") <= width
            if width >= 800:
                assert_png(shot)
    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto(gate.url(f"/language/en?next={path}"))


def test_upload_preview_confirm_and_screenshots(admin_page: Page, gate: Gate) -> None:
    page = admin_page
    page.goto(gate.url("/admin/imports"))
    _screenshots(page, gate, "upload")
    _upload(page, gate, BAD)
    assert page.get_attribute("#import-outcome", "data-state") == "rejected"
    assert "1 bad row; nothing was imported." in page.inner_text("#import-problem-count")
    assert "not-an-email" in page.inner_text('#import-problems tr[data-line="3"]')
    assert page.locator("#import-confirm-submit").count() == 0
    _screenshots(page, gate, "bad-rows")

    _upload(page, gate, GOOD)
    assert page.get_attribute("#import-outcome", "data-state") == "ready"
    assert page.inner_text("#count-created") == "2"
    assert page.inner_text("#count-disabled") == "1"
    assert page.inner_text("#import-seat-losers-list").split() == ["user001"]
    _screenshots(page, gate, "preview")
    page.goto(gate.url("/language/es?next=" + page.url.removeprefix(gate.base_url)))
    assert "Vista previa: todavía no se ha importado nada" in page.inner_text("main")
    page.goto(gate.url("/language/en?next=" + page.url.removeprefix(gate.base_url)))

    page.click("#import-confirm-submit")
    page.wait_for_selector('#import-outcome[data-state="applied"]')
    assert page.inner_text("#count-created") == "2"
    assert "user001" in page.inner_text("#import-seat-losers-list")
    _screenshots(page, gate, "applied")
    page.goto(gate.url("/admin/accounts?q=fresh"))
    assert page.locator("tr[data-login]").count() == 2
