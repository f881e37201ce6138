"""Fixtures of the seat-operation tests: an installation and its command line on one clock."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from seatgate.app import Core
from seatgate.audit import log as audit
from seatgate.cli.main import cli
from seatgate.clock import FakeClock
from seatgate.config import load_config
from seatgate.licensing.vendor import VendorKey
from seatgate.records import AuditEvent
from tests.conftest import add_users, write_config


def seats_section(**options: Any) -> dict[str, Any]:
    return {"seats": {"assignment": "auto", "reserved_for_admins": 0, **options}}


class Site:
    """One installation: a Core and the command line on the same config file and fake clock."""

    def __init__(self, path: Path, clock: FakeClock) -> None:
        self.path = path
        self.clock = clock
        self.core = Core.build(load_config(path), clock=clock, check_schema=False)
        self.core.init_schema()

    def run(self, *args: str) -> Result:
        result = CliRunner().invoke(
            cli, ["--config", str(self.path), *args], obj={"clock": self.clock}
        )
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise result.exception
        return result

    def json(self, *args: str) -> Any:
        result = self.run(*args, "--json")
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)

    def login(self, login: str) -> bool:
        return self.core.gate.decide(login, f"{login}-pw").allowed

    def events(self, action: str) -> list[AuditEvent]:
        return self.core.db.read(lambda c: audit.recent(c, limit=1000, action=action))

    def holders(self) -> set[str]:
        """The seat holders but the fillers."""
        return {h.login for h in self.core.ledger.holders() if not h.login.startswith("fill")}


@pytest.fixture
def site(
    tmp_path: Path, db_url: str, vendor_key: VendorKey, clock: FakeClock, mint: Callable[..., str]
) -> Iterator[Callable[..., Site]]:
    built: list[Site] = []

    def _site(seat_count: int = 5, **options: Any) -> Site:
        """A 25-seat licence (the least there is) of which ``seat_count`` are free: the
        rest are held by pinned `fill` accounts, never reclaimed."""
        path = write_config(
            tmp_path / "seatgate.yaml", db_url, vendor_key, seats_section(**options)
        )
        made = Site(path, clock)
        built.append(made)
        made.core.licensing.install(mint("license", seats=25), actor="test")
        for login in add_users(made.core, 25 - seat_count, prefix="fill"):
            made.core.ledger.assign(made.core.accounts.get(login).id, actor="test", pinned=True)
        return made

    yield _site
    for made in built:
        made.core.close()
