"""Idle-seat reclaim: ``seatgate seats reclaim`` and the on-demand reclaim of a first login.

On SQLite and PostgreSQL (the ``db_url`` fixture); the command line runs
in-process on the same database with the test's fake clock. Concurrent
on-demand reclaims run in separate OS processes (``tests.test_concurrency``).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import update

from seatgate.app import Core
from seatgate.audit import log as audit
from seatgate.clock import FakeClock
from seatgate.config import config_from_mapping, load_config
from seatgate.errors import ConfigError
from seatgate.licensing.vendor import VendorKey, issue_token
from seatgate.storage.schema import seats
from tests.conftest import INSTALLATION, add_users, write_config
from tests.seat_ops_support import Site, seats_section
from tests.test_concurrency import _run_children

ON_DEMAND = {"reclaim_idle_days": 30, "reclaim_on_demand": True}


# -- configuration ---------------------------------------------------------------------------


def test_reclaim_is_off_by_default_and_on_demand_needs_the_idle_days(tmp_path: Path) -> None:
    base = {"installation_id": INSTALLATION}
    config = config_from_mapping(base, tmp_path)
    assert config.seats.reclaim_idle_days is None
    assert config.seats.reclaim_on_demand is False
    assert config.seats.request_days == 30
    with pytest.raises(ConfigError, match=r"seats\.reclaim_on_demand"):
        config_from_mapping({**base, "seats": {"reclaim_on_demand": True}}, tmp_path)
    with pytest.raises(ConfigError, match=r"seats\.reclaim_idle_days"):
        config_from_mapping({**base, "seats": {"reclaim_idle_days": 0}}, tmp_path)
    with pytest.raises(ConfigError, match=r"seats\.request_days"):
        config_from_mapping({**base, "seats": {"request_days": "soon"}}, tmp_path)
    null = config_from_mapping({**base, "seats": {"reclaim_idle_days": None}}, tmp_path)
    assert null.seats.reclaim_idle_days is None


# -- seats reclaim ---------------------------------------------------------------------------


def test_reclaim_releases_idle_unpinned_non_admin_seats_least_recently_used_first(
    site: Callable[..., Site], clock: FakeClock
) -> None:
    s = site(reclaim_idle_days=30)
    app = s.core
    app.accounts.add("boss", password="boss-pw", actor="test", is_admin=True)
    add_users(app, 5)
    assert all(s.login(u) for u in ("user002", "user000", "boss"))
    app.ledger.assign(app.accounts.get("user003").id, actor="test", pinned=True)
    clock.advance(timedelta(days=20))
    assert s.login("user000")  # used again: 15 days idle at the end
    app.ledger.assign(app.accounts.get("user004").id, actor="test")  # never logged in: 15 days
    clock.advance(timedelta(days=15))
    before = s.holders()

    preview = s.json("seats", "reclaim", "--dry-run")
    assert preview["dry_run"] is True and preview["idle_days"] == 30
    assert [r["login"] for r in preview["reclaimed"]] == ["user002"]
    assert s.holders() == before
    wider = s.json("seats", "reclaim", "--dry-run", "--idle-days", "10")
    assert [r["login"] for r in wider["reclaimed"]] == ["user002", "user000", "user004"]

    done = s.json("seats", "reclaim")
    assert [r["login"] for r in done["reclaimed"]] == ["user002"]
    assert s.holders() == before - {"user002"}
    (event,) = s.events("seat.reclaimed")
    assert (event.subject, event.outcome) == ("user002", "idle")
    assert event.actor.startswith("cli:")
    # Nothing idle is left at 30 days; the text output says so.
    again = s.run("seats", "reclaim")
    assert again.exit_code == 0 and "0 seat(s)" in again.stdout

    s.run("seats", "reclaim", "--idle-days", "10")
    assert s.holders() == {"boss", "user003"}  # the admin's and the pinned seat stay
    assert sorted(e.subject or "" for e in s.events("seat.reclaimed")) == [
        "user000",
        "user002",
        "user004",
    ]
    metrics = s.run("metrics").stdout
    assert 'seatgate_seats_reclaimed_total{how="idle"} 3' in metrics


def test_reclaim_without_idle_days_names_the_key_and_changes_nothing(
    site: Callable[..., Site], clock: FakeClock
) -> None:
    s = site()
    add_users(s.core, 1)
    assert s.login("user000")
    clock.advance(timedelta(days=400))
    result = s.run("seats", "reclaim")
    assert result.exit_code == 2
    assert "seats.reclaim_idle_days" in result.stderr
    bad = s.run("seats", "reclaim", "--idle-days", "0")
    assert bad.exit_code == 2
    assert s.holders() == {"user000"}
    assert s.events("seat.reclaimed") == []


# -- on demand -------------------------------------------------------------------------------


def test_a_first_login_takes_the_longest_idle_seat_in_its_transaction(
    site: Callable[..., Site], clock: FakeClock
) -> None:
    s = site(seat_count=2, **ON_DEMAND)
    app = s.core
    add_users(app, 5)
    assert s.login("user000")
    clock.advance(timedelta(hours=1))
    assert s.login("user001")
    clock.advance(timedelta(days=31))
    token = app.sessions.open(app.accounts.get("user000").id)
    assert app.sessions.check(token).allowed

    decision = app.gate.decide("user002", "user002-pw")
    assert decision.allowed and decision.seat_claimed
    assert s.holders() == {"user001", "user002"}
    # The old holder's sessions end as for a revoke.
    assert not app.sessions.check(token).allowed
    (ended,) = s.events("session.ended")
    assert ended.outcome == "seat_lost"
    (reclaimed,) = s.events("seat.reclaimed")
    assert (reclaimed.subject, reclaimed.actor, reclaimed.outcome) == (
        "user000",
        "user002",
        "on_demand",
    )
    claimed = [e for e in s.events("seat.claimed") if e.subject == "user002"]
    assert claimed[0].details["reclaimed_from"] == "user000"

    assert s.login("user003")  # takes user001's idle seat
    refused = app.gate.decide("user004", "user004-pw")  # the two seats are fresh now
    assert refused.reason is not None and refused.reason.value == "no_seat_available"
    assert s.holders() == {"user002", "user003"}
    assert app.ledger.used() == 25
    metrics = s.run("metrics").stdout
    assert 'seatgate_seats_reclaimed_total{how="on_demand"} 2' in metrics


def test_without_on_demand_a_first_login_is_refused_and_no_seat_moves(
    site: Callable[..., Site], clock: FakeClock
) -> None:
    s = site(seat_count=1, reclaim_idle_days=30)
    add_users(s.core, 2)
    assert s.login("user000")
    clock.advance(timedelta(days=90))
    assert not s.login("user001")
    assert s.holders() == {"user000"}
    assert s.events("seat.reclaimed") == []


def test_on_demand_reclaim_does_not_take_a_seat_the_reserve_would_keep(
    site: Callable[..., Site], clock: FakeClock
) -> None:
    # 3 seats, 1 kept for admins, all 3 held (an admin assigned the third): a user
    # may hold at most 2, so taking one idle seat would still leave no room.
    s = site(seat_count=3, reserved_for_admins=1, **ON_DEMAND)
    app = s.core
    app.accounts.add("boss", password="boss-pw", actor="test", is_admin=True)
    add_users(app, 3)
    assert s.login("boss") and s.login("user000")
    app.ledger.assign(app.accounts.get("user001").id, actor="test")  # an admin's act: the reserve
    clock.advance(timedelta(days=31))
    # 3 held of 3, reserve 1: one seat fewer is still no room for a non-admin.
    assert not s.login("user002")
    assert s.holders() == {"boss", "user000", "user001"}


# -- concurrency -----------------------------------------------------------------------------


def test_concurrent_on_demand_reclaims_never_exceed_the_seats_nor_take_a_seat_twice(
    tmp_path: Path, db_url: str, vendor_key: VendorKey
) -> None:
    config_path = write_config(
        tmp_path / "seatgate.yaml", db_url, vendor_key, seats_section(**ON_DEMAND)
    )
    app = Core.build(load_config(config_path), check_schema=False)
    app.init_schema()
    try:
        token = issue_token(
            vendor_key,
            kind="license",
            installation_id=INSTALLATION,
            customer="acme",
            now=datetime.now(UTC),
            edition="bizspace",
            seats=25,
        )
        app.licensing.install(token, actor="test")
        idle = add_users(app, 25, prefix="idle")
        for n, login in enumerate(idle):
            app.ledger.assign(app.accounts.get(login).id, actor="test", pinned=n < 17)
        long_ago = datetime.now(UTC) - timedelta(days=60)
        app.db.write(lambda c: c.execute(update(seats).values(last_used_at=long_ago)))
        fresh = add_users(app, 24, prefix="new")

        outcomes = _run_children(
            config_path, [[(login, f"{login}-pw") for login in fresh[i::6]] for i in range(6)]
        )

        assert [e for o in outcomes for e in o.errors] == []
        allowed = {d[0] for o in outcomes for d in o.decisions if d[1]}
        assert len(allowed) == 8  # the 8 unpinned idle seats, no more
        assert app.ledger.used() == 25
        holders = {h.login for h in app.ledger.holders()}
        assert holders == set(idle[:17]) | allowed
        events = app.db.read(lambda c: audit.recent(c, limit=1000, action="seat.reclaimed"))
        taken = [e.subject for e in events]
        assert sorted(taken) == sorted(idle[17:])  # each idle seat taken exactly once
        assert app.seat_requests.pending_count() == 16
    finally:
        app.close()
