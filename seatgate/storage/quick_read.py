"""One-row reads outside a transaction: for a read that runs on every web request.

:meth:`Database.read <seatgate.storage.db.Database.read>` runs its work in a
transaction on a SQLAlchemy connection. For one SELECT that is pure cost:
on PostgreSQL the BEGIN and the ROLLBACK are two more round trips than the
SELECT itself, and SQLAlchemy's execution and result machinery costs as much
as the read on SQLite. :class:`QuickRead` compiles its SELECT once for the
database's dialect and runs it alone, in autocommit, on a pooled DBAPI
connection, applying the column types' own result conversions.

A single statement in autocommit sees every transaction committed before it
started, as the same statement would at READ COMMITTED (PostgreSQL) or in
its own read transaction (SQLite, WAL): nothing is cached, so what another
process or host committed before the read is in its answer.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy import Select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import PoolProxiedConnection

from seatgate.errors import StorageError
from seatgate.storage.db import Database

log = logging.getLogger(__name__)


class QuickRead:
    """A SELECT of at most one row, compiled once for ``db``, run alone in autocommit.

    The statement's bound parameters other than those passed to :meth:`one`
    must carry their values (constants); :meth:`one` returns the row as a
    mapping by column label, or None.
    """

    def __init__(self, db: Database, statement: Select[Any]) -> None:
        self._engine = db.engine
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

    def one(self, params: Mapping[str, Any]) -> dict[str, Any] | None:
        """The row for ``params``, or None; :class:`StorageError` when the database fails.

        A pooled connection the server has closed is found on use, dropped,
        and the read runs once more on a fresh one (as ``Database.read``).
        """
        values = {**self._constants, **params}
        bound: Any = (
            values if self._positions is None else tuple(values[k] for k in self._positions)
        )
        for attempt in (1, 2):
            try:
                raw = self._engine.raw_connection()
            except DBAPIError as exc:
                raise StorageError(f"database error: {_brief(exc.orig or exc)}") from exc
            try:
                row = self._fetch(raw, bound)
            except self._engine.dialect.loaded_dbapi.Error as exc:
                if attempt == 1 and self._stale(raw, exc):
                    log.info("stale pooled connection, reading again: %s", _brief(exc))
                    continue
                raise StorageError(f"database error: {_brief(exc)}") from exc
            finally:
                raw.close()
            if row is None:
                return None
            converted = list(row)
            for index, processor in self._processors:
                converted[index] = processor(converted[index])
            return dict(zip(self.keys, converted, strict=True))
        raise AssertionError("unreachable")  # pragma: no cover

    def _fetch(self, raw: PoolProxiedConnection, bound: Any) -> Any:
        driver: Any = raw.driver_connection
        if self._switch_autocommit:
            driver.autocommit = True
        try:
            cursor = raw.cursor()
            try:
                cursor.execute(self._sql, bound)
                return cursor.fetchone()
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
