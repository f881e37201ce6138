"""Statements run inside a write transaction straight on the driver's own cursor.

A first login's seat claim runs about ten short statements while it holds
SQLite's write lock, which every other first login in every process waits
for. Through SQLAlchemy each costs 40-60 microseconds of Python (the
compiled-cache lookup, an execution context, events, a result object)
against about 10 for ``sqlite3`` itself, so most of the time the lock was
held went into the library, not the database.

:class:`DriverStatement` compiles a statement once per kind of database and
then, on SQLite, binds the values through the same bind processors
SQLAlchemy would use and runs it on the connection's ``sqlite3`` cursor, in
the transaction the caller already has open: it sees and makes the same
changes, rolls back with it, and a driver error reaches the caller as the
:class:`sqlalchemy.exc.DBAPIError` SQLAlchemy would have raised, so retries
and conflict reports work as before. On PostgreSQL
through psycopg it does the same on psycopg's cursor: there the round trip
is most of a statement's cost, but SQLAlchemy's execution still added about
120 microseconds of Python to each (240 against 120 of processor time, one
process, a login's account lookup), and a password login runs four such
statements (the rate limiter's locks and counts, the account lookup, the
admission read). On any other database it is ``conn.execute``.

Only statements with plain bound values: an ``IN`` list (an expanding
parameter) is refused when the statement is compiled.

On PostgreSQL, :func:`first_row` does the same for a statement already
compiled (the one-statement claim, the one-statement audit append): run
through SQLAlchemy's text execution, each built its result's description
and column map again on every run -- 150-200 microseconds of Python for a
claim's two dozen columns, while the seat lock was held and every other
first login waited. Run on psycopg's cursor, the row comes back as psycopg
loads it (the same values SQLAlchemy would hand on: no result processing
applies to these columns there) under names taken from the statement once.
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Callable, Iterator, Mapping, Sequence
from functools import lru_cache
from typing import Any, Protocol, cast

from sqlalchemy import Connection, Executable
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError, StatementError
from sqlalchemy.sql.compiler import Compiled, SQLCompiler
from sqlalchemy.sql.elements import ClauseElement

from seatgate.storage.lost_connection import lost

__all__ = ["DriverResult", "DriverStatement", "Rows", "first_row"]


class Rows(Protocol):
    """What callers use of a statement's result, whichever way it ran."""

    @property
    def rowcount(self) -> int:
        """Rows an UPDATE or DELETE matched."""

    def first(self) -> Any:
        """The first row, or None."""

    def one(self) -> Any:
        """The one row (an error when there is none)."""

    def scalar_one(self) -> Any:
        """The first column of the one row."""

    def scalars(self) -> Iterator[Any]:
        """The first column of every row."""


class DriverResult:
    """The rows a :class:`DriverStatement` returned, fetched at once (they are few)."""

    def __init__(self, rows: Sequence[Any], rowcount: int) -> None:
        self._rows = rows
        self._rowcount = rowcount

    @property
    def rowcount(self) -> int:
        """Rows an UPDATE or DELETE matched (as ``sqlite3`` counts them)."""
        return self._rowcount

    def first(self) -> Any:
        """The first row, or None."""
        return self._rows[0] if self._rows else None

    def one(self) -> Any:
        """The one row; :class:`LookupError` unless there is exactly one."""
        if len(self._rows) != 1:
            raise LookupError(f"expected one row, the statement returned {len(self._rows)}")
        return self._rows[0]

    def scalar_one(self) -> Any:
        """The first column of the one row."""
        return self.one()[0]

    def scalars(self) -> Iterator[Any]:
        """The first column of every row."""
        return (row[0] for row in self._rows)


class DriverStatement:
    """``statement``, compiled once per kind of database, run on SQLite's or psycopg's
    cursor directly."""

    def __init__(self, statement: Executable) -> None:
        self.statement = statement
        self._plans: dict[tuple[str, str], _Plan] = {}

    def run(self, conn: Connection, params: Mapping[str, Any] | None = None) -> Rows:
        """Run the statement in ``conn``'s open transaction with ``params``; its rows."""
        dialect = conn.dialect
        if dialect.name != "sqlite" and dialect.driver != "psycopg":
            return conn.execute(self.statement, dict(params or {}))
        key = (dialect.name, dialect.driver)
        plan = self._plans.get(key)
        if plan is None:
            plan = self._plans[key] = _Plan(self.statement, dialect)
        return plan.run(conn, params or {})


