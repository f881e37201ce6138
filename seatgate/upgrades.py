"""The data steps of the schema upgrades: what each new version does to the rows.

:mod:`seatgate.storage.migrations` changes the tables; the rows in them
belong to the domain packages, which say here what a version needs done to
them. :meth:`seatgate.app.Core.init_schema` runs both, each version's two
steps in one transaction. A version whose schema step needs nothing done to
the rows has no entry.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection

from seatgate.audit import chain as audit_chain
from seatgate.licensing import lifecycle
from seatgate.storage import migrations
from seatgate.storage.db import Database


def _new_installation(conn: Connection) -> None:
    """A database created at the current version: its audit log starts an empty chain."""
    audit_chain.init_head(conn)


def _lifecycle(conn: Connection) -> None:
    """Version 3: installed tokens get their activation time, the existing log its chain."""
    lifecycle.backfill_activation(conn)
    audit_chain.adopt_existing(conn)


DATA = migrations.DataSteps(fresh=_new_installation, after={3: _lifecycle})
"""Every data step, by the schema version it belongs to."""


def upgrade(db: Database, now: datetime) -> tuple[int, int]:
    """Create or upgrade the schema and its rows; return (version before, version after).

    Raises :class:`~seatgate.errors.SchemaOutdated` when the database is
    newer than this code.
    """
    return migrations.upgrade(db, now, DATA)
