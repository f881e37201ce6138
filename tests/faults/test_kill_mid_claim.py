"""SIGKILL a login process in the middle of its seat claim, many times over.

Each round starts a child process that builds its own installation from the
config file, then (1) logs in the account whose claim the previous round
killed -- the "next login works" check, made by a fresh process -- and (2)
claims a seat for a new account with a pause point installed inside the
claim's write transaction. The child tells the parent through a pipe when it
reaches the point; the parent SIGKILLs it there. The points:

``seat_locked``
    the seat lock is taken (``take_seat_lock``), nothing inserted yet -- on
    PostgreSQL, where one statement takes the lock and inserts the seat
    (``claim_with_lock``), after that statement;
``seat_inserted``
    the seat row is inserted (``insert_seat``, or on PostgreSQL the one-statement
    claim), the audit events not yet chained;
``audit_chained``
    the audit events are appended under the chain lock, nothing committed;
``before_commit``
    SQLAlchemy is about to send COMMIT (the engine's ``commit`` event);
``racing_commit``
    the same event, but the child goes on to COMMIT 2 ms later and the kill
    comes at a random moment within 4 ms: before, during or after the commit.

After each kill the parent reads the database directly: the seat invariant,
no seat without an account or twice for one account, the audit chain intact,
and the killed claim either wholly there (seat, ``seat.claimed`` and the
``login`` event) or wholly absent -- and absent for every point before the
COMMIT was sent: a killed claim never leaves a phantom seat. On SQLite the
write lock must be free at once (the dead writer's locks die with it).

The 25-seat licence has 23 seats held by others, so each round's two logins
fill it up to the last seat; the parent then revokes the older one.

Children come from a ``forkserver``: a clean interpreter started once (no
threads, no connections of the test process) that preloads seatgate and
forks one child per round, so 60 killed processes cost seconds, not the
half second of imports each spawned interpreter would pay.
"""

from __future__ import annotations

import multiprocessing
import random
import signal
import time
import traceback
from multiprocessing.connection import Connection as Pipe
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, event

import seatgate.audit.chain
import seatgate.seats.ledger
import seatgate.seats.lock
from seatgate.app import Core
from seatgate.config import load_config
from seatgate.licensing.vendor import VendorKey
from tests.conftest import add_users
from tests.faults.support import (
    SEATS,
    assert_consistent,
    count_events,
    inspector,
    seat_holders,
    sqlite_write_lock_wait,
    wall_clock_installation,
)

POINTS = ("seat_locked", "seat_inserted", "audit_chained", "before_commit", "racing_commit")
# The order of the rounds' points: the race, whose outcome varies, twice as often.
SCHEDULE = (*POINTS, "racing_commit")
ROUNDS = 36  # per database: six kills at each fixed point, twelve racing the commit
PAUSE_SECONDS = 60.0  # how long a child waits at its point for the kill
REPLY_TIMEOUT = 60.0
# racing_commit: the child commits this long after it reported; the parent
# kills it at a random moment of twice that, so the kill lands before,
# during or after the COMMIT.
RACE_LEAD_SECONDS = 0.002
# The next login must not wait for a lock the killed process held.
NEXT_LOGIN_LIMIT = 10.0

pytestmark = pytest.mark.slow


# --------------------------------------------------------------------------- the child


def _install_pause(app: Core, point: str, pipe: Pipe) -> None:
    """Make the next seat claim stop at ``point``: report to the parent, then wait to die."""

    def arrive(wait: bool = True) -> None:
        pipe.send(("at", point))
        time.sleep(PAUSE_SECONDS if wait else RACE_LEAD_SECONDS)

    # The child dies at the point; nothing needs undoing.
    patch = pytest.MonkeyPatch()
    # On PostgreSQL the claim takes the lock and inserts its seat in one statement
    # (claim_with_lock): both points come after that statement there.
    claim_with_lock = seatgate.seats.ledger.claim_with_lock

    def claimed_with_lock(*args: Any, **kwargs: Any) -> Any:
        lock, found = claim_with_lock(*args, **kwargs)
        if point == "seat_locked" or (found is not None and found.inserted):
            arrive()
        return lock, found

    if point == "seat_locked":

        def locked(conn: Any) -> Any:
            lock = seatgate.seats.lock.take_seat_lock(conn)
            arrive()
            return lock

        patch.setattr(seatgate.seats.ledger, "take_seat_lock", locked)
        patch.setattr(seatgate.seats.ledger, "claim_with_lock", claimed_with_lock)
    elif point == "seat_inserted":
        insert_seat = seatgate.seats.ledger.insert_seat

        def inserted(*args: Any, **kwargs: Any) -> None:
            insert_seat(*args, **kwargs)
            arrive()

        patch.setattr(seatgate.seats.ledger, "insert_seat", inserted)
        patch.setattr(seatgate.seats.ledger, "claim_with_lock", claimed_with_lock)
    elif point == "audit_chained":
        append = seatgate.audit.chain.append

        def chained(*args: Any, **kwargs: Any) -> None:
            append(*args, **kwargs)
            arrive()

        patch.setattr(seatgate.audit.chain, "append", chained)
    else:

        @event.listens_for(app.db.engine, "commit")
        def committing(_conn: Any) -> None:
            arrive(wait=point == "before_commit")


