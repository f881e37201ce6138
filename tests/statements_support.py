"""Counting the statements a piece of work runs, on either database."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy

from seatgate.app import Core


@contextmanager
def counting(app: Core) -> Iterator[list[str]]:
    """The statements run on ``app``'s engine inside the block (BEGIN and COMMIT left out).

    On SQLite as ``sqlite3`` traces them: some run on its cursor directly
    (:mod:`seatgate.storage.driver_statement`), past SQLAlchemy's events.
    """
    statements: list[str] = []

    def traced(statement: str) -> None:
        text = " ".join(statement.split())
        # sqlite3 reports each trigger a statement fires as that statement again.
        if statements and statements[-1] == text:
            return
        if text.split(maxsplit=1)[0] not in ("BEGIN", "COMMIT"):
            statements.append(text)

    def seen(_conn: object, _cursor: object, statement: str, *_rest: object) -> None:
        traced(statement)

    traced_connections: list[Any] = []

    def checkout(dbapi_connection: Any, *_rest: object) -> None:
        dbapi_connection.set_trace_callback(traced)
        traced_connections.append(dbapi_connection)

    engine = app.db.engine
    listening: tuple[Any, str, Callable[..., None]] = (
        (engine.pool, "checkout", checkout)
        if engine.dialect.name == "sqlite"
        else (engine, "before_cursor_execute", seen)
    )
    sqlalchemy.event.listen(*listening)
    try:
        yield statements
    finally:
        sqlalchemy.event.remove(*listening)
        for connection in traced_connections:
            connection.set_trace_callback(None)
