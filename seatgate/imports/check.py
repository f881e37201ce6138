"""Checking an import source: one pass, every bad row found, memory bounded."""

from __future__ import annotations

import sqlite3
import tempfile
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy import Connection

from seatgate.accounts.logins import confusable_mix
from seatgate.errors import shorten
from seatgate.imports.records import (
    DIRECTORY_KEYS,
    EXISTING_KEYS,
    AccountRecord,
    AccountSource,
    RowProblem,
    directory_reason,
)
from seatgate.storage.batches import BATCH, batched, plan_each_batch

_STAGE_BATCH = 5000


class CheckedImport:
    """A source read through once: its rows and bad rows, in a temporary SQLite file."""

    def __init__(self, source: AccountSource) -> None:
        self.source = source
        self.fields = source.fields
        self.row_count = 0
        self.problem_count = 0
        self._dir = tempfile.TemporaryDirectory(prefix="seatgate-import-")
        self._db = sqlite3.connect(Path(self._dir.name, "check.db"), isolation_level=None)
        self._db.executescript(
            """
            PRAGMA journal_mode = OFF;
            PRAGMA synchronous = OFF;
            CREATE TABLE records (
                line INTEGER PRIMARY KEY, login TEXT NOT NULL, key TEXT NOT NULL,
                name TEXT, email TEXT, admin INTEGER NOT NULL, active INTEGER NOT NULL, hash TEXT
            );
            CREATE TABLE problems (line INTEGER NOT NULL, reason TEXT NOT NULL);
            """
        )

    def problems(self) -> Iterator[RowProblem]:
        """Every bad row, by line number (read from disk as it goes)."""
        cursor = self._db.execute("SELECT line, reason FROM problems ORDER BY line, rowid")
        for line, reason in cursor:
            yield RowProblem(line, reason)

    def records(self) -> Iterator[list[AccountRecord]]:
        """The valid rows in batches, in file order (read from disk as it goes)."""
        cursor = self._db.execute("SELECT * FROM records ORDER BY line")
        while rows := cursor.fetchmany(BATCH):
            yield [
                AccountRecord(line, login, key, name, email, bool(admin), bool(active), hashed)
                for line, login, key, name, email, admin, active, hashed in rows
            ]

    def close(self) -> None:
        """Delete the temporary file."""
        self._db.close()
        self._dir.cleanup()

    def __enter__(self) -> CheckedImport:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def run(self, conn: Connection) -> None:
        """Stage every row and find the bad ones (reads ``conn`` for directory logins)."""
        db = self._db
        db.execute("BEGIN")
        for batch in batched(self.source.rows(), _STAGE_BATCH):
            self.row_count += len(batch)
            db.executemany(
                "INSERT INTO records VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [r for r in batch if isinstance(r, AccountRecord)],
            )
            db.executemany(
                "INSERT INTO problems VALUES (?, ?)",
                [(r.line, r.reason) for r in batch if isinstance(r, RowProblem)],
            )
        db.execute("CREATE INDEX records_key ON records (key, line)")
        twice = db.execute(
            """
            SELECT later.line, later.login, first.line, first.login
            FROM (SELECT key, MIN(line) AS line FROM records GROUP BY key HAVING COUNT(*) > 1)
                 AS dup
            JOIN records AS first ON first.line = dup.line
            JOIN records AS later ON later.key = dup.key AND later.line > dup.line
            """
        )
        while found := twice.fetchmany(BATCH):
            db.executemany(
                "INSERT INTO problems VALUES (?, ?)",
                [
                    (
                        line,
                        f"login `{shorten(login)}` is the same as `{shorten(first)}` on line "
                        f"{first_line} (logins that differ only in case, spaces or width are one)",
                    )
                    for line, login, first_line, first in found
                ],
            )
        plan_each_batch(conn)
        staged = db.execute("SELECT line, key, login FROM records ORDER BY line")
        while rows := staged.fetchmany(BATCH):
            lines = {key: (line, login) for line, key, login in rows}
            taken = DIRECTORY_KEYS.run(conn, list(lines)).scalars()
            db.executemany(
                "INSERT INTO problems VALUES (?, ?)",
                [(lines[key][0], directory_reason(lines[key][1])) for key in taken],
            )
            db.executemany("INSERT INTO problems VALUES (?, ?)", _confusable(conn, lines))
        db.execute("COMMIT")
        self.problem_count = int(db.execute("SELECT COUNT(*) FROM problems").fetchone()[0])


def _confusable(conn: Connection, lines: dict[str, tuple[int, str]]) -> list[tuple[int, str]]:
    """Rows that would create an account whose login mixes scripts confusably (TR39).

    A login already in the database is an existing account's: it keeps working.
    """
    mixed = {key: why for key, (_, login) in lines.items() if (why := confusable_mix(login))}
    if not mixed:
        return []
    existing = set(EXISTING_KEYS.run(conn, list(mixed)).scalars())
    return [
        (lines[key][0], f"login `{shorten(lines[key][1])}`: {why}; use letters of one script")
        for key, why in mixed.items()
        if key not in existing
    ]
