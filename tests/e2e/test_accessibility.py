"""Every console page is accessible, usable by keyboard and fits a phone (Debian's Chromium).

Each page of tests/e2e/console_pages.py is opened in English and Spanish,
at desktop and at 360 px width. On each, axe-core (the npm package, put in
.cache/axe/ by scripts/ensure-axe) runs in the page and no violation of
impact "serious" or "critical" may remain; the page must not scroll
sideways at 360 px; a screenshot goes to artifacts/screenshots/ as
console-<page>-<language>-<width>.png. Then, per page, the Tab key alone
must reach every link, button and field, each showing a visible focus ring.

These loops run on one backend (SQLite): they look at the pages, which do
not change with the database; every flow runs on both in the other modules.
With CI=true a missing axe-core fails; elsewhere it skips with the reason.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from seatgate.licensing.vendor import VendorKey
from tests.browser_support import axe_problems, inject_axe, require_axe
from tests.e2e.conftest import ADMIN, ADMIN_PASSWORD, SCREENSHOT_BACKEND, Gate, serve
from tests.e2e.console_pages import PAGES, ConsolePage, Prepared, Who, prepare
from tests.e2e.test_browser import PNG_SIGNATURE, SCREENSHOTS, TIMEOUT_MS, sign_in

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext, Page

WIDTHS = (1280, 360)
LANGUAGES = ("en", "es")
# Every control a person acts with; each gets a number to recognise it by when focused.
MARK_CONTROLS = """() => {
  const selector = 'a[href], button, input:not([type=hidden]), select, textarea';
  const shown = [...document.querySelectorAll(selector)]
    .filter(e => !e.disabled && e.getClientRects().length > 0);
  shown.forEach((e, i) => e.setAttribute('data-kb', String(i)));
  return shown.map(e => e.outerHTML.slice(0, 120));
}"""
FOCUSED = """() => {
  const e = document.activeElement;
  if (!e || !e.hasAttribute('data-kb')) return null;
  const style = getComputedStyle(e);
  return {index: Number(e.getAttribute('data-kb')), outline: style.outlineStyle,
          width: parseFloat(style.outlineWidth),
          visible: e.matches(':focus-visible')
                   || (e.type === 'date' && e.matches(':focus-within'))};
}"""
HAS_FOCUS_VISIBLE_RULE = """() => [...document.styleSheets].some(sheet =>
  [...sheet.cssRules].some(rule => (rule.selectorText || '').includes(':focus-visible')))"""


@pytest.fixture(scope="module")
def console(
    tmp_path_factory: pytest.TempPathFactory, vendor_key: VendorKey
) -> Iterator[tuple[Gate, Prepared]]:
    """One installation (SQLite) with its seats filled and a pending seat request."""
    require_axe()
    folder = tmp_path_factory.mktemp("e2e-accessibility")
    with serve(folder, vendor_key, SCREENSHOT_BACKEND) as gate:
        yield gate, prepare(gate, vendor_key)


@pytest.fixture(scope="module")
def contexts(
    browser: Browser, console: tuple[Gate, Prepared]
) -> Iterator[dict[tuple[Who, str], BrowserContext]]:
    """A signed-in (or anonymous) browser context per kind of visitor and language."""
    gate, prepared = console
    opened: dict[tuple[Who, str], BrowserContext] = {}
    for language in LANGUAGES:
        for who in ("admin", "user", "anonymous"):
            # The page's own policy allows no script: axe is injected past it.
            context = browser.new_context(
                locale="en-US", viewport={"width": WIDTHS[0], "height": 900}, bypass_csp=True
            )
            context.set_default_timeout(TIMEOUT_MS)
            page = context.new_page()
            if who == "admin":
                assert sign_in(page, gate, ADMIN, ADMIN_PASSWORD) == 303
            elif who == "user":
                assert sign_in(page, gate, prepared.user, f"{prepared.user}-pw") == 303
            page.goto(gate.url(f"/language/{language}?next=/login"))
            page.close()
            opened[(who, language)] = context  # type: ignore[index]
    yield opened
    for context in opened.values():
        context.close()


def _open(
    contexts: dict[tuple[Who, str], BrowserContext],
    console: tuple[Gate, Prepared],
    shown: ConsolePage,
    language: str,
) -> Page:
    gate, prepared = console
    page = contexts[(shown.who, language)].new_page()
    page.goto(gate.url(shown.path))
    if shown.then is not None:
        shown.then(page, prepared)
        # A page reached by a form: its stylesheet must be in before it is looked at.
        page.wait_for_load_state("load")
    assert page.locator("html").get_attribute("lang") == language, shown.name
    return page


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("shown", PAGES, ids=[p.name for p in PAGES])
def test_no_serious_axe_violation_no_sideways_scroll_and_a_screenshot(
    contexts: dict[tuple[Who, str], BrowserContext],
    console: tuple[Gate, Prepared],
    shown: ConsolePage,
    language: str,
) -> None:
    page = _open(contexts, console, shown, language)
    inject_axe(page)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    problems: list[str] = []
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 900})
        where = f"{shown.name} ({shown.path}) in {language} at {width} px"
        problems += [f"{where}: {found}" for found in axe_problems(page)]
        scroll_width = page.evaluate("document.scrollingElement.scrollWidth")
        if scroll_width > width:
            problems.append(f"{where}: scrolls sideways ({scroll_width} px wide)")
        shot = SCREENSHOTS / f"console-{shown.name}-{language}-{width}.png"
        page.screenshot(path=str(shot), full_page=True)
        assert shot.read_bytes().startswith(PNG_SIGNATURE), shot
    page.close()
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("shown", PAGES, ids=[p.name for p in PAGES])
def test_every_control_is_reached_by_tab_with_a_visible_focus(
    contexts: dict[tuple[Who, str], BrowserContext],
    console: tuple[Gate, Prepared],
    shown: ConsolePage,
) -> None:
    page = _open(contexts, console, shown, "en")
    assert page.evaluate(HAS_FOCUS_VISIBLE_RULE), "the stylesheet has no :focus-visible style"
    controls: list[str] = page.evaluate(MARK_CONTROLS)
    assert controls, f"{shown.name}: no control found"
    page.evaluate("() => { document.activeElement && document.activeElement.blur(); }")
    reached: set[int] = set()
    unseen_focus: list[str] = []
    for _ in range(len(controls) + 10):
        page.keyboard.press("Tab")
        focused = page.evaluate(FOCUSED)
        if focused is None:
            continue
        reached.add(focused["index"])
        if not focused["visible"] or focused["outline"] == "none" or focused["width"] < 2:
            unseen_focus.append(controls[focused["index"]])
        if len(reached) == len(controls):
            break
    page.close()
    missing = [html for index, html in enumerate(controls) if index not in reached]
    assert not missing, f"{shown.name}: not reached by Tab: {missing}"
    assert not unseen_focus, f"{shown.name}: focus not visible on {unseen_focus}"
