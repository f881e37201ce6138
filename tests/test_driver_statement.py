"""Statements run on the driver's own cursor (sqlite3, psycopg) behave as SQLAlchemy's
execution of them would."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import psycopg
import pytest
from sqlalchemy import (
    Connection,
    Integer,
    String,
    bindparam,
    create_engine,
    event,
    insert,
    literal,
    select,
    text,
    update,
)
from sqlalchemy.exc import DBAPIError

from seatgate.app import Core
from seatgate.errors import StorageConflict
from seatgate.storage.driver_statement import DriverStatement, first_row
from seatgate.storage.schema import seats
from tests.conftest import PG_ADMIN_URL, add_users

INSERT_SEAT = DriverStatement(
    insert(seats).values(
        {
            **{name: bindparam(name) for name in ("account_id", "assigned_at", "last_used_at")},
            "pinned": False,
            "assigned_by": "test",
        }
    )
)
SEAT = DriverStatement(
    select(seats.c.account_id, seats.c.last_used_at, seats.c.pinned).where(
        seats.c.account_id == bindparam("who")
    )
)
TOUCH = DriverStatement(
    update(seats).where(seats.c.account_id == bindparam("who")).values(last_used_at=bindparam("at"))
)
# A time not in UTC, with microseconds: whatever the column's type does with it, the
# statement on the driver's cursor must do the same.
AT = datetime(2026, 3, 1, 14, 30, 15, 123456, tzinfo=timezone(timedelta(hours=3)))


def account_id(app: Core, prefix: str = "user") -> int:
    (login,) = add_users(app, 1, prefix=prefix)
    return app.accounts.get(login).id


def seat_row(app: Core, who: int) -> tuple[object, ...] | None:
    row = app.db.read(
        lambda conn: conn.execute(
            select(seats.c.last_used_at, seats.c.pinned).where(seats.c.account_id == who)
        ).first()
    )
    return None if row is None else tuple(row)


def test_values_are_stored_and_loaded_as_sqlalchemy_does(app: Core) -> None:
    mine, theirs = account_id(app, "mine"), account_id(app, "theirs")
    app.db.write(lambda conn: INSERT_SEAT.run(conn, seat_values(mine, AT)))
    app.db.write(lambda conn: conn.execute(INSERT_SEAT.statement, seat_values(theirs, AT)))

    # Stored alike, to the byte the driver sees.
    stored = app.db.read(
        lambda conn: conn.exec_driver_sql(
            "SELECT last_used_at, pinned FROM seats ORDER BY account_id"
        ).all()
    )
    assert len(stored) == 2 and stored[0] == stored[1]
    # Loaded alike, by name, by position and by mapping.
    for who in (mine, theirs):
        row = app.db.read(lambda conn, who=who: SEAT.run(conn, {"who": who}).one())
        expected = app.db.read(
            lambda conn, who=who: conn.execute(SEAT.statement, {"who": who}).one()
        )
        assert tuple(row) == tuple(expected) == (who, expected.last_used_at, False)
        assert row.last_used_at == expected.last_used_at
        assert row._mapping == dict(expected._mapping)


def test_it_runs_in_the_callers_transaction(app: Core) -> None:
    who = account_id(app)

    def insert_then_read(conn: Connection) -> int:
        INSERT_SEAT.run(conn, seat_values(who, AT))
        # The row is seen by the transaction's next statement, whichever way it runs.
        return len(conn.execute(select(seats.c.account_id)).all())

    assert app.db.write(insert_then_read, rollback=True) == 1
    assert seat_row(app, who) is None  # rolled back with the transaction

    app.db.write(lambda conn: INSERT_SEAT.run(conn, seat_values(who, AT)))
    later = AT + timedelta(hours=1)
    counts = app.db.write(
        lambda conn: [
            TOUCH.run(conn, {"who": who, "at": later}).rowcount,
            TOUCH.run(conn, {"who": who + 1000, "at": later}).rowcount,
        ]
    )
    assert counts == [1, 0]
    assert seat_row(app, who) == (stored(app, later), False)


def test_a_driver_error_reaches_the_caller_as_sqlalchemy_would_raise_it(app: Core) -> None:
    who = account_id(app)
    app.db.write(lambda conn: INSERT_SEAT.run(conn, seat_values(who, AT)))

    # The duplicate seat: the same conflict report as through SQLAlchemy, nothing changed.
    with pytest.raises(StorageConflict, match="duplicate"):
        app.db.write(lambda conn: INSERT_SEAT.run(conn, seat_values(who, AT + timedelta(1))))
    assert seat_row(app, who) == (stored(app, AT), False)


def test_an_in_list_is_refused_when_compiled(app: Core) -> None:
    listed = DriverStatement(select(seats.c.account_id).where(seats.c.account_id.in_([1, 2])))
    # Both drivers here run it on their own cursor, where no IN list is expanded.
    with pytest.raises(TypeError, match="expanding"):
        app.db.read(listed.run)


def stored(app: Core, at: datetime) -> object:
    """``at`` as SQLAlchemy stores and loads it in the seats table."""
    return app.db.read(
        lambda conn: conn.execute(
            select(bindparam("at", at, type_=seats.c.last_used_at.type))
        ).scalar()
    )


def seat_values(who: int, at: datetime) -> dict[str, object]:
    return {"account_id": who, "assigned_at": at, "last_used_at": at}


@pytest.mark.postgres
def test_first_row_on_postgresql_names_the_columns(
    build_app: Callable[..., Core], pg_url: str
) -> None:
    app = build_app(pg_url)
    statement = select(literal(7).label("seven"), bindparam("word", type_=String).label("word"))
    compiled = statement.compile(dialect=app.db.engine.dialect)
    nothing = select(literal(1).label("one")).where(literal(1) == bindparam("n", type_=Integer))
    none_compiled = nothing.compile(dialect=app.db.engine.dialect)

    row = app.db.read(
        lambda conn: first_row(conn, compiled, compiled.construct_params({"word": "seat"}) or {})
    )
    assert (row.seven, row.word) == (7, "seat")
    assert row._mapping == {"seven": 7, "word": "seat"}
    params = none_compiled.construct_params({"n": 2}) or {}
    assert app.db.read(lambda conn: first_row(conn, none_compiled, params)) is None


@pytest.mark.postgres
def test_first_row_invalidates_a_connection_the_server_dropped(
    build_app: Callable[..., Core], pg_url: str
) -> None:
    app = build_app(pg_url)
    compiled = select(literal(1).label("one")).compile(dialect=app.db.engine.dialect)
    attempts: list[bool] = []

    def work(conn: Connection) -> int:
        if not attempts:
            # The server ends this very connection (a restart, an idle timeout).
            pid = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()
            with create_engine(PG_ADMIN_URL).connect() as admin:
                admin.exec_driver_sql(f"SELECT pg_terminate_backend({int(pid)})")
        try:
            return int(first_row(conn, compiled, compiled.construct_params() or {}).one)
        except DBAPIError as exc:
            attempts.append(exc.connection_invalidated)
            assert conn.invalidated  # never handed out again by the pool
            raise

    # The first attempt fails as a lost connection; the write runs again on a fresh one.
    assert app.db.write(work) == 1
    assert attempts == [True]


def test_it_runs_on_the_drivers_cursor_not_through_sqlalchemy(app: Core) -> None:
    who = account_id(app)
    seen: list[str] = []

    def count(*args: object) -> None:
        seen.append(str(args[2]))

    event.listen(app.db.engine, "before_cursor_execute", count)
    try:
        app.db.write(lambda conn: INSERT_SEAT.run(conn, seat_values(who, AT)))
        row = app.db.read(lambda conn: SEAT.run(conn, {"who": who}).one())
    finally:
        event.remove(app.db.engine, "before_cursor_execute", count)
    assert row.account_id == who
    # What SQLAlchemy executed is only the transaction's own framing, never the statements.
    assert not [sql for sql in seen if "seats" in sql]


@pytest.mark.postgres
def test_a_text_statement_and_a_dropped_connection_on_postgresql(
    build_app: Callable[..., Core], pg_url: str
) -> None:
    app = build_app(pg_url)
    pid_statement = DriverStatement(text("SELECT pg_backend_pid(), :n"))
    attempts: list[bool] = []

    def work(conn: Connection) -> tuple[object, ...]:
        pid, n = pid_statement.run(conn, {"n": 5}).one()  # a plain tuple: text names no columns
        if not attempts:
            # The server ends this very connection (a restart, an idle timeout).
            with create_engine(PG_ADMIN_URL).connect() as admin:
                admin.exec_driver_sql(f"SELECT pg_terminate_backend({int(pid)})")
        try:
            return tuple(pid_statement.run(conn, {"n": n}).one())
        except DBAPIError as exc:
            attempts.append(exc.connection_invalidated)
            assert conn.invalidated  # never handed out again by the pool
            raise

    # The first attempt fails as a lost connection; the write runs again on a fresh one.
    row = app.db.write(work)
    assert row[1] == 5
    assert attempts == [True]


@pytest.mark.postgres
def test_a_connection_lost_before_psycopg_marks_it_broken_is_invalidated(
    build_app: Callable[..., Core], pg_url: str
) -> None:
    app = build_app(pg_url)
    statement = DriverStatement(text("SELECT :n"))
    attempts: list[bool] = []

    class EndedByTheServer(psycopg.Cursor[Any]):
        """A cursor whose statement fails as one sent just after the server ended the
        connection, before psycopg has seen the socket close."""

        def execute(self, *args: Any, **kwargs: Any) -> Any:
            raise psycopg.OperationalError(
                "sending query failed: terminating connection due to administrator command"
            )

    def work(conn: Connection) -> tuple[object, ...]:
        if not attempts:
            conn.connection.driver_connection.cursor_factory = EndedByTheServer
        try:
            return tuple(statement.run(conn, {"n": 7}).one())
        except DBAPIError as exc:
            attempts.append(exc.connection_invalidated)
            assert conn.invalidated  # never handed out again by the pool
            raise

    # Found lost, the connection is invalidated and the write runs again on a fresh one.
    assert app.db.write(work) == (7,)
    assert attempts == [True]
