"""PostgreSQL drops the connection of a seat reassignment in the middle of its transaction.

Another session runs ``pg_terminate_backend`` on the backend serving
``SeatLedger.reassign`` while its transaction is inside the work (a pause
point wraps a ledger step: it reads the backend's pid, has it terminated and
waits until it is gone, then lets the work go on), at COMMIT, or racing the
COMMIT from another thread. One more case needs the network cut rather than
the backend: the server commits and the connection breaks before its answer
arrives (a loopback proxy that swallows the ``COMMIT`` reply). Whatever
happens, the ledger shows the seat with exactly one of the two accounts, the
move is audited exactly as often as it happened, and the audit chain
verifies.
"""

from __future__ import annotations

import contextlib
import random
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
from sqlalchemy import Connection, Engine, create_engine, event, text

import seatgate.audit.chain
import seatgate.seats.ledger
import seatgate.seats.lock
from seatgate.app import Core
from seatgate.errors import DatabaseBusy, SeatNotHeld, StorageError
from seatgate.storage.db import WRITE_ATTEMPTS
from tests.faults.support import assert_consistent, count_events, inspector, seat_holders

pytestmark = pytest.mark.postgres

# Where the reassign transaction is when its backend is terminated, with
# statements still to run: the next one finds the connection dead.
POINTS = ("seat_locked", "seat_deleted", "seat_inserted")
RACES = 12


class Terminator:
    """Another session on the same server: ends a backend and waits until it is gone."""

    def __init__(self, url: str) -> None:
        self.engine: Engine = create_engine(url, isolation_level="AUTOCOMMIT")
        self.terminated: list[int] = []

    def terminate(self, pid: int) -> None:
        with self.engine.connect() as conn:
            # The timeout (ms) makes the call wait until the backend has exited.
            done = conn.execute(
                text("SELECT pg_terminate_backend(:pid, 5000)"), {"pid": pid}
            ).scalar_one()
        assert done, f"backend {pid} was not terminated"
        self.terminated.append(pid)

    def close(self) -> None:
        self.engine.dispose()


@pytest.fixture
def terminator(pg_url: str) -> Iterator[Terminator]:
    killer = Terminator(pg_url)
    yield killer
    killer.close()


def _backend_pid(conn: Connection) -> int:
    return int(conn.connection.dbapi_connection.info.backend_pid)  # type: ignore[union-attr]


def _pause_at(
    monkeypatch: pytest.MonkeyPatch, point: str, action: Callable[[Connection], None]
) -> None:
    """Run ``action(conn)`` inside the reassign transaction at ``point``."""
    if point == "seat_locked":

        def locked(conn: Connection) -> seatgate.seats.lock.SeatLock:
            lock = seatgate.seats.lock.take_seat_lock(conn)
            action(conn)
            return lock

        monkeypatch.setattr(seatgate.seats.ledger, "take_seat_lock", locked)
    elif point in ("seat_deleted", "seat_inserted"):
        insert_seat = seatgate.seats.ledger.insert_seat

        def inserting(lock: seatgate.seats.lock.SeatLock, *args: Any, **kwargs: Any) -> None:
            if point == "seat_deleted":
                action(lock.conn)  # the source's seat is deleted in this transaction
            insert_seat(lock, *args, **kwargs)
            if point == "seat_inserted":
                action(lock.conn)

        monkeypatch.setattr(seatgate.seats.ledger, "insert_seat", inserting)
    else:
        append = seatgate.audit.chain.append

        def chained(conn: Connection, rows: Any) -> None:
            append(conn, rows)
            action(conn)

        monkeypatch.setattr(seatgate.audit.chain, "append", chained)


def _two_accounts(app: Core, mint: Callable[..., str]) -> tuple[int, int]:
    """A licence, ``ana`` holding a seat and ``bob`` without one; their ids."""
    app.licensing.install(mint("license", seats=25), actor="test")
    for login in ("ana", "bob"):
        app.accounts.add(login, password=f"{login}-pw", actor="test")
    ana, bob = app.accounts.get("ana").id, app.accounts.get("bob").id
    app.ledger.assign(ana, actor="test")
    return ana, bob


