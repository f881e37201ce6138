"""Engines and transactions.

SQLite (the default) runs in WAL mode with a busy timeout, and every write
transaction starts with ``BEGIN IMMEDIATE`` so that two processes never both
read a seat count and then both write. PostgreSQL runs at READ COMMITTED; the
seat ledger serialises seat changes with a row lock (see
:mod:`seatgate.seats.ledger`). Transient failures -- a lock that stayed busy, a
serialization failure, a deadlock, a dropped connection -- are retried a
bounded number of times, then reported as :class:`DatabaseBusy`.
"""

from __future__ import annotations

import logging
import os
import random
import time
from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.exc import DBAPIError, IntegrityError

from seatgate.errors import DatabaseBusy, StorageConflict, StorageError
from seatgate.storage.commit_hooks import CommitHooks
from seatgate.storage.lost_connection import count_lost_connections

log = logging.getLogger(__name__)

T = TypeVar("T")

SQLITE_BUSY_TIMEOUT_SECONDS = 30
WRITE_ATTEMPTS = 6
# PostgreSQL SQLSTATEs worth another try: serialization_failure,
# deadlock_detected, lock_not_available.
_RETRY_SQLSTATES = {"40001", "40P01", "55P03"}
WRITE_OPTION = "seatgate_write"
"""The execution option that marks a :meth:`Database.write` connection: on SQLite its
transaction begins ``BEGIN IMMEDIATE`` (what :mod:`seatgate.seats.lock` checks for)."""


class Database:
    """One database (SQLite file or PostgreSQL) and how to run transactions in it."""

    def __init__(self, url: str, *, echo: bool = False) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        self.engine: Engine = _make_engine(url, echo=echo)
        self._on_dispose: list[Callable[[], None]] = []

    def write(
        self,
        work: Callable[[Connection], T],
        *,
        attempts: int = WRITE_ATTEMPTS,
        rollback: bool = False,
    ) -> T:
        """Run ``work(conn)`` in one write transaction and commit it.

        With ``rollback`` the transaction is rolled back instead: a dry run
        that takes the same locks and runs the same code as the real one.

        The transaction is retried from the start on a transient database
        failure, so ``work`` must have no effect outside the database.
        Exceptions ``work`` raises roll everything back and propagate.

        Hooks ``work`` asks for (:mod:`seatgate.storage.commit_hooks`) run
        when it has returned, still inside the transaction (a dry run's too),
        and are closed once it is over; each attempt has its own.
        """
        for attempt in range(1, attempts + 1):
            committing = False
            try:
                with self.engine.connect() as conn, CommitHooks() as hooks:
                    conn.execution_options(**{WRITE_OPTION: True})
                    hooks.attach(conn)
                    with conn.begin() as transaction:
                        result = work(conn)
                        hooks.run(conn)
                        if rollback:
                            transaction.rollback()
                        committing = True
                    return result
            except IntegrityError as exc:
                # A unique key another process just took: a conflict to report
                # (the caller may translate it), never a reason to retry.
                raise StorageConflict(f"the database refused a duplicate: {_brief(exc)}") from exc
            except DBAPIError as exc:
                if committing and not _not_committed(exc):
                    # The commit may have landed before the connection broke;
                    # running the work again could apply it twice.
                    raise StorageError(
                        f"the connection failed while committing ({_brief(exc)}); the change "
                        "may or may not have been saved -- check before repeating it"
                    ) from exc
                if not _is_transient(exc) or attempt == attempts:
                    if _is_transient(exc):
                        raise DatabaseBusy(
                            f"the database stayed busy after {attempts} attempts: {_brief(exc)}"
                        ) from exc
                    raise StorageError(f"database error: {_brief(exc)}") from exc
                log.info("transient database failure (attempt %d): %s", attempt, _brief(exc))
                # Jittered backoff so that colliding processes do not collide again.
                time.sleep(min(0.5, 0.01 * 2**attempt) * (0.5 + random.random()))  # noqa: S311
        raise AssertionError("unreachable")  # pragma: no cover

    def read(self, work: Callable[[Connection], T]) -> T:
        """Run ``work(conn)`` in a read transaction (never takes a write lock).

        A pooled connection the server has closed (PostgreSQL restarted) is
        found on use and the read runs once more on a fresh one; pooled
        connections are not pinged before each use, which would cost a round
        trip on every request.
        """
        for attempt in (1, 2):
            try:
                with self.engine.connect() as conn:
                    return work(conn)
            except DBAPIError as exc:
                if exc.connection_invalidated and attempt == 1:
                    log.info("stale pooled connection, reading again: %s", _brief(exc))
                    continue
                raise StorageError(f"database error: {_brief(exc)}") from exc
        raise AssertionError("unreachable")  # pragma: no cover

    def dispose(self) -> None:
        """Close pooled connections, and those kept outside the pool (:meth:`on_dispose`)."""
        for close in self._on_dispose:
            close()
        self.engine.dispose()

    def on_dispose(self, close: Callable[[], None]) -> None:
        """Have :meth:`dispose` call ``close`` (connections held outside the pool)."""
        self._on_dispose.append(close)


def _make_engine(url: str, *, echo: bool) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(
            url, echo=echo, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS}
        )
        _configure_sqlite(engine)
        return engine
    # No pool_pre_ping: writes retry on a connection found dead, reads once
    # (Database.read), so the ping's round trip per transaction buys nothing.
    engine = create_engine(url, echo=echo)
    count_lost_connections(engine)
    return engine


def _configure_sqlite(engine: Engine) -> None:
    # pysqlite's own transaction handling issues a deferred BEGIN lazily; turn it
    # off and begin explicitly, so that write transactions can BEGIN IMMEDIATE
    # (the SQLAlchemy-documented recipe for serializable SQLite transactions).
    @event.listens_for(engine, "do_connect")
    def _on_do_connect(_dialect: Any, _record: Any, _args: Any, _kwargs: Any) -> None:
        create_owner_only(engine.url.database)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_SECONDS * 1000}")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        immediate = conn.get_execution_options().get(WRITE_OPTION, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


# SQLite primary result codes that mean the COMMIT itself was refused and
# nothing was written: SQLITE_READONLY (8), SQLITE_FULL (13). SQLITE_IOERR is
# not among them: it can come after the commit record reached the disk.
_SQLITE_NOTHING_WRITTEN = {8, 13}


def create_owner_only(database: str | None) -> None:
    """Create the SQLite file ``database`` readable and writable by its owner only.

    The database holds password hashes and the session-signing secret. SQLite
    would create it with the process's umask (often world-readable); an empty
    file made here first is a valid empty database, and SQLite gives the
    ``-wal`` and ``-shm`` files it makes later the database file's own mode.
    An existing file is left as it is.
    """
    if not database or database == ":memory:" or database.startswith("file:"):
        return
    try:
        fd = os.open(database, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    except OSError:
        return  # SQLite's own open reports a missing folder or a read-only disk
    os.close(fd)


def _not_committed(exc: DBAPIError) -> bool:
    """Whether a failure during COMMIT certainly left nothing saved."""
    code = getattr(exc.orig, "sqlite_errorcode", None)
    return code is not None and code & 0xFF in _SQLITE_NOTHING_WRITTEN


def _is_transient(exc: DBAPIError) -> bool:
    if exc.connection_invalidated:
        return True
    sqlstate = getattr(exc.orig, "sqlstate", None)
    if sqlstate in _RETRY_SQLSTATES:
        return True
    message = str(exc.orig).lower()
    return "database is locked" in message or "database is busy" in message


def _brief(exc: DBAPIError) -> str:
    return str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
