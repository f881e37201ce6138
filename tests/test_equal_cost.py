"""Directory accounts cannot be told from unknown logins, by time or by answer.

A fake directory whose real binds take 40 ms and whose decoy binds take
5 ms stands in for a server that answers a name it does not know faster
than a wrong password: the gate must still take as long for an unknown
login as for a directory login. The real servers' version of the timing
test is ``tests/ldap/test_login_timing.py``.
"""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from seatgate.app import Core
from seatgate.errors import DirectoryUnavailable
from seatgate.gate.decision import Reason
from seatgate.gate.equal_cost import EqualCost
from seatgate.records import Account, Source

REAL_BIND = 0.040
DECOY_BIND = 0.005
SAMPLES = 30


class SlowDirectory:
    """Binds that take a while; the decoy answered faster, as a real server may."""

    def __init__(self) -> None:
        self.down = False
        self.decoys = 0
        self.passwords: list[str] = []
        self.lock = threading.Lock()

    def verify(self, account: Account, password: str) -> bool:
        if self.down:
            raise DirectoryUnavailable("cannot reach ldaps://fake.example: timed out")
        time.sleep(REAL_BIND)
        return password == f"pw-{account.login}"

    def decoy_bind(self) -> None:
        if self.down:
            raise DirectoryUnavailable("cannot reach ldaps://fake.example: timed out")
        with self.lock:
            self.decoys += 1
        time.sleep(DECOY_BIND)


@pytest.fixture
def directory_app(build_app: Callable[..., Core], sqlite_url: str) -> tuple[Core, SlowDirectory]:
    app = build_app(sqlite_url)
    directory = SlowDirectory()
    app.gate.verifiers["ldap"] = directory
    app.accounts.add("dirk", password=None, actor="test", source="ldap")
    app.accounts.add("lotte", password="lotte-pw", actor="test")
    return app, directory


def person(account_id: int, login: str, source: Source) -> Account:
    at = datetime(2026, 1, 1, tzinfo=UTC)
    return Account(account_id, login, login, None, None, source, "active", False, at, at)


def median_seconds(attempt: Callable[[], object]) -> float:
    times = []
    for _ in range(SAMPLES):
        started = time.perf_counter()
        attempt()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def test_an_unknown_login_takes_as_long_as_a_wrong_directory_password(
    directory_app: tuple[Core, SlowDirectory],
) -> None:
    app, _ = directory_app
    gate = app.gate
    # Warm up: the padding learns what a real bind costs.
    for _ in range(5):
        gate.decide("dirk", "wrong")
    directory_login = median_seconds(lambda: gate.decide("dirk", "wrong"))
    unknown_login = median_seconds(lambda: gate.decide("nobody", "wrong"))
    local_login = median_seconds(lambda: gate.decide("lotte", "wrong"))
    assert gate.decide("nobody", "wrong").reason is Reason.INVALID_CREDENTIALS
    assert gate.decide("dirk", "wrong").reason is Reason.INVALID_CREDENTIALS
    assert directory_login >= REAL_BIND
    for other in (unknown_login, local_login):
        assert abs(other - directory_login) <= 0.10 * directory_login, (
            directory_login,
            unknown_login,
            local_login,
        )


def test_while_the_directory_is_down_an_unknown_login_is_answered_as_a_directory_login(
    directory_app: tuple[Core, SlowDirectory],
) -> None:
    app, directory = directory_app
    directory.down = True
    assert app.gate.decide("dirk", "wrong").reason is Reason.DIRECTORY_UNAVAILABLE
    assert app.gate.decide("nobody", "wrong").reason is Reason.DIRECTORY_UNAVAILABLE
    assert app.gate.decide("nobody", "").reason is Reason.DIRECTORY_UNAVAILABLE
    # Local accounts still sign in (and are refused as usual).
    assert app.gate.decide("lotte", "wrong").reason is Reason.INVALID_CREDENTIALS
    directory.down = False
    assert app.gate.decide("nobody", "wrong").reason is Reason.INVALID_CREDENTIALS


def test_every_path_pays_one_bind_and_one_argon2_verification(
    directory_app: tuple[Core, SlowDirectory], monkeypatch: pytest.MonkeyPatch
) -> None:
    app, directory = directory_app
    dummies: list[str] = []
    real = app.hasher.verify_dummy
    monkeypatch.setattr(app.hasher, "verify_dummy", lambda pw: (dummies.append(pw), real(pw)))
    app.gate.decide("dirk", "wrong")
    assert (len(dummies), directory.decoys) == (1, 0)
    app.gate.decide("nobody", "wrong")
    assert (len(dummies), directory.decoys) == (2, 1)
    app.gate.decide("lotte", "wrong")
    assert (len(dummies), directory.decoys) == (2, 2)


def test_a_decoy_is_padded_to_the_median_real_bind_and_a_failed_one_is_not() -> None:
    now = [0.0]
    slept: list[float] = []

    class Directory:
        fail = False

        def verify(self, account: Account, password: str) -> bool:
            now[0] += 0.050
            return False

        def decoy_bind(self) -> None:
            now[0] += 0.010
            if self.fail:
                raise DirectoryUnavailable("down")

    class Hasher:
        def verify_dummy(self, password: str) -> None:
            return None

    directory = Directory()
    costs = EqualCost(
        Hasher(),  # type: ignore[arg-type]
        {"ldap": directory},
        monotonic=lambda: now[0],
        sleep=slept.append,
    )
    assert costs.without_account("x", None) is None
    assert slept == []  # nothing to pad to before the first real bind
    account = person(1, "dirk", "ldap")
    for _ in range(3):
        costs.verify(directory, account, "x")
    assert costs.typical_bind() == pytest.approx(0.050)
    costs.without_account("x", None)
    assert slept == [pytest.approx(0.040)]
    directory.fail = True
    assert costs.without_account("x", None) == "down"
    assert costs.without_account("x", account) == "down"
    local = person(2, "lotte", "local")
    assert costs.without_account("x", local) is None
    assert slept == [pytest.approx(0.040)]
