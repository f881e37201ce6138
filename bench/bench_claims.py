"""Seat-claim transactions per second from many processes racing for the last seats.

Setup per database: a built installation with a licence of ``seats`` seats
(all free) and four times as many accounts (imported from a CSV file in one
transaction). The accounts are dealt out to ``PROCESSES`` spawned processes;
each builds its own :class:`~seatgate.app.Core` from the configuration
file, as a server process does, and warms up with one dry-run claim (rolled
back). All then start together at a barrier and claim a seat for each of
their accounts, one transaction each::

    app.db.write(lambda conn: app.ledger.claim_in(conn, account_id, now))

The figure is granted plus refused claims per second over the wall time of
the racing phase (first start to last finish). The seats granted must equal
the free seats, and the database must agree, or the line is not met whatever
the speed.

For context the same processes then race through the bare seat lock (lock
the ``license_state`` row and commit, nothing else) as often as they claimed;
that rate is in the notes: the ceiling the serialised lock leaves on this
machine.

SQLite has no goal: it admits one writer at a time by design (every write
transaction is ``BEGIN IMMEDIATE``), so its figure is reported for reference.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
import queue
import time
import traceback
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Connection

from bench import BACKENDS, CHEAP_HASH, Installation, database, pick, workdir
from bench.common import Goal, Result, result
from seatgate.app import Core
from seatgate.config import load_config
from seatgate.seats.ledger import Claim
from seatgate.seats.lock import take_seat_lock

GOAL_POSTGRES = 1000.0
ACCOUNTS_PER_SEAT = 4
START_TIMEOUT = 180  # seconds for every process to import, connect and reach the barrier
RESULT_TIMEOUT = 600


@dataclass(frozen=True)
class Report:
    """What one racing process sends back."""

    pid: int
    outcomes: dict[str, int]
    claims: tuple[float, float]  # time.monotonic() at its start and end of the claim race
    locks: tuple[float, float]  # the same for the bare-lock race
    errors: list[str]


def run(quick: bool) -> list[Result]:
    """One line per database: claim transactions per second."""
    processes = pick(quick, full=16, quick_size=16, smoke_size=3)
    seats = pick(quick, full=1000, quick_size=250, smoke_size=25)
    with workdir() as folder:
        results = []
        for backend in BACKENDS:
            with database(backend, folder) as url:
                results.append(_measure(backend, url, folder, processes, seats))
        return results


def _measure(backend: str, url: str, folder: Path, processes: int, seats: int) -> Result:
    # No password is verified here: cheap parameters keep the setup short.
    installation = Installation(url, passwords=CHEAP_HASH)
    installation.create(seats=seats)
    config_path = installation.write_config(folder / f"seatgate-{backend}.yaml")
    core = installation.open()
    try:
        ids = _import_accounts(core, folder / f"accounts-{backend}.csv", seats * ACCOUNTS_PER_SEAT)
        held_before = core.ledger.used()
        free = seats - held_before
        reports = _race(config_path, [ids[i::processes] for i in range(processes)])
        held = core.ledger.used()
    finally:
        core.close()

    outcomes: Counter[str] = Counter()
    for report in reports:
        outcomes.update(report.outcomes)
    total = sum(outcomes.values())
    claim_wall = max(r.claims[1] for r in reports) - min(r.claims[0] for r in reports)
    lock_wall = max(r.locks[1] for r in reports) - min(r.locks[0] for r in reports)
    rate = total / claim_wall
    granted = outcomes[Claim.GRANTED.value]
    refused = outcomes[Claim.NO_SEAT.value]
    exact = granted == free == held - held_before and total == len(ids) == granted + refused
    notes = (
        f"{processes} processes, {len(ids)} accounts for {free} free seats: "
        f"granted {granted} (free {free}, held after {held}), refused {refused}"
        + ("" if exact else f" -- WRONG: outcomes {dict(outcomes)}")
        + f"; bare seat lock from the same processes: {total / lock_wall:.0f}/s"
    )
    if backend == "sqlite":
        notes += "; no goal on SQLite: one writer at a time by design (BEGIN IMMEDIATE)"
        goal: tuple[Goal, float] = (">=", 0)
    else:
        goal = (">=", GOAL_POSTGRES)
    line = result(f"claims.{backend}", rate, "claims/s", None, goal, notes=notes)
    return dataclasses.replace(line, met=line.met and exact)


def _import_accounts(core: Core, path: Path, count: int) -> list[int]:
    """Create ``count`` accounts (one import transaction) and return their ids."""
    path.write_text(
        "login\n" + "".join(f"claimer{i:06d}\n" for i in range(count)), encoding="utf-8"
    )
    importer = core.account_importer()
    with importer.check(core.csv_file(path)) as checked:
        if checked.problem_count:
            raise RuntimeError(f"the account import found {checked.problem_count} bad rows")
        importer.apply(checked, actor="bench")
    ids = [listing.account.id for listing in core.accounts.list()]
    if len(ids) != count:
        raise RuntimeError(f"expected {count} accounts, found {len(ids)}")
    return ids


def _race(config_path: Path, work: list[list[int]]) -> list[Report]:
    """Start one spawned process per id list, release them together, collect their reports."""
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(len(work))
    results = ctx.Queue()
    children = [
        ctx.Process(target=_claimer, args=(str(config_path), ids, barrier, results)) for ids in work
    ]
    for child in children:
        child.start()
    reports: list[Report] = []
    try:
        for _ in children:
            try:
                reports.append(results.get(timeout=RESULT_TIMEOUT))
            except queue.Empty:
                break
        for child in children:
            child.join(timeout=30)
    finally:
        for child in children:
            if child.is_alive():
                child.kill()
                child.join()
    errors = [error for report in reports for error in report.errors]
    if errors:
        raise RuntimeError("a claiming process failed:\n" + "\n".join(errors))
    if len(reports) != len(children) or any(child.exitcode != 0 for child in children):
        raise RuntimeError(f"{len(children) - len(reports)} claiming process(es) sent no report")
    return reports


def _claim(app: Core, account_id: int) -> Callable[[Connection], Claim]:
    """The claim transaction's work, as the login gate runs it (its clock read inside)."""

    def work(conn: Connection) -> Claim:
        return app.ledger.claim_in(conn, account_id, app.clock.now())

    return work


def _claimer(config_path: str, ids: list[int], barrier: Any, results: Any) -> None:
    """Child process: build the installation, warm up, then race through the claims."""
    outcomes: Counter[str] = Counter()
    claims = locks = (0.0, 0.0)
    errors: list[str] = []
    try:
        app = Core.build(load_config(config_path))
        try:
            # Compiles every statement of the claim and connects, then rolls back.
            app.db.write(_claim(app, ids[0]), rollback=True)
            barrier.wait(timeout=START_TIMEOUT)
            start = time.monotonic()
            for account_id in ids:
                outcomes[app.db.write(_claim(app, account_id)).value] += 1
            claims = (start, time.monotonic())
            barrier.wait(timeout=START_TIMEOUT)
            start = time.monotonic()
            for _ in ids:
                app.db.write(take_seat_lock)
            locks = (start, time.monotonic())
        finally:
            app.close()
    except BaseException:
        errors.append(traceback.format_exc())
        barrier.abort()  # do not leave the others waiting for a process that is gone
    results.put(Report(os.getpid(), dict(outcomes), claims, locks, errors))


__all__ = ["run"]