def _exactly_one_holds(engine: Engine) -> str:
    holders = seat_holders(engine) & {"ana", "bob"}
    assert len(holders) == 1, f"seat holders after the fault: {sorted(holders)}"
    return holders.pop()


@pytest.mark.parametrize("point", POINTS)
def test_reassign_is_retried_once_after_its_backend_is_terminated(
    build_app: Callable[..., Core],
    mint: Callable[..., str],
    pg_url: str,
    terminator: Terminator,
    monkeypatch: pytest.MonkeyPatch,
    point: str,
) -> None:
    """The connection dies mid-transaction: the retry applies the move exactly once.

    Proves: the first attempt's half (ana's seat deleted, or bob's inserted)
    died with the backend; the bounded retry ran the whole work again on a new
    connection and committed it once -- one ``seat.reassigned`` event, bob
    holds the seat, ana does not.
    """
    app = build_app(pg_url)
    ana, bob = _two_accounts(app, mint)
    calls: list[int] = []

    def terminate_first(conn: Connection) -> None:
        calls.append(_backend_pid(conn))
        if len(calls) == 1:
            terminator.terminate(calls[0])

    _pause_at(monkeypatch, point, terminate_first)

    app.ledger.reassign(ana, bob, actor="test")

    assert len(calls) == 2 and calls[0] != calls[1], calls
    assert terminator.terminated == calls[:1]
    with inspector(pg_url) as engine:
        assert _exactly_one_holds(engine) == "bob"
        assert count_events(engine, "seat.reassigned", "bob") == 1
        assert_consistent(engine)


