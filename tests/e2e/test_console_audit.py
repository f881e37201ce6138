"""The console's audit, sessions and seat-request pages in a real browser (Debian's Chromium).

25 users fill the seats and the 26th is refused, which records its seat
request. The admin approves it into user000's seat, ends user001's sessions,
finds the approval in the audit log and checks the chain, all with the
keyboard-reachable forms and without JavaScript. Screenshots of the three
pages, in English and Spanish, at desktop and 360 px width, are saved to
artifacts/screenshots/.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import pytest

from tests.e2e.conftest import ADMIN, ADMIN_PASSWORD, Gate
from tests.e2e.test_browser import PNG_SIGNATURE, SCREENSHOTS, TIMEOUT_MS, sign_in

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext, Page

PAGES = {"audit": "/admin/audit", "sessions": "/admin/sessions", "requests": "/admin/requests"}


@pytest.fixture
def open_context(browser: Browser) -> Iterator[Callable[..., BrowserContext]]:
    """open_context(width=1280) -> a new, empty browser context; all are closed afterwards."""
    opened: list[BrowserContext] = []

    def _open(width: int = 1280) -> BrowserContext:
        context = browser.new_context(
            locale="en-US", viewport={"width": width, "height": 900}, java_script_enabled=False
        )
        context.set_default_timeout(TIMEOUT_MS)
        opened.append(context)
        return context

    yield _open
    for context in opened:
        context.close()


def _shoot(page: Page, gate: Gate, name: str) -> None:
    """Screenshots of the three pages in both languages at the page's width."""
    width = page.viewport_size["width"] if page.viewport_size else 0
    suffix = "" if width >= 800 else f"-{width}"
    for language in ("en", "es"):
        page.goto(gate.url(f"/language/{language}?next=/admin/audit"))
        for key, path in PAGES.items():
            page.goto(gate.url(path))
            shot = SCREENSHOTS / f"console-{key}-{language}{suffix}.png"
            page.screenshot(path=str(shot), full_page=True)
            data = shot.read_bytes()
            assert data.startswith(PNG_SIGNATURE) and len(data) > 3_000, name


def test_console_audit_sessions_and_requests_in_a_real_browser(
    gate: Gate, open_context: Callable[..., BrowserContext]
) -> None:
    from playwright.sync_api import expect

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    *holders, refused = gate.users
    users: dict[str, Page] = {}
    for login in holders:
        users[login] = open_context().new_page()
        assert sign_in(users[login], gate, login, f"{login}-pw") == 303
    assert sign_in(open_context().new_page(), gate, refused, f"{refused}-pw") == 403

    admin = open_context().new_page()
    assert sign_in(admin, gate, ADMIN, ADMIN_PASSWORD) == 303
    admin.goto(gate.url("/admin"))
    admin.click("#nav-requests")
    expect(admin.locator("h1")).to_have_text("Seat requests")
    expect(admin.locator(f'#requests-table tr[data-login="{refused}"]')).to_have_count(1)
    if gate.shoots:
        pending = SCREENSHOTS / "console-requests-pending-en.png"
        admin.screenshot(path=str(pending), full_page=True)
        assert pending.read_bytes().startswith(PNG_SIGNATURE)
    # Approve into user000's seat: typed, confirmed, submitted from the keyboard.
    admin.fill("#replace-1", holders[0])
    admin.check("#approve-confirm-1")
    admin.focus("#approve-1")
    admin.keyboard.press("Enter")
    admin.wait_for_url(gate.url("/admin/requests"))
    expect(admin.locator(".notice.ok")).to_contain_text(refused)
    expect(admin.locator("#requests-none")).to_be_visible()

    admin.click("#nav-sessions")
    admin.fill("#sessions-login", holders[1])
    admin.click("#sessions-search-submit")
    expect(admin.locator(f'#sessions-table tr[data-login="{holders[1]}"]')).to_have_count(1)
    admin.check("#end-confirm")
    admin.click("#end-sessions-submit")
    admin.wait_for_url(gate.url("/admin/sessions"))
    expect(admin.locator(".notice.ok")).to_have_text(f"1 session of {holders[1]} ended.")
    users[holders[1]].reload()
    assert re.match(re.escape(gate.url("/login")), users[holders[1]].url)
    # One session, from its row: the per-row form names it by its opening time.
    admin.fill("#sessions-login", holders[2])
    admin.click("#sessions-search-submit")
    admin.check("#end-one-confirm-1")
    admin.click("#end-one-1")
    admin.wait_for_url(gate.url("/admin/sessions"))
    expect(admin.locator(".notice.ok")).to_have_text(f"1 session of {holders[2]} ended.")
    users[holders[2]].reload()
    assert re.match(re.escape(gate.url("/login")), users[holders[2]].url)
    users[holders[3]].reload()
    assert users[holders[3]].url == gate.url("/")

    admin.click("#nav-audit")
    admin.fill("#f-action", "seat.request_approved")
    admin.click("#audit-search-submit")
    expect(admin.locator("#audit-table tbody tr")).to_have_count(1)
    expect(admin.locator("#audit-table tbody tr")).to_contain_text(refused)
    admin.click("#verify-submit")
    expect(admin.locator("#chain-state")).to_have_attribute("data-intact", "yes")

    if not gate.shoots:  # the screenshot loops on one backend only (see conftest)
        return
    _shoot(admin, gate, "desktop")
    phone = open_context(width=360).new_page()
    assert sign_in(phone, gate, ADMIN, ADMIN_PASSWORD) == 303
    _shoot(phone, gate, "phone")
