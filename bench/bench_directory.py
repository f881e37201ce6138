"""Directory sync from a real OpenLDAP slapd on loopback vs a bare ldap3 paged search.

Setup: slapd as the tests run it (:mod:`bench.ldap_fixture`, StartTLS with
the test CA, the service account) holding 100,000 inetOrgPersons (``--quick``:
10,000), each in two of 20 groups, loaded with slapadd before slapd starts.
Each installation is a fresh SQLite database made by ``seatgate init``,
without a licence and without ``seat_groups``.

Measured, each run in a fresh child process (so its peak RSS is its own):

- the product's full sync, built as ``seatgate sync ldap --full`` builds it
  (the installation's :meth:`~seatgate.app.Core.directory_sync` reading its
  :meth:`~seatgate.app.Core.directory`, from the loaded configuration), into
  a fresh database each time;
- the floor: ldap3 alone, the same connection (StartTLS, service account,
  Nagle's algorithm off as the product turns it off), base, filter,
  attributes and page size, every entry's values decoded into a Python
  list -- no database;
- then 1 % of the people get a new ``cn``, the clock passes the next whole
  second (``modifyTimestamp`` has one-second resolution) and an incremental
  sync (no ``--full``) runs on a copy of a fully synced database.

Figures: ``directory.full``, full sync / floor (goal <= 1.3);
``directory.incremental``, incremental / full sync (goal <= 0.1); and
``directory.rss``, the full sync's peak RSS (goal <= 256 MiB). Times are
medians of alternating runs.
"""

from __future__ import annotations

import json
import socket
import sqlite3
import ssl
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import ldap3
import yaml

from bench import Installation, pick, workdir
from bench.common import BENCH_DIR, Result, own_peak_rss_mib, result
from bench.ldap_fixture import PeopleDirectory, environment, uid_of, wait_for_next_second
from seatgate.app import Core
from seatgate.config import Config, load_config
from seatgate.config.ldap import LdapConfig

FULL_GOAL = 1.3
RSS_GOAL_MIB = 256.0
INCREMENTAL_GOAL = 0.1
CHANGED_EVERY = 100
"""Every 100th person is changed before the incremental sync: 1 %."""
PAGED_RESULTS_OID = "1.2.840.113556.1.4.319"
ROOT = BENCH_DIR.parent


@dataclass(frozen=True)
class Run:
    """What one child process reports: wall seconds of the work, its peak RSS, counts."""

    seconds: float
    rss_mib: float
    counts: dict[str, int]


def run(quick: bool) -> list[Result]:
    """Full sync vs floor, its peak RSS, and incremental vs full."""
    people = pick(quick, full=100_000, quick_size=10_000, smoke_size=200)
    # A full sync of 100,000 entries takes over a minute here: two rounds of it.
    rounds = pick(quick, full=2, quick_size=3, smoke_size=1)
    incremental_rounds = pick(quick, full=3, quick_size=3, smoke_size=1)
    with workdir() as folder:
        server = PeopleDirectory()
        _say(f"loading {people:,} people into slapd")
        server.start_with_people(folder / "slapd", people)
        try:
            return _measure(server, folder, people, rounds, incremental_rounds)
        finally:
            server.stop()


