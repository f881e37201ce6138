"""A one-row read on PostgreSQL over connections kept for it alone: one round trip.

:class:`~seatgate.storage.quick_read.QuickRead` runs on every protected web
request. Through the pool, a read also pays the checkout and checkin, the
switch to autocommit and back, and psycopg's cursor and query machinery --
about as much processor time as the round trip itself. :class:`PreparedRead`
keeps instead its own autocommit psycopg connections, outside the pool, on
each of which the statement is prepared once (server-side); a read takes
an idle one (the last one given back, so one thread reading again and again
keeps using the same), runs one ``exec_prepared`` round trip with binary
results, loaded by psycopg's own loaders, and gives it back. A connection is
opened only when every other is in use: there are at most as many as reads
ever ran at once in the process, whatever threads come and go (a threaded
server's thread per request included).

What it sees does not change: each read is a single statement in
autocommit, so it sees every transaction committed before it started, on
any connection, process or host (as at READ COMMITTED). Nothing is cached.

- Fork safety: a connection is used only in the process that opened it;
  after a fork (a pre-forking web server) each worker opens its own on its
  first read, and the parent's is never touched (psycopg does not close a
  connection it inherited).
- A connection the server dropped (a restart, an idle timeout), or a
  prepared statement it no longer knows, is found on use: it is closed with
  every idle one, and the read runs once more on a new one; if that fails too, the caller gets
  :class:`~seatgate.errors.StorageError`, as for any read.
- A web process holds, besides its pool, one connection per request it
  checks at the same time: size ``max_connections`` for both.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import deque
from collections.abc import Mapping
from typing import Any

from sqlalchemy import Engine, Select

from seatgate.errors import StorageError

log = logging.getLogger(__name__)

_STATEMENT = b"seatgate_prepared_read"
"""The prepared statement's name (each connection has only this one)."""

# SQLSTATEs of a statement the server no longer has as it was prepared:
# invalid_sql_statement_name (lost), feature_not_supported ("cached plan
# must not change result type" after a schema change).
_PREPARE_AGAIN = {"26000", "0A000"}


_process = {"pid": os.getpid()}
"""This process's id, kept up to date at fork: asking the kernel on every read costs a syscall."""


def _forked() -> None:
    _process["pid"] = os.getpid()


os.register_at_fork(after_in_child=_forked)


class _Lost(Exception):
    """The connection is gone or its prepared statement is: try once on a new one."""


class _Reader:
    """One connection, the process that opened it, and the transformer that loads its rows."""

    def __init__(self, connection: Any, transformer: Any) -> None:
        self.pid = _process["pid"]
        self.connection = connection
        self.transformer = transformer


