"""The login decision for a seated local user: against one argon2id verify, and at scale.

``login.decision.*`` -- setup per database: a built installation
(production argon2id parameters, the
:class:`~seatgate.accounts.passwords.HashParameters` defaults; cheap ones
only in a smoke run, whose figures mean nothing), a 25-seat licence and a
local account that already holds a seat. The installation is built as the
web gate builds it (failed-login rate limiter on, a client address given),
the heaviest front door. Measured: ``LoginGate.decide`` (A) and
``PasswordHasher.verify`` of the same stored hash with the same parameters
(B, the floor), alternately, medians. The decision's verification is the
floor itself, so the ratio shows what the gate adds around it: lookups, the
seat check, the audit event and the rate limiter's bookkeeping.

``login.scale.*`` -- the same seated login in two installations of the same
database kind, alternately: a small one (40 accounts, one seat holder) as
the floor, and a large one (100,000 accounts imported from CSV, so with
their audit events, and 10,000 seat holders). Both verify with cheap
argon2id parameters, so that the figure is the gate's own work and any of
it that grows with the number of accounts shows instead of hiding behind
the hash.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Connection, insert, select

from bench import (
    BACKENDS,
    CHEAP_HASH,
    Installation,
    database,
    password_parameters,
    pick,
    workdir,
)
from bench.common import Result, interleaved, result
from seatgate.app import Core
from seatgate.storage.schema import accounts, seats

GOAL = 1.03
SCALE_GOAL = 1.05
LOGIN = "alice"
PASSWORD = "correct horse battery staple"  # noqa: S105 - a throwaway account
ADDRESS = "10.20.30.40"
SMALL_ACCOUNTS = 40


def run(quick: bool) -> list[Result]:
    """Per database: a decision over one verify; the decision at scale over a small install."""
    rounds = pick(quick, full=60, quick_size=30, smoke_size=2)
    warmup = pick(quick, full=3, quick_size=3, smoke_size=1)
    large = pick(quick, full=100_000, quick_size=100_000, smoke_size=300)
    holders = pick(quick, full=10_000, quick_size=10_000, smoke_size=30)
    scale_rounds = pick(quick, full=400, quick_size=200, smoke_size=3)
    with workdir() as folder:
        decisions, scales = [], []
        for backend in BACKENDS:
            with database(backend, folder) as url:
                decisions.append(_measure(backend, url, rounds, warmup))
            with database(backend, folder) as small, database(backend, folder) as big:
                sizes = ((small, SMALL_ACCOUNTS, 1), (big, large, holders))
                scales.append(_scale(backend, folder, sizes, scale_rounds))
        return decisions + scales


def _measure(backend: str, url: str, rounds: int, warmup: int) -> Result:
    installation = Installation(url, passwords=password_parameters())
    installation.create(seats=25)
    core = installation.open(rate_limited=True)
    try:
        core.accounts.add(LOGIN, password=PASSWORD, actor="bench")
        decide = _seated_login(core)
        stored_hash = core.accounts.get(LOGIN).password_hash
        hasher = type(core.hasher)(installation.passwords)

        def verify() -> None:
            if not hasher.verify(stored_hash, PASSWORD):
                raise RuntimeError("the password did not verify")

        decision_s, verify_s = interleaved(decide, verify, rounds=rounds, warmup=warmup)
    finally:
        core.close()
    params = installation.passwords
    return result(
        f"login.decision.{backend}",
        decision_s * 1000,
        "ms",
        verify_s * 1000,
        ("<=", GOAL),
        notes=(
            f"seated local user; floor: one argon2id verify (t={params.time_cost}, "
            f"m={params.memory_cost_kib // 1024} MiB, p={params.parallelism}); "
            f"web-gate build (rate limiter on); medians of {rounds} interleaved rounds"
        ),
    )


def _seated_login(core: Core) -> Callable[[], None]:
    """Claim the user's seat with a first login; return one more (seated) login."""
    first = core.gate.decide(LOGIN, PASSWORD, address=ADDRESS)
    if not (first.allowed and first.seat_claimed):
        raise RuntimeError(f"the first login did not claim a seat: {first}")

    def decide() -> None:
        decision = core.gate.decide(LOGIN, PASSWORD, address=ADDRESS)
        if not decision.allowed or decision.seat_claimed:
            raise RuntimeError(f"a seated user's login came to {decision}")

    return decide


def _scale(
    backend: str, folder: Path, sizes: tuple[tuple[str, int, int], ...], rounds: int
) -> Result:
    cores = [_populated(url, folder, count, holders) for url, count, holders in sizes]
    try:
        small, large = (_seated_login(core) for core in cores)
        large_s, small_s = interleaved(large, small, rounds=rounds, warmup=20)
    finally:
        for core in cores:
            core.close()
    (_, small_count, _), (_, large_count, holders) = sizes
    return result(
        f"login.scale.{backend}",
        large_s * 1000,
        "ms",
        small_s * 1000,
        ("<=", SCALE_GOAL),
        notes=(
            f"seated login with {large_count:,} accounts (CSV import) and {holders:,} seat "
            f"holders; floor: the same login with {small_count} accounts and one holder; "
            f"argon2id t={CHEAP_HASH.time_cost}, m={CHEAP_HASH.memory_cost_kib} KiB in both; "
            f"web-gate build; medians of {rounds} interleaved rounds"
        ),
    )


def _populated(url: str, folder: Path, count: int, holders: int) -> Core:
    """An installation with ``count`` accounts, ``holders`` of them seated (not yet ``alice``)."""
    installation = Installation(url, passwords=CHEAP_HASH)
    installation.create(seats=max(25, holders + 1))
    core = installation.open(rate_limited=True)
    source = folder / f"scale-{count}.csv"
    source.write_text(
        "login,name,email\n"
        + "".join(f"user{i:06d},User {i},user{i}@example.com\n" for i in range(count - 1)),
        encoding="utf-8",
    )
    importer = core.account_importer()
    with importer.check(core.csv_file(source)) as checked:
        importer.apply(checked, actor="bench")
    core.accounts.add(LOGIN, password=PASSWORD, actor="bench")
    _seat_directly(core, holders - 1)
    return core


def _seat_directly(core: Core, holders: int) -> None:
    """Give the first ``holders`` imported accounts a seat in one statement (setup only:
    the ledger would take one transaction each, and the claim is not what is measured)."""
    if holders <= 0:
        return
    now = datetime.now(UTC)

    def work(conn: Connection) -> None:
        ids = conn.execute(
            select(accounts.c.id).where(accounts.c.login != LOGIN).order_by(accounts.c.id)
        ).scalars()
        rows = [
            {"account_id": i, "assigned_at": now, "last_used_at": now, "assigned_by": "bench"}
            for i in list(ids)[:holders]
        ]
        conn.execute(insert(seats), rows)

    core.db.write(work)
