"""Writing many rows into one table inside the caller's transaction, at the driver's speed.

For the bulk writers (an account import, the audit events of one): SQLAlchemy's
``executemany`` builds and processes a parameter dictionary per row, and on
PostgreSQL psycopg parses again each statement of thousands of parameters it
renders; for an import of a million accounts that cost more than the writing.
Here the rows go to the driver as tuples: PostgreSQL receives them through
``COPY ... FROM STDIN`` (psycopg's ``cursor.copy``), SQLite through
:mod:`sqlite3`'s ``executemany``, both on the transaction's own connection, so
they commit or roll back with everything else it did. Values pass through
the columns' own bind processors first, so a row reads back exactly as if
SQLAlchemy had written it (SQLite keeps timestamps as text).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Sequence
from typing import Any

from sqlalchemy import Connection, Table
from sqlalchemy.exc import DBAPIError


def insert_rows(
    conn: Connection,
    table: Table,
    columns: Sequence[str],
    rows: Iterable[Sequence[Any]],
    *,
    bound: Collection[str] = (),
) -> int:
    """Insert ``rows`` (values in the order of ``columns``) into ``table``; how many.

    The columns named in ``bound`` hold values already as the driver takes
    them (:func:`bind_value`); the others go through their bind processors.
    Raises what the driver raises (a unique key taken, a check that fails),
    wrapped by SQLAlchemy as its usual ``DBAPIError`` subclasses.
    """
    processed = _processed(conn, table, columns, rows, bound)
    # Names from the Table, quoted by the dialect; every value is bound.
    quote = conn.dialect.identifier_preparer.quote
    names = ", ".join(quote(table.c[name].name) for name in columns)
    target = conn.dialect.identifier_preparer.format_table(table)
    if conn.dialect.name == "postgresql":
        return _copy(conn, f"COPY {target} ({names}) FROM STDIN", processed)
    marks = ", ".join("?" for _ in columns)
    # The driver's executemany, through exec_driver_sql (SQLAlchemy's error handling).
    statement = f"INSERT INTO {target} ({names}) VALUES ({marks})"  # noqa: S608
    if processed:
        conn.exec_driver_sql(statement, list(processed))
    return len(processed)


def _copy(conn: Connection, statement: str, rows: Iterable[Sequence[Any]]) -> int:
    driver = conn.connection.driver_connection
    if driver is None:  # pragma: no cover - a connection SQLAlchemy has closed
        raise RuntimeError("the connection is closed")
    dbapi_error: Any = conn.dialect.loaded_dbapi.Error
    count = 0
    try:
        with driver.cursor() as cursor, cursor.copy(statement) as copy:
            for row in rows:
                copy.write_row(row)
                count += 1
    except dbapi_error as exc:
        # What SQLAlchemy does with a driver error of a statement it runs: a lost
        # connection is invalidated, and the error is raised as its own class
        # (IntegrityError, OperationalError, ...), so that Database.write reports a
        # duplicate as a conflict and retries a transient failure as for any other.
        lost = conn.dialect.is_disconnect(exc, conn.connection.dbapi_connection, None)
        if lost:
            conn.invalidate(exc)
        raise DBAPIError.instance(
            statement, None, exc, dbapi_error, connection_invalidated=lost, dialect=conn.dialect
        ) from exc
    return count


def bind_value(conn: Connection, table: Table, column: str, value: Any) -> Any:
    """``value`` as the driver takes it for ``column`` of ``table`` (through its bind processor).

    For a bulk writer whose rows repeat a few values (a timestamp, two booleans):
    each bound once, and the rows given to :func:`insert_rows` as ``bound``.
    """
    process = _processor(conn, table, column)
    return value if process is None else process(value)


def _processed(
    conn: Connection,
    table: Table,
    columns: Sequence[str],
    rows: Iterable[Sequence[Any]],
    bound: Collection[str],
) -> Sequence[Sequence[Any]]:
    """``rows`` with each value through its column's bind processor, where it has one
    and the column is not ``bound``.

    Column by column (the rows transposed and back, in C), not row by row.
    """
    listed = rows if isinstance(rows, list) else list(rows)
    processors = [
        (index, processor)
        for index, name in enumerate(columns)
        if name not in bound and (processor := _processor(conn, table, name)) is not None
    ]
    if not processors or not listed:
        return listed
    by_column: list[Sequence[Any]] = list(zip(*listed, strict=True))
    for index, process in processors:
        by_column[index] = _each_once(process, by_column[index])
    return list(zip(*by_column, strict=True))


def _processor(conn: Connection, table: Table, name: str) -> Callable[[Any], Any] | None:
    dialect = conn.dialect
    return table.c[name].type.dialect_impl(dialect).bind_processor(dialect)


def _each_once(process: Callable[[Any], Any], values: Sequence[Any]) -> list[Any]:
    """``[process(v) for v in values]``, calling ``process`` once per distinct object.

    Bulk rows mostly repeat one timestamp and two booleans. Objects are told
    apart by identity, never equality: two equal times in different zones may
    be stored as different texts. ``values`` keeps every object alive, so no
    identity is reused meanwhile.
    """
    idents = list(map(id, values))
    firsts = dict(zip(idents, values, strict=True))
    if len(firsts) * 2 > len(idents):
        return [process(value) for value in values]
    done = {ident: process(value) for ident, value in firsts.items()}
    return list(map(done.__getitem__, idents))
