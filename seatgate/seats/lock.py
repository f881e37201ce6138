"""The seat lock, as a value: what a seat write needs and only :func:`take_seat_lock` makes.

Every transaction that adds, moves or removes a seat, or writes the seat-use
bookkeeping, first takes the seat lock, then counts the seats in the database
and compares with the entitlement read under that lock -- which is how the
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

from typing import final

from sqlalchemy import Connection, select

from seatgate.seats.state import SeatState, state_from_row
from seatgate.storage.db import WRITE_OPTION
from seatgate.storage.schema import license_state

# The query that takes the lock, built once (it runs on every seat claim).
_LOCK_QUERY = select(license_state).where(license_state.c.id == 1).with_for_update()


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

    __slots__ = ("_conn", "_state", "_usage_level")

    def __init__(self, token: _Token, conn: Connection, state: SeatState, usage_level: int) -> None:
        if token is not _TOKEN:
            raise TypeError("a SeatLock is made by take_seat_lock(conn) only")
        self._conn = conn
        self._state = state
        self._usage_level = usage_level

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
    row = conn.execute(_LOCK_QUERY).one()
    return SeatLock(_TOKEN, conn, state_from_row(row), int(row.usage_level))


def _immediate(conn: Connection) -> bool:
    # SQLite has no row locks (FOR UPDATE is left out of the SQL): the write
    # lock is taken at BEGIN, and only a Database.write transaction begins
    # with BEGIN IMMEDIATE -- the option is set before its begin.
    return conn.in_transaction() and bool(conn.get_execution_options().get(WRITE_OPTION))
