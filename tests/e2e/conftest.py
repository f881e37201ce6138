"""Fixtures of the real-browser tests: a served installation and Debian's Chromium.

The gate runs as in production -- ``create_app(<path of a YAML file>)`` -- served
and driven by the helpers of :mod:`tests.browser_support` (shared with the
directory tests in tests/ldap).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from seatgate.adapters.flask.server import create_app
from seatgate.app import Core
from seatgate.config import load_config
from seatgate.licensing.vendor import VendorKey, issue_token
from tests.browser_support import chromium, served
from tests.conftest import ISSUER, add_users

if TYPE_CHECKING:
    from playwright.sync_api import Browser

INSTALLATION = "intranet-e2e.example.com"
ADMIN = "admin"
ADMIN_PASSWORD = "admin-pw"
LICENCE_SEATS = 25
ADDON_SEATS = 1
USERS = 26  # user000..user025, password login + "-pw"
# Seats: a 25-seat licence plus a 1-seat add-on (26 in all), with
# `reserved_for_admins: 1`. So the 25 non-admin users fill 25 seats, the 26th
# user is refused, and the last seat stays free for the admin, who logs in
# after them (auto-assignment claims it) -- no seat is pre-assigned by hand.
RESERVED_FOR_ADMINS = 1
SEATS_TOTAL = LICENCE_SEATS + ADDON_SEATS


@dataclass(frozen=True)
class Gate:
    """One installation served over HTTP."""

    base_url: str
    users: list[str]

    def url(self, path: str) -> str:
        return self.base_url + path


def _write_config(folder: Path, vendor_key: VendorKey) -> Path:
    public_pem = vendor_key.private_key.public_key().public_bytes(
        Encoding.PEM, PublicFormat.SubjectPublicKeyInfo
    )
    (folder / "vendor-k1.pub.pem").write_bytes(public_pem)
    path = folder / "seatgate.yaml"
    path.write_text(
        f"installation_id: {INSTALLATION}\n"
        "database_url: sqlite:///seatgate.db\n"
        "license:\n"
        f"  issuer: {ISSUER}\n"
        "  public_keys:\n"
        f"    {vendor_key.kid}: vendor-k1.pub.pem\n"
        "seats:\n"
        "  assignment: auto\n"
        f"  reserved_for_admins: {RESERVED_FOR_ADMINS}\n"
        "passwords: {argon2_time_cost: 1, argon2_memory_kib: 1024, argon2_parallelism: 1}\n"
        "web:\n"
        "  secure_cookies: false\n"
        # Unset: the session secret is generated once and kept in the database.
        "  secret_key_env: SEATGATE_E2E_UNSET_SECRET\n"
        "  language: en\n",
        encoding="utf-8",
    )
    return path


def _install(config_path: Path, vendor_key: VendorKey) -> list[str]:
    """Schema, the licence and its add-on, the admin and the users; as `seatgate init` would."""
    core = Core.build(load_config(config_path), check_schema=False)
    try:
        core.init_schema()
        now = datetime.now(UTC)
        licence = issue_token(
            vendor_key,
            kind="license",
            installation_id=INSTALLATION,
            customer="acme",
            now=now,
            issuer=ISSUER,
            edition="bizspace",
            seats=LICENCE_SEATS,
            jti="license-e2e",
        )
        addon = issue_token(
            vendor_key,
            kind="addon",
            installation_id=INSTALLATION,
            customer="acme",
            now=now,
            issuer=ISSUER,
            seats=ADDON_SEATS,
            lic="license-e2e",
        )
        core.licensing.install(licence, actor="test")
        core.licensing.install(addon, actor="test")
        assert core.licensing.status().seats_total == SEATS_TOTAL
        core.accounts.add(
            ADMIN, password=ADMIN_PASSWORD, actor="test", is_admin=True, display_name="Admin"
        )
        return add_users(core, USERS)
    finally:
        core.close()


@pytest.fixture(scope="module")
def gate(tmp_path_factory: pytest.TempPathFactory, vendor_key: VendorKey) -> Iterator[Gate]:
    """The gate, built from a YAML file, serving on http://127.0.0.1:<free port>."""
    folder = tmp_path_factory.mktemp("e2e-installation")
    config_path = _write_config(folder, vendor_key)
    users = _install(config_path, vendor_key)
    app = create_app(config_path)
    with served(app) as base_url:
        yield Gate(base_url, users)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Debian's headless Chromium, driven by Playwright."""
    with chromium() as launched:
        yield launched
