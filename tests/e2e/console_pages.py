"""Every page of the console, as the page-by-page browser tests visit them.

``PAGES`` is the list the accessibility, keyboard, phone-width and screenshot
tests walk (tests/e2e/test_accessibility.py). Adding a page is one line:
``ConsolePage("imports", "/admin/imports")``; a page reached by a form (a
confirmation, a preview) names what to do once its path is loaded.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Literal

from seatgate.app import Core
from seatgate.config import load_config
from seatgate.licensing.vendor import VendorKey, issue_token
from tests.conftest import ISSUER
from tests.e2e.conftest import INSTALLATION, RESERVED_FOR_ADMINS, SEATS_TOTAL, Gate

if TYPE_CHECKING:
    from playwright.sync_api import Page

Who = Literal["admin", "user", "anonymous"]


@dataclass(frozen=True)
class Prepared:
    """What the pages need beyond the installation: a token to preview, the refused login."""

    addon_token: str
    refused: str
    user: str


@dataclass(frozen=True)
class ConsolePage:
    """A page: its screenshot name, where it is, who looks at it, how it is reached."""

    name: str
    path: str
    who: Who = "admin"
    then: Callable[[Page, Prepared], None] | None = None


def _click(selector: str) -> Callable[[Page, Prepared], None]:
    def reach(page: Page, _prepared: Prepared) -> None:
        page.click(selector)
        page.wait_for_load_state()

    return reach


def _refused_for_no_seat(page: Page, prepared: Prepared) -> None:
    page.fill("#login", prepared.refused)
    page.fill("#password", f"{prepared.refused}-pw")
    page.click("#login-submit")
    page.wait_for_selector('#login-message[data-reason="no_seat_available"]')


def _confirm_disable(page: Page, _prepared: Prepared) -> None:
    for login in ("user001", "user002"):
        page.check(f'tr[data-login="{login}"] input[type=checkbox]')
    page.click("#selected-disable")
    page.wait_for_selector("#confirm-logins")


def _preview_install(page: Page, prepared: Prepared) -> None:
    page.fill("#token", prepared.addon_token)
    page.click("#licence-preview-submit")
    page.wait_for_selector("#install-preview")


def _preview_import(page: Page, prepared: Prepared) -> None:
    # A new account and one disabled: the preview offers the confirmation.
    data = f"login,email,active\nnew-a11y,new-a11y@example.com,yes\n{prepared.user},,no\n".encode()
    page.set_input_files(
        "#import-file", files=[{"name": "accounts.csv", "mimeType": "text/csv", "buffer": data}]
    )
    page.click("#import-submit")
    page.wait_for_selector("#import-outcome")


PAGES = [
    ConsolePage("login", "/login", who="anonymous"),
    ConsolePage("login-no-seat", "/login", who="anonymous", then=_refused_for_no_seat),
    ConsolePage("home", "/"),
    ConsolePage("admin", "/admin"),
    ConsolePage("accounts", "/admin/accounts"),
    ConsolePage("accounts-confirm", "/admin/accounts?q=user00", then=_confirm_disable),
    ConsolePage("charts", "/admin/charts"),
    ConsolePage("licence", "/admin/licence"),
    ConsolePage("licence-preview", "/admin/licence", then=_preview_install),
    ConsolePage("licence-remove", "/admin/licence", then=_click("button.remove-token")),
    ConsolePage("audit", "/admin/audit"),
    ConsolePage("audit-verified", "/admin/audit", then=_click("#verify-submit")),
    ConsolePage("imports", "/admin/imports"),
    ConsolePage("imports-preview", "/admin/imports", then=_preview_import),
    ConsolePage("directory", "/admin/directory"),
    ConsolePage("sessions", "/admin/sessions"),
    ConsolePage("requests", "/admin/requests"),
    ConsolePage("forbidden", "/admin", who="user"),
    ConsolePage("error-404", "/admin/charts/no-such-chart.csv"),
    ConsolePage("error-400", "/admin/accounts?status=no-such-status"),
]


def prepare(gate: Gate, vendor_key: VendorKey) -> Prepared:
    """Fill every seat but the administrators' and leave one refused user's seat request.

    Straight through the core on the served database, so the pages show full
    tables (seat holders, a pending request) without 25 browser sign-ins.
    """
    *holders, refused = gate.users
    assert len(holders) == SEATS_TOTAL - RESERVED_FOR_ADMINS
    assert gate.config_path is not None, "the pages need an installation built from its file"
    core = Core.build(load_config(gate.config_path))
    try:
        for login in holders:
            core.ledger.assign(core.accounts.get(login).id, actor="test")
        decision = core.gate.decide(refused, f"{refused}-pw", address="127.0.0.1")
        assert decision.reason is not None and decision.reason.value == "no_seat_available"
    finally:
        core.close()
    token = issue_token(
        vendor_key,
        kind="addon",
        installation_id=INSTALLATION,
        customer="acme",
        now=datetime.now(UTC),
        issuer=ISSUER,
        seats=2,
        lic="license-e2e",
    )
    return Prepared(addon_token=token, refused=refused, user=holders[0])
