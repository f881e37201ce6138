"""The seat lock, as a value: what a seat write needs and only :func:`take_seat_lock` makes.

Every transaction that adds, moves or removes a seat, or writes the seat-use
bookkeeping, first takes the seat lock, then reads the seats held (counted by the
database on the lock row: :mod:`seatgate.storage.seat_counter`) and compares
with the entitlement read under that lock -- which is how the
seat invariant holds across processes and hosts (:mod:`seatgate.seats.ledger`).

The lock is the single ``license_state`` row: ``SELECT ... FOR UPDATE`` on
PostgreSQL. On SQLite a write transaction is ``BEGIN IMMEDIATE`` (the
database's one writer lock, :mod:`seatgate.storage.db`), so there is nothing
more to lock; what is checked is that the connection really is in such a
transaction, since a deferred ``BEGIN`` would let two processes count the same
free seat.

The functions that write seats take a :class:`SeatLock` instead of a bare
connection, so a seat write made without the lock does not type-check.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, final

from sqlalchemy import Connection, Row, select
from sqlalchemy.engine import Compiled
from sqlalchemy.sql.selectable import CTE

from seatgate.seats.state import STATE_COLUMNS, SeatState, state_from_row
from seatgate.storage.db import WRITE_OPTION
from seatgate.storage.driver_statement import DriverStatement, first_row
from seatgate.storage.schema import license_state

# The query that takes the lock, built once (it runs on every seat claim).
_LOCK_QUERY = DriverStatement(
    select(license_state).where(license_state.c.id == 1).with_for_update()
)

LOCKED_STATE: CTE = (
    select(
        license_state.c.id,
        *(license_state.c[name] for name in STATE_COLUMNS),
        license_state.c.usage_level,
        license_state.c.seats_held,
    )
    .where(license_state.c.id == 1)
    .with_for_update()
    .cte("seat_lock")
)
"""The lock as a ``WITH`` clause, for one PostgreSQL statement that takes the lock and then
works under it (:func:`take_seat_lock_with`). A row locked ``FOR UPDATE`` is read in its
newest version once the lock is granted, so its columns -- the entitlement and
``seats_held`` -- are current; the statement's other reads are of its snapshot, taken
before the lock was granted."""


@final
class _Token:
    """Only this module has the instance: :class:`SeatLock` is made here and nowhere else."""

    __slots__ = ()


_TOKEN = _Token()


@final
class SeatLock:
    """Proof that the transaction on :attr:`conn` holds the seat lock.

    Made only by :func:`take_seat_lock`: the constructor wants a token private
    to this module, and refuses anything else at run time too. Valid for the
    transaction it was taken in; the lock goes with its commit or rollback.
    """

    __slots__ = ("_conn", "_seats_held", "_state", "_usage_level")

    def __init__(
        self, token: _Token, conn: Connection, state: SeatState, usage_level: int, seats_held: int
    ) -> None:
        if token is not _TOKEN:
            raise TypeError("a SeatLock is made by take_seat_lock(conn) only")
        self._conn = conn
        self._state = state
        self._usage_level = usage_level
        self._seats_held = seats_held

    @property
    def conn(self) -> Connection:
        """The connection whose transaction holds the lock."""
        return self._conn

    @property
    def state(self) -> SeatState:
        """The stored entitlement as read when the lock was taken.

        Read it again (:func:`seatgate.seats.state.read_state`) after this
        transaction changed the entitlement.
        """
        return self._state

    @property
    def usage_level(self) -> int:
        """The seat-use threshold last reported (:mod:`seatgate.seats.usage`), as read when
        the lock was taken; like :attr:`state`, stale once this transaction reported one."""
        return self._usage_level

    @property
    def seats_held(self) -> int:
        """The seats held when the lock was taken (``license_state.seats_held``, kept by the
        database: :mod:`seatgate.storage.seat_counter`); stale once this transaction adds
        or removes one."""
        return self._seats_held


class NotAWriteTransaction(RuntimeError):
    """The seat lock was asked for outside a SQLite write (``BEGIN IMMEDIATE``) transaction.

    A programming error, not a condition to handle: seat changes run in
    :meth:`seatgate.storage.db.Database.write`.
    """


def take_seat_lock(conn: Connection) -> SeatLock:
    """Take the seat lock for the transaction on ``conn``; return it with the entitlement.

    PostgreSQL: locks the ``license_state`` row until the transaction ends
    (another taker waits). SQLite: the transaction must have been begun by
    :meth:`~seatgate.storage.db.Database.write` (``BEGIN IMMEDIATE``), else
    :class:`NotAWriteTransaction`.
    """
    if conn.dialect.name == "sqlite" and not _immediate(conn):
        raise NotAWriteTransaction(
            "the seat lock needs a write transaction (BEGIN IMMEDIATE) on SQLite"
        )
    row = _LOCK_QUERY.run(conn).one()
    return SeatLock(_TOKEN, conn, state_from_row(row), int(row.usage_level), int(row.seats_held))


def take_seat_lock_with(
    conn: Connection, compiled: Compiled, params: Mapping[str, Any] | None
) -> tuple[SeatLock, Row[Any] | None]:
    """Take the seat lock by running ``compiled`` (PostgreSQL): a statement built on
    :data:`LOCKED_STATE` that returns its columns (``id`` aside) under their own names.

    Returns the lock and the statement's row; None (and the lock taken by
    :func:`take_seat_lock`) when the statement returned none.
    """
    if conn.dialect.name != "postgresql" or not all(t in compiled.string for t in _LOCK_CTE_SQL):
        raise TypeError("take_seat_lock_with runs a PostgreSQL statement built on LOCKED_STATE")
    row = first_row(conn, compiled, params or {})
    if row is None:
        return take_seat_lock(conn), None
    m = row._mapping
    lock = SeatLock(
        _TOKEN,
        conn,
        state_from_row(row),
        int(m["usage_level"]),
        int(m["seats_held"]),
    )
    return lock, row


# How the lock's WITH clause reads in a compiled statement: the check that one is there.
_LOCK_CTE_SQL = ("WITH seat_lock AS", "FROM license_state", "FOR UPDATE)")


def _immediate(conn: Connection) -> bool:
    # SQLite has no row locks (FOR UPDATE is left out of the SQL): the write
    # lock is taken at BEGIN, and only a Database.write transaction begins
    # with BEGIN IMMEDIATE -- the option is set before its begin.
    return conn.in_transaction() and bool(conn.get_execution_options().get(WRITE_OPTION))
