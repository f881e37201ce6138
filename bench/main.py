"""``bench/run``: run the benchmarks, print a table, write ``bench/results.json``.

Usage: ``bench/run [--quick] [--only NAME[,NAME...]] [--output PATH] [--smoke]``

Each benchmark module ``bench/bench_NAME.py`` exposes
``run(quick: bool) -> list[Result]``. Modules listed in :data:`OPTIONAL` run
only when their file exists. A missed goal is reported in the table and the
exit status stays 0; a benchmark that crashes is reported, the others still
run, and the exit status is 1.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path

from bench import SMOKE_ENV
from bench.common import BENCH_DIR, RESULTS, Result

BENCHMARKS = ("login", "flask", "claims", "directory", "csv", "console")
"""Every benchmark, in the order they run."""
OPTIONAL = frozenset({"directory", "csv"})
"""Benchmarks skipped when their module file is absent."""

Runner = Callable[[bool], list[Result]]


def available(name: str) -> bool:
    """Whether the module of benchmark ``name`` is present."""
    return name not in OPTIONAL or (BENCH_DIR / f"bench_{name}.py").exists()


def load(name: str) -> Runner:
    """The ``run`` function of benchmark ``name``."""
    module = importlib.import_module(f"bench.bench_{name}")
    runner: Runner = module.run
    return runner


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(
        prog="bench/run",
        description=(
            "Benchmarks of seatgate. Every figure is a ratio to a floor measured in the same "
            "run, or a rate with its goal; see the docstrings in bench/."
        ),
    )
    parser.add_argument(
        "--quick", action="store_true", help="a smaller size of every figure (same ratios)"
    )
    parser.add_argument(
        "--only",
        metavar="NAME[,NAME]",
        help=f"run only these benchmarks ({', '.join(BENCHMARKS)})",
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=RESULTS,
        help="where to write the results as JSON (default: bench/results.json)",
    )
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="tiny sizes that only check the harness works (for tests; figures mean nothing)",
    )
    args = parser.parse_args(argv)
    if args.only:
        names = [name.strip() for name in args.only.split(",") if name.strip()]
        unknown = [name for name in names if name not in BENCHMARKS]
        if unknown:
            parser.error(f"unknown benchmark(s): {', '.join(unknown)}; choose from {BENCHMARKS}")
        missing = [name for name in names if not available(name)]
        if missing:
            parser.error(f"benchmark(s) not present: {', '.join(missing)}")
        args.names = [name for name in BENCHMARKS if name in names]
    else:
        args.names = [name for name in BENCHMARKS if available(name)]
    return args


def _number(value: float | None) -> str:
    if value is None:
        return "-"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.3g}" if abs(value) < 1 else f"{value:.2f}"


def table(results: Sequence[Result]) -> str:
    """The results as an aligned text table, then their notes."""
    header = ("NAME", "VALUE UNIT", "FLOOR", "RATIO", "GOAL", "MET")
    rows = [
        (
            r.name,
            f"{_number(r.value)} {r.unit}",
            _number(r.floor),
            f"{r.ratio:.3f}" if abs(r.ratio) < 10 else _number(r.ratio),
            r.goal,
            "yes" if r.met else "NO",
        )
        for r in results
    ]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    right = {1, 2, 3}

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            cell.rjust(width) if i in right else cell.ljust(width)
            for i, (cell, width) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    lines = [line(header), line(["-" * width for width in widths])]
    lines += [line(row) for row in rows]
    notes = [f"  {r.name}: {r.notes}" for r in results if r.notes]
    if notes:
        lines += ["", "notes:", *notes]
    return "\n".join(lines)


def _load() -> str:
    # The 1-minute load average: how busy the machine was (figures are ratios for that reason).
    return f"{os.getloadavg()[0]:.1f}"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the chosen benchmarks; return the exit status."""
    args = parse_args(argv)
    if args.smoke:
        # Read by the benchmark modules and inherited by the processes they spawn.
        os.environ[SMOKE_ENV] = "1"
    quick = bool(args.quick or args.smoke)
    load_before = _load()
    results: list[Result] = []
    crashed: list[str] = []
    for name in args.names:
        print(f"bench: {name} ...", file=sys.stderr, flush=True)
        started = time.perf_counter()
        try:
            results += load(name)(quick)
        except Exception:
            traceback.print_exc()
            crashed.append(name)
            print(f"bench: {name} CRASHED", file=sys.stderr, flush=True)
            continue
        print(f"bench: {name} done in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    args.output.write_text(
        json.dumps([r.as_json() for r in results], indent=2, ensure_ascii=False) + "\n",
        encoding="utf-8",
    )
    size = "smoke" if args.smoke else "quick" if quick else "full"
    print(f"\nseatgate benchmarks ({size} size; {os.cpu_count()} CPUs, load average ", end="")
    print(f"{load_before} at the start, {_load()} at the end)\n")
    print(table(results))
    missed = [r.name for r in results if not r.met]
    print(f"\n{len(results) - len(missed)} of {len(results)} goals met", end="")
    print(f"; missed: {', '.join(missed)}" if missed else "")
    if crashed:
        print(f"CRASHED: {', '.join(crashed)} (traceback above)")
    print(f"results written to {args.output}")
    return 1 if crashed else 0


if __name__ == "__main__":
    sys.exit(main())
