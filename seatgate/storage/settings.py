"""Small named values kept in the database (sync high-water marks, generated secrets)."""

from __future__ import annotations

from sqlalchemy import Connection, insert, select, update

from seatgate.storage.schema import settings


def get(conn: Connection, key: str) -> str | None:
    """The value stored under ``key``, or None."""
    value = conn.execute(select(settings.c.value).where(settings.c.key == key)).scalar()
    return None if value is None else str(value)


def put(conn: Connection, key: str, value: str) -> None:
    """Store ``value`` under ``key`` (inside the caller's transaction)."""
    changed = conn.execute(update(settings).where(settings.c.key == key).values(value=value))
    if not changed.rowcount:
        conn.execute(insert(settings).values(key=key, value=value))
