"""The seat limit as a person meets it, in a real browser (Debian's Chromium).

Each user is a separate browser context -- a cookie jar of its own -- that
signs in through the login form. 25 users fill the seats, the 26th is
refused with the seat message, the admin reassigns a seat from the first user
to the refused one on the admin page, the refused user is admitted and the
first user's still-open session ends at its next page load. Screenshots of
the login and admin pages are saved to artifacts/screenshots/ for review.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.e2e.conftest import ADMIN, ADMIN_PASSWORD, SEATS_TOTAL, Gate

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext, Page

SCREENSHOTS = Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
TIMEOUT_MS = 10_000


@pytest.fixture
def open_context(browser: Browser) -> Iterator[Callable[[], BrowserContext]]:
    """open_context() -> a new, empty browser context; all are closed afterwards."""
    opened: list[BrowserContext] = []

    def _open() -> BrowserContext:
        context = browser.new_context(locale="en-US", viewport={"width": 1280, "height": 900})
        context.set_default_timeout(TIMEOUT_MS)
        opened.append(context)
        return context

    yield _open
    for context in opened:
        context.close()


def sign_in(page: Page, gate: Gate, login: str, password: str) -> int:
    """Fill and submit the login form; the status of the form's POST answer."""
    page.goto(gate.url("/login"))
    page.fill("#login", login)
    page.fill("#password", password)
    with page.expect_response(
        lambda r: r.request.method == "POST" and r.url.startswith(gate.url("/login"))
    ) as answer:
        page.click("#login-submit")
    page.wait_for_load_state()
    return answer.value.status


def assert_png(path: Path) -> None:
    data = path.read_bytes()
    assert data.startswith(PNG_SIGNATURE), f"{path} is not a PNG"
    width, height = struct.unpack(">II", data[16:24])  # the IHDR chunk
    assert width >= 800 and height >= 400, f"{path} is only {width}x{height}"
    assert len(data) > 5_000, f"{path} is suspiciously small ({len(data)} bytes)"


def test_seat_limit_refusal_and_reassignment_in_a_real_browser(
    gate: Gate, open_context: Callable[[], BrowserContext]
) -> None:
    from playwright.sync_api import expect

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    login_shot = SCREENSHOTS / "login.png"
    admin_shot = SCREENSHOTS / "admin.png"
    if gate.shoots:
        for old in (login_shot, admin_shot):
            old.unlink(missing_ok=True)

    *holders, refused = gate.users  # user000..user024 fill the seats; user025 is the 26th
    assert len(holders) == 25
    pages: dict[str, Page] = {}

    # 1. 25 users sign in, each in its own context, and land on the portal home page.
    for login in holders:
        page = open_context().new_page()
        pages[login] = page
        assert sign_in(page, gate, login, f"{login}-pw") == 303
        assert page.url == gate.url("/")
        expect(page.locator("#welcome")).to_be_visible()
        expect(page.locator("body")).to_contain_text(login)

    # 2. The 26th is refused on the login page with the seat message.
    refused_page = open_context().new_page()
    assert sign_in(refused_page, gate, refused, f"{refused}-pw") == 403
    assert refused_page.url.startswith(gate.url("/login"))
    message = refused_page.locator("#login-message")
    expect(message).to_have_attribute("data-reason", "no_seat_available")
    expect(message).to_contain_text(f"All {SEATS_TOTAL} seats of the licence are in use")
    expect(message).to_contain_text("Ask an administrator")
    expect(refused_page.locator("#welcome")).to_have_count(0)
    if gate.shoots:
        refused_page.screenshot(path=str(login_shot), full_page=True)

    # 3. The admin signs in (the seat kept for administrators) and opens /admin.
    admin = open_context().new_page()
    assert sign_in(admin, gate, ADMIN, ADMIN_PASSWORD) == 303
    admin.goto(gate.url("/admin"))
    expect(admin.locator("h1")).to_have_text("Seat administration")
    expect(admin.locator("#seats-used")).to_have_text(str(SEATS_TOTAL))
    expect(admin.locator("#seats-free")).to_have_text("0")

    # 4. The reassign form moves user000's seat to the refused user.
    first = holders[0]
    admin.fill("#reassign-from", first)
    admin.fill("#reassign-to", refused)
    admin.click("#reassign-submit")
    admin.wait_for_url(gate.url("/admin"))
    expect(admin.locator(".notice.ok")).to_have_text(f"Seat moved from {first} to {refused}.")
    expect(admin.locator("#seats-used")).to_have_text(str(SEATS_TOTAL))
    if gate.shoots:
        admin.screenshot(path=str(admin_shot), full_page=True)
    admin.fill("#q", refused)
    admin.click("#search-submit")
    expect(admin.locator(f'tr[data-login="{refused}"]')).to_have_attribute("data-seat", "yes")
    admin.fill("#q", first)
    admin.click("#search-submit")
    expect(admin.locator(f'tr[data-login="{first}"]')).to_have_attribute("data-seat", "no")

    # 5. The refused user tries again and is admitted.
    assert sign_in(refused_page, gate, refused, f"{refused}-pw") == 303
    assert refused_page.url == gate.url("/")
    expect(refused_page.locator("#welcome")).to_be_visible()
    expect(refused_page.locator("body")).to_contain_text(refused)

    # 6. user000's open session ends at its next page load: back to the login page.
    displaced = pages[first]
    displaced.reload()
    assert re.match(re.escape(gate.url("/login")) + r"(\?|$)", displaced.url), displaced.url
    expect(displaced.locator("#login-form")).to_be_visible()
    expect(displaced.locator("#welcome")).to_have_count(0)
    # ...while a user who kept a seat stays signed in on reload.
    kept = pages[holders[1]]
    kept.reload()
    assert kept.url == gate.url("/")
    expect(kept.locator("#welcome")).to_be_visible()

    # 7. The screenshots are there for review (taken on one backend: see conftest).
    if gate.shoots:
        for shot in (login_shot, admin_shot):
            assert_png(shot)
