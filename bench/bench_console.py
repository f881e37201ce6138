"""The console's accounts page with many accounts, against the same page with few.

Two installations per database, one with ``small`` accounts and one with
``large`` (1,000 and 100,000 in a full run), each with a signed-in
administrator. Each round requests, on both, the same four views of
``GET /admin/accounts``: the first page, a login-prefix search, the
accounts holding no seat, and the newest sign-ins first. A figure is the
median time of one round at ``large`` over the same at ``small``: the
search, filters, sorting and paging run in the database, so the page should
cost about the same whatever the number of accounts (goal: at most 2x).
"""

from __future__ import annotations

import importlib
import statistics
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from flask.testing import FlaskClient

from bench import BACKENDS, Installation, database, password_parameters, pick, workdir
from bench.common import Result, result
from seatgate.app import Core
from seatgate.config import WebConfig

GOAL = 2.0
"""The page at ``large`` accounts over the page at ``small``."""
BASE_URL = "https://portal.example.com"
ADMIN = "benchadmin"
PASSWORD = "correct horse battery staple"  # noqa: S105 - a throwaway account
VIEWS = (
    "/admin/accounts",
    "/admin/accounts?q=user0005",
    "/admin/accounts?seat=none",
    "/admin/accounts?sort=last_login&order=desc",
)


def run(quick: bool) -> list[Result]:
    """One line per database: seconds per round of the four views at ``large`` over ``small``."""
    small = pick(quick, full=1_000, quick_size=1_000, smoke_size=20)
    large = pick(quick, full=100_000, quick_size=20_000, smoke_size=200)
    rounds = pick(quick, full=30, quick_size=15, smoke_size=2)
    with workdir() as folder:
        results = []
        for backend in BACKENDS:
            with (
                _signed_in(backend, folder, small) as few,
                _signed_in(backend, folder, large) as many,
            ):
                few_s, many_s = _rounds(few, many, rounds)
            notes = (
                f"Flask test client, signed-in admin; four views of /admin/accounts (first "
                f"page, login prefix search, no seat, newest sign-ins first) per round; "
                f"median of {rounds} rounds at {large:,} accounts over the same at {small:,}"
            )
            results.append(
                result(
                    f"web.admin.accounts.{backend}",
                    many_s * 1e3,
                    "ms",
                    few_s * 1e3,
                    ("<=", GOAL),
                    notes=notes,
                )
            )
        return results


@contextmanager
def _signed_in(backend: str, folder: Path, count: int) -> Iterator[FlaskClient]:
    """An installation with ``count`` accounts and a client signed in as its admin."""
    with database(backend, folder) as url:
        installation = Installation(
            url, passwords=password_parameters(), web=WebConfig(secure_cookies=True)
        )
        installation.create(seats=25)
        core = installation.open()
        try:
            _import_accounts(core, folder / f"accounts-{backend}-{count}.csv", count)
            core.accounts.add(ADMIN, password=PASSWORD, actor="bench", is_admin=True)
            server: Any = importlib.import_module("seatgate.adapters.flask.server")
            client = server.create_app(core=core).test_client()
            answer = client.post(
                "/api/login", json={"login": ADMIN, "password": PASSWORD}, base_url=BASE_URL
            )
            if answer.status_code != 200:
                raise RuntimeError(f"sign-in failed: {answer.status} {answer.get_data()!r}")
            yield client
        finally:
            core.close()


def _import_accounts(core: Core, path: Path, count: int) -> None:
    """Create ``count`` accounts in one import transaction."""
    path.write_text(
        "login,name,email\n"
        + "".join(f"user{i:07d},User {i},user{i}@example.org\n" for i in range(count)),
        encoding="utf-8",
    )
    importer = core.account_importer()
    with importer.check(core.csv_file(path)) as checked:
        if checked.problem_count:
            raise RuntimeError(f"the account import found {checked.problem_count} bad rows")
        importer.apply(checked, actor="bench")


def _rounds(few: FlaskClient, many: FlaskClient, rounds: int) -> tuple[float, float]:
    """Median seconds of one round of :data:`VIEWS` on each, alternating the two."""
    times: tuple[list[float], list[float]] = ([], [])
    for number in range(rounds + 1):
        for index, client in enumerate((few, many)):
            start = time.perf_counter()
            for view in VIEWS:
                answer = client.get(view, base_url=BASE_URL)
                if answer.status_code != 200:
                    raise RuntimeError(f"{view}: {answer.status}")
            if number:  # the first round warms both up
                times[index].append(time.perf_counter() - start)
    return statistics.median(times[0]), statistics.median(times[1])