def claim_child(
    config_path: str,
    verify: tuple[str, str] | None,
    claim: tuple[str, str] | None,
    point: str,
    pipe: Pipe,
) -> None:
    """Child process: log ``verify`` in, then claim for ``claim`` and stop at ``point``."""
    try:
        app = Core.build(load_config(config_path))
        if verify is not None:
            started = time.monotonic()
            decision = app.gate.decide(*verify)
            reason = decision.reason.value if decision.reason is not None else None
            pipe.send(("verified", decision.allowed, reason, time.monotonic() - started))
        if claim is not None:
            _install_pause(app, point, pipe)
            decision = app.gate.decide(*claim)
            pipe.send(("finished", decision.allowed))
        app.close()
    except BaseException:
        pipe.send(("error", traceback.format_exc()))
        raise


# --------------------------------------------------------------------------- the parent


def _context() -> multiprocessing.context.ForkServerContext:
    ctx = multiprocessing.get_context("forkserver")
    # Only takes effect when this starts the fork server.
    ctx.set_forkserver_preload(["seatgate.app", "seatgate.config", "psycopg", __name__])
    return ctx


def _receive(pipe: Pipe, child: multiprocessing.process.BaseProcess) -> tuple[Any, ...]:
    if not pipe.poll(REPLY_TIMEOUT):
        pytest.fail(f"child {child.pid} said nothing for {REPLY_TIMEOUT} s")
    message: tuple[Any, ...] = pipe.recv()
    if message[0] == "error":
        pytest.fail(f"child {child.pid} failed:\n{message[1]}")
    return message


def _run_round(
    ctx: multiprocessing.context.ForkServerContext,
    config_path: Path,
    verify: str | None,
    claim: str | None,
    point: str,
) -> None:
    """One child: check ``verify`` logs in, kill it at ``point`` of ``claim``'s seat claim."""
    ours, theirs = ctx.Pipe()
    child = ctx.Process(
        target=claim_child,
        args=(
            str(config_path),
            (verify, f"{verify}-pw") if verify else None,
            (claim, f"{claim}-pw") if claim else None,
            point,
            theirs,
        ),
    )
    child.start()
    theirs.close()
    try:
        if verify is not None:
            _, allowed, reason, seconds = _receive(ours, child)
            assert (allowed, reason) == (True, None), f"{verify} after the kill: {reason}"
            assert seconds < NEXT_LOGIN_LIMIT, f"the next login waited {seconds:.1f} s"
        if claim is None:
            child.join(REPLY_TIMEOUT)
            assert child.exitcode == 0
            return
        assert _receive(ours, child) == ("at", point)
        if point == "racing_commit":
            time.sleep(random.uniform(0, 2 * RACE_LEAD_SECONDS))
        child.kill()  # SIGKILL
        child.join(REPLY_TIMEOUT)
        # A racing child may have finished its login before the signal came.
        assert child.exitcode in (
            (-signal.SIGKILL, 0) if point == "racing_commit" else (-signal.SIGKILL,)
        )
    finally:
        if child.is_alive():
            child.kill()
            child.join()
        ours.close()


def _check_after_kill(engine: Engine, login: str, point: str, db_url: str) -> bool:
    """Check the database after the kill; return whether the killed claim committed."""
    assert_consistent(engine)
    held = login in seat_holders(engine)
    # All of the claim, or none of it: seat, its audit event and the login event.
    assert count_events(engine, "seat.claimed", login) == int(held)
    assert count_events(engine, "login", login, "allowed") == int(held)
    if point != "racing_commit":
        assert not held, f"a claim killed at {point}, before COMMIT, left a seat"
    if db_url.startswith("sqlite"):
        path = Path(db_url.split(":///", 1)[1])
        assert sqlite_write_lock_wait(path) < 1.0
    return held


def test_sigkill_in_the_middle_of_seat_claims(
    tmp_path: Path, db_url: str, vendor_key: VendorKey
) -> None:
    """Thirty-six claims killed at five points leave a consistent ledger, and the next login works.

    Proves: no phantom seat (nothing of a claim killed before COMMIT
    survives; a claim killed around COMMIT is all there or all gone), the
    seat invariant and the audit chain hold after every kill, the database
    is not left locked, and the killed account logs in at once from a fresh
    process.
    """
    app, config_path = wall_clock_installation(tmp_path, db_url, vendor_key)
    try:
        others = add_users(app, SEATS - 2, prefix="other")
        for login in others:
            app.ledger.assign(app.accounts.get(login).id, actor="test")
        claimants = add_users(app, ROUNDS, prefix="killed")
        ctx = _context()
        committed: dict[str, int] = dict.fromkeys(POINTS, 0)
        with inspector(db_url) as engine:
            previous: str | None = None
            for number, login in enumerate(claimants):
                point = SCHEDULE[number % len(SCHEDULE)]
                _run_round(ctx, config_path, previous, login, point)
                committed[point] += _check_after_kill(engine, login, point, db_url)
                if previous is not None:
                    # The previous account logged in (held or claimed): free its seat.
                    assert previous in seat_holders(engine)
                    app.ledger.revoke(app.accounts.get(previous).id, actor="test")
                previous = login
            _run_round(ctx, config_path, previous, None, "none")
            assert seat_holders(engine) == {*others, previous}
            facts = assert_consistent(engine)
            assert facts.seats_held == SEATS - 1
        print(f"claims that committed before the kill, by point: {committed}")
    finally:
        app.close()
