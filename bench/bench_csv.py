"""CSV import of 1,000,000 new accounts vs ``csv.reader`` + ``executemany`` into the same database.

Setup: a UTF-8 CSV file in the import format (``login,name,email,admin,active``,
CRLF line ends, as a spreadsheet saves it; no password column) with
1,000,000 rows (``--quick``: 100,000) of unique logins, names and emails.

Measured per database (SQLite, then PostgreSQL), each run in a fresh child
process (so its peak RSS is its own), floor and import alternately:

- the product's import as ``seatgate accounts import-csv FILE`` runs it
  (:meth:`~seatgate.app.Core.csv_file`, then
  :meth:`~seatgate.imports.AccountImporter.apply_new`: every row is a new
  account, so it is checked and written in one pass), into a fresh database
  made as ``seatgate init`` makes it;
- the floor: ``csv.reader`` over the same file, then one ``executemany`` of
  the account rows and one of an audit row per account (the columns the
  product's audit event has, with values of the same size: the details JSON,
  64-hex ``prev_hash`` and ``hash``, not chained), in one transaction, into a
  fresh database holding the product's own ``accounts`` and ``audit_events``
  tables (same DDL, keys, checks and indexes). SQLite through :mod:`sqlite3`
  with the product engine's settings (WAL, synchronous=NORMAL); PostgreSQL
  through psycopg 3 (the driver the product uses) into a throwaway database.

Figures: ``csv.import.sqlite`` and ``csv.import.postgres``, import / floor
(goal <= 1.5); ``csv.import.rss``, the SQLite import's peak RSS at the run's
size over its peak RSS at a tenth of it (goal <= 1.2: memory stays flat).
Medians of the alternating runs; peaks are the largest of the runs.
"""

from __future__ import annotations

import csv
import json
import secrets
import sqlite3
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import psycopg
from sqlalchemy import create_engine

from bench import BACKENDS, Installation, database, pick, workdir
from bench.common import BENCH_DIR, Result, own_peak_rss_mib, result
from seatgate.app import Core
from seatgate.config import load_config
from seatgate.storage.schema import accounts, audit_events

GOAL = 1.5
RSS_GOAL = 1.2
HEADER = "login,name,email,admin,active\r\n"
ROOT = BENCH_DIR.parent
ACCOUNT_INSERT = (
    "INSERT INTO accounts (login, login_key, display_name, email, is_admin, status, source, "
    "created_at, updated_at) VALUES ({0}, {0}, {0}, {0}, {0}, {0}, 'csv', {0}, {0})"
)
AUDIT_INSERT = (
    "INSERT INTO audit_events (at, actor, action, subject, outcome, details, prev_hash, hash) "
    "VALUES ({0}, 'cli:bench', 'account.created', {0}, NULL, {0}, {0}, {0})"
)


@dataclass(frozen=True)
class Run:
    """What one child process reports: wall seconds of the work, its peak RSS, rows written."""

    seconds: float
    rss_mib: float
    created: int


