"""CSV import of 1,000,000 rows vs bare ``csv.reader`` + ``executemany`` into the same database.

Setup: a UTF-8 CSV file in the import format (``login,name,email,admin,active``,
CRLF line ends, as a spreadsheet saves it; no password column) with
1,000,000 rows (``--quick``: 100,000) of unique logins, names and emails.

Measured, each run in a fresh child process (so its peak RSS is its own):

- the product's import as ``seatgate accounts import-csv FILE`` runs it
  (:meth:`~seatgate.app.Core.csv_file`, then
  :meth:`~seatgate.imports.AccountImporter.check` and ``apply``), into a
  fresh SQLite database made by ``seatgate init``;
- the floor: ``csv.reader`` over the same file and one ``executemany`` of
  its rows, in one transaction, into a fresh SQLite file holding a table
  made from the product's own ``accounts`` DDL (same columns, keys and
  checks), with the product engine's settings (WAL, synchronous=NORMAL).

Figures: import / floor (goal <= 1.5) and the import's peak RSS (reported;
the issue sets no goal for it). Medians of alternating runs.
"""

from __future__ import annotations

import csv
import json
import sqlite3
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.schema import CreateTable

from bench import Installation, pick, workdir
from bench.common import BENCH_DIR, Result, own_peak_rss_mib, result
from seatgate.app import Core
from seatgate.config import load_config
from seatgate.storage.schema import accounts

GOAL = 1.5
HEADER = "login,name,email,admin,active\r\n"
ROOT = BENCH_DIR.parent


@dataclass(frozen=True)
class Run:
    """What one child process reports: wall seconds of the work, its peak RSS, rows written."""

    seconds: float
    rss_mib: float
    created: int


def run(quick: bool) -> list[Result]:
    """Import vs floor, and the import's peak RSS."""
    rows = pick(quick, full=1_000_000, quick_size=100_000, smoke_size=2_000)
    # An import of 1,000,000 rows takes minutes here: two rounds of it.
    rounds = pick(quick, full=2, quick_size=3, smoke_size=1)
    with workdir() as folder:
        source = write_source(folder / "accounts.csv", rows)
        size_mib = source.stat().st_size / 2**20
        _say(f"{rows:,} rows, {size_mib:.0f} MiB; warm-up: one floor run (file into page cache)")
        _child("floor", source, _floor_database(folder / "warmup"))
        floors: list[Run] = []
        imports: list[Run] = []
        for number in range(1, rounds + 1):
            floors.append(_child("floor", source, _floor_database(folder / f"floor{number}")))
            imports.append(_child("import", source, _installation(folder / f"import{number}")))
            for measured in (floors[-1], imports[-1]):
                if measured.created != rows:
                    raise RuntimeError(f"{measured.created:,} rows written, not {rows:,}")
            _say(
                f"round {number}/{rounds}: csv+executemany {floors[-1].seconds:.2f} s, "
                f"import {imports[-1].seconds:.2f} s ({imports[-1].rss_mib:.0f} MiB)"
            )
    floor_s = statistics.median(r.seconds for r in floors)
    import_s = statistics.median(r.seconds for r in imports)
    sizes = f"{rows:,} rows ({size_mib:.0f} MiB), SQLite"
    rss = max(r.rss_mib for r in imports)
    floor_rss = max(r.rss_mib for r in floors)
    return [
        result(
            "CSV import vs csv.reader + executemany",
            import_s,
            "s",
            floor_s,
            ("<=", GOAL),
            notes=f"{sizes}; import runs {_times(imports)}, floor runs {_times(floors)}",
        ),
        Result(
            "CSV import peak RSS",
            rss,
            "MiB",
            floor_rss,
            round(rss / floor_rss, 4),
            "none",
            True,
            notes=(
                f"{sizes}; reported only, the issue sets no goal; floor is the bare "
                f"csv + executemany process's peak ({floor_rss:.0f} MiB)"
            ),
        ),
    ]


