"""Parallel guesses: the rate limit reserves before it verifies, and verifications are bounded.

Every test runs on SQLite and on PostgreSQL. A counting password check stands
in for argon2 and takes long enough that every attempt of a burst is in
flight at once.
"""

from __future__ import annotations

import multiprocessing
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from seatgate.app import Core
from seatgate.gate.decision import Decision, Reason
from tests.web_support import Web

WRONG = "Wrong-Battery-0815"
VERIFY_SECONDS = 0.2
BUSY_VERIFY_SECONDS = 1.5


def count_verifications(core: Core, counter: Callable[[], None]) -> None:
    """Make every password check of ``core`` slow, wrong and counted."""

    def verify(_hash: str | None, _password: str) -> bool:
        counter()
        time.sleep(VERIFY_SECONDS)
        return False

    core.hasher.verify = verify  # type: ignore[method-assign]
    core.hasher.verify_dummy = lambda password: verify(None, password)  # type: ignore[method-assign]


def guess_together(core: Core, attempts: int, barrier: Any) -> list[Decision]:
    def guess(_: int) -> Decision:
        barrier.wait()
        return core.gate.decide("user000", WRONG, address="10.0.0.1")

    with ThreadPoolExecutor(attempts) as pool:
        return list(pool.map(guess, range(attempts)))


def test_thirty_parallel_guesses_verify_at_most_five(make_web: Callable[..., Web]) -> None:
    web = make_web(rate_limited=True, max_concurrent_verifications=64)
    verified: list[int] = []
    count_verifications(web.core, lambda: verified.append(1))
    decisions = guess_together(web.core, 30, threading.Barrier(30))
    assert len(verified) <= 5
    reasons = [d.reason for d in decisions]
    assert reasons.count(Reason.INVALID_CREDENTIALS) == len(verified)
    assert reasons.count(Reason.RATE_LIMITED) == 30 - len(verified)


def _guesser(config: Any, barrier: Any, verified: Any, attempts: int) -> None:
    core = Core.build(config, rate_limited=True)
    try:

        def counted() -> None:
            with verified.get_lock():
                verified.value += 1

        count_verifications(core, counted)
        guess_together(core, attempts, barrier)
    finally:
        core.close()


@pytest.mark.slow
def test_thirty_parallel_guesses_from_three_processes_verify_at_most_five(
    make_web: Callable[..., Web],
) -> None:
    web = make_web(rate_limited=True, max_concurrent_verifications=64)
    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(30)
    verified = context.Value("i", 0)
    workers = [
        context.Process(target=_guesser, args=(web.core.config, barrier, verified, 10))
        for _ in range(3)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
        assert worker.exitcode == 0
    assert 1 <= verified.value <= 5


def test_a_burst_beyond_the_verification_bound_is_answered_429_at_once(
    make_web: Callable[..., Web],
) -> None:
    web = make_web(rate_limited=True, max_concurrent_verifications=2)
    running, most = [0], [0]
    lock = threading.Lock()

    def verify(_hash: str | None, _password: str) -> bool:
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        time.sleep(BUSY_VERIFY_SECONDS)
        with lock:
            running[0] -= 1
        return False

    web.core.hasher.verify = verify  # type: ignore[method-assign]
    barrier = threading.Barrier(10)
    client_lock = threading.Lock()

    def guess(n: int) -> tuple[int, str | None, float]:
        with client_lock:
            client = web.client()
        barrier.wait()
        started = time.monotonic()
        response = client.post(
            "/api/login",
            json={"login": f"user00{n % 3}", "password": WRONG},
            environ_base={"REMOTE_ADDR": f"10.0.1.{n}"},
        )
        return response.status_code, response.headers.get("Retry-After"), time.monotonic() - started

    with ThreadPoolExecutor(10) as pool:
        answers = list(pool.map(guess, range(10)))
    assert most[0] <= 2
    busy = [a for a in answers if a[0] == 429]
    assert busy, answers
    # Answered without waiting for a verification to end: no queue.
    assert all(retry == "1" and took < BUSY_VERIFY_SECONDS / 2 for _, retry, took in busy), answers
    assert [a[0] for a in answers].count(401) >= 2


def test_a_throttled_login_is_told_when_to_try_again(make_web: Callable[..., Web]) -> None:
    web = make_web(rate_limited=True, max_failures_per_login_and_address=1)
    client = web.client()
    assert web.api_login(client, "user000", WRONG).status_code == 401
    refused = web.api_login(client, "user000")
    assert refused.status_code == 429
    assert refused.json == {"error": "rate_limited", "message": refused.json["message"]}
    assert int(refused.headers["Retry-After"]) > 0
    page = web.login(web.client(), "user000")
    assert page.status_code == 429
    assert int(page.headers["Retry-After"]) > 0
