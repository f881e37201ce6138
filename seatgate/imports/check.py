"""Checking an import source: one pass, every bad row found, memory bounded."""

from __future__ import annotations

import marshal
import sqlite3
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

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


class CheckedImport:
    """A source read through once: its rows and bad rows, in temporary files.

    The valid rows are kept as they were checked, a batch at a time, in an
    unnamed temporary file (marshal records: written and read only by this
    process); their logins, keys and line numbers, and the bad rows, in a
    temporary SQLite file, where one ``GROUP BY`` finds the logins that
    appear twice. Writing every column of every row into SQLite and reading
    it back cost more than parsing the file.
    """

    def __init__(self, source: AccountSource) -> None:
        self.source = source
        self.fields = source.fields
        self.row_count = 0
        self.problem_count = 0
        self._dir = tempfile.TemporaryDirectory(prefix="seatgate-import-")
        # Closed by close(); unnamed, so nothing is left behind if the process dies.
        self._rows: IO[bytes] = tempfile.TemporaryFile("w+b", dir=self._dir.name)  # noqa: SIM115
        self._batches = 0
        self._db = sqlite3.connect(Path(self._dir.name, "check.db"), isolation_level=None)
        self._db.executescript(
            """
            PRAGMA journal_mode = OFF;
            PRAGMA synchronous = OFF;
            CREATE TABLE logins (line INTEGER PRIMARY KEY, key TEXT NOT NULL, login TEXT NOT NULL);
            CREATE TABLE problems (line INTEGER NOT NULL, reason TEXT NOT NULL);
            """
        )

    def problems(self) -> Iterator[RowProblem]:
        """Every bad row, by line number (read from disk as it goes)."""
        cursor = self._db.execute("SELECT line, reason FROM problems ORDER BY line, rowid")
        for line, reason in cursor:
            yield RowProblem(line, reason)

    def records(self) -> Iterator[list[AccountRecord]]:
        """The valid rows in batches of at most :data:`BATCH`, in file order (read from disk)."""
        rows = self._rows
        rows.seek(0)
        make = AccountRecord._make
        for _ in range(self._batches):
            size = int.from_bytes(rows.read(8), "little")
            # Safe to load: an unnamed temporary file only this process wrote.
            yield list(map(make, marshal.loads(rows.read(size))))  # noqa: S302

    def close(self) -> None:
        """Delete the temporary files."""
        self._rows.close()
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
        plan_each_batch(conn)
        for batch in batched(self.source.rows(), BATCH):
            self.row_count += len(batch)
            good = [r for r in batch if isinstance(r, AccountRecord)]
            if len(good) < len(batch):
                db.executemany(
                    "INSERT INTO problems VALUES (?, ?)",
                    [(r.line, r.reason) for r in batch if isinstance(r, RowProblem)],
                )
            if good:
                self._stage(conn, good)
        db.execute("CREATE INDEX logins_key ON logins (key, line)")
        twice = db.execute(
            """
            SELECT later.line, later.login, first.line, first.login
            FROM (SELECT key, MIN(line) AS line FROM logins GROUP BY key HAVING COUNT(*) > 1)
                 AS dup
            JOIN logins AS first ON first.line = dup.line
            JOIN logins AS later ON later.key = dup.key AND later.line > dup.line
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
        db.execute("COMMIT")
        self.problem_count = int(db.execute("SELECT COUNT(*) FROM problems").fetchone()[0])

    def _stage(self, conn: Connection, good: list[AccountRecord]) -> None:
        """Keep a batch of valid rows; note those naming directory or confusable logins."""
        db = self._db
        db.executemany(
            "INSERT INTO logins VALUES (?, ?, ?)", [(r.line, r.key, r.login) for r in good]
        )
        blob = marshal.dumps(list(map(tuple, good)))
        # Length first: one read per batch (marshal.load reads a file in small pieces).
        self._rows.write(len(blob).to_bytes(8, "little"))
        self._rows.write(blob)
        self._batches += 1
        lines = {r.key: (r.line, r.login) for r in good}
        taken = DIRECTORY_KEYS.run(conn, list(lines)).scalars()
        db.executemany(
            "INSERT INTO problems VALUES (?, ?)",
            [(lines[key][0], directory_reason(lines[key][1])) for key in taken],
        )
        db.executemany("INSERT INTO problems VALUES (?, ?)", confusable_rows(conn, lines))


def confusable_rows(conn: Connection, lines: dict[str, tuple[int, str]]) -> list[tuple[int, str]]:
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