class _Plan:
    """The compiled text, the order of its values, their processors and the row shape."""

    def __init__(self, statement: Executable, dialect: Dialect) -> None:
        compiled = cast(SQLCompiler, cast(ClauseElement, statement).compile(dialect=dialect))
        binds = compiled.binds
        if any(bind.expanding for bind in binds.values()):
            raise TypeError("a DriverStatement takes no expanding (IN list) parameters")
        if compiled.escaped_bind_names:
            raise TypeError("a DriverStatement takes only plain parameter names")
        self.sql = compiled.string
        self.constants = dict(compiled.construct_params(_check=False))
        positions = compiled.positiontup
        # SQLite's parameters are positional; psycopg's named (``%(name)s``), by the
        # names the compiler gave them (anonymous ones included).
        self.positional = positions is not None
        by_name = (
            {name: binds[name] for name in positions}
            if positions is not None
            else {compiled.bind_names[bind]: bind for bind in binds.values()}
        )
        self.names: tuple[str, ...] = tuple(positions if positions is not None else by_name)
        self.binders: tuple[Callable[[Any], Any] | None, ...] = tuple(
            by_name[name].type.dialect_impl(dialect).bind_processor(dialect) for name in self.names
        )
        columns = list(getattr(statement, "exported_columns", ()))
        # A text statement names no columns: its rows stay plain tuples.
        self.row_type = _row_type([str(column.key) for column in columns]) if columns else _plain
        self.loaders = tuple(
            (index, loader)
            for index, column in enumerate(columns)
            if (loader := column.type.dialect_impl(dialect).result_processor(dialect, None))
            is not None
        )
        self.dbapi_error: type[Exception] = dialect.loaded_dbapi.Error
        # psycopg's status of a result with rows (None elsewhere: sqlite3 needs no check).
        pq = getattr(dialect.loaded_dbapi, "pq", None)
        self.rows_status = None if pq is None else pq.ExecStatus.TUPLES_OK

    def run(self, conn: Connection, params: Mapping[str, Any]) -> DriverResult:
        values = {**self.constants, **params} if params else self.constants
        processed = [
            value if bind is None else bind(value)
            for bind, value in zip(self.binders, map(values.__getitem__, self.names), strict=True)
        ]
        if self.positional:
            return self._run_sqlite(conn, tuple(processed))
        return self._run_psycopg(conn, dict(zip(self.names, processed, strict=True)))

    def _run_sqlite(self, conn: Connection, bound: tuple[Any, ...]) -> DriverResult:
        driver: Any = conn.connection.driver_connection
        try:
            cursor = driver.execute(self.sql, bound)
            fetched = cursor.fetchall()
        except self.dbapi_error as exc:
            raise DBAPIError.instance(
                self.sql, bound, exc, self.dbapi_error, dialect=conn.dialect
            ) from exc
        return DriverResult([self._row(raw) for raw in fetched], cursor.rowcount)

    def _run_psycopg(self, conn: Connection, bound: dict[str, Any]) -> DriverResult:
        driver: Any = conn.connection.driver_connection
        cursor = driver.cursor()
        try:
            cursor.execute(self.sql, bound)
            # psycopg refuses to fetch from a statement that returns no rows. Asked through
            # cursor.description, it would describe every column first (tens of microseconds).
            result = cursor.pgresult
            returned = result is not None and result.status == self.rows_status
            fetched = cursor.fetchall() if returned else []
            rowcount = cursor.rowcount
        except self.dbapi_error as exc:
            raise _wrapped(conn, cursor, self.sql, bound, exc) from exc
        finally:
            cursor.close()
        return DriverResult([self._row(raw) for raw in fetched], rowcount)

    def _row(self, raw: tuple[Any, ...]) -> Any:
        if not self.loaders:
            return self.row_type(*raw)
        values = list(raw)
        for index, loader in self.loaders:
            values[index] = loader(values[index])
        return self.row_type(*values)


def _plain(*values: Any) -> tuple[Any, ...]:
    """A row of a statement that names no columns: the values as they came."""
    return values


def _row_type(keys: list[str]) -> Any:
    """A named tuple of the columns, with ``_mapping`` by column key as SQLAlchemy rows have."""
    base: Any = namedtuple("Row", keys, rename=True)  # type: ignore[misc]

    class Row(base):
        __slots__ = ()

        @property
        def _mapping(self) -> dict[str, Any]:
            return dict(zip(keys, self, strict=True))

    return Row


def first_row(conn: Connection, compiled: Compiled, params: Mapping[str, Any]) -> Any | None:
    """Run ``compiled`` (PostgreSQL through psycopg, named parameters) with ``params`` in
    ``conn``'s open transaction on the driver's cursor; its first row, or None.

    The row is a named tuple of the statement's result columns, with ``_mapping``. A
    driver error comes as SQLAlchemy's :class:`~sqlalchemy.exc.DBAPIError`; a
    connection found broken is invalidated first, as SQLAlchemy would.
    """
    dialect = conn.dialect
    if dialect.driver != "psycopg":
        return conn.exec_driver_sql(compiled.string, dict(params)).first()
    driver: Any = conn.connection.driver_connection
    dbapi_error: type[Exception] = dialect.loaded_dbapi.Error
    cursor = driver.cursor()
    try:
        cursor.execute(compiled.string, params)
        raw = cursor.fetchone()
    except dbapi_error as exc:
        raise _wrapped(conn, cursor, compiled.string, params, exc) from exc
    finally:
        cursor.close()
    return None if raw is None else _result_type(compiled)(*raw)


def _wrapped(
    conn: Connection, cursor: Any, sql: str, params: Mapping[str, Any], exc: Exception
) -> StatementError:
    """SQLAlchemy's error for a psycopg error (the connection invalidated first if broken)."""
    dialect = conn.dialect
    broken = dialect.is_disconnect(
        cast(Any, exc), conn.connection.dbapi_connection, cursor
    ) or lost(dialect, exc)
    if broken:
        conn.invalidate(exc)
    return DBAPIError.instance(
        sql, params, exc, dialect.loaded_dbapi.Error, connection_invalidated=broken, dialect=dialect
    )


@lru_cache(maxsize=64)
def _result_type(compiled: Compiled) -> Any:
    """The row type of ``compiled``'s result columns (compiled statements are kept, so few)."""
    statement = compiled.statement
    columns = list(getattr(statement, "exported_columns", ()))
    return _row_type([str(column.key) for column in columns])