def run(quick: bool) -> list[Result]:
    """Import vs floor on each database, and the import's peak RSS at two sizes."""
    rows = pick(quick, full=1_000_000, quick_size=100_000, smoke_size=2_000)
    # An import of 1,000,000 rows takes minutes here: two rounds of it.
    rounds = pick(quick, full=2, quick_size=3, smoke_size=1)
    results: list[Result] = []
    with workdir() as folder:
        source = write_source(folder / "accounts.csv", rows)
        tenth = write_source(folder / "tenth.csv", max(rows // 10, 1))
        size_mib = source.stat().st_size / 2**20
        sizes = f"{rows:,} rows ({size_mib:.0f} MiB)"
        peaks: list[float] = []
        for backend in BACKENDS:
            _say(f"{backend}: {sizes}; warm-up: one floor run (file into page cache)")
            with _floor_database(backend, folder) as url:
                _child("floor", source, url)
            floors: list[Run] = []
            imports: list[Run] = []
            for number in range(1, rounds + 1):
                with _floor_database(backend, folder) as url:
                    floors.append(_checked(_child("floor", source, url), rows))
                with _installation(backend, folder) as config:
                    imports.append(_checked(_child("import", source, config), rows))
                _say(
                    f"{backend} round {number}/{rounds}: floor {floors[-1].seconds:.2f} s, "
                    f"import {imports[-1].seconds:.2f} s ({imports[-1].rss_mib:.0f} MiB)"
                )
            if backend == "sqlite":
                peaks = [r.rss_mib for r in imports]
            results.append(_speed(backend, sizes, floors, imports))
        small: list[float] = []
        for _ in range(2):
            with _installation("sqlite", folder) as config:
                small.append(_child("import", tenth, config).rss_mib)
    results.append(_rss(rows, max(peaks), max(small)))
    return results


def _speed(backend: str, sizes: str, floors: list[Run], imports: list[Run]) -> Result:
    driver = "sqlite3" if backend == "sqlite" else "psycopg 3"
    settings = " (WAL, synchronous=NORMAL)" if backend == "sqlite" else ""
    return result(
        f"csv.import.{backend}",
        statistics.median(r.seconds for r in imports),
        "s",
        statistics.median(r.seconds for r in floors),
        ("<=", GOAL),
        notes=(
            f"{sizes}, all new accounts; floor: csv.reader + {driver} executemany of the "
            "account rows and one audit row per account (same columns and sizes, not "
            f"chained) in one transaction into the product's accounts and audit_events "
            f"tables{settings}; import runs {_times(imports)}, floor runs {_times(floors)}"
        ),
    )


def _rss(rows: int, peak: float, small: float) -> Result:
    return result(
        "csv.import.rss",
        peak,
        "MiB",
        small,
        ("<=", RSS_GOAL),
        notes=(
            f"SQLite import's peak RSS (VmHWM of its process) at {rows:,} rows over the same "
            f"import at {max(rows // 10, 1):,} rows ({small:.0f} MiB); largest of the runs"
        ),
    )


def _checked(measured: Run, rows: int) -> Run:
    if measured.created != rows:
        raise RuntimeError(f"{measured.created:,} rows written, not {rows:,}")
    return measured


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


@contextmanager
def _installation(backend: str, workdir: Path) -> Iterator[Path]:
    """A configuration file with a fresh database, initialised as ``seatgate init`` does."""
    with database(backend, workdir) as url:
        path = Installation(url).write_config(workdir / f"seatgate-{secrets.token_hex(4)}.yaml")
        app = Core.build(load_config(path), check_schema=False)
        try:
            app.init_schema()
        finally:
            app.close()
        yield path


@contextmanager
def _floor_database(backend: str, workdir: Path) -> Iterator[str]:
    """A fresh database holding only the product's ``accounts`` and ``audit_events`` tables."""
    with ExitStack() as stack:
        url = stack.enter_context(database(backend, workdir))
        engine = create_engine(url)
        try:
            accounts.metadata.create_all(engine, tables=[accounts, audit_events])
        finally:
            engine.dispose()
        yield url


# -- child processes -----------------------------------------------------------------------


def _child(task: str, source: Path, target: Path | str) -> Run:
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


def _floor_rows(
    source: Path, now: object
) -> Iterator[tuple[tuple[object, ...], tuple[object, ...]]]:
    """Each CSV row as an account row and its audit row (the hashes: 64 hex, not chained).

    ``now`` is the timestamp of every row, as the driver is given it.
    """
    prev_hash, own_hash = secrets.token_hex(32), secrets.token_hex(32)
    with source.open(encoding="utf-8", newline="") as text:
        reader = csv.reader(text)
        next(reader)
        for login, name, email, admin, active in reader:
            is_admin = admin == "yes"
            status = "active" if active == "yes" else "disabled"
            details = f'{{"admin": {"true" if is_admin else "false"}, "source": "csv", '
            details += f'"status": "{status}"}}'
            yield (
                (login, login, name, email, is_admin, status, now, now),
                (now, login, details, prev_hash, own_hash),
            )


def _floor(source: Path, url: str) -> tuple[float, int]:
    """``csv.reader`` + ``executemany`` of account and audit rows, in one transaction."""
    if url.startswith("sqlite"):
        return _floor_sqlite(source, Path(url.removeprefix("sqlite:///")))
    return _floor_postgres(source, url.replace("postgresql+psycopg://", "postgresql://", 1))


def _floor_sqlite(source: Path, path: Path) -> tuple[float, int]:
    started = time.perf_counter()
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("BEGIN IMMEDIATE")
        created = 0
        # The timestamp as the text SQLAlchemy stores in SQLite, formatted once (as
        # the product does), not by sqlite3's adapter on every row.
        now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
        for chunk in _chunks(_floor_rows(source, now)):
            created += conn.executemany(ACCOUNT_INSERT.format("?"), [a for a, _ in chunk]).rowcount
            conn.executemany(AUDIT_INSERT.format("?"), [e for _, e in chunk])
        conn.execute("COMMIT")
    finally:
        conn.close()
    return time.perf_counter() - started, created


def _floor_postgres(source: Path, conninfo: str) -> tuple[float, int]:
    started = time.perf_counter()
    created = 0
    with psycopg.connect(conninfo) as conn, conn.cursor() as cursor:
        for chunk in _chunks(_floor_rows(source, datetime.now(UTC))):
            cursor.executemany(ACCOUNT_INSERT.format("%s"), [a for a, _ in chunk])
            created += cursor.rowcount
            cursor.executemany(AUDIT_INSERT.format("%s"), [e for _, e in chunk])
        conn.commit()
    return time.perf_counter() - started, created


def _chunks(
    rows: Iterator[tuple[tuple[object, ...], tuple[object, ...]]],
) -> Iterator[list[tuple[tuple[object, ...], tuple[object, ...]]]]:
    # Chunks of 10,000 rows: executemany's own speed, with flat memory like the product.
    chunk = []
    for row in rows:
        chunk.append(row)
        if len(chunk) == 10_000:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _import(source: Path, config_path: Path) -> tuple[float, int]:
    """The product's import, run as ``seatgate accounts import-csv FILE`` runs it."""
    config = load_config(config_path)
    started = time.perf_counter()
    app = Core.build(config)
    try:
        importer = app.account_importer()
        csv_file = app.csv_file(source)
        report = importer.apply_new(csv_file, actor="cli:bench")
        if report is None:
            with importer.check(csv_file) as checked:
                if checked.problem_count:
                    raise RuntimeError(f"{checked.problem_count} bad rows in {source}")
                report = importer.apply(checked, actor="cli:bench")
    finally:
        app.close()
    return time.perf_counter() - started, report.created


def _child_main(task: str, source: Path, target: str) -> None:
    """Run one task (its imports done before its clock starts) and print its report."""
    if task == "floor":
        seconds, created = _floor(source, target)
    elif task == "import":
        seconds, created = _import(source, Path(target))
    else:
        raise SystemExit(f"unknown task {task!r}")
    print(json.dumps({"seconds": seconds, "rss_mib": own_peak_rss_mib(), "created": created}))


if __name__ == "__main__":
    _child_main(sys.argv[1], Path(sys.argv[2]), sys.argv[3])
