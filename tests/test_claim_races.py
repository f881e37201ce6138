"""A claim that waited for the seat lock decides on what the lock holder committed (PostgreSQL).

On PostgreSQL the claim takes the lock inside its one statement
(:mod:`seatgate.seats.one_statement_claim`), whose snapshot is older than the
lock. Each test holds the lock in another transaction, changes what the claim
depends on, lets the claim queue behind it, commits, and checks the claim saw
the change: the count, the account's status, a seat the account got meanwhile,
the licence.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sqlalchemy import Connection, create_engine, update

from seatgate.app import Core
from seatgate.seats.ledger import Claim
from seatgate.seats.lock import SeatLock, take_seat_lock
from seatgate.seats.rows import insert_seat
from seatgate.storage import seat_counter
from seatgate.storage.schema import accounts, license_state
from tests.conftest import add_users
from tests.test_claim_statements import claim
from tests.test_seat_lock import _lock_waiters, _run

Mint = Callable[..., str]
pytestmark = pytest.mark.postgres


def _claim_behind(app: Core, url: str, user: str, change: Callable[[SeatLock], object]) -> object:
    """Claim for ``user`` while another transaction holds the lock and makes ``change``."""
    account = app.accounts.get(user).id
    locker = create_engine(url)
    results: dict[str, object] = {}
    try:
        with locker.connect() as conn, conn.begin():
            change(take_seat_lock(conn))
            waiting = _run(lambda: claim(app, account), results, "claim")
            assert _lock_waiters(locker, timeout=10) == 1, "the claim did not wait"
        waiting.join(timeout=10)
        assert not waiting.is_alive()
    finally:
        locker.dispose()
    return results["claim"]


def _seat_for(app: Core, login: str) -> Callable[[SeatLock], None]:
    def change(lock: SeatLock) -> None:
        now = app.clock.now()
        insert_seat(lock, app.accounts.get(login).id, now, assigned_by="admin", pinned=False)

    return change


def test_the_last_seat_taken_meanwhile_is_not_granted_twice(
    build_app: Callable[..., Core], pg_url: str, mint: Mint
) -> None:
    app = build_app(pg_url)
    app.licensing.install(mint("license", seats=25), actor="admin")
    users = add_users(app, 26)
    assert [claim(app, u) for u in users[:24]] == [Claim.GRANTED] * 24

    assert _claim_behind(app, pg_url, users[25], _seat_for(app, users[24])) is Claim.NO_SEAT
    assert app.db.read(seat_counter.check) == (25, 25)


def test_a_seat_the_account_got_meanwhile_is_held_not_an_error(
    build_app: Callable[..., Core], pg_url: str, mint: Mint
) -> None:
    app = build_app(pg_url)
    app.licensing.install(mint("license", seats=25), actor="admin")
    (user,) = add_users(app, 1)

    assert _claim_behind(app, pg_url, user, _seat_for(app, user)) is Claim.HELD
    assert app.db.read(seat_counter.check) == (1, 1)


def test_an_account_disabled_meanwhile_gets_no_seat(
    build_app: Callable[..., Core], pg_url: str, mint: Mint
) -> None:
    app = build_app(pg_url)
    app.licensing.install(mint("license", seats=25), actor="admin")
    (user,) = add_users(app, 1)

    def disable(lock: SeatLock) -> None:
        conn: Connection = lock.conn
        conn.execute(update(accounts).where(accounts.c.login == user).values(status="disabled"))

    assert _claim_behind(app, pg_url, user, disable) is Claim.NOT_ACTIVE
    assert app.ledger.used() == 0


def test_a_licence_gone_meanwhile_grants_nothing(
    build_app: Callable[..., Core], pg_url: str, mint: Mint
) -> None:
    app = build_app(pg_url)
    app.licensing.install(mint("license", seats=25), actor="admin")
    (user,) = add_users(app, 1)

    def invalidate(lock: SeatLock) -> None:
        lock.conn.execute(update(license_state).values(valid=False, reason="removed"))

    assert _claim_behind(app, pg_url, user, invalidate) is Claim.LICENSE_INVALID
    assert app.ledger.used() == 0
