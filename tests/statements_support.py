"""Counting the statements a piece of work runs, on either database."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import sqlalchemy

from seatgate.app import Core


@contextmanager
def counting(app: Core) -> Iterator[list[str]]:
    """The statements run on ``app``'s engine inside the block (BEGIN and COMMIT left out).

    As the driver runs them (``sqlite3``'s trace, psycopg's cursors): some run on its
    cursor directly (:mod:`seatgate.storage.driver_statement`), past SQLAlchemy's events.
    """
    statements: list[str] = []

    def traced(statement: str) -> None:
        text = " ".join(statement.split())
        # sqlite3 reports each trigger a statement fires as that statement again.
        if statements and statements[-1] == text:
            return
        if text.split(maxsplit=1)[0] not in ("BEGIN", "COMMIT"):
            statements.append(text)

    class Tracing(psycopg.Cursor[Any]):
        def execute(self, query: Any, *args: Any, **kwargs: Any) -> Any:
            traced(str(query))
            return super().execute(query, *args, **kwargs)

    traced_connections: list[Any] = []
    sqlite = app.db.engine.dialect.name == "sqlite"

    def checkout(dbapi_connection: Any, *_rest: object) -> None:
        if sqlite:
            dbapi_connection.set_trace_callback(traced)
        else:
            dbapi_connection.cursor_factory = Tracing
        traced_connections.append(dbapi_connection)

    pool = app.db.engine.pool
    sqlalchemy.event.listen(pool, "checkout", checkout)
    try:
        yield statements
    finally:
        sqlalchemy.event.remove(pool, "checkout", checkout)
        for connection in traced_connections:
            if sqlite:
                connection.set_trace_callback(None)
            else:
                connection.cursor_factory = psycopg.Cursor
