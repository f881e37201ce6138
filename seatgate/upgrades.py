"""The data steps of the schema upgrades: what each new version does to the rows.

:mod:`seatgate.storage.migrations` changes the tables; the rows in them
belong to the domain packages, which say here what a version needs done to
them. :meth:`seatgate.app.Core.init_schema` runs both, each version's two
steps in one transaction. A version whose schema step needs nothing done to
the rows has no entry.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

from sqlalchemy import Connection, delete, select

from seatgate.audit import chain as audit_chain
from seatgate.audit import log as audit
from seatgate.licensing import lifecycle
from seatgate.records import SYSTEM_ACTOR
from seatgate.storage import migrations, schema
from seatgate.storage.db import Database


def _new_installation(conn: Connection) -> None:
    """A database created at the current version: its audit log starts an empty chain."""
    audit_chain.init_head(conn)


def _lifecycle(conn: Connection) -> None:
    """Version 3: installed tokens get their activation time, the existing log its chain."""
    lifecycle.backfill_activation(conn)
    audit_chain.adopt_existing(conn)


# Where versions 1 to 3 kept the web gate's open sessions: one JSON map per
# account in `settings`, {sha256(nonce)[:32]: expiry}.
LEGACY_SESSION_KEYS = "web.sessions.%"


def _end_legacy_sessions(conn: Connection) -> None:
    """Version 4: the sessions kept in ``settings`` are ended, and that is audited once.

    The old records cannot be carried over: a row holds a hash of the nonce
    in the visitor's cookie, and the new cookie carries a token whose hash is
    the row's id, so an old cookie could never find its new row. Ending them
    is the honest outcome -- their users sign in again -- and it is audited
    once, with how many sessions and accounts it concerned.
    """
    legacy = schema.settings.c.key.like(LEGACY_SESSION_KEYS)
    values = conn.execute(select(schema.settings.c.value).where(legacy)).scalars().all()
    if not values:
        return
    conn.execute(delete(schema.settings).where(legacy))
    audit.record(
        conn,
        # A data step has no injected clock: the upgrade happens now, by the wall clock.
        at=datetime.now(UTC),
        actor=SYSTEM_ACTOR,
        action="session.ended",
        outcome="schema_upgrade",
        details={"sessions": sum(_legacy_count(v) for v in values), "accounts": len(values)},
    )


def _legacy_count(value: str) -> int:
    try:
        records = json.loads(value)
    except ValueError:
        return 0
    return len(records) if isinstance(records, dict) else 0


DATA = migrations.DataSteps(fresh=_new_installation, after={3: _lifecycle, 4: _end_legacy_sessions})
"""Every data step, by the schema version it belongs to."""


def upgrade(db: Database, now: datetime) -> tuple[int, int]:
    """Create or upgrade the schema and its rows; return (version before, version after).

    Raises :class:`~seatgate.errors.SchemaOutdated` when the database is
    newer than this code.
    """
    return migrations.upgrade(db, now, DATA)
