"""The seat lock: a seat write without it does not type-check, nothing else takes it, claims wait.

The type check runs the project's own mypy (strict) over small modules that
use seatgate as any caller would; the source scan reads seatgate/ and
adapters/ for row locks, so a seat lock taken some other way cannot come back
unnoticed. The waiting tests are database-specific by nature: a login on a
held seat takes no lock, a first login waits for it.
"""

from __future__ import annotations

import ast
import os
import re
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import Connection, Engine, create_engine, event, text

from seatgate.app import Core
from seatgate.gate.decision import Decision
from seatgate.seats import ledger as ledger_module
from seatgate.seats.lock import NotAWriteTransaction, SeatLock, take_seat_lock
from tests.conftest import add_users
from tests.test_ledger import Mint, account_id, login

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ("seatgate", "adapters")

# -- mypy rejects a seat write without the lock ------------------------------------------

_PRELUDE = """\
from datetime import datetime

from sqlalchemy import Connection

from seatgate.accounts.service import change_status_in
from seatgate.licensing import clock_guard
from seatgate.licensing.service import Licensing
from seatgate.seats import usage
from seatgate.seats.ledger import SeatLedger
from seatgate.seats.lock import SeatLock, take_seat_lock
from seatgate.seats.rows import delete_seat, insert_seat

"""

# A bare connection passed as the first argument.
_BARE = re.compile(r"\(conn([,)])")
# One seat write per line; each passes a bare connection where the lock belongs.
_WITHOUT_LOCK = [
    'insert_seat(conn, 1, now, assigned_by="admin", pinned=False)',
    "delete_seat(conn, 1)",
    'ledger.grant_in(conn, 1, actor="admin", reason="test")',
    "ledger.has_room_in(conn)",
    'ledger.release_in(conn, 1, actor="admin", reason="test")',
    'ledger.enforce_capacity_in(conn, 25, actor="admin")',
    'ledger.observe_usage_in(conn, actor="admin")',
    "usage.observe_in(conn, now, 25)",
    'change_status_in(conn, ledger, 1, "ana", "disabled", actor="admin", now=now)',
    'licensing.refresh_in(conn, actor="admin")',
    "clock_guard.observe_in(conn, now, database_clock=False)",
]


def _module(body: list[str], *, locked: bool) -> str:
    first = "lock = take_seat_lock(conn)\n" if locked else ""
    lines = [first, *(f"{line}\n" for line in body)]
    return (
        _PRELUDE
        + "def work(conn: Connection, ledger: SeatLedger, licensing: Licensing, now: datetime)"
        + " -> None:\n"
        + textwrap.indent("".join(lines), "    ")
    )


def _mypy(tmp_path: Path, *files: Path) -> str:
    """Run the project's mypy, strict, on ``files``; its report."""
    # MYPYPATH: the editable install is an import hook mypy cannot follow.
    env = {**os.environ, "MYPYPATH": str(ROOT)}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--strict",
            "--no-error-summary",
            "--cache-dir",
            str(tmp_path / "mypy-cache"),
            *map(str, files),
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert not result.stderr.strip(), result.stderr
    return result.stdout


def test_mypy_rejects_a_seat_write_without_the_lock_and_accepts_it_with(tmp_path: Path) -> None:
    unlocked = tmp_path / "unlocked.py"
    unlocked.write_text(_module(_WITHOUT_LOCK, locked=False), encoding="utf-8")
    locked = tmp_path / "locked.py"
    with_lock = [_BARE.sub(r"(lock\1", call) for call in _WITHOUT_LOCK]
    locked.write_text(_module(with_lock, locked=True), encoding="utf-8")

    report = _mypy(tmp_path, unlocked, locked)

    assert "locked.py" not in report.replace("unlocked.py", ""), report
    rejected = {
        int(match.group(1))
        for match in re.finditer(r'^unlocked\.py:(\d+): error: .*"SeatLock"', report, re.M)
    }
    lines = unlocked.read_text(encoding="utf-8").splitlines()
    expected = {number for number, line in enumerate(lines, 1) if _BARE.search(line)}
    assert len(expected) == len(_WITHOUT_LOCK)
    assert rejected == expected, report


# -- nothing else takes the seat lock ------------------------------------------------------

# Every other row lock in the sources, and what it locks: not the seat state.
OTHER_ROW_LOCKS = {
    "seatgate/audit/chain.py": "audit_chain",
    "seatgate/audit/single_statement.py": "audit_chain",
    # The claimant's row, FOR SHARE, after the seat lock in the same statement.
    "seatgate/seats/one_statement_claim.py": "accounts",
}