class PreparedRead:
    """``statement`` (at most one row), prepared once per connection on ``engine``.

    ``engine`` must be a PostgreSQL engine with the psycopg (3) driver. The
    statement's bound parameters other than those passed to :meth:`row` must
    carry their values (constants).
    """

    def __init__(self, engine: Engine, statement: Select[Any]) -> None:
        dialect = engine.dialect
        # The same dialect, numbering its parameters ($1, $2...) as the server's
        # own prepared statements do.
        numbered = type(dialect)(paramstyle="numeric_dollar")  # type: ignore[call-arg]
        compiled = statement.compile(dialect=numbered)
        self._sql = compiled.string.encode()
        self._constants = dict(compiled.construct_params(_check=False))
        self._positions = tuple(compiled.positiontup or ())
        self._connect_args = dialect.create_connect_args(engine.url)
        # Idle connections, the last one given back on top. deque's append and
        # pop are atomic: no lock on the way of a read.
        self._idle: deque[_Reader] = deque()
        self._lock = threading.Lock()
        self._opened: list[_Reader] = []
        self._psycopg = _psycopg()

    def row(self, params: Mapping[str, Any]) -> tuple[Any, ...] | None:
        """The row for ``params`` as the driver loads it, or None.

        :class:`StorageError` when the database cannot answer (after one more
        try on a new connection when the one taken was lost).
        """
        values = {**self._constants, **params}
        arguments = [values[name] for name in self._positions]
        for attempt in (1, 2):
            reader = self._take()
            try:
                row = self._run(reader, arguments)
            except _Lost as exc:
                self._drop(reader)
                self._drop_idle()
                if attempt == 2:
                    raise StorageError(f"database error: {exc}") from None
                log.info("lost the read connection, reading again: %s", exc)
                continue
            except StorageError:
                self._idle.append(reader)  # the statement failed, not the connection
                raise
            except BaseException:
                self._drop(reader)  # interrupted mid-read: its state is unknown
                raise
            self._idle.append(reader)
            return row
        raise AssertionError("unreachable")  # pragma: no cover

    def connection(self) -> Any:
        """The psycopg connection the next read of this thread uses (opened now if none is idle)."""
        reader = self._take()
        self._idle.append(reader)
        return reader.connection

    def close(self) -> None:
        """Close every connection this process opened."""
        with self._lock:
            opened, self._opened = self._opened, []
        self._idle.clear()
        for reader in opened:
            if reader.pid == _process["pid"]:
                reader.connection.close()

    def _take(self) -> _Reader:
        while True:
            try:
                reader = self._idle.pop()
            except IndexError:
                return self._open()
            if reader.pid == _process["pid"] and not reader.connection.closed:
                return reader
            # Opened before a fork (the parent's, never ours to close) or closed: let it go.

    def _open(self) -> _Reader:
        psycopg, pq, adapt = self._psycopg
        cargs, cparams = self._connect_args
        try:
            connection = psycopg.connect(*cargs, **cparams, autocommit=True)
        except psycopg.Error as exc:
            raise StorageError(f"database error: {_brief(exc)}") from exc
        prepared = connection.pgconn.prepare(_STATEMENT, self._sql)
        if prepared.status != pq.ExecStatus.COMMAND_OK:
            connection.close()
            raise StorageError(f"database error: {_message(prepared)}")
        reader = _Reader(connection, adapt.Transformer(connection))
        with self._lock:
            self._opened = [
                each
                for each in self._opened
                if each.pid == _process["pid"] and not each.connection.closed
            ]
            self._opened.append(reader)
        return reader

    def _run(self, reader: _Reader, arguments: list[Any]) -> tuple[Any, ...] | None:
        psycopg, pq, adapt = self._psycopg
        transformer = reader.transformer
        pgconn = reader.connection.pgconn
        dumped = transformer.dump_sequence(arguments, [adapt.PyFormat.TEXT] * len(arguments))
        try:
            result = pgconn.exec_prepared(
                _STATEMENT, dumped, transformer.formats, result_format=pq.Format.BINARY
            )
        except psycopg.Error as exc:  # no result at all: the connection failed
            raise _Lost(_brief(exc)) from None
        if result.status != pq.ExecStatus.TUPLES_OK:
            message = _message(result)
            state = result.error_field(pq.DiagnosticField.SQLSTATE)
            if pgconn.status != pq.ConnStatus.OK or (state or b"").decode() in _PREPARE_AGAIN:
                raise _Lost(message)
            raise StorageError(f"database error: {message}")
        if result.ntuples == 0:
            return None
        transformer.set_pgresult(result)
        row: tuple[Any, ...] = transformer.load_row(0, tuple)
        transformer.set_pgresult(None)
        return row

    def _drop(self, reader: _Reader) -> None:
        if reader.pid == _process["pid"]:
            reader.connection.close()

    def _drop_idle(self) -> None:
        """Close the idle connections: what lost one (a server restart) likely lost them all."""
        while True:
            try:
                self._drop(self._idle.pop())
            except IndexError:
                return


def _psycopg() -> tuple[Any, Any, Any]:
    """psycopg, its ``pq`` and ``adapt`` (the pg extra: imported only where PostgreSQL is used)."""
    import psycopg  # noqa: PLC0415 (the pg extra, only with a PostgreSQL database)
    from psycopg import adapt, pq  # noqa: PLC0415

    return psycopg, pq, adapt


def _message(result: Any) -> str:
    text = (result.error_message or b"").decode("utf-8", "replace").strip()
    return text.splitlines()[0] if text else "no answer"


def _brief(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
