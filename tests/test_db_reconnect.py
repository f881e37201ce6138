"""Pooled PostgreSQL connections the server closed are replaced, not reported.

No pre-ping runs before each use; instead a read retries once and a write
retries as for any transient failure. The server side of every pooled
connection is terminated here, as a PostgreSQL restart would.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable

import psycopg
import pytest
from sqlalchemy import create_engine, event, text
from sqlalchemy.dialects import postgresql, sqlite

from seatgate.app import Core
from seatgate.errors import StorageError
from seatgate.seats.state import count_seats
from seatgate.storage.lost_connection import lost
from tests.conftest import PG_ADMIN_URL, add_users


def terminate_backends_of(url: str) -> int:
    name = url.rsplit("/", 1)[1]
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            return len(
                conn.execute(
                    text(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE datname = :name AND pid <> pg_backend_pid()"
                    ),
                    {"name": name},
                ).all()
            )
    finally:
        admin.dispose()


def seated(app: Core, mint: Callable[..., str], users: int = 1) -> Core:
    """``app`` with a 25-seat licence and ``users`` accounts, ``user000`` signed in on a seat."""
    app.licensing.install(mint("license", seats=25), actor="t")
    add_users(app, users)
    assert app.gate.decide("user000", "user000-pw").allowed  # takes a seat
    return app


@pytest.mark.postgres
def test_reads_and_writes_survive_pooled_connections_closed_by_the_server(
    build_app: Callable[..., Core], pg_url: str, mint: Callable[..., str]
) -> None:
    app = seated(build_app(pg_url), mint, users=2)
    db_url = pg_url
    assert terminate_backends_of(db_url) >= 1

    assert app.db.read(count_seats) == 1  # a read on a dead pooled connection
    assert terminate_backends_of(db_url) >= 1
    assert app.gate.decide("user001", "user001-pw").allowed  # reads and writes
    assert app.db.read(count_seats) == 2


@pytest.mark.postgres
def test_the_session_check_survives_pooled_connections_closed_by_the_server(
    build_app: Callable[..., Core],
    pg_url: str,
    mint: Callable[..., str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = seated(build_app(pg_url), mint)
    token = app.sessions.open(app.accounts.get("user000").id)
    assert app.sessions.check(token).allowed  # its autocommit read, on its own connection
    assert terminate_backends_of(pg_url) >= 1

    with caplog.at_level(logging.INFO, logger="seatgate.storage.prepared_read"):
        assert app.sessions.check(token).allowed  # read again on a fresh connection
    assert "lost the read connection, reading again" in caplog.text
    # The connection that replaced the dead one is back in transactions for the others.
    assert app.gate.decide("user000", "user000-pw").allowed
    assert app.db.read(count_seats) == 1
    app.sessions.end(token, actor="t")
    assert not app.sessions.check(token).allowed


def _backend_pid(app: Core) -> int:
    return int(app.sessions.check_connection().info.backend_pid)


def _allow_connections(url: str, allow: bool) -> None:
    name = url.rsplit("/", 1)[1]
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS {str(allow).lower()}'))
    finally:
        admin.dispose()


@pytest.mark.postgres
def test_the_check_reports_a_database_it_cannot_reach_again_and_recovers(
    build_app: Callable[..., Core], pg_url: str, mint: Callable[..., str]
) -> None:
    app = seated(build_app(pg_url), mint)
    token = app.sessions.open(app.accounts.get("user000").id)
    assert app.sessions.check(token).allowed
    _allow_connections(pg_url, False)
    try:
        assert terminate_backends_of(pg_url) >= 1
        with pytest.raises(StorageError, match="database error"):
            app.sessions.check(token)  # lost, and no new connection either
    finally:
        _allow_connections(pg_url, True)
    assert app.sessions.check(token).allowed  # the next request connects again


def _backends_of(url: str) -> int:
    name = url.rsplit("/", 1)[1]
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            return int(
                conn.execute(
                    text("SELECT count(*) FROM pg_stat_activity WHERE datname = :name"),
                    {"name": name},
                ).scalar_one()
            )
    finally:
        admin.dispose()


@pytest.mark.postgres
def test_threads_share_the_checks_connections_and_a_forked_worker_opens_its_own(
    build_app: Callable[..., Core], pg_url: str, mint: Callable[..., str]
) -> None:
    app = seated(build_app(pg_url), mint)
    token = app.sessions.open(app.accounts.get("user000").id)
    assert app.sessions.check(token).allowed
    parent = _backend_pid(app)
    before = _backends_of(pg_url)

    # A threaded server's thread per request: one after another, they all
    # read on the one idle connection rather than each opening its own.
    seen: list[bool] = []
    for _ in range(20):
        thread = threading.Thread(target=lambda: seen.append(app.sessions.check(token).allowed))
        thread.start()
        thread.join()
    assert seen == [True] * 20
    assert _backends_of(pg_url) == before
    assert _backend_pid(app) == parent

    # A pre-forking server: the worker opens its own connection on its first
    # check and never uses (or closes) the one it inherited.
    read_end, write_end = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - the child process
        try:
            answer = f"{int(app.sessions.check(token).allowed)} {_backend_pid(app)}"
            os.write(write_end, answer.encode())
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end) as pipe:
        allowed, pid = pipe.read().split()
    os.waitpid(child, 0)
    assert allowed == "1"
    assert int(pid) != parent
    assert app.sessions.check(token).allowed  # the parent's connection still works
    assert _backend_pid(app) == parent
    app.sessions.end(token, actor="t")
    assert not app.sessions.check(token).allowed


# What psycopg raises when a statement is sent on a connection the server has just ended,
# before psycopg has seen the socket close (the connection is not marked broken yet).
NOT_YET_BROKEN = "sending query failed: terminating connection due to administrator command"


@pytest.mark.postgres
def test_a_connection_lost_before_the_driver_marks_it_broken_is_replaced(
    build_app: Callable[..., Core], pg_url: str, mint: Callable[..., str]
) -> None:
    app = seated(build_app(pg_url), mint)
    failed: list[object] = []

    def ended_by_the_server(conn: object, cursor: object, statement: str, *args: object) -> None:
        if "FROM seats" in statement and not failed:
            failed.append(conn)
            raise psycopg.OperationalError(NOT_YET_BROKEN)

    event.listen(app.db.engine, "before_cursor_execute", ended_by_the_server)
    try:
        # The read fails once as a lost connection and runs again on a fresh one.
        assert app.db.read(count_seats) == 1
        assert len(failed) == 1
        # A write the same: retried from the start.
        failed.clear()
        assert app.db.write(count_seats) == 1
        assert len(failed) == 1
    finally:
        event.remove(app.db.engine, "before_cursor_execute", ended_by_the_server)


def test_which_driver_errors_count_as_a_lost_connection() -> None:
    pg = postgresql.psycopg.dialect()
    pg.loaded_dbapi = psycopg  # as the engine sets it
    assert lost(pg, psycopg.OperationalError(NOT_YET_BROKEN))  # no SQLSTATE: the socket
    assert lost(pg, psycopg.errors.AdminShutdown("terminating connection"))  # 57P01
    assert lost(pg, psycopg.errors.CannotConnectNow("the database system is starting up"))
    assert lost(pg, psycopg.errors.ConnectionFailure("connection failure"))  # class 08
    # Errors the server sent about the statement or the transaction: the connection is fine.
    assert not lost(pg, psycopg.errors.SerializationFailure("could not serialize"))
    assert not lost(pg, psycopg.errors.QueryCanceled("canceling statement"))  # 57014
    assert not lost(pg, psycopg.errors.UniqueViolation("duplicate key"))
    assert not lost(pg, psycopg.ProgrammingError("the last operation didn't produce a result"))
    assert not lost(sqlite.pysqlite.dialect(), psycopg.OperationalError(NOT_YET_BROKEN))
