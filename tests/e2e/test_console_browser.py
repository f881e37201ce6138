"""The console's seat-use charts and licence page in a real browser (Debian's Chromium).

The admin signs in, reads the three charts (SVG drawn by the server, no
script), downloads one chart's CSV, opens the licence page and previews
removing the add-on without removing it. Screenshots of each page in English
and Spanish, at desktop and at 360 px phone width, go to artifacts/screenshots/.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.e2e.conftest import ADMIN, ADMIN_PASSWORD, SEATS_TOTAL, Gate

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext, Page

SCREENSHOTS = Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"
SIZES = {"desktop": {"width": 1280, "height": 900}, "phone": {"width": 360, "height": 740}}


@pytest.fixture
def admin_context(browser: Browser, gate: Gate) -> Iterator[BrowserContext]:
    """A browser context signed in as the admin (the seat kept for administrators)."""
    context = browser.new_context(locale="en-US", viewport=SIZES["desktop"])
    context.set_default_timeout(10_000)
    page = context.new_page()
    page.goto(gate.url("/login"))
    page.fill("#login", ADMIN)
    page.fill("#password", ADMIN_PASSWORD)
    page.click("#login-submit")
    page.wait_for_url(gate.url("/"))
    page.close()
    yield context
    context.close()


def _shoot(page: Page, name: str, gate: Gate) -> None:
    """One screenshot per size of the page as it is now; each a real PNG of that width.

    Taken on one backend only (see tests/e2e/conftest.py).
    """
    if not gate.shoots:
        return
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for size, viewport in SIZES.items():
        page.set_viewport_size(viewport)
        path = SCREENSHOTS / f"{name}-{size}.png"
        page.screenshot(path=str(path), full_page=True)
        data = path.read_bytes()
        assert data.startswith(b"\x89PNG\r\n\x1a\n"), path
        width = struct.unpack(">I", data[16:20])[0]
        assert width == viewport["width"], f"{path}: {width} px wide, content overflows"
    page.set_viewport_size(SIZES["desktop"])


def test_charts_and_licence_pages_in_both_languages(
    admin_context: BrowserContext, gate: Gate
) -> None:
    from playwright.sync_api import expect

    page = admin_context.new_page()
    page.goto(gate.url("/admin"))
    page.click("#charts-link")
    page.wait_for_url(gate.url("/admin/charts"))
    for chart in ("seats-daily-chart", "seats-monthly-chart", "logins-daily-chart"):
        expect(page.locator(f"svg#{chart}")).to_be_visible()
        expect(page.locator(f"svg#{chart}")).to_have_attribute("role", "img")
    expect(page.locator("#seats-daily-chart title").first).to_have_text(
        "Seats held and entitled per day"
    )
    expect(page.locator('tr[data-outcome="allowed"] .count')).to_have_text("1")
    with page.expect_download() as download:
        page.click("#seats-daily-csv")
    lines = Path(download.value.path()).read_text(encoding="utf-8").splitlines()
    assert lines[0] == "day,seats_held,seats_entitled"
    assert lines[-1].endswith(f",1,{SEATS_TOTAL}")
    _shoot(page, "console-charts-en", gate)

    page.goto(gate.url("/admin/licence"))
    expect(page.locator("#token-table tr[data-jti]")).to_have_count(2)
    expect(page.locator("#seats-total")).to_have_text(str(SEATS_TOTAL))
    _shoot(page, "console-licence-en", gate)
    page.locator("button.remove-token").first.click()
    expect(page.locator("#remove-preview")).to_be_visible()
    expect(page.locator("#preview-seats")).to_have_text(str(SEATS_TOTAL - 1))
    _shoot(page, "console-licence-remove-en", gate)
    page.click("#remove-cancel")
    page.wait_for_url(gate.url("/admin/licence"))
    expect(page.locator("#token-table tr[data-jti]")).to_have_count(2)

    page.click("#lang-es")
    expect(page.locator("h1")).to_have_text("Licencia")
    _shoot(page, "console-licence-es", gate)
    page.goto(gate.url("/admin/charts"))
    expect(page.locator("h1")).to_have_text("Uso de plazas")
    _shoot(page, "console-charts-es", gate)
