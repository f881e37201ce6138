"""A lock for jobs that must never run twice at once (the directory sync from cron).

PostgreSQL: a session-level advisory lock on a dedicated connection, so a
crashed job releases it with its connection. SQLite (one host): an ``flock``
on a file beside the database, released by the kernel when the process dies.
Either way a stale lock cannot outlive its holder.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy import text

from seatgate.errors import SyncAlreadyRunning
from seatgate.storage.db import Database


@contextlib.contextmanager
def job_lock(db: Database, name: str) -> Iterator[None]:
    """Hold the lock ``name`` for the ``with`` block; raise :class:`SyncAlreadyRunning` if taken."""
    if db.is_sqlite:
        with _file_lock(Path(db.url.split(":///", 1)[1] + f".{name}.lock"), name):
            yield
        return
    key = int.from_bytes(
        hashlib.sha256(f"seatgate:{name}".encode()).digest()[:8], "big", signed=True
    )
    with db.engine.connect() as conn:
        got = conn.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": key}).scalar()
        conn.commit()
        if not got:
            raise SyncAlreadyRunning(f"another `{name}` job is running (PostgreSQL advisory lock)")
        try:
            yield
        finally:
            conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})
            conn.commit()


@contextlib.contextmanager
def _file_lock(path: Path, name: str) -> Iterator[None]:
    with path.open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise SyncAlreadyRunning(
                f"another `{name}` job is running (lock file {path})"
            ) from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
