"""What every benchmark shares: the result record, timing and memory helpers.

Every figure is a ratio to a floor measured in the same run on the same
machine (a bare library doing the same work), so it holds on a noisy machine.
"""

from __future__ import annotations

import contextlib
import resource
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

Goal = Literal["<=", ">="]


@dataclass(frozen=True)
class Result:
    """One line of the table and of ``bench/results.json``.

    ``value`` and ``floor`` are in ``unit``; ``ratio`` is value / floor (or
    the figure itself when it has no floor, e.g. claims per second); ``goal``
    reads like ``"<= 1.05"``; ``met`` says whether ``ratio`` meets it.
    """

    name: str
    value: float
    unit: str
    floor: float | None
    ratio: float
    goal: str
    met: bool
    notes: str = ""

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def result(
    name: str,
    value: float,
    unit: str,
    floor: float | None,
    goal: tuple[Goal, float],
    *,
    ratio: float | None = None,
    notes: str = "",
) -> Result:
    """Build a :class:`Result`, computing the ratio and whether the goal is met."""
    if ratio is None:
        ratio = value / floor if floor else value
    op, target = goal
    met = ratio <= target if op == "<=" else ratio >= target
    return Result(name, value, unit, floor, round(ratio, 4), f"{op} {target:g}", met, notes)


def interleaved(
    a: Callable[[], object], b: Callable[[], object], *, rounds: int, warmup: int = 2
) -> tuple[float, float]:
    """Median times of ``a`` and ``b`` run alternately, so drift hits both alike."""
    for _ in range(warmup):
        a()
        b()
    times_a, times_b = [], []
    for _ in range(rounds):
        start = time.perf_counter()
        a()
        times_a.append(time.perf_counter() - start)
        start = time.perf_counter()
        b()
        times_b.append(time.perf_counter() - start)
    return statistics.median(times_a), statistics.median(times_b)


def own_peak_rss_mib() -> float:
    """This process's peak resident set since its exec, in MiB.

    ``/proc/self/status`` VmHWM, not ``getrusage(RUSAGE_SELF).ru_maxrss``:
    Linux carries ru_maxrss over an exec, and a child started by vfork (as
    :mod:`subprocess` starts it) inherits the parent's peak that way.
    """
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text(encoding="ascii").splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


BENCH_DIR = Path(__file__).resolve().parent
RESULTS = BENCH_DIR / "results.json"
