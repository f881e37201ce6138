"""Versioned schema migrations.

``upgrade`` creates a fresh database at the current version, or applies the
missing steps to an older one, each version in its own transaction. A schema
change is a new function appended to ``STEPS`` and the matching change in
:mod:`seatgate.storage.schema`; no upgrade ever needs the database deleted.

The steps here change tables only. What a version does to the rows in them
is the domain's business: its data steps come in as :class:`DataSteps`
(see :mod:`seatgate.upgrades`) and run in the same transaction as the schema
step of their version, after it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Column, Connection, Table, insert, inspect, select, text, update
from sqlalchemy.schema import CreateIndex

from seatgate.errors import SchemaOutdated
from seatgate.storage import schema, seat_counter
from seatgate.storage.db import Database


def _add_login_rate_limit(conn: Connection) -> None:
    """Version 2: the tables of the shared login rate limiter (with their indexes)."""
    schema.login_failures.create(conn)
    schema.login_successes.create(conn)


def _add_lifecycle(conn: Connection) -> None:
    """Version 3: activation and removal of tokens, the clock high-water mark,
    seat-use thresholds and monthly peaks, and the audit hash chain."""
    for table, names in (
        (schema.license_tokens, ("activated_at", "removed_at", "removed_by")),
        (schema.license_state, ("clock_high_water", "clock_last_seen", "usage_level")),
        (schema.audit_events, ("prev_hash", "hash")),
    ):
        for name in names:
            _add_column(conn, table, table.c[name])
    for table in (schema.audit_chain, schema.audit_counts, schema.seat_usage):
        table.create(conn)


def _add_sessions(conn: Connection) -> None:
    """Version 4: the ``sessions`` table (its data step ends the sessions kept in ``settings``)."""
    schema.sessions.create(conn)


def _add_login_devices_and_throttles(conn: Connection) -> None:
    """Version 5: the device of each login failure, and throttled attempts counted per key.

    Step 2 creates ``login_failures`` as it is now, device and its index
    included, so on a database that started before version 2 they exist.
    """
    found = inspect(conn)
    if "device" not in {c["name"] for c in found.get_columns("login_failures")}:
        _add_column(conn, schema.login_failures, schema.login_failures.c.device)
        schema.login_failures_device_at.create(conn)
    schema.login_throttles.create(conn)


def _add_api_tokens(conn: Connection) -> None:
    """Version 6: the ``api_tokens`` table of scoped bearer tokens for scripts."""
    schema.api_tokens.create(conn)


def _add_seat_requests(conn: Connection) -> None:
    """Version 7: the ``seat_requests`` table (one row per account refused for want of a seat)."""
    schema.seat_requests.create(conn)


def _add_notify_outbox(conn: Connection) -> None:
    """Version 8: the notification outbox: ``notify_events`` and their ``notify_deliveries``."""
    schema.notify_events.create(conn)
    schema.notify_deliveries.create(conn)


def _add_overage(conn: Connection) -> None:
    """Version 9: the licence's overage seats in ``license_state``, and each month's
    overage peak in ``seat_usage`` (0 on existing rows: no overage before)."""
    found = inspect(conn)
    for table, column in (
        (schema.license_state, schema.license_state.c.overage_seats),
        # Step 3 creates `seat_usage` as it is now, so from before version 3 it has it.
        (schema.seat_usage, schema.seat_usage.c.overage_peak),
    ):
        if column.name not in {c["name"] for c in found.get_columns(table.name)}:
            _add_column(conn, table, column)


def _add_account_listing_indexes(conn: Connection) -> None:
    """Version 10: the indexes of the console's account listing (search, last-login order)."""
    for index in schema.account_listing_indexes(conn.dialect.name):
        conn.execute(CreateIndex(index, if_not_exists=True))


def _add_seat_days(conn: Connection) -> None:
    """Version 11: ``seat_days``, the seats held per day (empty: days before it show
    what is held at the first change)."""
    schema.seat_days.create(conn)


def _add_import_uploads(conn: Connection) -> None:
    """Version 12: ``import_uploads``, CSV files the console keeps between preview and confirm."""
    schema.import_uploads.create(conn)


def _add_seats_held(conn: Connection) -> None:
    """Version 13: ``license_state.seats_held``, the seats held, kept by triggers on
    ``seats`` (:mod:`seatgate.storage.seat_counter`) and set to the seats held now."""
    _add_column(conn, schema.license_state, schema.license_state.c.seats_held)
    seat_counter.install(conn)


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
    _add_login_devices_and_throttles,
    _add_api_tokens,
    _add_seat_requests,
    _add_notify_outbox,
    _add_overage,
    _add_account_listing_indexes,
    _add_seat_days,
    _add_import_uploads,
    _add_seats_held,
]
SCHEMA_VERSION = len(STEPS)

DataStep = Callable[[Connection], None]


@dataclass(frozen=True)
class DataSteps:
    """What the rows need beside the schema steps, given by the code that owns them.

    ``fresh`` fills a database just created at the current version (rows
    every installation starts with); ``after[N]`` runs right after schema
    step N, in its transaction. A version without data needs no entry.
    """

    fresh: DataStep | None = None
    after: Mapping[int, DataStep] = field(default_factory=dict)


def current_version(conn: Connection) -> int:
    """Return the schema version of the database (0 when it has no seatgate tables)."""
    if not inspect(conn).has_table(schema.schema_version.name):
        return 0
    version = conn.execute(select(schema.schema_version.c.version)).scalar_one_or_none()
    return int(version or 0)


def upgrade(db: Database, now: datetime, data: DataSteps) -> tuple[int, int]:
    """Create or upgrade the schema, rows included; return (version before, version after).

    ``data`` is required: a schema upgraded without its data steps would hold
    rows the new code misreads (:data:`seatgate.upgrades.DATA` has them).
    Each version's schema step and its data step commit together or not at
    all. Raises :class:`SchemaOutdated` when the database is newer than this
    code.
    """
    before = db.read(current_version)
    if before > SCHEMA_VERSION:
        raise SchemaOutdated(before, SCHEMA_VERSION)
    if before == 0:
        db.write(lambda conn: _create_fresh(conn, now, data.fresh))
        return 0, SCHEMA_VERSION
    for version in range(before + 1, SCHEMA_VERSION + 1):
        step = data.after.get(version)
        db.write(lambda conn, v=version, s=step: _apply(conn, v, s))  # type: ignore[misc]
    return before, SCHEMA_VERSION


def check_version(db: Database) -> None:
    """Raise :class:`SchemaOutdated` unless the database is at this code's version."""
    found = db.read(current_version)
    if found != SCHEMA_VERSION:
        raise SchemaOutdated(found, SCHEMA_VERSION)


def _create_fresh(conn: Connection, now: datetime, fill: DataStep | None) -> None:
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
            overage_seats=0,
            seats_held=0,
        )
    )
    seat_counter.install(conn)
    if fill is not None:
        fill(conn)


def _apply(conn: Connection, version: int, data_step: DataStep | None) -> None:
    STEPS[version - 1](conn)
    if data_step is not None:
        data_step(conn)
    conn.execute(update(schema.schema_version).values(version=version))