def write_source(path: Path, rows: int) -> Path:
    """The import file: a header and ``rows`` rows (data line n names user n)."""
    with path.open("w", encoding="utf-8", newline="") as out:
        out.write(HEADER)
        for line in range(2, rows + 2):
            out.write(f"user{line:07d},User Número {line},user{line}@example.com,no,yes\r\n")
    return path


def _times(runs: list[Run]) -> str:
    return "/".join(f"{r.seconds:.2f}" for r in runs) + " s"


def _say(message: str) -> None:
    print(f"[csv] {message}", file=sys.stderr, flush=True)


# -- databases -----------------------------------------------------------------------------


def _installation(folder: Path) -> Path:
    """A configuration file with a fresh database, initialised as ``seatgate init`` does."""
    folder.mkdir(parents=True)
    path = Installation(f"sqlite:///{folder / 'seatgate.db'}").write_config(
        folder / "seatgate.yaml"
    )
    app = Core.build(load_config(path), check_schema=False)
    try:
        app.init_schema()
    finally:
        app.close()
    return path


def _floor_database(folder: Path) -> Path:
    """A fresh SQLite file with the product's ``accounts`` table and engine settings."""
    folder.mkdir(parents=True)
    path = folder / "floor.db"
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(str(CreateTable(accounts).compile(dialect=sqlite_dialect.dialect())))
    finally:
        conn.close()
    return path


# -- child processes -----------------------------------------------------------------------


def _child(task: str, source: Path, target: Path) -> Run:
    """Run ``task`` (``floor`` or ``import``) in a fresh interpreter; its report."""
    done = subprocess.run(
        [sys.executable, "-m", "bench.bench_csv", task, str(source), str(target)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        check=False,
        text=True,
    )
    if done.returncode != 0:
        raise RuntimeError(f"benchmark child `{task}` failed with exit {done.returncode}")
    report = json.loads(done.stdout.strip().splitlines()[-1])
    return Run(report["seconds"], report["rss_mib"], report["created"])


def _floor(source: Path, database: Path) -> tuple[float, int]:
    """``csv.reader`` + one ``executemany`` in one transaction (WAL, synchronous=NORMAL)."""
    now = datetime.now(UTC).isoformat(" ")
    started = time.perf_counter()
    conn = sqlite3.connect(database, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        with source.open(encoding="utf-8", newline="") as text:
            reader = csv.reader(text)
            next(reader)
            conn.execute("BEGIN IMMEDIATE")
            cursor = conn.executemany(
                "INSERT INTO accounts (login, login_key, display_name, email, is_admin, "
                "status, source, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, 'csv', ?, ?)",
                (
                    (
                        login,
                        login,
                        name,
                        email,
                        admin == "yes",
                        "active" if active == "yes" else "disabled",
                        now,
                        now,
                    )
                    for login, name, email, admin, active in reader
                ),
            )
            created = cursor.rowcount
            conn.execute("COMMIT")
    finally:
        conn.close()
    return time.perf_counter() - started, created


def _import(source: Path, config_path: Path) -> tuple[float, int]:
    """The product's import, run as ``seatgate accounts import-csv FILE`` runs it."""
    config = load_config(config_path)
    started = time.perf_counter()
    app = Core.build(config)
    try:
        importer = app.account_importer()
        with importer.check(app.csv_file(source)) as checked:
            if checked.problem_count:
                raise RuntimeError(f"{checked.problem_count} bad rows in {source}")
            report = importer.apply(checked, actor="cli:bench")
    finally:
        app.close()
    return time.perf_counter() - started, report.created


def _child_main(task: str, source: Path, target: Path) -> None:
    """Run one task (its imports done before its clock starts) and print its report."""
    if task == "floor":
        seconds, created = _floor(source, target)
    elif task == "import":
        seconds, created = _import(source, target)
    else:
        raise SystemExit(f"unknown task {task!r}")
    print(json.dumps({"seconds": seconds, "rss_mib": own_peak_rss_mib(), "created": created}))


if __name__ == "__main__":
    _child_main(sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]))
