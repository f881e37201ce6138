"""First-login seat claims from many processes racing for the seats, over a floor.

Setup per database: a built installation with a licence of ``seats`` seats
(all free) and one account more (imported from a CSV file in one
transaction). All but that spare account are dealt out to ``PROCESSES`` spawned processes;
each builds its own :class:`~seatgate.app.Core` from the configuration
file, as a server process does, and warms up with one dry-run claim (rolled
back). All then start together at a barrier and claim a seat for each of
their accounts, one transaction each::

    app.db.write(lambda conn: app.ledger.claim_in(conn, account_id, now))

The value is claims per second over the wall time of the racing phase
(first start to last finish). Every claim is a first login that gets a seat,
so each is a writing transaction, as each floor transaction is. The seats
granted must equal the free seats, the database must agree, and the spare
account's claim afterwards must be refused (no seat left), or the line is
not met whatever the speed.

The floor: the same processes, through the same engine and transaction
code, then race as many times through the least a claim must do -- lock the
``license_state`` row (:func:`~seatgate.seats.lock.take_seat_lock`), insert
one row (into a table shaped like ``seats``), commit. The figure is claims
per second over floor transactions per second (goal >= 0.8).
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

from sqlalchemy import Column, Connection, Integer, MetaData, Table, insert

from bench import BACKENDS, CHEAP_HASH, Installation, database, pick, workdir
from bench.common import Result, result
from seatgate.app import Core
from seatgate.config import load_config
from seatgate.seats.ledger import Claim
from seatgate.seats.lock import take_seat_lock

GOAL = 0.8
START_TIMEOUT = 180  # seconds for every process to import, connect and reach the barrier
RESULT_TIMEOUT = 600


@dataclass(frozen=True)
class Report:
    """What one racing process sends back."""

    pid: int
    outcomes: dict[str, int]
    claims: tuple[float, float]  # time.monotonic() at its start and end of the claim race
    floors: tuple[tuple[float, float], ...]  # the same for the floor races, before and after
    errors: list[str]


def run(quick: bool) -> list[Result]:
    """One line per database: claim transactions per second."""
    processes = pick(quick, full=16, quick_size=16, smoke_size=3)
    seats = pick(quick, full=4000, quick_size=1000, smoke_size=25)
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
        *ids, spare = _import_accounts(core, folder / f"accounts-{backend}.csv", seats + 1)
        FLOOR_ROWS.create(core.db.engine)
        held_before = core.ledger.used()
        free = seats - held_before
        reports = _race(config_path, [ids[i::processes] for i in range(processes)])
        held = core.ledger.used()
        last = core.db.write(_claim(core, spare))
    finally:
        core.close()

    outcomes: Counter[str] = Counter()
    for report in reports:
        outcomes.update(report.outcomes)
    total = sum(outcomes.values())
    claim_wall = max(r.claims[1] for r in reports) - min(r.claims[0] for r in reports)
    floor_walls = [
        max(r.floors[i][1] for r in reports) - min(r.floors[i][0] for r in reports) for i in (0, 1)
    ]
    rate = total / claim_wall
    floor_rate = 2 * total / sum(floor_walls)
    granted = outcomes[Claim.GRANTED.value]
    refused = outcomes[Claim.NO_SEAT.value]
    exact = (
        granted == free == held - held_before
        and total == len(ids) == granted + refused
        and last is Claim.NO_SEAT
    )
    notes = (
        f"{processes} processes, {len(ids)} accounts for {free} free seats: "
        f"granted {granted} (free {free}, held after {held}), refused {refused}; "
        f"then the spare account's claim: {last.value}"
        + ("" if exact else f" -- WRONG: outcomes {dict(outcomes)}")
        + f"; floor: the same processes, {total} transactions that lock the licence-state "
        "row, insert one row and commit, raced before and after the claims "
        f"({total / floor_walls[0]:.0f}/s, {total / floor_walls[1]:.0f}/s)"
    )
    line = result(f"claims.{backend}", rate, "claims/s", floor_rate, (">=", GOAL), notes=notes)
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


FLOOR_ROWS = Table(
    "bench_floor_rows",
    MetaData(),
    Column("account_id", Integer, primary_key=True),
    Column("at", Integer, nullable=False),
)
"""The floor's one row per transaction (shaped like a seat: the account and a time)."""


def _floor(account_id: int) -> Callable[[Connection], None]:
    """The floor transaction's work: lock the state row, insert one row."""

    def work(conn: Connection) -> None:
        take_seat_lock(conn)
        conn.execute(insert(FLOOR_ROWS).values(account_id=account_id, at=int(time.time())))

    return work


def _claimer(config_path: str, ids: list[int], barrier: Any, results: Any) -> None:
    """Child process: build the installation, warm up, then race through the claims."""
    outcomes: Counter[str] = Counter()
    claims = (0.0, 0.0)
    floors: list[tuple[float, float]] = []
    errors: list[str] = []
    try:
        app = Core.build(load_config(config_path))
        try:
            # Compiles every statement of the claim and connects, then rolls back.
            app.db.write(_claim(app, ids[0]), rollback=True)
            app.db.write(_floor(-1), rollback=True)
            # The floor races before and after the claims, so drift hits both alike.
            floors.append(_floor_race(app, ids, barrier, offset=0))
            barrier.wait(timeout=START_TIMEOUT)
            start = time.monotonic()
            for account_id in ids:
                outcomes[app.db.write(_claim(app, account_id)).value] += 1
            claims = (start, time.monotonic())
            floors.append(_floor_race(app, ids, barrier, offset=1_000_000_000))
        finally:
            app.close()
    except BaseException:
        errors.append(traceback.format_exc())
        barrier.abort()  # do not leave the others waiting for a process that is gone
    results.put(Report(os.getpid(), dict(outcomes), claims, tuple(floors), errors))


def _floor_race(app: Core, ids: list[int], barrier: Any, *, offset: int) -> tuple[float, float]:
    """One floor transaction per id, after the others are ready; its start and end."""
    barrier.wait(timeout=START_TIMEOUT)
    start = time.monotonic()
    for account_id in ids:
        app.db.write(_floor(account_id + offset))
    return start, time.monotonic()


__all__ = ["run"]
