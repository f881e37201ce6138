"""Older schema versions, rebuilt from the current one for upgrade tests.

seatgate has no older schema to build from, so a database written by a
previous version is simulated by undoing the later migration steps on a
current database, keeping its data.
"""

from __future__ import annotations

import json

import pytest
from sqlalchemy import Connection, Table, text

from seatgate.storage import migrations, schema, seat_counter


def step_3_additions() -> tuple[list[str], dict[str, list[str]]]:
    """The tables and columns migration step 3 adds, found by running it against nothing."""
    tables: list[str] = []
    columns: dict[str, list[str]] = {}
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(
            migrations,
            "_add_column",
            lambda _conn, table, column: columns.setdefault(table.name, []).append(column.name),
        )
        patch.setattr(Table, "create", lambda table, _bind, **_: tables.append(table.name))
        migrations.STEPS[2](None)  # type: ignore[arg-type]
    return tables, columns


def back_to_version_12(conn: Connection) -> None:
    """Undo step 13 on a current database, keeping the data: no seats-held count."""
    seat_counter.uninstall(conn)
    conn.execute(text("ALTER TABLE license_state DROP COLUMN seats_held"))
    conn.execute(text("UPDATE seatgate_schema SET version = 12"))


def back_to_version_11(conn: Connection) -> None:
    """Undo steps 13 and 12 on a current database, keeping the data: no ``import_uploads``."""
    back_to_version_12(conn)
    schema.import_uploads.drop(conn)
    conn.execute(text("UPDATE seatgate_schema SET version = 11"))


def back_to_version_10(conn: Connection) -> None:
    """Undo steps 13 to 11 on a current database, keeping the data: no ``seat_days`` table."""
    back_to_version_11(conn)
    schema.seat_days.drop(conn)
    conn.execute(text("UPDATE seatgate_schema SET version = 10"))


def back_to_version_9(conn: Connection) -> None:
    """Undo steps 11 and 10 on a current database: no account listing indexes."""
    back_to_version_10(conn)
    for index in schema.account_listing_indexes(conn.dialect.name):
        conn.execute(text(f"DROP INDEX IF EXISTS {index.name}"))
    conn.execute(text("UPDATE seatgate_schema SET version = 9"))


def back_to_version_8(conn: Connection) -> None:
    """Undo steps 10 and 9 on a current database, keeping the data: no overage columns."""
    back_to_version_9(conn)
    conn.execute(text("ALTER TABLE license_state DROP COLUMN overage_seats"))
    conn.execute(text("ALTER TABLE seat_usage DROP COLUMN overage_peak"))
    conn.execute(text("UPDATE seatgate_schema SET version = 8"))


def back_to_version_7(conn: Connection) -> None:
    """Undo steps 9 and 8 on a current database, keeping the data: no notification outbox."""
    back_to_version_8(conn)
    schema.notify_deliveries.drop(conn)
    schema.notify_events.drop(conn)
    conn.execute(text("UPDATE seatgate_schema SET version = 7"))


def back_to_version_6(conn: Connection) -> None:
    """Undo step 7 on a current database, keeping the data: no ``seat_requests`` table."""
    back_to_version_7(conn)
    schema.seat_requests.drop(conn)
    conn.execute(text("UPDATE seatgate_schema SET version = 6"))


def back_to_version_5(conn: Connection) -> None:
    """Undo steps 7 and 6 on a current database, keeping the data: no ``api_tokens`` table."""
    back_to_version_6(conn)
    schema.api_tokens.drop(conn)
    conn.execute(text("UPDATE seatgate_schema SET version = 5"))


def back_to_version_4(conn: Connection) -> None:
    """Undo steps 6 and 5 on a current database, keeping the data: the version 4 schema.

    Version 4 recorded no device with a login failure and audited every
    throttled attempt, so it had no ``login_throttles`` table.
    """
    back_to_version_5(conn)
    schema.login_throttles.drop(conn)
    schema.login_failures_device_at.drop(conn)
    conn.execute(text("ALTER TABLE login_failures DROP COLUMN device"))
    conn.execute(text("UPDATE seatgate_schema SET version = 4"))


def back_to_version_3(conn: Connection) -> None:
    """Undo steps 5 and 4 on a current database, keeping the data: the version 3 schema.

    Version 3 had no ``sessions`` table; the web gate kept its open sessions
    in ``settings`` (see :func:`legacy_session_rows`).
    """
    back_to_version_4(conn)
    schema.sessions.drop(conn)
    conn.execute(text("UPDATE seatgate_schema SET version = 3"))


def legacy_session_rows(account_ids: list[int], per_account: int = 2) -> dict[str, str]:
    """``settings`` rows as versions 1 to 3 kept web sessions: per account, hash -> expiry."""
    return {
        f"web.sessions.{account_id}": json.dumps(
            {f"{account_id:04d}{n:028x}": "2099-01-01T00:00:00+00:00" for n in range(per_account)}
        )
        for account_id in account_ids
    }


def back_to_version_2(conn: Connection) -> None:
    """Undo steps 5, 4 and 3 on a current database, keeping the data: the version 2 schema.

    Core has no older schema to build from, so this is how a database
    written by the previous version is simulated.
    """
    back_to_version_3(conn)
    tables, columns = step_3_additions()
    assert "audit_chain" in tables
    assert columns["audit_events"] == ["prev_hash", "hash"]
    for table in tables:
        conn.execute(text(f"DROP TABLE {table}"))
    for table, names in columns.items():
        for name in names:
            conn.execute(text(f"ALTER TABLE {table} DROP COLUMN {name}"))
    conn.execute(text("UPDATE seatgate_schema SET version = 2"))


def back_to_version_1(conn: Connection) -> None:
    """Undo steps 5, 4, 3 and 2: the version 1 schema (no rate-limit tables)."""
    back_to_version_2(conn)
    schema.login_successes.drop(conn)
    schema.login_failures.drop(conn)
    conn.execute(text("UPDATE seatgate_schema SET version = 1"))
