"""The seat invariant under concurrent logins from many OS processes.

Each child process is started with the "spawn" method, reads a YAML
configuration file and builds its own :class:`Core` (wall clock, its own
engine and connections), then waits at a barrier so that every child starts
logging in at the same moment. Children report their decisions and any
exception text back through a queue; the parent checks the database.

Each scenario runs on SQLite (a file in tmp_path) and on PostgreSQL, five
times over.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import queue
import threading
import traceback
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from seatgate.app import Core
from seatgate.audit import log as audit
from seatgate.config import load_config
from seatgate.licensing.vendor import VendorKey, issue_token
from seatgate.records import AuditEvent
from tests.conftest import INSTALLATION, add_users, write_config

pytestmark = pytest.mark.slow

ROUNDS = range(5)
START_TIMEOUT = 120  # seconds for every child to import, connect and reach the barrier
RESULT_TIMEOUT = 120


@dataclass(frozen=True)
class Outcome:
    """One child's report."""

    pid: int
    decisions: list[tuple[str, bool, str | None, bool]]  # login, allowed, reason, claimed
    errors: list[str]


def _login_worker(
    config_path: str,
    attempts: list[tuple[str, str]],
    barrier: Any,
    results: Any,
) -> None:
    """Child process: build an installation from the config file, wait, log in."""
    decisions: list[tuple[str, bool, str | None, bool]] = []
    errors: list[str] = []
    try:
        app = Core.build(load_config(config_path))
        try:
            app.ledger.state()  # connected and ready before the start line
            barrier.wait(timeout=START_TIMEOUT)
            for login, password in attempts:
                try:
                    decision = app.gate.decide(login, password)
                except Exception:
                    errors.append(f"{login}: {traceback.format_exc()}")
                    continue
                reason = decision.reason.value if decision.reason is not None else None
                decisions.append((login, decision.allowed, reason, decision.seat_claimed))
        finally:
            app.close()
    except BaseException:
        errors.append(traceback.format_exc())
        barrier.abort()  # do not leave the others waiting for a child that is gone
    results.put(Outcome(os.getpid(), decisions, errors))


def _installation(tmp_path: Path, db_url: str, vendor_key: VendorKey) -> tuple[Core, Path]:
    """The parent's installation (wall clock) with a 25-seat licence issued now."""
    config_path = write_config(tmp_path / "seatgate.yaml", db_url, vendor_key)
    app = Core.build(load_config(config_path), check_schema=False)
    app.init_schema()
    token = issue_token(
        vendor_key,
        kind="license",
        installation_id=INSTALLATION,
        customer="acme",
        now=datetime.now(UTC),
        edition="bizspace",
        seats=25,
    )
    app.licensing.install(token, actor="test")
    assert app.ledger.state().seats_total == 25
    return app, config_path


def _run_children(config_path: Path, work: list[list[tuple[str, str]]]) -> list[Outcome]:
    """Start one spawned child per attempt list, release them together, collect reports."""
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(len(work) + 1)
    results = ctx.Queue()
    children = [
        ctx.Process(target=_login_worker, args=(str(config_path), attempts, barrier, results))
        for attempts in work
    ]
    for child in children:
        child.start()
    outcomes: list[Outcome] = []
    try:
        # A broken barrier means a child failed to start; its report says why.
        with contextlib.suppress(threading.BrokenBarrierError):
            barrier.wait(timeout=START_TIMEOUT)
        for _ in children:
            try:
                outcomes.append(results.get(timeout=RESULT_TIMEOUT))
            except queue.Empty:
                break
        for child in children:
            child.join(timeout=30)
    finally:
        for child in children:
            if child.is_alive():
                child.kill()
                child.join()
    assert [child.exitcode for child in children] == [0] * len(children)
    assert len(outcomes) == len(children), "a child sent no report"
    return outcomes


def _events(app: Core, action: str) -> list[AuditEvent]:
    return app.db.read(lambda conn: audit.recent(conn, limit=100_000, action=action))


@pytest.mark.parametrize("repeat", ROUNDS)
def test_eight_processes_200_first_logins_25_seats(
    tmp_path: Path, db_url: str, vendor_key: VendorKey, repeat: int
) -> None:
    app, config_path = _installation(tmp_path, db_url, vendor_key)
    try:
        logins = add_users(app, 200)
        work = [[(login, f"{login}-pw") for login in logins[i::8]] for i in range(8)]
        assert all(len(attempts) == 25 for attempts in work)

        outcomes = _run_children(config_path, work)

        errors = [error for outcome in outcomes for error in outcome.errors]
        assert errors == []
        decisions = [d for outcome in outcomes for d in outcome.decisions]
        assert sorted(d[0] for d in decisions) == sorted(logins)
        allowed = {login for login, ok, _, _ in decisions if ok}
        refusals = [reason for _, ok, reason, _ in decisions if not ok]
        assert len(allowed) == 25
        assert refusals == ["no_seat_available"] * 175
        assert all(claimed for login, ok, _, claimed in decisions if ok)

        # The database agrees with what the callers were told.
        assert app.ledger.used() == 25
        assert {h.login for h in app.ledger.holders()} == allowed
        claimed_events = _events(app, "seat.claimed")
        assert sorted(e.subject or "" for e in claimed_events) == sorted(allowed)
        login_events = _events(app, "login")
        assert len(login_events) == 200
        assert sorted(e.outcome or "" for e in login_events) == sorted(
            ["allowed"] * 25 + ["no_seat_available"] * 175
        )
    finally:
        app.close()


@pytest.mark.parametrize("repeat", ROUNDS)
def test_one_account_from_ten_processes_holds_one_seat(
    tmp_path: Path, db_url: str, vendor_key: VendorKey, repeat: int
) -> None:
    app, config_path = _installation(tmp_path, db_url, vendor_key)
    try:
        (login,) = add_users(app, 1, prefix="shared")
        outcomes = _run_children(config_path, [[(login, f"{login}-pw")]] * 10)

        errors = [error for outcome in outcomes for error in outcome.errors]
        assert errors == []
        decisions = [d for outcome in outcomes for d in outcome.decisions]
        assert len(decisions) == 10
        assert all(ok for _, ok, _, _ in decisions)
        assert sum(claimed for _, _, _, claimed in decisions) == 1
        assert len({outcome.pid for outcome in outcomes}) == 10

        assert app.ledger.used() == 1
        assert [h.login for h in app.ledger.holders()] == [login]
        assert [e.subject for e in _events(app, "seat.claimed")] == [login]
        assert [e.outcome for e in _events(app, "login")] == ["allowed"] * 10
    finally:
        app.close()
