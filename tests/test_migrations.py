"""Schema versions: `seatgate init` upgrades in place, never needs the database deleted.

A future schema change is simulated by appending a step to
``seatgate.storage.migrations.STEPS`` (and raising ``SCHEMA_VERSION`` with
it). Every test runs on SQLite and on PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from sqlalchemy import Connection, insert, inspect, select, text, update

from seatgate.app import Core
from seatgate.audit import log as audit
from seatgate.cli.main import cli
from seatgate.errors import SchemaOutdated
from seatgate.licensing.vendor import VendorKey
from seatgate.storage import Database, migrations, schema
from seatgate.upgrades import upgrade
from tests import schema_history
from tests.conftest import INSTALLATION, add_users, make_config


def version_of(url: str) -> int:
    db = Database(url)
    try:
        return db.read(migrations.current_version)
    finally:
        db.dispose()


def columns_of(url: str, table: str) -> set[str]:
    db = Database(url)
    try:
        return db.read(lambda conn: {c["name"] for c in inspect(conn).get_columns(table)})
    finally:
        db.dispose()


def snapshot(app: Core) -> dict[str, Any]:
    """The data an upgrade must keep."""

    def work(conn: Connection) -> dict[str, Any]:
        return {
            "accounts": [
                tuple(r)
                for r in conn.execute(
                    select(
                        schema.accounts.c.id,
                        schema.accounts.c.login,
                        schema.accounts.c.login_key,
                        schema.accounts.c.status,
                        schema.accounts.c.password_hash,
                        schema.accounts.c.is_admin,
                    ).order_by(schema.accounts.c.id)
                )
            ],
            "seats": [
                tuple(r)
                for r in conn.execute(
                    select(schema.seats.c.account_id, schema.seats.c.pinned).order_by(
                        schema.seats.c.account_id
                    )
                )
            ],
            "tokens": list(conn.execute(select(schema.license_tokens.c.jti)).scalars()),
            "audit": list(conn.execute(select(schema.audit_events.c.id)).scalars()),
        }

    return app.db.read(work)


def add_column(name: str) -> Callable[[Connection], None]:
    def step(conn: Connection) -> None:
        conn.execute(text(f"ALTER TABLE accounts ADD COLUMN {name} VARCHAR(64)"))

    step.__name__ = f"add_{name}"
    return step


def patch_steps(monkeypatch: pytest.MonkeyPatch, *new: Callable[[Connection], None]) -> int:
    """Pretend this seatgate has ``new`` steps beyond the current schema; return the new version."""
    steps = [*migrations.STEPS, *new]
    monkeypatch.setattr(migrations, "STEPS", steps)
    monkeypatch.setattr(migrations, "SCHEMA_VERSION", len(steps))
    return len(steps)


@pytest.fixture
def config_file(tmp_path: Path, vendor_key: VendorKey, db_url: str) -> Path:
    """A configuration file for the CLI, on the same database as ``app``."""
    path = tmp_path / "cli" / "seatgate.yaml"
    path.parent.mkdir()
    path.write_text(
        yaml.safe_dump(
            {
                "installation_id": INSTALLATION,
                "database_url": db_url,
                "license": {"public_keys": {"k1": vendor_key.public_pem()}},
                "passwords": {
                    "argon2_time_cost": 1,
                    "argon2_memory_kib": 1024,
                    "argon2_parallelism": 1,
                },
            }
        ),
        encoding="utf-8",
    )
    return path


@pytest.fixture
def populated(app: Core, mint: Callable[..., str]) -> Core:
    """An installation at the current version with a licence, accounts and a seat."""
    app.licensing.install(mint("license", seats=25, jti="lic-25"), actor="test")
    add_users(app, 3)
    assert app.gate.decide("user000", "user000-pw").allowed
    app.ledger.assign(app.accounts.get("user001").id, actor="test", pinned=True)
    return app


def test_fresh_init_stamps_the_current_version(app: Core, db_url: str) -> None:
    assert version_of(db_url) == migrations.SCHEMA_VERSION
    assert app.init_schema() == (migrations.SCHEMA_VERSION, migrations.SCHEMA_VERSION)


def test_init_upgrades_an_older_database_in_place(
    populated: Core,
    db_url: str,
    config_file: Path,
    vendor_key: VendorKey,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    before = migrations.SCHEMA_VERSION
    kept = snapshot(populated)
    new_version = patch_steps(monkeypatch, add_column("nickname"))
    assert new_version == before + 1

    # The new code refuses the old database until it is upgraded.
    with pytest.raises(SchemaOutdated) as caught:
        Core.build(make_config(db_url, vendor_key))
    assert (caught.value.found, caught.value.expected) == (before, new_version)
    assert "seatgate init" in str(caught.value)
    refused = CliRunner().invoke(cli, ["--config", str(config_file), "accounts", "list"])
    assert refused.exit_code == 2
    assert "seatgate init" in refused.stderr

    result = CliRunner().invoke(cli, ["--config", str(config_file), "init"])
    assert result.exit_code == 0, result.output
    assert f"upgraded the schema from version {before} to {new_version}" in result.stdout

    assert version_of(db_url) == new_version
    assert "nickname" in columns_of(db_url, "accounts")
    assert snapshot(populated) == kept
    upgraded = Core.build(make_config(db_url, vendor_key), clock=populated.clock)
    try:
        assert upgraded.gate.decide("user000", "user000-pw").allowed
        assert upgraded.gate.decide("user001", "user001-pw").allowed
        assert upgraded.ledger.used() == 2
        assert {h.login: h.pinned for h in upgraded.ledger.holders()} == {
            "user000": False,
            "user001": True,
        }
    finally:
        upgraded.close()

    again = CliRunner().invoke(cli, ["--config", str(config_file), "init"])
    assert again.exit_code == 0
    assert "up to date" in again.stdout


def test_upgrade_applies_each_missing_step_once_in_order(
    populated: Core, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = migrations.SCHEMA_VERSION
    ran: list[str] = []

    def recording(name: str) -> Callable[[Connection], None]:
        add = add_column(name)

        def step(conn: Connection) -> None:
            ran.append(name)
            add(conn)

        return step

    new_version = patch_steps(monkeypatch, recording("first_col"), recording("second_col"))
    kept = snapshot(populated)

    assert populated.init_schema() == (before, new_version)
    assert ran == ["first_col", "second_col"]
    assert {"first_col", "second_col"} <= columns_of(db_url, "accounts")
    assert version_of(db_url) == new_version
    assert snapshot(populated) == kept

    assert populated.init_schema() == (new_version, new_version)
    assert ran == ["first_col", "second_col"]


def test_a_failing_step_is_rolled_back_and_the_earlier_ones_kept(
    populated: Core, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = migrations.SCHEMA_VERSION
    add_good = add_column("good_col")
    add_half = add_column("half_col")

    def broken(conn: Connection) -> None:
        add_half(conn)
        raise RuntimeError("step failed half way")

    patch_steps(monkeypatch, add_good, broken)
    kept = snapshot(populated)

    with pytest.raises(RuntimeError, match="half way"):
        populated.init_schema()

    assert version_of(db_url) == before + 1
    columns = columns_of(db_url, "accounts")
    assert "good_col" in columns
    assert "half_col" not in columns
    assert snapshot(populated) == kept

    # Fixed code finishes the upgrade from where it stopped.
    monkeypatch.setattr(migrations, "STEPS", [*migrations.STEPS[:-1], add_half])
    assert populated.init_schema() == (before + 1, before + 2)
    assert {"good_col", "half_col"} <= columns_of(db_url, "accounts")
    assert version_of(db_url) == before + 2
    assert snapshot(populated) == kept


def test_database_newer_than_the_code_is_refused(
    populated: Core, db_url: str, config_file: Path, vendor_key: VendorKey
) -> None:
    newer = migrations.SCHEMA_VERSION + 3
    populated.db.write(
        lambda conn: conn.execute(update(schema.schema_version).values(version=newer))
    )
    kept = snapshot(populated)

    with pytest.raises(SchemaOutdated) as caught:
        upgrade(populated.db, populated.clock.now())
    assert (caught.value.found, caught.value.expected) == (newer, migrations.SCHEMA_VERSION)
    assert "newer" in str(caught.value)
    with pytest.raises(SchemaOutdated):
        populated.init_schema()
    with pytest.raises(SchemaOutdated):
        Core.build(make_config(db_url, vendor_key))

    result = CliRunner().invoke(cli, ["--config", str(config_file), "init"])
    assert result.exit_code == 2
    assert "newer" in result.stderr

    assert version_of(db_url) == newer
    assert snapshot(populated) == kept


def test_build_on_an_uninitialised_database_says_to_run_init(
    db_url: str, vendor_key: VendorKey
) -> None:
    with pytest.raises(SchemaOutdated) as caught:
        Core.build(make_config(db_url, vendor_key))
    assert (caught.value.found, caught.value.expected) == (0, migrations.SCHEMA_VERSION)
    assert "seatgate init" in str(caught.value)
    # Checking created nothing.
    assert version_of(db_url) == 0
    db = Database(db_url)
    try:
        assert db.read(lambda conn: inspect(conn).get_table_names()) == []
    finally:
        db.dispose()


def test_login_works_after_init_on_an_uninitialised_database(
    db_url: str, config_file: Path, vendor_key: VendorKey, mint: Callable[..., str]
) -> None:
    result = CliRunner().invoke(cli, ["--config", str(config_file), "init"])
    assert result.exit_code == 0, result.output
    assert "created" in result.stdout
    app = Core.build(make_config(db_url, vendor_key))
    try:
        app.licensing.install(mint("license", seats=25), actor="test")
        app.accounts.add("alice", password="alice-pw", actor="test")
        decision = app.gate.decide("alice", "alice-pw")
        assert decision.allowed, decision.reason
    finally:
        app.close()


# -- every recorded older version ------------------------------------------------------------

BACK_TO: dict[int, Callable[[Connection], None]] = {
    1: schema_history.back_to_version_1,
    2: schema_history.back_to_version_2,
    3: schema_history.back_to_version_3,
    4: schema_history.back_to_version_4,
    5: schema_history.back_to_version_5,
    6: schema_history.back_to_version_6,
    7: schema_history.back_to_version_7,
    8: schema_history.back_to_version_8,
    9: schema_history.back_to_version_9,
    10: schema_history.back_to_version_10,
    11: schema_history.back_to_version_11,
    12: schema_history.back_to_version_12,
}
# The versions that kept web sessions in ``settings``.
SESSIONS_IN_SETTINGS = [1, 2, 3]


def settings_of(app: Core) -> dict[str, str]:
    return app.db.read(
        lambda conn: {str(row.key): str(row.value) for row in conn.execute(select(schema.settings))}
    )


def test_every_older_version_is_recorded() -> None:
    assert sorted(BACK_TO) == list(range(1, migrations.SCHEMA_VERSION))


@pytest.mark.parametrize("version", SESSIONS_IN_SETTINGS)
def test_init_upgrades_each_older_version_to_usable_sessions(
    populated: Core, db_url: str, config_file: Path, vendor_key: VendorKey, version: int
) -> None:
    """Sessions kept in `settings` by versions 1-3 are ended (deleted and audited) by init."""
    ids = [populated.accounts.get(login).id for login in ("user000", "user001", "user002")]
    other_settings = {**settings_of(populated), "web.session_secret": "s" * 40}
    populated.db.engine.dispose()
    with populated.db.engine.begin() as conn:
        BACK_TO[version](conn)
        for key, value in schema_history.legacy_session_rows(ids).items():
            conn.execute(insert(schema.settings).values(key=key, value=value))
        conn.execute(insert(schema.settings).values(key="web.session_secret", value="s" * 40))
        conn.execute(insert(schema.settings).values(key="web.sessions.x", value="not json"))
    assert version_of(db_url) == version
    assert not populated.db.read(lambda conn: inspect(conn).has_table("sessions"))
    kept = {k: v for k, v in snapshot(populated).items() if k != "audit"}

    result = CliRunner().invoke(cli, ["--config", str(config_file), "init"])
    assert result.exit_code == 0, result.output
    assert f"from version {version} to {migrations.SCHEMA_VERSION}" in result.stdout

    assert version_of(db_url) == migrations.SCHEMA_VERSION
    assert {k: v for k, v in snapshot(populated).items() if k != "audit"} == kept
    # The old records are gone, the other settings stay.
    assert settings_of(populated) == other_settings
    upgraded = Core.build(make_config(db_url, vendor_key), clock=populated.clock)
    try:
        (ended,) = upgraded.db.read(
            lambda conn: audit.recent(conn, action="session.ended", limit=5)
        )
        assert (ended.actor, ended.subject, ended.outcome) == ("system", None, "schema_upgrade")
        assert ended.details == {"sessions": 6, "accounts": 4}
        # The new table takes sessions at once.
        token = upgraded.sessions.open(ids[0], address="10.0.0.9", user_agent="Firefox")
        answer = upgraded.sessions.check(token)
        assert answer.allowed and answer.account is not None
        assert answer.account.login == "user000"
        assert upgraded.sessions.end(token, actor="test")
        assert not upgraded.sessions.check(token).allowed
        assert [s.state for s in upgraded.sessions.list()] == ["ended"]
    finally:
        upgraded.close()


def test_an_upgrade_without_old_sessions_audits_nothing(
    populated: Core, db_url: str, config_file: Path
) -> None:
    populated.db.engine.dispose()
    with populated.db.engine.begin() as conn:
        schema_history.back_to_version_3(conn)
    events = len(snapshot(populated)["audit"])
    assert populated.init_schema() == (3, migrations.SCHEMA_VERSION)
    assert len(snapshot(populated)["audit"]) == events
    assert populated.db.read(lambda conn: inspect(conn).has_table("sessions"))
