"""Fixtures of the real-browser tests: a served installation and Debian's Chromium.

The gate runs as in production -- ``create_app(<path of a YAML file>)`` -- served
and driven by the helpers of :mod:`tests.browser_support` (shared with the
directory tests in tests/ldap).

Every module gets its own installation on SQLite and then on PostgreSQL (a
database created for the module and dropped after it): the ``gate`` fixture is
parametrized over both. The screenshot-heavy loops run on one backend only
(``Gate.shoots``, SQLite): they look at the pages, not at the database, and
running them twice would double the browser time for the same pictures.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from seatgate.adapters.flask.context import EXTENSION_KEY
from seatgate.adapters.flask.server import create_app
from seatgate.app import Core
from seatgate.config import load_config
from seatgate.licensing.vendor import VendorKey, issue_token
from tests.browser_support import chromium, served
from tests.conftest import ISSUER, add_users, create_pg_database, drop_pg_database

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
BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
# The backend the screenshot and page-by-page loops run on (see the module docstring).
SCREENSHOT_BACKEND = "sqlite"


@dataclass(frozen=True)
class Gate:
    """One installation served over HTTP."""

    base_url: str
    users: list[str]
    backend: str
    # The installation's YAML file; None for a gate built from a Core in code.
    config_path: Path | None = None

    def url(self, path: str) -> str:
        return self.base_url + path

    @property
    def shoots(self) -> bool:
        """Whether this run takes the screenshots (one backend does)."""
        return self.backend == SCREENSHOT_BACKEND


def _write_config(folder: Path, vendor_key: VendorKey, database_url: str) -> Path:
    public_pem = vendor_key.private_key.public_key().public_bytes(
        Encoding.PEM, PublicFormat.SubjectPublicKeyInfo
    )
    (folder / "vendor-k1.pub.pem").write_bytes(public_pem)
    path = folder / "seatgate.yaml"
    path.write_text(
        f"installation_id: {INSTALLATION}\n"
        f"database_url: {database_url}\n"
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


@contextmanager
def serve(folder: Path, vendor_key: VendorKey, backend: str) -> Iterator[Gate]:
    """An installation on ``backend`` built from a YAML file, served on 127.0.0.1:<free port>."""
    database_url = create_pg_database() if backend == "postgres" else "sqlite:///seatgate.db"
    try:
        config_path = _write_config(folder, vendor_key, database_url)
        users = _install(config_path, vendor_key)
        app = create_app(config_path)
        try:
            with served(app) as base_url:
                yield Gate(base_url, users, backend, config_path)
        finally:
            app.extensions[EXTENSION_KEY].core.close()
    finally:
        if backend == "postgres":
            drop_pg_database(database_url)


@pytest.fixture(scope="module", params=BACKENDS)
def gate(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    vendor_key: VendorKey,
) -> Iterator[Gate]:
    """The gate on SQLite, then on PostgreSQL: a fresh installation per module and backend."""
    with serve(tmp_path_factory.mktemp("e2e-installation"), vendor_key, request.param) as served:
        yield served


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Debian's headless Chromium, driven by Playwright."""
    with chromium() as launched:
        yield launched
