"""Fixtures of the web gate tests: a built installation behind the Flask app, and helpers."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from seatgate.adapters.flask.server import create_app
from seatgate.app import Core
from seatgate.audit import log as audit
from seatgate.clock import FakeClock
from seatgate.config import WebConfig
from seatgate.licensing.vendor import VendorKey
from seatgate.records import AuditEvent
from tests.conftest import add_users, make_config

ADMIN = "admin"
ADMIN_PASSWORD = "admin-pw"
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@dataclass
class Web:
    """One installation served by the web gate, with a fake clock."""

    core: Core
    app: Flask
    clock: FakeClock
    users: list[str]

    def client(self) -> FlaskClient:
        return self.app.test_client()

    def csrf(self, client: FlaskClient, path: str = "/login") -> str:
        page = client.get(path)
        match = _CSRF.search(page.get_data(as_text=True))
        assert match is not None, f"no CSRF token on {path}"
        return match.group(1)

    def login(
        self, client: FlaskClient, login: str, password: str | None = None, **extra: str
    ) -> TestResponse:
        token = self.csrf(client)
        form = {"login": login, "password": password or f"{login}-pw", "csrf_token": token}
        return client.post("/login", data={**form, **extra})

    def api_login(
        self, client: FlaskClient, login: str, password: str | None = None
    ) -> TestResponse:
        return client.post(
            "/api/login", json={"login": login, "password": password or f"{login}-pw"}
        )

    def admin_client(self) -> FlaskClient:
        client = self.client()
        assert self.login(client, ADMIN, ADMIN_PASSWORD).status_code == 303
        return client

    def events(self, action: str | None = None) -> list[AuditEvent]:
        return self.core.db.read(lambda conn: audit.recent(conn, limit=50, action=action))

    def holds(self, login: str) -> bool:
        return self.core.ledger.holds_seat(self.core.accounts.get(login).id)


@pytest.fixture
def make_web(
    vendor_key: VendorKey, clock: FakeClock, mint: Callable[..., str], db_url: str
) -> Iterator[Callable[..., Web]]:
    """make_web(seats=25, users=3, licence=True, assignment=..., **web_options) -> Web."""
    built: list[Core] = []

    def _make(
        *,
        seats: int = 25,
        users: int = 3,
        licence: bool = True,
        assignment: str = "auto",
        reserved_for_admins: int = 0,
        rate_limited: bool = False,
        **web_options: Any,
    ) -> Web:
        config = make_config(
            db_url, vendor_key, assignment=assignment, reserved_for_admins=reserved_for_admins
        )
        config = replace(config, web=WebConfig(**web_options))
        core = Core.build(config, clock=clock, check_schema=False, rate_limited=rate_limited)
        core.init_schema()
        built.append(core)
        if licence:
            core.licensing.install(mint("license", seats=seats), actor="test")
        core.accounts.add(
            ADMIN, password=ADMIN_PASSWORD, actor="test", is_admin=True, display_name="Admin"
        )
        logins = add_users(core, users)
        app = create_app(core=core)
        app.config["TESTING"] = True
        return Web(core, app, clock, logins)

    yield _make
    for core in built:
        core.close()


@pytest.fixture
def web(make_web: Callable[..., Web]) -> Web:
    """A 25-seat installation: `admin` (admin-pw) and user000..user002 (login + '-pw')."""
    return make_web()
