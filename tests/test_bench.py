"""The benchmark harness runs end to end on tiny sizes (``--smoke``).

Checks the shape of the results file and that the multi-process claim race
granted exactly the free seats. Speed is never asserted: smoke figures mean
nothing, and a test must not fail on a slow machine.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import create_pg_database, drop_pg_database

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

REPO = Path(__file__).resolve().parent.parent
NAMES = {
    "login.decision.sqlite",
    "login.decision.postgres",
    "flask.request.sqlite",
    "flask.request.postgres",
    "claims.sqlite",
    "claims.postgres",
    "csv.import.sqlite",
    "csv.import.postgres",
    "csv.import.rss",
}
KEYS = {"name", "value", "unit", "floor", "ratio", "goal", "met"}
GRANTED = re.compile(r"granted (\d+) \(free (\d+), held after (\d+)\), refused (\d+)")
ACCOUNTS = re.compile(r"(\d+) accounts for (\d+) free seats")

SmokeRun = tuple[subprocess.CompletedProcess[str], Path]


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory: pytest.TempPathFactory) -> SmokeRun:
    """One smoke run of the core benchmarks and the CSV import, as ``bench/run`` starts it."""
    drop_pg_database(create_pg_database())  # skips (or fails in CI) without PostgreSQL
    output = tmp_path_factory.mktemp("bench") / "results.json"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.main",
            "--smoke",
            "--only",
            "login,flask,claims,csv",
            "--output",
            str(output),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    return done, output


def test_the_harness_exits_zero_and_prints_the_table(
    smoke_run: SmokeRun,
) -> None:
    done, output = smoke_run
    assert done.returncode == 0, done.stdout + done.stderr
    header = next(line for line in done.stdout.splitlines() if line.startswith("NAME"))
    assert header.split() == ["NAME", "VALUE", "UNIT", "FLOOR", "RATIO", "GOAL", "MET"]
    for name in NAMES:
        assert name in done.stdout
    assert f"results written to {output}" in done.stdout


def test_results_json_has_one_record_per_figure(
    smoke_run: SmokeRun,
) -> None:
    done, output = smoke_run
    assert done.returncode == 0, done.stdout + done.stderr
    results = json.loads(output.read_text(encoding="utf-8"))
    assert isinstance(results, list)
    assert {r["name"] for r in results} == NAMES
    assert len(results) == len(NAMES)
    for record in results:
        assert set(record) >= KEYS
        assert isinstance(record["value"], float) and record["value"] > 0
        assert isinstance(record["unit"], str) and record["unit"]
        assert record["floor"] is None or (
            isinstance(record["floor"], float) and record["floor"] > 0
        )
        assert isinstance(record["ratio"], float)
        assert re.fullmatch(r"(<=|>=) \d+(\.\d+)?", record["goal"])
        assert isinstance(record["met"], bool)
        if record["name"].startswith(("login.", "flask.", "csv.")):
            assert record["floor"] is not None
            assert record["ratio"] == pytest.approx(record["value"] / record["floor"], rel=1e-3)


def test_the_claim_race_granted_exactly_the_free_seats(
    smoke_run: SmokeRun,
) -> None:
    done, output = smoke_run
    assert done.returncode == 0, done.stdout + done.stderr
    claims = [r for r in json.loads(output.read_text(encoding="utf-8")) if "claims" in r["name"]]
    assert len(claims) == 2
    for record in claims:
        granted = GRANTED.search(record["notes"])
        accounts = ACCOUNTS.search(record["notes"])
        assert granted is not None and accounts is not None, record["notes"]
        seats_granted, free, held, refused = map(int, granted.groups())
        assert seats_granted == free == held
        assert seats_granted + refused == int(accounts.group(1))
        assert "WRONG" not in record["notes"]
    # SQLite's goal is no goal (>= 0): the line is met exactly when the seats were right.
    assert next(r for r in claims if r["name"] == "claims.sqlite")["met"] is True