def test_reassign_gives_up_with_database_busy_when_every_attempt_is_terminated(
    build_app: Callable[..., Core],
    mint: Callable[..., str],
    pg_url: str,
    terminator: Terminator,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A connection that keeps dying: a bounded number of attempts, then a clear DatabaseBusy.

    Proves: exactly ``WRITE_ATTEMPTS`` attempts, each cut after ana's seat
    was deleted inside it, end in :class:`DatabaseBusy` naming the attempts
    and the cause; ana still holds her seat, bob has none, no move is audited.
    """
    app = build_app(pg_url)
    ana, bob = _two_accounts(app, mint)
    calls: list[int] = []

    def terminate_always(conn: Connection) -> None:
        calls.append(_backend_pid(conn))
        terminator.terminate(calls[-1])

    _pause_at(monkeypatch, "seat_deleted", terminate_always)

    started = time.monotonic()
    with pytest.raises(DatabaseBusy) as busy:
        app.ledger.reassign(ana, bob, actor="test")
    elapsed = time.monotonic() - started

    assert len(calls) == WRITE_ATTEMPTS
    message = str(busy.value)
    assert f"after {WRITE_ATTEMPTS} attempts" in message
    assert "terminating connection" in message
    assert "\n" not in message
    assert elapsed < 30, f"giving up took {elapsed:.1f} s"
    with inspector(pg_url) as engine:
        assert _exactly_one_holds(engine) == "ana"
        assert count_events(engine, "seat.reassigned", "bob") == 0
        assert_consistent(engine)


@pytest.mark.parametrize("point", ["audit_chained", "commit_event"])
def test_backend_terminated_at_commit_is_reported_as_maybe_saved_and_not_retried(
    build_app: Callable[..., Core],
    mint: Callable[..., str],
    pg_url: str,
    terminator: Terminator,
    monkeypatch: pytest.MonkeyPatch,
    point: str,
) -> None:
    """The backend is gone when COMMIT is sent: no retry, and the message says what is known.

    ``audit_chained``: terminated after the work's last statement (the audit
    chain append), so COMMIT is the first to find the connection dead;
    ``commit_event``: terminated from the engine's ``commit`` event.
    Proves: a failure at COMMIT is never retried (the commit might have
    landed; running the work again could apply it twice); the caller gets a
    :class:`StorageError` saying the change may or may not have been saved;
    the ledger holds the seat with exactly one account (here ana: the
    backend was gone before COMMIT reached it), and the installation goes on
    working on fresh connections.
    """
    app = build_app(pg_url)
    ana, bob = _two_accounts(app, mint)
    commits: list[int] = []

    @event.listens_for(app.db.engine, "commit")
    def count_commits(conn: Connection) -> None:
        commits.append(_backend_pid(conn))
        if point == "commit_event":
            terminator.terminate(commits[-1])

    if point == "audit_chained":
        _pause_at(monkeypatch, point, lambda conn: terminator.terminate(_backend_pid(conn)))

    with pytest.raises(StorageError) as failed:
        app.ledger.reassign(ana, bob, actor="test")
    event.remove(app.db.engine, "commit", count_commits)
    monkeypatch.undo()

    assert not isinstance(failed.value, DatabaseBusy)
    assert len(commits) == 1, "a failed COMMIT was retried"
    assert len(terminator.terminated) == 1
    message = str(failed.value)
    assert "failed while committing" in message
    assert "may or may not have been saved" in message
    assert "check before repeating it" in message
    with inspector(pg_url) as engine:
        assert _exactly_one_holds(engine) == "ana"
        assert count_events(engine, "seat.reassigned", "bob") == 0
        assert_consistent(engine)
    app.ledger.reassign(ana, bob, actor="test")
    with inspector(pg_url) as engine:
        assert _exactly_one_holds(engine) == "bob"
        assert_consistent(engine)


def test_backend_terminated_while_commit_is_in_flight(
    build_app: Callable[..., Core],
    mint: Callable[..., str],
    pg_url: str,
    terminator: Terminator,
) -> None:
    """A terminate racing the COMMIT, twelve times: the move is all there or not at all.

    A thread terminates the backend 0-1.5 ms (at random) after the engine's
    ``commit`` event fired, while the reassignment goes on to COMMIT at once.
    Proves: each round either returns (the move committed) or raises the
    "may or may not have been saved" :class:`StorageError`; in both cases
    exactly one of the two accounts holds the seat, every move that
    committed is audited once and no other is, and the chain verifies.
    """
    app = build_app(pg_url)
    ana, bob = _two_accounts(app, mint)
    ids = {"ana": ana, "bob": bob}
    fired = threading.Event()
    pids: list[int] = []

    @event.listens_for(app.db.engine, "commit")
    def race(conn: Connection) -> None:
        pids.append(_backend_pid(conn))
        fired.set()

    def killer() -> None:
        if fired.wait(30):
            time.sleep(random.uniform(0, 0.0015))
            terminator.terminate(pids[-1])

    outcomes: list[str] = []
    moves = {"ana": 0, "bob": 0}
    with inspector(pg_url) as engine:
        holder = "ana"
        for _ in range(RACES):
            target = "bob" if holder == "ana" else "ana"
            fired.clear()
            thread = threading.Thread(target=killer)
            thread.start()
            try:
                app.ledger.reassign(ids[holder], ids[target], actor="test")
                outcomes.append("returned")
            except StorageError as exc:
                assert not isinstance(exc, DatabaseBusy)
                assert "may or may not have been saved" in str(exc)
                outcomes.append("maybe saved")
            finally:
                thread.join(30)
            now_holds = _exactly_one_holds(engine)
            if outcomes[-1] == "returned":
                assert now_holds == target
            if now_holds == target:
                moves[target] += 1
            assert count_events(engine, "seat.reassigned", target) == moves[target]
            assert_consistent(engine)
            holder = now_holds
    print(f"outcomes of {RACES} races: {outcomes}, moves: {moves}")
    assert len(pids) == RACES, "a failed COMMIT was retried"


class CommitReplyCutter:
    """A loopback TCP proxy to PostgreSQL that can lose the server's answer to a COMMIT.

    It passes bytes both ways and reads the server's messages (type byte,
    length). Once :attr:`armed`, the next ``CommandComplete`` for COMMIT --
    sent only after the server committed -- is not passed on: both sockets
    are closed instead, so the client sees its connection break during
    COMMIT although the transaction is saved.
    """

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.armed = threading.Event()
        self.cut = threading.Event()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.listener.getsockname()[1])
        self.sockets: list[socket.socket] = []
        self.threads = [threading.Thread(target=self._accept, daemon=True)]
        self.threads[0].start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.upstream)
            self.sockets += [client, server]
            for target, args in (
                (self._to_server, (client, server)),
                (self._to_client, (server, client)),
            ):
                thread = threading.Thread(target=target, args=args, daemon=True)
                thread.start()
                self.threads.append(thread)

    @staticmethod
    def _to_server(client: socket.socket, server: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := client.recv(65536):
                server.sendall(data)

    def _to_client(self, server: socket.socket, client: socket.socket) -> None:
        pending = b""
        with contextlib.suppress(OSError):
            while data := server.recv(65536):
                pending += data
                ready = b""
                while len(pending) >= 5:
                    end = 1 + int.from_bytes(pending[1:5], "big")
                    if len(pending) < end:
                        break
                    message, pending = pending[:end], pending[end:]
                    if (
                        self.armed.is_set()
                        and message[:1] == b"C"
                        and message[5:].rstrip(b"\0") == b"COMMIT"
                    ):
                        self.armed.clear()
                        self.cut.set()
                        client.sendall(ready)
                        for end_point in (client, server):
                            _hang_up(end_point)
                        return
                    ready += message
                client.sendall(ready)

    def url(self, direct_url: str) -> str:
        """``direct_url`` through the proxy (no TLS or GSS: the messages must be readable)."""
        parts = urlsplit(direct_url)
        netloc = f"{parts.username}@127.0.0.1:{self.port}"
        return parts._replace(netloc=netloc, query="sslmode=disable&gssencmode=disable").geturl()

    def close(self) -> None:
        self.listener.close()
        for end_point in self.sockets:
            _hang_up(end_point)


def _hang_up(end_point: socket.socket) -> None:
    # shutdown() first: close() alone neither wakes a thread blocked in
    # recv() on the socket nor ends the connection while that call holds it.
    with contextlib.suppress(OSError):
        end_point.shutdown(socket.SHUT_RDWR)
    end_point.close()


@pytest.fixture
def cutter(pg_url: str) -> Iterator[CommitReplyCutter]:
    parts = urlsplit(pg_url)
    proxy = CommitReplyCutter((parts.hostname or "127.0.0.1", parts.port or 5432))
    yield proxy
    proxy.close()


def test_connection_lost_after_the_server_committed_is_reported_and_never_applied_twice(
    build_app: Callable[..., Core],
    mint: Callable[..., str],
    pg_url: str,
    cutter: CommitReplyCutter,
) -> None:
    """The reassignment committed, but its answer was lost: "may or may not", and once only.

    Proves: a connection lost after the server committed -- the one case the
    "may or may not have been saved" message exists for -- is reported that
    way and not retried; the ledger shows the move done exactly once (bob
    holds the seat, one ``seat.reassigned`` event); repeating the command
    blindly cannot apply it twice (ana has no seat left to move).
    """
    app = build_app(cutter.url(pg_url))
    ana, bob = _two_accounts(app, mint)
    commits: list[int] = []

    @event.listens_for(app.db.engine, "commit")
    def arm(conn: Connection) -> None:
        commits.append(_backend_pid(conn))
        cutter.armed.set()

    with pytest.raises(StorageError) as failed:
        app.ledger.reassign(ana, bob, actor="test")
    event.remove(app.db.engine, "commit", arm)

    assert cutter.cut.is_set()
    assert not isinstance(failed.value, DatabaseBusy)
    assert len(commits) == 1, "a failed COMMIT was retried"
    assert "may or may not have been saved" in str(failed.value)
    with inspector(pg_url) as engine:
        assert _exactly_one_holds(engine) == "bob"
        assert count_events(engine, "seat.reassigned", "bob") == 1
        assert_consistent(engine)
    with pytest.raises(SeatNotHeld):
        app.ledger.reassign(ana, bob, actor="test")
    with inspector(pg_url) as engine:
        assert count_events(engine, "seat.reassigned", "bob") == 1
        assert_consistent(engine)
