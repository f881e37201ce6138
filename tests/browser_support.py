"""Real-browser test support shared by tests/e2e and tests/ldap: Debian's Chromium, a served gate.

Playwright drives Debian's ``chromium`` (``scripts/ensure-browser`` installs
it); its own browser download does not work on these machines and is never
used. With CI=true a missing Chromium or Playwright fails the tests;
elsewhere they skip with the reason. The gate under test runs under
werkzeug's threaded server on 127.0.0.1 and a free port, in a thread of the
test process.
"""

from __future__ import annotations

import contextlib
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import pytest
from werkzeug.serving import BaseWSGIServer, make_server

from tests.conftest import in_ci

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication
    from playwright.sync_api import Browser, Page

CHROMIUM = "/usr/bin/chromium"
# What works for Debian's Chromium here, as root and headless (Playwright adds
# --headless and a fresh, empty profile of its own to every launch).
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# axe-core, the npm package scripts/ensure-axe puts in .cache/axe/.
AXE_SCRIPT = Path(__file__).resolve().parents[1] / ".cache/axe/node_modules/axe-core/axe.min.js"
# The impacts a page may not have; "moderate" and "minor" are reported by axe but allowed.
AXE_BLOCKING = ("serious", "critical")
RUN_AXE = """async () => {
  const result = await axe.run(document, {resultTypes: ["violations"]});
  return result.violations.map(v => ({
    rule: v.id, impact: v.impact, help: v.help,
    nodes: v.nodes.map(n => n.target.join(" ") + " :: " + n.failureSummary.split("\\n").join(" "))
  }));
}"""


def browser_unavailable(reason: str) -> NoReturn:
    """Skip (fail with CI=true) a test that needs the browser."""
    if in_ci():
        pytest.fail(f"the real-browser tests are required in CI: {reason}")
    pytest.skip(f"{reason}; run scripts/ensure-browser and scripts/setup (CI would fail here)")


@contextlib.contextmanager
def chromium() -> Iterator[Browser]:
    """Debian's headless Chromium, driven by Playwright, closed afterwards."""
    if shutil.which(CHROMIUM) is None:
        browser_unavailable(f"{CHROMIUM} is missing (Debian's `chromium` package)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        browser_unavailable(
            "Playwright is not installed (the `test` extra: pip install -e '.[test]')"
        )
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield launched
        finally:
            launched.close()


@contextlib.contextmanager
def served(app: WSGIApplication) -> Iterator[str]:
    """``app`` served on http://127.0.0.1:<free port> (its base URL) until the block ends."""
    server: BaseWSGIServer = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="seatgate-browser", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def require_axe() -> None:
    """Skip (fail with CI=true) a test that needs axe-core when it is not installed."""
    if not AXE_SCRIPT.is_file():
        browser_unavailable(f"axe-core is missing at {AXE_SCRIPT} (run scripts/ensure-axe)")


def inject_axe(page: Page) -> None:
    """Load axe-core into ``page`` (its context needs ``bypass_csp``: the pages allow no script)."""
    page.add_script_tag(path=str(AXE_SCRIPT))


def axe_problems(page: Page) -> list[str]:
    """axe's serious and critical violations on ``page`` as it is now, one line each."""
    violations: list[dict[str, Any]] = page.evaluate(RUN_AXE)
    return [
        f"{v['rule']} ({v['impact']}: {v['help']}) on " + "; ".join(v["nodes"][:5])
        for v in violations
        if v["impact"] in AXE_BLOCKING
    ]
