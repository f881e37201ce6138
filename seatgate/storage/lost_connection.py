"""A PostgreSQL connection found lost before psycopg has marked it broken.

SQLAlchemy asks the dialect whether an error means the connection is gone;
for psycopg that is whether psycopg has already marked it closed or broken.
When the server ends a connection (a restart, ``pg_terminate_backend``, an
idle timeout), the next statement on it can fail before psycopg has seen the
socket close -- "sending query failed: terminating connection due to
administrator command". The connection then counted as usable: it was not
invalidated, so a read was not run again on a fresh one (and the pool's
other connections, ended at the same time, were not replaced either).

Counted as lost here as well: an error of the driver's ``OperationalError``
class that the server did not send (no SQLSTATE: the socket or the protocol
failed), SQLSTATE class 08 (connection exception) and 57P01-57P03 (the
server is shutting down, crashed, or not accepting connections yet).
Losing a connection that was still usable costs one new connection; keeping
a lost one costs a failed request.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, event
from sqlalchemy.engine import Dialect, ExceptionContext

_LOST_SQLSTATES = {"57P01", "57P02", "57P03"}


def lost(dialect: Dialect, error: BaseException) -> bool:
    """Whether ``error`` (the driver's own exception) means the connection is gone."""
    if dialect.driver != "psycopg":
        return False
    if not isinstance(error, dialect.loaded_dbapi.OperationalError):
        return False
    sqlstate: Any = getattr(error, "sqlstate", None)
    return sqlstate is None or sqlstate.startswith("08") or sqlstate in _LOST_SQLSTATES


def count_lost_connections(engine: Engine) -> None:
    """Have ``engine`` treat the errors :func:`lost` names as a dropped connection: the
    connection (and the pool's older ones) invalidated, the error flagged so."""

    @event.listens_for(engine, "handle_error")
    def _on_error(context: ExceptionContext) -> None:
        original = context.original_exception
        if not context.is_disconnect and lost(context.dialect, original):
            context.is_disconnect = True