def _sources() -> Iterator[tuple[str, str]]:
    for top in SOURCES:
        for path in sorted((ROOT / top).rglob("*.py")):
            yield path.relative_to(ROOT).as_posix(), path.read_text(encoding="utf-8")


def _row_locks(source: str) -> list[str]:
    """The source of what each ``.with_for_update()`` in ``source`` is called on.

    A module-level name is replaced by the statement assigned to it.
    """
    tree = ast.parse(source)
    assigned = {
        target.id: node.value
        for node in tree.body
        if isinstance(node, ast.Assign)
        for target in node.targets
        if isinstance(target, ast.Name)
    }
    found = []
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "with_for_update"
        ):
            receiver = node.func.value
            if isinstance(receiver, ast.Name) and receiver.id in assigned:
                receiver = assigned[receiver.id]
            found.append(ast.unparse(receiver))
    return found


def test_the_seat_state_is_row_locked_only_in_the_lock_module() -> None:
    locks = {path: _row_locks(source) for path, source in _sources()}
    locks = {path: found for path, found in locks.items() if found}
    seat_locks = {path for path, found in locks.items() if any("license_state" in f for f in found)}

    assert seat_locks == {"seatgate/seats/lock.py"}
    assert set(locks) == {"seatgate/seats/lock.py", *OTHER_ROW_LOCKS}
    for path, table in OTHER_ROW_LOCKS.items():
        assert all(table in found for found in locks[path]), (path, locks[path])
    # Every mention, code or prose, is in one of those files.
    mentions = {path for path, source in _sources() if "with_for_update" in source}
    assert mentions == set(locks)


def test_no_seat_lock_is_asked_for_with_a_flag() -> None:
    """The old way, ``read_state(conn, lock=True)``, is gone from code and prose."""
    assert [path for path, source in _sources() if "lock=True" in source] == []


def test_seat_rows_are_inserted_and_deleted_only_by_the_row_helpers() -> None:
    writers = {
        path
        for path, source in _sources()
        if re.search(r"\b(insert|delete)\(seats\b|\bseats\.(insert|delete)\(", source)
    }
    assert writers == {"seatgate/seats/rows.py"}


# -- the lock object ---------------------------------------------------------------------


def test_the_seat_lock_on_sqlite_needs_a_write_transaction(
    build_app: Callable[..., Core], sqlite_url: str
) -> None:
    """A deferred ``BEGIN`` would let two processes count the same free seat: refused."""
    app = build_app(sqlite_url)
    with app.db.engine.connect() as conn, conn.begin(), pytest.raises(NotAWriteTransaction):
        take_seat_lock(conn)
    with pytest.raises(NotAWriteTransaction):
        app.db.read(take_seat_lock)
    lock = app.db.write(take_seat_lock)
    assert lock.state == app.ledger.state()


def test_a_seat_lock_is_made_only_by_taking_it(
    build_app: Callable[..., Core], sqlite_url: str
) -> None:
    app = build_app(sqlite_url)
    lock = app.db.write(take_seat_lock)
    with pytest.raises(TypeError, match="take_seat_lock"):
        SeatLock(object(), lock.conn, lock.state, 0, 0)  # type: ignore[arg-type]


# -- who waits for the lock ----------------------------------------------------------


def _run(target: Callable[[], object], results: dict[str, object], name: str) -> threading.Thread:
    def body() -> None:
        try:
            results[name] = target()
        except Exception as exc:  # reported to the test thread
            results[name] = exc

    thread = threading.Thread(target=body, daemon=True)
    thread.start()
    return thread


def _lock_waiters(engine: Engine, *, timeout: float) -> int:
    """Sessions of this database waiting for a lock, once at least one is (or 0)."""
    query = text(
        "SELECT count(*) FROM pg_stat_activity "
        "WHERE datname = current_database() AND wait_event_type = 'Lock'"
    )
    deadline = time.monotonic() + timeout
    while True:
        with engine.connect() as conn:
            waiting = int(conn.execute(query).scalar_one())
        if waiting or time.monotonic() > deadline:
            return waiting
        time.sleep(0.05)


