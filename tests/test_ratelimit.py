"""Login rate limiting: failures throttle, successes never do, and a guesser cannot lock a user out.

Every test runs on SQLite and on PostgreSQL. Time moves with the fake clock.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Connection, event, func, inspect, select, text

from seatgate.app import Core
from seatgate.clock import FakeClock
from seatgate.config import WebConfig
from seatgate.errors import SchemaOutdated
from seatgate.gate.decision import NoRateLimit, Reason
from seatgate.gate.ratelimit import DatabaseRateLimiter, Reservation
from seatgate.licensing.vendor import VendorKey
from seatgate.storage import Database, migrations, schema
from seatgate.upgrades import upgrade
from tests.conftest import add_users, make_config
from tests.schema_history import back_to_version_1

BOB_PW = "Correct-Horse-4711"
ADMIN_PW = "Admin-Staple-2718"
WRONG_PW = "Wrong-Battery-0815"
WINDOW = timedelta(minutes=15)
NOTHING_RESERVED = Reservation(allowed=True)


@pytest.fixture
def build_limited(
    vendor_key: VendorKey, clock: FakeClock, mint: Callable[..., str]
) -> Iterator[Callable[..., Core]]:
    """build_limited(db_url, **web) -> an initialised, licensed, rate-limited installation."""
    built: list[Core] = []

    def _build(url: str, **web: Any) -> Core:
        config = dataclasses.replace(make_config(url, vendor_key), web=WebConfig(**web))
        app = Core.build(config, clock=clock, check_schema=False, rate_limited=True)
        built.append(app)
        app.init_schema()
        app.licensing.install(mint("license", seats=200), actor="test")
        app.accounts.add("bob", password=BOB_PW, actor="test")
        app.accounts.add("admin", password=ADMIN_PW, actor="test", is_admin=True)
        return app

    yield _build
    for app in built:
        app.close()


@pytest.fixture
def web(build_limited: Callable[..., Core], db_url: str) -> Core:
    """The installation as the web gate builds it: default limits (5 / 100 / 30)."""
    return build_limited(db_url)


def failure_rows(app: Core) -> int:
    return app.db.read(
        lambda c: c.execute(select(func.count()).select_from(schema.login_failures)).scalar_one()
    )


def fail(app: Core, login: str, address: str | None, times: int = 1) -> None:
    for _ in range(times):
        decision = app.gate.decide(login, WRONG_PW, address=address)
        assert decision.reason is Reason.INVALID_CREDENTIALS


# -- per login and address -----------------------------------------------------


def test_five_failures_refuse_the_sixth_attempt_from_that_pair_even_with_the_right_password(
    web: Core,
) -> None:
    fail(web, "bob", "10.0.0.1", times=5)

    refused = web.gate.decide("bob", BOB_PW, address="10.0.0.1")
    assert refused.reason is Reason.RATE_LIMITED
    assert not refused.allowed
    # The same login from another address is not affected.
    assert web.gate.decide("bob", BOB_PW, address="10.0.0.2").allowed
    # Nor is another login from the same address.
    assert web.gate.decide("admin", ADMIN_PW, address="10.0.0.1").allowed


def test_an_attempt_reads_its_counts_on_the_drivers_cursor_not_through_sqlalchemy(
    web: Core,
) -> None:
    limiter = web.gate.rate_limiter
    assert isinstance(limiter, DatabaseRateLimiter)
    seen: list[str] = []

    def count(*args: object) -> None:
        seen.append(str(args[2]))

    event.listen(web.db.engine, "before_cursor_execute", count)
    try:
        fail(web, "bob", "10.0.0.1")
        assert web.gate.decide("bob", BOB_PW, address="10.0.0.1").allowed
        # A browser with a device cookie: its own count, read by a statement of its own.
        assert limiter.reserve("bob", "10.0.0.1", device="a-device").allowed
    finally:
        event.remove(web.db.engine, "before_cursor_execute", count)
    # The counts (with whether throttles await settling) ran, but never through SQLAlchemy.
    assert failure_rows(web) >= 1
    assert not [sql for sql in seen if "login_throttles" in sql]


def test_four_failures_still_let_the_user_in_and_the_success_clears_them(web: Core) -> None:
    fail(web, "bob", "10.0.0.1", times=4)
    assert web.gate.decide("bob", BOB_PW, address="10.0.0.1").allowed
    # The success forgot the typos: four more do not reach the limit.
    fail(web, "bob", "10.0.0.1", times=4)
    assert web.gate.decide("bob", BOB_PW, address="10.0.0.1").allowed


def test_the_pair_is_allowed_again_once_its_failures_leave_the_window(
    web: Core, clock: FakeClock
) -> None:
    fail(web, "bob", "10.0.0.1", times=5)
    clock.advance(WINDOW - timedelta(seconds=1))
    assert web.gate.decide("bob", BOB_PW, address="10.0.0.1").reason is Reason.RATE_LIMITED

    clock.advance(timedelta(seconds=1))
    assert web.gate.decide("bob", BOB_PW, address="10.0.0.1").allowed


def test_the_window_slides_so_spaced_failures_never_add_up(web: Core, clock: FakeClock) -> None:
    for _ in range(12):
        fail(web, "bob", "10.0.0.1")
        clock.advance(timedelta(minutes=4))
    # Never more than four failures in any 15 minutes.
    assert web.gate.decide("bob", BOB_PW, address="10.0.0.1").allowed


def test_limits_come_from_the_web_configuration(
    build_limited: Callable[..., Core], db_url: str
) -> None:
    app = build_limited(db_url, max_failures_per_login_and_address=2)
    fail(app, "bob", "10.0.0.1", times=2)
    assert app.gate.decide("bob", BOB_PW, address="10.0.0.1").reason is Reason.RATE_LIMITED


# -- per address: an office behind one NAT ---------------------------------------


def test_a_hundred_users_behind_one_address_all_get_in(web: Core) -> None:
    office = "192.0.2.10"
    logins = add_users(web, 100)
    # A few typos on the way, as at any 9:00.
    for login in logins[:10]:
        assert web.gate.decide(login, WRONG_PW, address=office).reason is Reason.INVALID_CREDENTIALS

    for login in logins:
        decision = web.gate.decide(login, f"{login}-pw", address=office)
        assert decision.allowed, (login, decision.reason)
    # Successes never count: everyone gets in again.
    for login in logins:
        assert web.gate.decide(login, f"{login}-pw", address=office).allowed


def test_a_hundred_failures_from_one_address_refuse_everyone_there_and_no_one_elsewhere(
    web: Core,
) -> None:
    attacker = "198.51.100.66"
    for i in range(100):
        # One guess per login: the per-pair limit never trips, the address limit does.
        fail(web, f"guess{i:03d}", attacker)

    assert web.gate.decide("bob", BOB_PW, address=attacker).reason is Reason.RATE_LIMITED
    assert web.gate.decide("admin", ADMIN_PW, address=attacker).reason is Reason.RATE_LIMITED
    assert web.gate.decide("bob", BOB_PW, address="198.51.100.67").allowed


# -- per login: a distributed guesser ------------------------------------------------


def test_a_distributed_guesser_cannot_lock_the_admin_out_of_a_known_address(
    web: Core, clock: FakeClock
) -> None:
    admin_desk = "10.0.0.50"
    assert web.gate.decide("admin", ADMIN_PW, address=admin_desk).allowed
    clock.advance(timedelta(days=3))

    # One guess per address: the per-pair and per-address limits never trip.
    reasons = [
        web.gate.decide("admin", WRONG_PW, address=f"203.0.113.{i}").reason for i in range(40)
    ]
    assert reasons == [Reason.INVALID_CREDENTIALS] * 30 + [Reason.RATE_LIMITED] * 10

    assert web.gate.decide("admin", ADMIN_PW, address=admin_desk).allowed
    assert web.gate.decide("admin", ADMIN_PW, address="10.0.0.77").reason is Reason.RATE_LIMITED
    # Other logins from the guesser's addresses are untouched by the per-login limit.
    assert web.gate.decide("bob", BOB_PW, address="203.0.113.1").allowed


def test_a_known_address_expires_after_thirty_days_without_a_login(
    web: Core, clock: FakeClock
) -> None:
    admin_desk = "10.0.0.50"
    assert web.gate.decide("admin", ADMIN_PW, address=admin_desk).allowed
    clock.advance(timedelta(days=30))
    for i in range(30):
        fail(web, "admin", f"203.0.113.{i}")

    assert web.gate.decide("admin", ADMIN_PW, address=admin_desk).reason is Reason.RATE_LIMITED


def test_a_success_keeps_the_failures_of_other_addresses(web: Core) -> None:
    fail(web, "bob", "10.0.0.1", times=5)
    assert web.gate.decide("bob", BOB_PW, address="10.0.0.2").allowed
    assert web.gate.decide("bob", BOB_PW, address="10.0.0.1").reason is Reason.RATE_LIMITED
    assert failure_rows(web) == 5


# -- the CLI ---------------------------------------------------------------------


def test_the_cli_gate_is_never_throttled(app: Core, mint: Callable[..., str]) -> None:
    assert isinstance(app.gate.rate_limiter, NoRateLimit)
    app.licensing.install(mint("license", seats=25), actor="test")
    app.accounts.add("bob", password=BOB_PW, actor="test")
    fail(app, "bob", "10.0.0.1", times=20)
    fail(app, "bob", None, times=20)
    assert app.gate.decide("bob", BOB_PW, address="10.0.0.1").allowed
    assert app.gate.decide("bob", BOB_PW).allowed


def test_attempts_without_an_address_are_never_throttled_nor_recorded(web: Core) -> None:
    fail(web, "bob", None, times=40)
    assert failure_rows(web) == 0
    assert web.gate.decide("bob", BOB_PW).allowed


# -- housekeeping --------------------------------------------------------------


def test_failures_that_left_the_window_are_pruned_when_new_ones_are_recorded(
    web: Core, clock: FakeClock
) -> None:
    for i in range(50):
        fail(web, f"guess{i:03d}", "198.51.100.66")
    assert failure_rows(web) == 50
    clock.advance(WINDOW)
    fail(web, "bob", "10.0.0.1")
    assert failure_rows(web) == 1


def test_recording_the_same_success_twice_keeps_one_row_with_the_latest_time(
    app: Core, clock: FakeClock
) -> None:
    limiter = DatabaseRateLimiter(
        app.db, clock, per_login_and_address=5, per_address=100, per_login=30
    )
    limiter.succeeded("bob", "10.0.0.1", NOTHING_RESERVED)
    clock.advance(timedelta(hours=1))
    limiter.succeeded("bob", "10.0.0.1", NOTHING_RESERVED)
    rows = app.db.read(lambda c: c.execute(select(schema.login_successes)).all())
    assert [(r.login_key, r.address) for r in rows] == [("bob", "10.0.0.1")]
    assert rows[0].last_at.replace(tzinfo=None) == clock.now().replace(tzinfo=None)


def test_an_overlong_address_is_cut_to_fit_and_still_counted(app: Core, clock: FakeClock) -> None:
    limiter = DatabaseRateLimiter(
        app.db, clock, per_login_and_address=2, per_address=100, per_login=30
    )
    address = "x" * 1000
    assert limiter.reserve("bob", address).allowed
    assert limiter.reserve("bob", address).allowed
    assert not limiter.reserve("bob", address).allowed


@pytest.mark.parametrize(
    "limits",
    [
        {"per_login_and_address": 0, "per_address": 1, "per_login": 1},
        {"per_login_and_address": 1, "per_address": 0, "per_login": 1},
        {"per_login_and_address": 1, "per_address": 1, "per_login": 0},
        {"per_login_and_address": 1, "per_address": 1, "per_login": 1, "window": timedelta(0)},
    ],
)
def test_nonsensical_limits_are_refused(limits: dict[str, Any], clock: FakeClock) -> None:
    with pytest.raises(ValueError, match="must be"):
        DatabaseRateLimiter(Database("sqlite:///unused.db"), clock, **limits)


# -- schema version 2 ------------------------------------------------------------


def everything(
    app: Core, shape: dict[str, list[str]] | None = None
) -> tuple[dict[str, list[str]], dict[str, list[tuple[Any, ...]]]]:
    """Every row of every version-1 table (but the version stamp), by the columns in ``shape``.

    Without ``shape``, the tables and columns the database has now.
    """

    def work(conn: Connection) -> tuple[dict[str, list[str]], dict[str, list[tuple[Any, ...]]]]:
        found = shape
        if found is None:
            inspector = inspect(conn)
            found = {
                name: [c["name"] for c in inspector.get_columns(name)]
                for name in inspector.get_table_names()
                if name not in ("login_failures", "login_successes", "seatgate_schema")
            }
        rows = {
            name: sorted(
                tuple(map(repr, row))
                for row in conn.execute(
                    select(*(schema.metadata.tables[name].c[c] for c in columns))
                )
            )
            for name, columns in found.items()
        }
        return found, rows

    return app.db.read(work)


def indexes(db: Database, table: str) -> set[str]:
    return db.read(lambda c: {str(ix["name"]) for ix in inspect(c).get_indexes(table)})


def test_a_version_1_database_is_upgraded_keeping_every_row(
    app: Core, db_url: str, vendor_key: VendorKey, mint: Callable[..., str]
) -> None:
    fresh_indexes = {
        "login_failures": indexes(app.db, "login_failures"),
        "login_successes": indexes(app.db, "login_successes"),
    }
    app.licensing.install(mint("license", seats=25, jti="lic-25"), actor="test")
    add_users(app, 3)
    assert app.gate.decide("user000", "user000-pw").allowed

    app.db.engine.dispose()
    with app.db.engine.begin() as conn:
        back_to_version_1(conn)
    shape, kept = everything(app)

    with pytest.raises(SchemaOutdated) as caught:
        Core.build(make_config(db_url, vendor_key), rate_limited=True)
    assert (caught.value.found, caught.value.expected) == (1, migrations.SCHEMA_VERSION)
    assert "seatgate init" in str(caught.value)

    assert upgrade(app.db, app.clock.now()) == (1, migrations.SCHEMA_VERSION)

    assert app.db.read(migrations.current_version) == migrations.SCHEMA_VERSION
    assert everything(app, shape)[1] == kept
    for table, names in fresh_indexes.items():
        assert indexes(app.db, table) == names
    upgraded = Core.build(make_config(db_url, vendor_key), clock=app.clock, rate_limited=True)
    try:
        for _ in range(5):
            upgraded.gate.decide("user001", WRONG_PW, address="10.0.0.1")
        refused = upgraded.gate.decide("user001", "user001-pw", address="10.0.0.1")
        assert refused.reason is Reason.RATE_LIMITED
        assert upgraded.gate.decide("user000", "user000-pw", address="10.0.0.1").allowed
    finally:
        upgraded.close()


def test_a_fresh_database_has_the_rate_limit_tables_and_their_indexes(app: Core) -> None:
    assert indexes(app.db, "login_failures") == {
        "ix_login_failures_login_key_at",
        "ix_login_failures_address_at",
        "ix_login_failures_at",
        "ix_login_failures_device_at",
    }
    assert indexes(app.db, "login_successes") == {"ix_login_successes_last_at"}
    assert indexes(app.db, "login_throttles") == {"ix_login_throttles_last_at"}
    assert (
        app.db.read(lambda c: c.execute(text("SELECT count(*) FROM login_successes")).scalar()) == 0
    )


def test_unusable_logins_are_throttled_too(web: Core, monkeypatch: pytest.MonkeyPatch) -> None:
    dummy_checks: list[int] = []
    original = web.hasher.verify_dummy
    monkeypatch.setattr(
        web.hasher, "verify_dummy", lambda password: dummy_checks.append(1) or original(password)
    )
    for n in range(5):
        decision = web.gate.decide(f"bad\x00login{n}", WRONG_PW, address="10.9.9.9")
        assert decision.reason is Reason.INVALID_CREDENTIALS
    assert web.gate.decide("bad\x00again", WRONG_PW, address="10.9.9.9").reason is (
        Reason.RATE_LIMITED
    )
    assert len(dummy_checks) == 5  # the throttled attempt costs no argon2 verification
    assert web.gate.decide("bob", BOB_PW, address="10.9.9.9").allowed


def test_a_known_address_logging_in_again_within_the_hour_writes_only_its_reservation_back(
    app: Core, clock: FakeClock
) -> None:
    limiter = DatabaseRateLimiter(
        app.db, clock, per_login_and_address=5, per_address=100, per_login=30
    )
    limiter.succeeded("bob", "10.0.0.1", limiter.reserve("bob", "10.0.0.1"))
    first = clock.now()
    clock.advance(timedelta(minutes=30))
    limiter.succeeded("bob", "10.0.0.1", limiter.reserve("bob", "10.0.0.1"))
    rows = app.db.read(lambda c: c.execute(select(schema.login_successes)).all())
    assert [r.last_at.replace(tzinfo=None) for r in rows] == [first.replace(tzinfo=None)]
    assert app.db.read(lambda c: c.execute(select(schema.login_failures)).all()) == []
    # A failure of the pair in between is still forgotten by the next success.
    assert limiter.reserve("bob", "10.0.0.1").allowed
    clock.advance(timedelta(minutes=1))
    limiter.succeeded("bob", "10.0.0.1", limiter.reserve("bob", "10.0.0.1"))
    assert app.db.read(lambda c: c.execute(select(schema.login_failures)).all()) == []
