"""The one-pass import (`AccountImporter.apply_new`): a file of new accounts checked and
written as it is read, in one transaction; any other file left, untouched, to the check.

Run on SQLite and PostgreSQL through conftest's `app` fixture. Sizes pass the batch
(1,000 rows), so a row that stops the pass can come after batches already written.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from sqlalchemy import Connection, func, select

from seatgate.adapters.csv import CsvAccountFile
from seatgate.app import Core
from seatgate.audit import chain as audit_chain
from seatgate.cli.main import cli
from seatgate.clock import FakeClock
from seatgate.imports import AccountImporter, Change
from seatgate.licensing.vendor import VendorKey
from seatgate.storage.schema import audit_chain as chain_head
from seatgate.storage.schema import audit_events
from tests.conftest import INSTALLATION

HEADER = "login,name,email,admin,active\r\n"
ROWS = 2_500


def importer(app: Core) -> AccountImporter:
    return AccountImporter(app.db, app.clock, app.ledger)


def generated(path: Path, rows: int, replace: dict[int, str] | None = None) -> Path:
    """A header and ``rows`` rows (line n holds user n); ``replace`` swaps whole lines."""
    replace = replace or {}
    with path.open("w", encoding="utf-8", newline="") as out:
        out.write(HEADER)
        for line in range(2, rows + 2):
            default = f"user{line:05d},Núñez {line},u{line}@example.com,no,yes"
            out.write(replace.get(line, default) + "\r\n")
    return path


def database_state(app: Core) -> tuple[int, int, Any]:
    def read(conn: Connection) -> tuple[int, int, Any]:
        events = conn.execute(select(func.count()).select_from(audit_events)).scalar_one()
        return app.accounts.count(), events, conn.execute(select(chain_head)).one()

    return app.db.read(read)


class Journal:
    def __init__(self) -> None:
        self.changes: list[Change] = []

    def restart(self) -> None:
        self.changes.clear()

    def add(self, change: Change) -> None:
        self.changes.append(change)


def test_new_accounts_are_written_in_one_pass_with_one_chained_event_each(
    app: Core, clock: FakeClock, tmp_path: Path
) -> None:
    before = database_state(app)[1]
    report = importer(app).apply_new(
        CsvAccountFile(generated(tmp_path / "a.csv", ROWS)), actor="cli:test"
    )
    assert report is not None
    assert (report.created, report.updated, report.dry_run) == (ROWS, 0, False)
    count, events, head = database_state(app)
    assert count == ROWS
    assert events == before + ROWS == head.events
    subjects = app.db.read(
        lambda conn: (
            conn.execute(
                select(audit_events.c.subject)
                .where(audit_events.c.action == "account.created")
                .order_by(audit_events.c.id)
            )
            .scalars()
            .all()
        )
    )
    assert subjects == [f"user{line:05d}" for line in range(2, ROWS + 2)]
    verified = app.db.read(audit_chain.verify)
    assert verified.intact, verified.problem
    bea = app.accounts.get("USER00070")
    assert (bea.display_name, bea.email, bea.source, bea.status) == (
        "Núñez 70",
        "u70@example.com",
        "csv",
        "active",
    )
    assert bea.created_at == clock.now()


def test_a_dry_run_in_one_pass_lists_the_creations_and_writes_nothing(
    app: Core, tmp_path: Path
) -> None:
    before = database_state(app)
    journal = Journal()
    report = importer(app).apply_new(
        CsvAccountFile(generated(tmp_path / "a.csv", 1_200)),
        actor="cli:test",
        dry_run=True,
        journal=journal,
    )
    assert report is not None and report.dry_run and report.created == 1_200
    assert [c.login for c in journal.changes] == [f"user{n:05d}" for n in range(2, 1_202)]
    assert {c.kind for c in journal.changes} == {"create"}
    assert database_state(app) == before


@pytest.mark.parametrize(
    ("why", "replace"),
    [
        ("a bad row after two batches", {2_400: "user02400,Name,not-an-email,no,yes"}),
        ("a login twice in one batch", {20: "USER00010,Again,,no,yes"}),
        ("a login an earlier batch created", {2_300: "User00005,Again,,no,yes"}),
        ("a login mixing scripts", {1_800: "\u0430dmin,Mixed,,no,yes"}),
        ("a line the reader cannot parse", {2_450: 'user02450,"Never closed,,no,yes'}),
    ],
)
def test_a_file_that_is_not_all_new_and_valid_is_left_to_the_check_untouched(
    app: Core, tmp_path: Path, why: str, replace: dict[int, str]
) -> None:
    before = database_state(app)
    path = generated(tmp_path / "a.csv", ROWS, replace)
    journal = Journal()
    found = importer(app).apply_new(CsvAccountFile(path), actor="cli:test", journal=journal)
    assert found is None, why
    assert database_state(app) == before
    assert app.db.read(audit_chain.verify).intact
    # The check finds what stopped the pass.
    with importer(app).check(CsvAccountFile(path)) as checked:
        assert checked.problem_count == 1
        [problem] = checked.problems()
    assert problem.line == next(iter(replace))


@pytest.mark.parametrize("source", ["csv", "ldap"])
def test_an_existing_account_leaves_the_file_to_the_check_and_write(
    app: Core, tmp_path: Path, source: str
) -> None:
    app.accounts.add("user02200", password=None, actor="test", source=source)
    before = database_state(app)
    path = generated(tmp_path / "a.csv", ROWS)
    assert importer(app).apply_new(CsvAccountFile(path), actor="cli:test") is None
    assert database_state(app) == before


def test_the_cli_updates_existing_accounts_after_the_one_pass_gives_way(
    app: Core, tmp_path: Path, vendor_key: VendorKey
) -> None:
    app.accounts.add("user00003", password=None, actor="test", display_name="Old")
    path = generated(tmp_path / "a.csv", 1_500)
    config = tmp_path / "seatgate.yaml"
    settings = {
        "installation_id": INSTALLATION,
        "database_url": app.config.database_url,
        "license": {"public_keys": {vendor_key.kid: vendor_key.public_pem()}},
    }
    config.write_text(yaml.safe_dump(settings), encoding="utf-8")
    result = CliRunner().invoke(
        cli,
        ["--config", str(config), "accounts", "import-csv", str(path)],
        env={"LOGNAME": "sg-tester", "SEATGATE_CONFIG": None},
    )
    assert result.exit_code == 0, result.output
    assert "created 1499, updated 1, disabled 0, unchanged 0" in result.stdout
    assert app.accounts.get("user00003").display_name == "Núñez 3"
    assert app.accounts.count() == 1_500