@pytest.mark.postgres
def test_held_seat_login_takes_no_seat_lock_on_postgres(
    build_app: Callable[..., Core], pg_url: str, mint: Mint
) -> None:
    app = build_app(pg_url)
    app.licensing.install(mint("license", seats=25), actor="admin")
    holder, newcomer = add_users(app, 2)
    assert login(app, holder).seat_claimed

    locker = create_engine(pg_url)
    results: dict[str, object] = {}
    try:
        with locker.connect() as conn:
            transaction = conn.begin()
            try:
                take_seat_lock(conn)
                held = _run(lambda: login(app, holder), results, "held")
                held.join(timeout=10)
                assert not held.is_alive(), "a login on a held seat waited for the seat lock"
                decision = results["held"]
                assert isinstance(decision, Decision)
                assert decision.allowed and not decision.seat_claimed

                first = _run(lambda: login(app, newcomer), results, "first")
                assert _lock_waiters(locker, timeout=10) == 1, "a first login did not wait"
                first.join(timeout=0.5)
                assert first.is_alive(), "a first login claimed a seat without the seat lock"
                assert not app.ledger.holds_seat(account_id(app, newcomer))
            finally:
                transaction.rollback()
        first.join(timeout=10)
        assert not first.is_alive()
        decision = results["first"]
        assert isinstance(decision, Decision)
        assert decision.allowed and decision.seat_claimed
        assert app.ledger.used() == 2
    finally:
        locker.dispose()


def test_seat_check_is_a_plain_read_and_a_claim_waits_on_sqlite(
    build_app: Callable[..., Core], sqlite_url: str, mint: Mint, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite has one writer lock for everything, and a login writes its audit
    event, so only the check itself can do without the lock; claiming waits.

    The wait is shown by order, not by timing: the claim's transaction has
    begun while another connection holds ``BEGIN IMMEDIATE``, takes the seat
    lock only after that holder has committed, and sees what the holder wrote.
    A claim that is merely slow, or one that does not wait, fails the order.
    """
    app = build_app(sqlite_url)
    app.licensing.install(mint("license", seats=25), actor="admin")
    holder, newcomer = add_users(app, 2)
    assert login(app, holder).seat_claimed
    holder_id = account_id(app, holder)

    order: list[str] = []
    # Set by the claimer's first step either way: beginning a write, or taking the lock.
    moved, locked = threading.Event(), threading.Event()
    tester = threading.get_ident()

    def beginning(_conn: object, _cursor: object, statement: str, *_rest: object) -> None:
        if statement == "BEGIN IMMEDIATE" and threading.get_ident() != tester:
            order.append("claimer began")
            moved.set()

    def taking(conn: Connection) -> SeatLock:
        lock = take_seat_lock(conn)
        marker = conn.execute(text("SELECT value FROM settings WHERE key = 'test.holder'"))
        order.append(f"claimer locked, holder's write {marker.scalar() or 'unseen'}")
        locked.set()
        moved.set()
        return lock

    monkeypatch.setattr(ledger_module, "take_seat_lock", taking)

    path = sqlite_url.removeprefix("sqlite:///")
    locker = sqlite3.connect(path, isolation_level=None, timeout=30)
    results: dict[str, object] = {}
    event.listen(app.db.engine, "before_cursor_execute", beginning)
    try:
        locker.execute("BEGIN IMMEDIATE")
        try:
            check = _run(lambda: app.ledger.holds_seat(holder_id), results, "check")
            check.join(timeout=10)
            assert not check.is_alive(), "checking a held seat waited for the write lock"
            assert results["check"] is True
            assert order == [], "checking a held seat began a write transaction"

            first = _run(lambda: login(app, newcomer), results, "first")
            # However long the password check takes, the claim gets here...
            assert moved.wait(timeout=60), "the first login never began its claim"
            assert order == ["claimer began"], "a first login claimed a seat without the lock"
            # ...and no further while the holder keeps the write lock.
            assert not locked.wait(timeout=0.5), "a first login claimed a seat without the lock"
            assert not app.ledger.holds_seat(account_id(app, newcomer))
            locker.execute("INSERT INTO settings (key, value) VALUES ('test.holder', 'seen')")
            order.append("holder commits")
            locker.execute("COMMIT")
        finally:
            if locker.in_transaction:
                locker.execute("ROLLBACK")
        assert locked.wait(timeout=30), "the first login never took the seat lock"
        first.join(timeout=30)
        assert not first.is_alive()
        assert order == ["claimer began", "holder commits", "claimer locked, holder's write seen"]
        decision = results["first"]
        assert isinstance(decision, Decision)
        assert decision.allowed and decision.seat_claimed
    finally:
        event.remove(app.db.engine, "before_cursor_execute", beginning)
        locker.close()
