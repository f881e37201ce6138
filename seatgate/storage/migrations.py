"""Versioned schema migrations.

``upgrade`` creates a fresh database at the current version, or applies the
missing steps to an older one, each step in its own transaction. A schema
change is a new function appended to ``STEPS`` and the matching change in
:mod:`seatgate.storage.schema`; no upgrade ever needs the database deleted.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy import Column, Connection, Table, delete, insert, inspect, select, text, update

from seatgate.errors import SchemaOutdated
from seatgate.storage import schema
from seatgate.storage.db import Database


def _add_login_rate_limit(conn: Connection) -> None:
    """Version 2: the tables of the shared login rate limiter (with their indexes)."""
    schema.login_failures.create(conn)
    schema.login_successes.create(conn)


def _add_lifecycle(conn: Connection) -> None:
    """Version 3: activation and removal of tokens, the clock high-water mark,
    seat-use thresholds and monthly peaks, and the audit hash chain."""
    # Imported here: these modules import the storage package themselves.
    from seatgate.audit import chain as audit_chain  # noqa: PLC0415
    from seatgate.licensing import lifecycle  # noqa: PLC0415

    for table, names in (
        (schema.license_tokens, ("activated_at", "removed_at", "removed_by")),
        (schema.license_state, ("clock_high_water", "clock_last_seen", "usage_level")),
        (schema.audit_events, ("prev_hash", "hash")),
    ):
        for name in names:
            _add_column(conn, table, table.c[name])
    for table in (schema.audit_chain, schema.audit_counts, schema.seat_usage):
        table.create(conn)
    lifecycle.backfill_activation(conn)
    audit_chain.adopt_existing(conn)


# Where versions 1 to 3 kept the web gate's open sessions: one JSON map per
# account in `settings`, {sha256(nonce)[:32]: expiry}.
LEGACY_SESSION_KEYS = "web.sessions.%"


def _add_sessions(conn: Connection) -> None:
    """Version 4: the ``sessions`` table; the sessions kept in ``settings`` are ended.

    The old records cannot be carried over: a row holds a hash of the nonce
    in the visitor's cookie, and the new cookie carries a token whose hash is
    the row's id, so an old cookie could never find its new row. Ending them
    is the honest outcome -- their users sign in again -- and it is audited
    once, with how many sessions and accounts it concerned.
    """
    from seatgate.audit import log as audit  # noqa: PLC0415 (see _add_lifecycle)
    from seatgate.records import SYSTEM_ACTOR  # noqa: PLC0415

    schema.sessions.create(conn)
    legacy = schema.settings.c.key.like(LEGACY_SESSION_KEYS)
    values = conn.execute(select(schema.settings.c.value).where(legacy)).scalars().all()
    if not values:
        return
    conn.execute(delete(schema.settings).where(legacy))
    audit.record(
        conn,
        # The step has no injected clock: the upgrade happens now, by the wall clock.
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


def _add_column(conn: Connection, table: Table, column: Column[object]) -> None:
    kind = column.type.compile(dialect=conn.dialect)
    default = " NOT NULL DEFAULT 0" if not column.nullable else ""
    conn.execute(text(f"ALTER TABLE {table.name} ADD COLUMN {column.name} {kind}{default}"))


# Step N brings a database from version N-1 to version N. Step 1 is the
# initial schema, so it is never run on its own: a fresh database is created
# from the current tables directly.
STEPS: list[Callable[[Connection], None]] = [
    schema.metadata.create_all,
    _add_login_rate_limit,
    _add_lifecycle,
    _add_sessions,
]
SCHEMA_VERSION = len(STEPS)


def current_version(conn: Connection) -> int:
    """Return the schema version of the database (0 when it has no seatgate tables)."""
    if not inspect(conn).has_table(schema.schema_version.name):
        return 0
    version = conn.execute(select(schema.schema_version.c.version)).scalar_one_or_none()
    return int(version or 0)


def upgrade(db: Database, now: datetime) -> tuple[int, int]:
    """Create or upgrade the schema; return (version before, version after).

    Raises :class:`SchemaOutdated` when the database is newer than this code.
    """
    before = db.read(current_version)
    if before > SCHEMA_VERSION:
        raise SchemaOutdated(before, SCHEMA_VERSION)
    if before == 0:
        db.write(lambda conn: _create_fresh(conn, now))
        return 0, SCHEMA_VERSION
    for version in range(before + 1, SCHEMA_VERSION + 1):
        db.write(lambda conn, v=version: _apply(conn, v))  # type: ignore[misc]
    return before, SCHEMA_VERSION


def check_version(db: Database) -> None:
    """Raise :class:`SchemaOutdated` unless the database is at this code's version."""
    found = db.read(current_version)
    if found != SCHEMA_VERSION:
        raise SchemaOutdated(found, SCHEMA_VERSION)


def _create_fresh(conn: Connection, now: datetime) -> None:
    schema.metadata.create_all(conn)
    conn.execute(insert(schema.schema_version).values(id=1, version=SCHEMA_VERSION))
    conn.execute(
        insert(schema.license_state).values(
            id=1,
            valid=False,
            reason="no licence is installed",
            seats_total=0,
            updated_at=now,
            usage_level=0,
        )
    )
    from seatgate.audit import chain as audit_chain  # noqa: PLC0415 (see _add_lifecycle)

    audit_chain.init_head(conn)


def _apply(conn: Connection, version: int) -> None:
    STEPS[version - 1](conn)
    conn.execute(update(schema.schema_version).values(version=version))
