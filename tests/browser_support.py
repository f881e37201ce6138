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
from typing import TYPE_CHECKING, NoReturn

import pytest
from werkzeug.serving import BaseWSGIServer, make_server

from tests.conftest import in_ci

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication
    from playwright.sync_api import Browser

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
