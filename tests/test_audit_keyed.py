"""The keyed audit chain (audit.key_env): HMAC-SHA256, so a rewrite needs the key too."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import Connection, select, update

from seatgate.app import Core
from seatgate.audit import chain as audit_chain
from seatgate.cli.main import cli
from seatgate.clock import FakeClock
from seatgate.config import AuditConfig, load_config
from seatgate.errors import ConfigError
from seatgate.licensing.vendor import VendorKey
from seatgate.storage.schema import audit_chain as chain_head
from seatgate.storage.schema import audit_events
from tests.conftest import make_config, write_config

KEY_ENV = "SEATGATE_TEST_AUDIT_KEY"
KEY = "k" * 40
OTHER_KEY = "o" * 40


@pytest.fixture
def make_core(
    db_url: str, vendor_key: VendorKey, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[..., Core]]:
    """make_core(key=None | text) -> a Core on the one test database, keyed when key is given."""
    built: list[Core] = []

    def _make(key: str | None = None) -> Core:
        config = make_config(db_url, vendor_key)
        if key is not None:
            monkeypatch.setenv(KEY_ENV, key)
            config = replace(config, audit=AuditConfig(key_env=KEY_ENV))
        core = Core.build(config, clock=clock, check_schema=False)
        if not built:
            core.init_schema()
        built.append(core)
        return core

    yield _make
    for core in built:
        core.close()


def _write_some(core: Core, prefix: str, count: int = 3) -> None:
    for n in range(count):
        core.accounts.add(f"{prefix}{n}", password="pw", actor="test")


def _rewrite_plain(conn: Connection) -> None:
    """The attack: edit an event, then recompute every plain hash and the head after it."""
    rows = conn.execute(select(audit_events).order_by(audit_events.c.id)).all()
    victim = rows[1]
    conn.execute(
        update(audit_events).where(audit_events.c.id == victim.id).values(actor="someone-else")
    )
    prev = audit_chain.GENESIS
    for row in conn.execute(select(audit_events).order_by(audit_events.c.id)).all():
        new_hash = audit_chain.event_hash(prev, row._mapping)
        conn.execute(
            update(audit_events)
            .where(audit_events.c.id == row.id)
            .values(prev_hash=prev, hash=new_hash)
        )
        prev = new_hash
    conn.execute(update(chain_head).values(head_hash=prev))


def test_rewriting_the_chain_with_plain_hashes_passes_unkeyed(
    make_core: Callable[..., Core],
) -> None:
    # Without a key the chain shows edits, not a rewrite by someone who can write the database.
    core = make_core()
    _write_some(core, "u")
    core.db.write(_rewrite_plain)
    assert core.db.read(audit_chain.verify).intact


def test_rewriting_the_chain_with_plain_hashes_is_caught_when_keyed(
    make_core: Callable[..., Core],
) -> None:
    core = make_core(KEY)
    _write_some(core, "u")
    assert core.db.read(lambda conn: audit_chain.verify(conn, core.audit_key)).intact
    core.db.write(_rewrite_plain)
    report = core.db.read(lambda conn: audit_chain.verify(conn, core.audit_key))
    assert not report.intact
    assert report.problem is not None and report.problem.kind == "edited"


def test_dropping_the_marker_and_rewriting_plain_is_caught_when_keyed(
    make_core: Callable[..., Core],
) -> None:
    core = make_core(KEY)
    _write_some(core, "u")

    def unmark_and_rewrite(conn: Connection) -> None:
        conn.execute(
            update(audit_events)
            .where(audit_events.c.action == audit_chain.KEYED_ACTION)
            .values(action="login")
        )
        _rewrite_plain(conn)

    core.db.write(unmark_and_rewrite)
    report = core.db.read(lambda conn: audit_chain.verify(conn, core.audit_key))
    assert report.problem is not None and report.problem.kind == "unkeyed"


def test_verify_with_the_wrong_key_fails(make_core: Callable[..., Core]) -> None:
    core = make_core(KEY)
    _write_some(core, "u")
    report = core.db.read(lambda conn: audit_chain.verify(conn, OTHER_KEY.encode()))
    assert not report.intact
    assert report.problem is not None and "the key is wrong" in report.problem.message
    assert report.problem.event_id == report.keyed_from


def test_verify_without_the_key_cannot_check_a_keyed_chain(make_core: Callable[..., Core]) -> None:
    core = make_core(KEY)
    _write_some(core, "u")
    report = core.db.read(audit_chain.verify)
    assert report.unchecked and not report.intact
    assert report.keyed_from is not None


def test_an_unkeyed_chain_switches_to_keyed_at_a_marker(make_core: Callable[..., Core]) -> None:
    plain = make_core()
    _write_some(plain, "before")
    before = plain.db.read(audit_chain.head_of)
    assert before.keyed_from is None
    keyed = make_core(KEY)
    _write_some(keyed, "after")
    head = keyed.db.read(audit_chain.head_of)
    assert head.keyed_from == before.head_id + 1  # type: ignore[operator]
    report = keyed.db.read(lambda conn: audit_chain.verify(conn, keyed.audit_key))
    assert report.intact and report.events == head.events
    assert report.keyed_from == head.keyed_from
    # Only one marker, however many appends follow.
    _write_some(keyed, "later")
    assert keyed.db.read(audit_chain.head_of).keyed_from == head.keyed_from


def test_editing_an_event_before_the_marker_is_caught_by_the_keyed_marker(
    make_core: Callable[..., Core],
) -> None:
    plain = make_core()
    _write_some(plain, "before")
    keyed = make_core(KEY)
    _write_some(keyed, "after")

    def rewrite_before_marker(conn: Connection) -> None:
        rows = conn.execute(select(audit_events).order_by(audit_events.c.id)).all()
        marker = next(r for r in rows if r.action == audit_chain.KEYED_ACTION)
        conn.execute(
            update(audit_events).where(audit_events.c.id == rows[0].id).values(subject="forged")
        )
        prev = audit_chain.GENESIS
        for row in conn.execute(
            select(audit_events).where(audit_events.c.id < marker.id).order_by(audit_events.c.id)
        ).all():
            new_hash = audit_chain.event_hash(prev, row._mapping)
            conn.execute(
                update(audit_events)
                .where(audit_events.c.id == row.id)
                .values(prev_hash=prev, hash=new_hash)
            )
            prev = new_hash
        # The marker must now follow the new hash: without the key its HMAC cannot.
        conn.execute(
            update(audit_events).where(audit_events.c.id == marker.id).values(prev_hash=prev)
        )

    keyed.db.write(rewrite_before_marker)
    report = keyed.db.read(lambda conn: audit_chain.verify(conn, keyed.audit_key))
    assert report.problem is not None and report.problem.event_id == report.keyed_from


def test_a_process_without_the_key_cannot_append_to_a_keyed_chain(
    make_core: Callable[..., Core],
) -> None:
    keyed = make_core(KEY)
    _write_some(keyed, "u", 1)
    plain = make_core()
    with pytest.raises(ConfigError, match=r"audit\.key_env"):
        plain.accounts.add("late", password="pw", actor="test")
    assert keyed.db.read(lambda conn: audit_chain.verify(conn, keyed.audit_key)).intact


@pytest.mark.parametrize("value", [None, "", "short-key"])
def test_a_missing_or_short_key_stops_start_up(
    make_core: Callable[..., Core], monkeypatch: pytest.MonkeyPatch, value: str | None
) -> None:
    make_core()
    config = replace(make_core().config, audit=AuditConfig(key_env=KEY_ENV))
    if value is None:
        monkeypatch.delenv(KEY_ENV, raising=False)
    else:
        monkeypatch.setenv(KEY_ENV, value)
    with pytest.raises(ConfigError, match=r"audit\.key_env.*at least 32|32 bytes"):
        Core.build(config, check_schema=False)


def test_the_audit_section_is_read_from_the_file(tmp_path: Path, vendor_key: VendorKey) -> None:
    path = write_config(
        tmp_path / "seatgate.yaml", "sqlite:///x.db", vendor_key, {"audit": {"key_env": KEY_ENV}}
    )
    assert load_config(path).audit.key_env == KEY_ENV
    bad = write_config(
        tmp_path / "bad.yaml", "sqlite:///x.db", vendor_key, {"audit": {"key": "inline"}}
    )
    with pytest.raises(ConfigError, match="audit"):
        load_config(bad)


# -- the command line -----------------------------------------------------------------------


def _cli(path: Path, *args: str, key: str | None) -> Any:
    env = {"SEATGATE_CONFIG": None, "LOGNAME": "tester", KEY_ENV: key}
    return CliRunner().invoke(cli, ["--config", str(path), *args], env=env)


@pytest.fixture
def keyed_file(tmp_path: Path, vendor_key: VendorKey, db_url: str) -> Path:
    path = write_config(
        tmp_path / "keyed.yaml", db_url, vendor_key, {"audit": {"key_env": KEY_ENV}}
    )
    assert _cli(path, "init", key=KEY).exit_code == 0
    added = CliRunner().invoke(
        cli,
        ["--config", str(path), "accounts", "add", "ana", "--password-stdin"],
        input="pw-pw-pw\n",
        env={"SEATGATE_CONFIG": None, "LOGNAME": "tester", KEY_ENV: KEY},
    )
    assert added.exit_code == 0, added.output
    return path


def test_audit_verify_reports_a_keyed_chain(keyed_file: Path) -> None:
    result = _cli(keyed_file, "audit", "verify", key=KEY)
    assert result.exit_code == 0, result.output
    assert "audit log intact:" in result.output and "keyed (HMAC) from event #" in result.output
    wrong = _cli(keyed_file, "audit", "verify", "--json", key=OTHER_KEY)
    assert wrong.exit_code == 1
    assert json.loads(wrong.stdout)["problem"]["kind"] == "edited"


def test_audit_verify_without_the_key_says_it_cannot_check(
    keyed_file: Path, tmp_path: Path
) -> None:
    unkeyed = tmp_path / "unkeyed.yaml"
    data = keyed_file.read_text(encoding="utf-8").replace(f"key_env: {KEY_ENV}", "{}")
    unkeyed.write_text(data.replace("audit:\n  {}", "audit: {}"), encoding="utf-8")
    result = _cli(unkeyed, "audit", "verify", key=None)
    assert result.exit_code == 2, result.output
    assert "NOT checked" in result.output and "no key is configured" in result.output
    document = json.loads(_cli(unkeyed, "audit", "verify", "--json", key=None).stdout)
    assert document["unchecked"] is True and document["intact"] is False


def test_audit_head_prints_the_head_to_keep_elsewhere(keyed_file: Path) -> None:
    document = json.loads(_cli(keyed_file, "audit", "head", "--json", key=KEY).stdout)
    assert set(document) == {"head_id", "head_hash", "events", "keyed_from"}
    assert len(document["head_hash"]) == 64 and document["events"] >= 2
    text = _cli(keyed_file, "audit", "head", key=KEY)
    assert text.exit_code == 0
    assert text.output == (
        f"audit head: event #{document['head_id']}, hash {document['head_hash']}, "
        f"{document['events']} events, keyed (HMAC) from event #{document['keyed_from']}\n"
    )
    verified = json.loads(_cli(keyed_file, "audit", "verify", "--json", key=KEY).stdout)
    assert verified["head"] == document["head_hash"]
