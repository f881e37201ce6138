"""One-row reads outside a transaction: for a read that runs on every web request.

:meth:`Database.read <seatgate.storage.db.Database.read>` runs its work in a
transaction on a SQLAlchemy connection. For one SELECT that is pure cost:
on PostgreSQL the BEGIN and the ROLLBACK are two more round trips than the
SELECT itself, and SQLAlchemy's execution and result machinery costs as much
as the read on SQLite. :class:`QuickRead` compiles its SELECT once for the
database's dialect and runs it alone, in autocommit, on a pooled DBAPI
connection, applying the column types' own result conversions. On
PostgreSQL with psycopg it runs instead, prepared, on connections kept for
it outside the pool (:mod:`seatgate.storage.prepared_read`): one round
trip and little else.

A single statement in autocommit sees every transaction committed before it
started, as the same statement would at READ COMMITTED (PostgreSQL) or in
its own read transaction (SQLite, WAL), so what another process or host
committed before the read is in its answer.

On SQLite a QuickRead made with ``cache=True`` keeps the rows it read per
pooled connection and hands one out again only while nothing can have
changed since it was read:

- ``PRAGMA data_version`` (read first, on the same connection, every time)
  is unchanged: SQLite changes it whenever any *other* connection, in this
  process or another, commits to the database file;
- and nobody else has checked the connection out of the pool since: commits
  made *on* a connection do not change its own data_version, and every
  write here goes through a checkout of its own, so any other checkout
  drops the connection's rows.

Rows are dropped with their connection (closed, invalidated, or the pool
disposed after a fork). PostgreSQL has no such cheap signal that would not
itself be a round trip, so there every read goes to the database.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any, Generic, TypeVar

from sqlalchemy import Select, event
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import PoolProxiedConnection

from seatgate.errors import StorageError
from seatgate.storage.db import Database
from seatgate.storage.prepared_read import PreparedRead

log = logging.getLogger(__name__)

T = TypeVar("T")

# Keys of a pooled connection's ``info`` (kept with the DBAPI connection, dropped with it).
_CHECKOUTS = "seatgate_checkouts"
"""How many times the connection has been checked out of the pool."""
_CACHE = "seatgate_quick_read_cache"
"""Prefix of one QuickRead's key there; its value: (the read's last checkout
number, the data_version its rows were read at, the rows)."""
CACHE_LIMIT = 4096
"""Rows (and digests) kept per pooled connection and per read; past it all are dropped."""


def _count_checkout(_dbapi_connection: Any, record: Any, _proxy: Any) -> None:
    record.info[_CHECKOUTS] = record.info.get(_CHECKOUTS, 0) + 1


class QuickRead(Generic[T]):
    """A SELECT of at most one row, compiled once for ``db``, run alone in autocommit.

    The statement's bound parameters other than those passed to :meth:`one`
    must carry their values (constants). :meth:`one` returns ``digest`` of the
    row (a mapping by column label), or None. A digest is made once per
    distinct row and handed out again while the row read is the same (or,
    with the cache, while nothing can have changed), so it should be immutable.
    """

    def __init__(
        self,
        db: Database,
        statement: Select[Any],
        digest: Callable[[dict[str, Any]], T],
        *,
        cache: bool = False,
    ) -> None:
        self._digest = digest
        # The last row read for each key and its digest (any connection).
        self._digests: dict[tuple[Any, ...], tuple[Any, T]] = {}
        self._engine = db.engine
        self._cache = cache and db.is_sqlite
        self._cache_key = f"{_CACHE}:{id(self)}"
        if self._cache and not event.contains(db.engine, "checkout", _count_checkout):
            event.listen(db.engine, "checkout", _count_checkout)
        dialect = db.engine.dialect
        compiled = statement.compile(dialect=dialect)
        self._sql = compiled.string
        self._constants = dict(compiled.construct_params(_check=False))
        self._positions: tuple[str, ...] | None = (
            tuple(compiled.positiontup) if compiled.positiontup is not None else None
        )
        self.keys: tuple[str, ...] = tuple(statement.selected_columns.keys())
        self._processors: list[tuple[int, Callable[[Any], Any]]] = []
        for index, column in enumerate(statement.selected_columns):
            processor = column.type.dialect_impl(dialect).result_processor(dialect, None)
            if processor is not None:
                self._processors.append((index, processor))
        # pysqlite connections here already run with isolation_level None (see
        # seatgate.storage.db), so a lone SELECT is its own read transaction;
        # psycopg connections are switched to autocommit for the read only.
        self._switch_autocommit = not db.is_sqlite
        # On PostgreSQL with psycopg: connections kept for the read, its statement prepared.
        self._prepared_read: PreparedRead | None = None
        if db.engine.dialect.driver == "psycopg":
            self._prepared_read = PreparedRead(db.engine, statement)
            db.on_dispose(self._prepared_read.close)

    def one(self, params: Mapping[str, Any]) -> T | None:
        """The row for ``params``, or None; :class:`StorageError` when the database fails.

        A pooled connection the server has closed is found on use, dropped,
        and the read runs once more on a fresh one (as ``Database.read``).
        """
        key = tuple(params.values())
        if self._prepared_read is not None:
            driver_row = self._prepared_read.row(params)
            return None if driver_row is None else self._digested(driver_row, key)
        values = {**self._constants, **params}
        bound: Any = (
            values if self._positions is None else tuple(values[k] for k in self._positions)
        )
        for attempt in (1, 2):
            try:
                raw = self._engine.raw_connection()
            except DBAPIError as exc:
                raise StorageError(f"database error: {_brief(exc.orig or exc)}") from exc
            except self._engine.dialect.loaded_dbapi.Error as exc:
                # A new pooled connection that cannot be opened (an unreadable
                # SQLite file) comes straight from the driver, unwrapped.
                raise StorageError(f"database error: {_brief(exc)}") from exc
            try:
                row = self._fetch(raw, bound, key)
            except self._engine.dialect.loaded_dbapi.Error as exc:
                if attempt == 1 and self._stale(raw, exc):
                    log.info("stale pooled connection, reading again: %s", _brief(exc))
                    continue
                raise StorageError(f"database error: {_brief(exc)}") from exc
            finally:
                raw.close()
            return row
        raise AssertionError("unreachable")  # pragma: no cover

    def next_connection(self) -> Any:
        """The connection this thread's next read uses outside the pool (PostgreSQL), or None."""
        return None if self._prepared_read is None else self._prepared_read.connection()

    def _fetch(self, raw: PoolProxiedConnection, bound: Any, key: tuple[Any, ...]) -> T | None:
        driver: Any = raw.driver_connection
        if self._switch_autocommit:
            driver.autocommit = True
        try:
            cursor = raw.cursor()
            try:
                if self._cache:
                    return self._cached(raw, cursor, bound, key)
                return self._run(cursor, bound, key)
            finally:
                cursor.close()
        finally:
            if self._switch_autocommit:
                try:
                    driver.autocommit = False
                except self._engine.dialect.loaded_dbapi.Error as exc:
                    # A connection that cannot go back to transactions (the
                    # server dropped it) is never handed to anyone else.
                    raw.invalidate(exc)

    def _run(self, cursor: Any, bound: Any, key: tuple[Any, ...]) -> T | None:
        cursor.execute(self._sql, bound)
        row = cursor.fetchone()
        return None if row is None else self._digested(row, key)

    def _digested(self, row: Any, key: tuple[Any, ...]) -> T:
        """The digest of ``row`` (a driver row) read for ``key``."""
        # The digest of a row just read that equals the last one read for the
        # same key is the same: reuse it rather than build it again.
        last = self._digests.get(key)
        if last is not None and last[0] == row:
            return last[1]
        converted = list(row)
        for index, processor in self._processors:
            converted[index] = processor(converted[index])
        digested = self._digest(dict(zip(self.keys, converted, strict=True)))
        if len(self._digests) >= CACHE_LIMIT:
            self._digests.clear()
        self._digests[key] = (row, digested)
        return digested

    def _cached(
        self, raw: PoolProxiedConnection, cursor: Any, bound: Any, key: tuple[Any, ...]
    ) -> T | None:
        """The row from this connection's cache if nothing changed since it was read (SQLite)."""
        cursor.execute("PRAGMA data_version")
        (version,) = cursor.fetchone()
        checkout = raw.info.get(_CHECKOUTS, 0)
        last_checkout, cached_version, rows = raw.info.get(self._cache_key, (None, None, {}))
        # Another checkout in between may have committed on this connection,
        # which its data_version does not show.
        if last_checkout != checkout - 1 or cached_version != version or len(rows) > CACHE_LIMIT:
            rows = {}
        raw.info[self._cache_key] = (checkout, version, rows)
        if key in rows:
            return rows[key]  # type: ignore[no-any-return]
        row = self._run(cursor, bound, key)
        if row is not None:  # unknown keys are not kept: guesses cannot fill the cache
            rows[key] = row
        return row

    def _stale(self, raw: PoolProxiedConnection, exc: Any) -> bool:
        """Whether ``exc`` came from a connection the server closed (now dropped from the pool)."""
        if not raw.is_valid:
            return True
        if self._engine.dialect.is_disconnect(exc, raw.dbapi_connection, None):
            raw.invalidate(exc)
            return True
        return False


def _brief(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
