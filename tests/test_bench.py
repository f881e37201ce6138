"""The benchmark harness runs end to end on tiny sizes (``--smoke``).

Checks the shape of the results file and that the multi-process claim race
granted exactly the free seats. Speed is never asserted: smoke figures mean
nothing, and a test must not fail on a slow machine.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import create_pg_database, drop_pg_database, in_ci

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

REPO = Path(__file__).resolve().parent.parent
NAMES = {
    "login.decision.sqlite",
    "login.decision.postgres",
    "flask.request.sqlite",
    "flask.request.postgres",
    "flask.request_vs_dict.sqlite",
    "flask.request_vs_dict.postgres",
    "claims.sqlite",
    "claims.postgres",
    "login.scale.sqlite",
    "login.scale.postgres",
    "csv.import.sqlite",
    "csv.import.postgres",
    "csv.import.rss",
    "web.admin.accounts.sqlite",
    "web.admin.accounts.postgres",
}
KEYS = {"name", "value", "unit", "floor", "ratio", "goal", "met"}
GRANTED = re.compile(r"granted (\d+) \(free (\d+), held after (\d+)\), refused (\d+)")
ACCOUNTS = re.compile(r"(\d+) accounts for (\d+) free seats")
BOUND = re.compile(r"bound: .* took ([\d,]+) µs, (\d+\.\d+)x the floor")

SmokeRun = tuple[subprocess.CompletedProcess[str], Path]


def _results(smoke_run: SmokeRun) -> Any:
    """The records of a smoke run's ``results.json``, once the run is known to have passed."""
    done, output = smoke_run
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(output.read_text(encoding="utf-8"))


def _smoke(only: str, output: Path) -> SmokeRun:
    """Run ``bench/run --smoke --only ONLY`` as it starts; its process and results file."""
    done = subprocess.run(
        [sys.executable, "-m", "bench.main", "--smoke", "--only", only, "--output", str(output)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    return done, output


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory: pytest.TempPathFactory) -> SmokeRun:
    """One smoke run of the core benchmarks, the CSV import and the console (as bench/run)."""
    drop_pg_database(create_pg_database())  # skips (or fails in CI) without PostgreSQL
    output = tmp_path_factory.mktemp("bench") / "results.json"
    return _smoke("login,flask,claims,csv,console", output)


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
    results = _results(smoke_run)
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
        if record["name"].startswith(("login.", "flask.", "claims.", "csv.", "web.")):
            assert record["floor"] is not None
            assert record["ratio"] == pytest.approx(record["value"] / record["floor"], rel=1e-3)


def test_the_claim_race_granted_exactly_the_free_seats(
    smoke_run: SmokeRun,
) -> None:
    claims = [r for r in _results(smoke_run) if "claims" in r["name"]]
    assert len(claims) == 2
    for record in claims:
        granted = GRANTED.search(record["notes"])
        accounts = ACCOUNTS.search(record["notes"])
        assert granted is not None and accounts is not None, record["notes"]
        seats_granted, free, held, refused = map(int, granted.groups())
        assert seats_granted == free == held
        assert seats_granted + refused == int(accounts.group(1))
        assert "then the spare account's claim: no_seat_available" in record["notes"]
        assert "WRONG" not in record["notes"]


def test_the_request_figures_over_the_dict_app_state_the_round_trip_bound(
    smoke_run: SmokeRun,
) -> None:
    vs_dict = [r for r in _results(smoke_run) if r["name"].startswith("flask.request_vs_dict.")]
    assert len(vs_dict) == 2
    for record in vs_dict:
        bound = BOUND.search(record["notes"])
        assert bound is not None, record["notes"]
        bound_us, ratio = float(bound.group(1).replace(",", "")), float(bound.group(2))
        assert bound_us > 0
        # The bound is a ratio to the same floor as the figure.
        assert ratio == pytest.approx(bound_us / record["floor"], rel=0.01)


DIRECTORY_NAMES = {"directory.full", "directory.incremental", "directory.rss"}


@pytest.fixture(scope="module")
def directory_smoke_run(tmp_path_factory: pytest.TempPathFactory) -> SmokeRun:
    """One smoke run of the directory benchmark: its own slapd on a free loopback port."""
    search = os.environ.get("PATH", "") + os.pathsep + "/usr/sbin" + os.pathsep + "/sbin"
    missing = [name for name in ("slapd", "slapadd") if shutil.which(name, path=search) is None]
    if missing:
        reason = f"{', '.join(missing)} not installed (scripts/ensure-directory-packages)"
        if in_ci():
            pytest.fail(reason)
        pytest.skip(reason)
    output = tmp_path_factory.mktemp("bench-directory") / "results.json"
    return _smoke("directory", output)


def test_the_directory_benchmark_reports_its_three_figures(
    directory_smoke_run: SmokeRun,
) -> None:
    done, _ = directory_smoke_run
    results = {r["name"]: r for r in _results(directory_smoke_run)}
    assert set(results) == DIRECTORY_NAMES
    for name in DIRECTORY_NAMES:
        assert name in done.stdout
        record = results[name]
        assert set(record) >= KEYS | {"notes"}
        assert record["notes"], name
        assert isinstance(record["met"], bool)
    full, incremental = results["directory.full"], results["directory.incremental"]
    assert full["unit"] == incremental["unit"] == "s"
    assert full["ratio"] == pytest.approx(full["value"] / full["floor"], rel=1e-3)
    # The incremental run's floor is the full sync measured in the same run.
    assert incremental["floor"] == pytest.approx(full["value"])
    assert "ldap3 paged search" in full["notes"]
    assert results["directory.rss"]["unit"] == "MiB" and results["directory.rss"]["floor"] is None