def _measure(
    server: PeopleDirectory, folder: Path, people: int, rounds: int, incremental_rounds: int
) -> list[Result]:
    _say("warm-up: one bare search (fills slapd's caches)")
    _child("floor", _installation(server, folder / "warmup"))
    floors: list[Run] = []
    fulls: list[Run] = []
    synced: list[Path] = []
    for number in range(1, rounds + 1):
        floors.append(_child("floor", _installation(server, folder / f"floor{number}")))
        synced.append(_installation(server, folder / f"full{number}", init=True))
        fulls.append(_child("full", synced[-1]))
        _say(
            f"round {number}/{rounds}: ldap3 search {floors[-1].seconds:.2f} s, "
            f"full sync {fulls[-1].seconds:.2f} s ({fulls[-1].rss_mib:.0f} MiB)"
        )
        _check_counts(fulls[-1], created=people)

    changed = [uid_of(index) for index in range(CHANGED_EVERY // 2, people, CHANGED_EVERY)]
    _say(f"changing the cn of {len(changed):,} people")
    server.change_names(changed, "renamed")
    wait_for_next_second()
    incrementals: list[Run] = []
    for number in range(1, incremental_rounds + 1):
        copy = _installation(server, folder / f"incremental{number}")
        _copy_database(_database_file(synced[-1]), _database_file(copy))
        incrementals.append(_child("incremental", copy))
        seconds = incrementals[-1].seconds
        _say(f"round {number}/{incremental_rounds}: incremental sync {seconds:.2f} s")
        _check_counts(incrementals[-1], updated=len(changed))

    floor_s = statistics.median(r.seconds for r in floors)
    full_s = statistics.median(r.seconds for r in fulls)
    incremental_s = statistics.median(r.seconds for r in incrementals)
    sizes = f"{people:,} entries, page size 500, StartTLS on loopback"
    return [
        result(
            "directory.full",
            full_s,
            "s",
            floor_s,
            ("<=", FULL_GOAL),
            notes=(
                f"{sizes}; floor: a bare ldap3 paged search over the same connection "
                "(StartTLS, service account, Nagle off as in the product), base, filter, "
                "attributes and page size, every value decoded, no database; each in a fresh "
                f"process; sync runs {_times(fulls)}, search runs {_times(floors)}"
            ),
        ),
        result(
            "directory.incremental",
            incremental_s,
            "s",
            full_s,
            ("<=", INCREMENTAL_GOAL),
            notes=(
                f"{sizes}; floor: the full sync above; {len(changed):,} entries changed (cn), "
                f"{incrementals[-1].counts['entries_seen']:,} read, on a copy of the fully "
                f"synced database; runs {_times(incrementals)}"
            ),
        ),
        result(
            "directory.rss",
            max(r.rss_mib for r in fulls),
            "MiB",
            None,
            ("<=", RSS_GOAL_MIB),
            notes=(
                f"{sizes}; peak RSS of the full sync's process (VmHWM), no floor; the bare "
                f"ldap3 search's own peak was {max(r.rss_mib for r in floors):.0f} MiB"
            ),
        ),
    ]


def _check_counts(run: Run, **expected: int) -> None:
    for name, value in expected.items():
        if run.counts.get(name) != value:
            raise RuntimeError(f"the sync did not do what was measured: {run.counts}")


def _times(runs: list[Run]) -> str:
    return "/".join(f"{r.seconds:.2f}" for r in runs) + " s"


def _say(message: str) -> None:
    print(f"[directory] {message}", file=sys.stderr, flush=True)


# -- installations -----------------------------------------------------------------------


def _installation(server: PeopleDirectory, folder: Path, *, init: bool = False) -> Path:
    """A configuration file syncing from ``server``; with ``init``, its database initialised."""
    folder.mkdir(parents=True)
    path = Installation(f"sqlite:///{folder / 'seatgate.db'}").write_config(
        folder / "seatgate.yaml"
    )
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    data["ldap"] = server.seatgate_ldap_section()
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    if init:
        _init(path)
    return path


def _init(config_path: Path) -> None:
    """What ``seatgate init`` does: build without the schema check, create the schema."""
    app = Core.build(load_config(config_path), check_schema=False)
    try:
        app.init_schema()
    finally:
        app.close()


def _database_file(config_path: Path) -> Path:
    return config_path.parent / "seatgate.db"


def _copy_database(source: Path, target: Path) -> None:
    """A consistent copy of a SQLite database (WAL included), by SQLite's backup API."""
    src, dst = sqlite3.connect(source), sqlite3.connect(target)
    try:
        src.backup(dst)
    finally:
        src.close()
        dst.close()


# -- child processes -----------------------------------------------------------------------


def _child(task: str, config_path: Path) -> Run:
    """Run ``task`` on ``config_path`` in a fresh interpreter; its report."""
    done = subprocess.run(
        [sys.executable, "-m", "bench.bench_directory", task, str(config_path)],
        cwd=ROOT,
        env=environment(),
        stdout=subprocess.PIPE,
        check=False,
        text=True,
    )
    if done.returncode != 0:
        raise RuntimeError(f"benchmark child `{task}` failed with exit {done.returncode}")
    report = json.loads(done.stdout.strip().splitlines()[-1])
    return Run(report["seconds"], report["rss_mib"], report["counts"])


def _ldap_section(config: Config) -> LdapConfig:
    if config.ldap is None:
        raise RuntimeError(f"{config.source} has no `ldap:` section")
    return config.ldap


def _floor(config_path: Path) -> tuple[float, dict[str, int]]:
    """ldap3 alone: the paged search the sync makes, values decoded into a list."""
    ldap = _ldap_section(load_config(config_path))
    a = ldap.attributes
    attributes = [a.login, a.name, a.email, a.groups, a.id, a.changed]
    started = time.perf_counter()
    tls = ldap3.Tls(
        validate=ssl.CERT_REQUIRED,
        version=ssl.PROTOCOL_TLS_CLIENT,
        ca_certs_file=str(ldap.ca_file),
    )
    conn = ldap3.Connection(
        ldap3.Server(ldap.url, tls=tls, get_info=ldap3.NONE),
        user=ldap.bind_dn,
        password=ldap.bind_password(),
        read_only=True,
        raise_exceptions=True,
    )
    conn.open()
    # As the product does: without it the bind waits 40 ms for a delayed ACK,
    # which would only make the floor slower.
    conn.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    conn.start_tls()
    conn.bind()
    entries: list[dict[str, list[str]]] = []
    cookie: bytes | None = None
    try:
        while True:
            conn.search(
                ldap.base_dn,
                ldap.user_filter,
                ldap3.SUBTREE,
                attributes=attributes,
                paged_size=ldap.page_size,
                paged_cookie=cookie,
            )
            for item in conn.response:
                if item["type"] == "searchResEntry":
                    entries.append(
                        {
                            name: [value.decode() for value in values]
                            for name, values in item["raw_attributes"].items()
                        }
                    )
            cookie = conn.result["controls"][PAGED_RESULTS_OID]["value"]["cookie"]
            if not cookie:
                break
    finally:
        conn.unbind()
    return time.perf_counter() - started, {"entries_seen": len(entries)}


def _sync(config_path: Path, *, full: bool) -> tuple[float, dict[str, int]]:
    """The product's sync, built as ``seatgate sync ldap [--full]`` builds it."""
    config = load_config(config_path)
    started = time.perf_counter()
    app = Core.build(config)
    try:
        report = app.directory_sync().run(app.directory(), full=full)
    finally:
        app.close()
    seconds = time.perf_counter() - started
    counts = report.as_dict()
    return seconds, {
        name: int(counts[name])
        for name in ("entries_seen", "created", "updated", "renamed", "deleted")
    }


def _child_main(task: str, config_path: Path) -> None:
    """Run one task (its imports done before its clock starts) and print its report."""
    if task == "floor":
        seconds, counts = _floor(config_path)
    elif task in ("full", "incremental"):
        seconds, counts = _sync(config_path, full=task == "full")
    else:
        raise SystemExit(f"unknown task {task!r}")
    print(json.dumps({"seconds": seconds, "rss_mib": own_peak_rss_mib(), "counts": counts}))


if __name__ == "__main__":
    _child_main(sys.argv[1], Path(sys.argv[2]))
