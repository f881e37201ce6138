"""The login decision for a seated local user vs one argon2id verification alone.

Setup per database: a built installation (production argon2id parameters,
:class:`~seatgate.accounts.passwords.HashParameters` defaults; cheap ones only in a
smoke run, whose figures mean nothing), a 25-seat licence and
a local account that already holds a seat. The installation is built as the
web gate builds it (failed-login rate limiter on, a client address given),
the heaviest front door.

Measured: ``LoginGate.decide`` (A) and ``PasswordHasher.verify`` of the same
stored hash with the same parameters (B, the floor), alternately, medians.
The decision's verification is the floor itself, so the ratio shows what
the gate adds around it: lookups, the seat check, the audit event and the
rate limiter's bookkeeping.
"""

from __future__ import annotations

from bench import BACKENDS, Installation, database, password_parameters, pick, workdir
from bench.common import Result, interleaved, result

GOAL = 1.05
LOGIN = "alice"
PASSWORD = "correct horse battery staple"  # noqa: S105 - a throwaway account
ADDRESS = "10.20.30.40"


def run(quick: bool) -> list[Result]:
    """One line per database: milliseconds per decision, floor one verification."""
    rounds = pick(quick, full=40, quick_size=12, smoke_size=2)
    warmup = pick(quick, full=2, quick_size=2, smoke_size=1)
    with workdir() as folder:
        results = []
        for backend in BACKENDS:
            with database(backend, folder) as url:
                results.append(_measure(backend, url, rounds, warmup))
        return results


def _measure(backend: str, url: str, rounds: int, warmup: int) -> Result:
    installation = Installation(url, passwords=password_parameters())
    installation.create(seats=25)
    core = installation.open(rate_limited=True)
    try:
        core.accounts.add(LOGIN, password=PASSWORD, actor="bench")
        first = core.gate.decide(LOGIN, PASSWORD, address=ADDRESS)
        if not (first.allowed and first.seat_claimed):
            raise RuntimeError(f"the first login did not claim a seat: {first}")
        stored_hash = core.accounts.get(LOGIN).password_hash
        hasher = type(core.hasher)(installation.passwords)

        def decide() -> None:
            decision = core.gate.decide(LOGIN, PASSWORD, address=ADDRESS)
            if not decision.allowed or decision.seat_claimed:
                raise RuntimeError(f"a seated user's login came to {decision}")

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
