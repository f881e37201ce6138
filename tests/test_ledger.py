"""The seat ledger on each database: shrinking, pins, reserves, admin acts, locks.

Every test here runs on SQLite and on PostgreSQL (the ``app`` / ``db_url``
fixtures). Waiting for the seat lock is tested in ``tests/test_seat_lock.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
from sqlalchemy import Connection

from seatgate.app import Core
from seatgate.audit import log as audit
from seatgate.clock import FakeClock
from seatgate.errors import (
    AccountNotActive,
    LicenseInvalid,
    NoSeatAvailable,
    PinnedSeatsExceed,
    SeatAlreadyHeld,
    SeatNotHeld,
)
from seatgate.gate.decision import Decision, Reason
from seatgate.records import AuditEvent
from seatgate.seats.lock import take_seat_lock
from tests.conftest import START, add_users

Mint = Callable[..., str]


# -- helpers -----------------------------------------------------------------


def login(app: Core, user: str, password: str | None = None) -> Decision:
    """A login attempt with the password add_users gave the account (or ``password``)."""
    return app.gate.decide(user, f"{user}-pw" if password is None else password)


def account_id(app: Core, user: str) -> int:
    return app.accounts.get(user).id


def events(app: Core, action: str) -> list[AuditEvent]:
    """Audit events of one action, oldest first."""
    found = app.db.read(lambda conn: audit.recent(conn, limit=100_000, action=action))
    return list(reversed(found))


def seat_events(app: Core) -> list[AuditEvent]:
    """Every ``seat.*`` audit event, oldest first."""
    found = app.db.read(lambda conn: audit.recent(conn, limit=100_000))
    return [e for e in reversed(found) if e.action.startswith("seat.")]


def holders(app: Core) -> dict[str, bool]:
    """Seat holders: login -> pinned."""
    return {h.login: h.pinned for h in app.ledger.holders()}


def log_in_one_by_one(app: Core, clock: FakeClock, users: list[str]) -> None:
    """Log each user in a minute after the previous one (distinct last-used times)."""
    for user in users:
        clock.advance(timedelta(minutes=1))
        decision = login(app, user)
        assert decision.allowed, (user, decision.reason)


def pin(app: Core, users: list[str]) -> None:
    for user in users:
        app.ledger.set_pinned(account_id(app, user), True, actor="admin")


def install_30_seats(app: Core, mint: Mint) -> None:
    """A 25-seat licence (jti ``lic-a``) plus a 5-seat add-on for it."""
    app.licensing.install(mint("license", seats=25, jti="lic-a"), actor="admin")
    app.licensing.install(mint("addon", seats=5, lic="lic-a", jti="addon-a"), actor="admin")
    state = app.ledger.state()
    assert state.is_valid(START) and state.seats_total == 30


# -- the entitlement shrinks ---------------------------------------------------


def test_shrink_releases_least_recently_used_unpinned_seats(
    app: Core, mint: Mint, clock: FakeClock
) -> None:
    install_30_seats(app, mint)
    users = add_users(app, 30)
    log_in_one_by_one(app, clock, users)
    # Early users (and user008) come back later, so least-recently-used order
    # differs from assignment order.
    log_in_one_by_one(app, clock, [*users[:5], users[8]])
    # The two least recently used seats are pinned.
    pin(app, users[5:7])
    assert app.ledger.used() == 30
    assert sum(holders(app).values()) == 2
    # LRU order now: 5*, 6*, 7, 9, 10, ..., 29, 0, 1, 2, 3, 4, 8 (* pinned).
    expected = [users[7], users[9], users[10], users[11], users[12]]

    clock.advance(timedelta(hours=1))
    newer = mint("license", seats=25, jti="lic-b")  # later iat: the vendor's latest word
    before = holders(app)

    dry = app.licensing.install(newer, actor="admin", dry_run=True)
    assert dry.dry_run
    assert dry.entitlement.seats == 25
    assert dry.released == expected
    # A dry run changes nothing: seats, entitlement, installed tokens, audit.
    assert holders(app) == before
    assert app.ledger.state().seats_total == 30
    assert app.ledger.state().base_jti == "lic-a"
    assert {t.jti for t in app.licensing.status().tokens} == {"lic-a", "addon-a"}
    assert events(app, "seat.released") == []
    assert events(app, "license.installed")[-1].subject == "addon-a"

    result = app.licensing.install(newer, actor="admin")
    assert not result.dry_run
    assert result.released == expected
    assert app.ledger.used() == 25
    after = holders(app)
    assert set(after) == set(users) - set(expected)
    assert after[users[5]] is True and after[users[6]] is True
    state = app.ledger.state()
    assert state.seats_total == 25 and state.base_jti == "lic-b"

    released = events(app, "seat.released")
    assert [e.subject for e in released] == expected
    assert {e.outcome for e in released} == {"entitlement_shrank"}
    assert {e.actor for e in released} == {"admin"}

    # The ledger is full again: a released user is refused, a holder still gets in.
    refused = login(app, users[7])
    assert refused.reason is Reason.NO_SEAT_AVAILABLE
    assert login(app, users[5]).allowed
    assert app.ledger.used() == 25


def test_pinned_seats_go_only_after_every_unpinned_seat(
    app: Core, mint: Mint, clock: FakeClock
) -> None:
    """enforce_capacity_in: unpinned seats first (LRU), then pinned ones (LRU).

    An admin's licence change that would release pinned seats is refused
    (nothing changes). When the entitlement shrinks by itself (a trial that
    ends), pinned seats go only when the pinned seats alone exceed the new
    capacity: the seat invariant comes before the pin. Those releases are
    audited with outcome ``entitlement_below_pinned_seats``.
    """
    install_30_seats(app, mint)
    users = add_users(app, 30)
    log_in_one_by_one(app, clock, users)
    pin(app, users[:28])
    # user000 and user001 (pinned) come back: the pinned LRU order starts at user002.
    log_in_one_by_one(app, clock, users[:2])
    # The two unpinned seats are among the most recently used; they still go first.
    expected = [users[28], users[29], users[2], users[3], users[4]]

    clock.advance(timedelta(hours=1))
    newer = mint("license", seats=25, jti="lic-b")
    with pytest.raises(PinnedSeatsExceed, match="28 are pinned"):
        app.licensing.install(newer, actor="admin", dry_run=True)
    with pytest.raises(PinnedSeatsExceed):
        app.licensing.install(newer, actor="admin")
    assert app.ledger.used() == 30

    def shrink(conn: Connection) -> list[str]:
        return app.ledger.enforce_capacity_in(take_seat_lock(conn), 25, actor="admin")

    assert app.db.write(shrink) == expected
    after = holders(app)
    assert len(after) == 25
    assert all(after.values()), "only pinned seats remain"
    assert set(after) == set(users[:28]) - set(users[2:5])
    released = events(app, "seat.released")
    assert [(e.subject, e.outcome) for e in released] == [
        (users[28], "entitlement_shrank"),
        (users[29], "entitlement_shrank"),
        (users[2], "entitlement_below_pinned_seats"),
        (users[3], "entitlement_below_pinned_seats"),
        (users[4], "entitlement_below_pinned_seats"),
    ]


def test_trial_end_refuses_logins_and_releases_every_seat(
    app: Core, mint: Mint, clock: FakeClock
) -> None:
    app.licensing.install(mint("trial"), actor="admin")  # iat = START, exp = START + 30 days
    users = add_users(app, 3)
    log_in_one_by_one(app, clock, users)
    assert app.ledger.state().trial
    assert app.ledger.used() == 3

    clock.set(START + timedelta(days=29))
    assert login(app, users[0]).allowed  # still within the trial

    leeway = timedelta(seconds=60)
    clock.set(START + timedelta(days=30) + leeway + timedelta(seconds=1))
    decision = login(app, users[1])
    assert not decision.allowed
    assert decision.reason is Reason.LICENSE_INVALID
    assert app.ledger.used() == 0
    assert not app.ledger.state().valid
    released = events(app, "seat.released")
    # Least recently used first: user000 logged in again on day 29.
    assert [e.subject for e in released] == [users[1], users[2], users[0]]
    assert {e.outcome for e in released} == {"entitlement_shrank"}
    logins = events(app, "login")
    assert logins[-1].outcome == "license_invalid"
    assert "trial ended" in logins[-1].details["detail"]
    # Every account is refused now, not only the first to notice.
    assert login(app, users[0]).reason is Reason.LICENSE_INVALID
    assert login(app, users[2]).reason is Reason.LICENSE_INVALID
    assert app.ledger.used() == 0


def test_unlimited_licence_then_capped_licence_reapplies_the_cap(
    app: Core, mint: Mint, clock: FakeClock
) -> None:
    app.licensing.install(mint("license", seats=25, unlimited=True, jti="lic-u"), actor="admin")
    users = add_users(app, 60)
    log_in_one_by_one(app, clock, users)
    assert app.ledger.used() == 60
    state = app.ledger.state()
    assert state.unlimited and state.capacity(clock.now()) is None
    # The first ten come back, so the LRU seats are user010 .. user044.
    log_in_one_by_one(app, clock, users[:10])

    clock.advance(timedelta(hours=1))
    result = app.licensing.install(mint("license", seats=25, jti="lic-capped"), actor="admin")
    assert result.released == users[10:45]
    assert app.ledger.used() == 25
    assert set(holders(app)) == set(users[:10]) | set(users[45:])
    state = app.ledger.state()
    assert not state.unlimited and state.seats_total == 25
    released = events(app, "seat.released")
    assert len(released) == 35
    assert {e.outcome for e in released} == {"entitlement_shrank"}
    # The cap holds for logins too.
    decision = login(app, users[10])
    assert decision.reason is Reason.NO_SEAT_AVAILABLE
    assert app.ledger.used() == 25


# -- how seats are claimed -------------------------------------------------------


def test_reserved_admin_seats_stop_auto_claims_short_of_the_last_seat(
    build_app: Callable[..., Core], db_url: str, mint: Mint
) -> None:
    app = build_app(db_url, reserved_for_admins=1)
    app.licensing.install(mint("license", seats=25), actor="admin")
    users = add_users(app, 25)
    admins = add_users(app, 2, prefix="admin", admin=True)

    decisions = [login(app, user) for user in users]
    assert [d.allowed for d in decisions] == [True] * 24 + [False]
    assert decisions[-1].reason is Reason.NO_SEAT_AVAILABLE
    assert app.ledger.used() == 24

    admin_login = login(app, admins[0])
    assert admin_login.allowed and admin_login.seat_claimed
    assert app.ledger.used() == 25
    # The reserve is not extra capacity: a second admin finds no seat either.
    assert login(app, admins[1]).reason is Reason.NO_SEAT_AVAILABLE
    assert app.ledger.used() == 25
    assert users[-1] not in holders(app)


def test_manual_assignment_admits_only_assigned_accounts_and_admins(
    build_app: Callable[..., Core], db_url: str, mint: Mint
) -> None:
    app = build_app(db_url, assignment="manual")
    app.licensing.install(mint("license", seats=25), actor="admin")
    users = add_users(app, 2)
    (admin,) = add_users(app, 1, prefix="admin", admin=True)

    refused = login(app, users[0])
    assert refused.reason is Reason.NO_SEAT_AVAILABLE
    assert app.ledger.used() == 0
    assert events(app, "login")[-1].details.get("detail") == "manual assignment"

    app.ledger.assign(account_id(app, users[0]), actor=admin)
    assigned = login(app, users[0])
    assert assigned.allowed and not assigned.seat_claimed
    assert login(app, users[1]).reason is Reason.NO_SEAT_AVAILABLE

    admin_login = login(app, admin)
    assert admin_login.allowed and admin_login.seat_claimed
    assert set(holders(app)) == {users[0], admin}
    # Each refused login asked for a seat (seatgate.seats.requests).
    assert [(e.action, e.subject) for e in seat_events(app)] == [
        ("seat.requested", users[0]),
        ("seat.assigned", users[0]),
        ("seat.requested", users[1]),
        ("seat.claimed", admin),
    ]


# -- admin acts ------------------------------------------------------------------


def test_assign_revoke_pin_unpin_errors_and_audit(app: Core, mint: Mint) -> None:
    users = add_users(app, 27)
    ids = {user: account_id(app, user) for user in users}
    u0, u1, u25, u26 = users[0], users[1], users[25], users[26]

    with pytest.raises(LicenseInvalid):
        app.ledger.assign(ids[u0], actor="admin")
    app.licensing.install(mint("license", seats=25), actor="admin")

    app.ledger.assign(ids[u0], actor="admin", pinned=True)
    assert holders(app) == {u0: True}
    with pytest.raises(SeatAlreadyHeld):
        app.ledger.assign(ids[u0], actor="admin")
    with pytest.raises(SeatNotHeld):
        app.ledger.revoke(ids[u1], actor="admin")
    with pytest.raises(SeatNotHeld):
        app.ledger.set_pinned(ids[u1], True, actor="admin")
    with pytest.raises(SeatNotHeld):
        app.ledger.set_pinned(ids[u1], False, actor="admin")
    app.accounts.set_status(u26, "disabled", actor="admin")
    with pytest.raises(AccountNotActive) as not_active:
        app.ledger.assign(ids[u26], actor="admin")
    assert not_active.value.status == "disabled"
    assert holders(app) == {u0: True}

    app.ledger.set_pinned(ids[u0], False, actor="admin")
    assert holders(app) == {u0: False}
    app.ledger.set_pinned(ids[u0], True, actor="admin")
    assert holders(app) == {u0: True}

    for user in users[1:25]:
        app.ledger.assign(ids[user], actor="admin")
    assert app.ledger.used() == 25
    with pytest.raises(NoSeatAvailable) as full:
        app.ledger.assign(ids[u25], actor="admin")
    assert full.value.seats_total == 25
    assert app.ledger.used() == 25

    app.ledger.revoke(ids[u0], actor="admin")
    assert u0 not in holders(app)
    with pytest.raises(SeatNotHeld):
        app.ledger.revoke(ids[u0], actor="admin")
    app.ledger.assign(ids[u25], actor="admin")  # the revoked seat is free again
    assert app.ledger.used() == 25

    # Exactly one event per successful act; the failed ones wrote nothing.
    trail = [(e.action, e.subject, e.outcome) for e in seat_events(app)]
    assert trail == [
        ("seat.assigned", u0, None),
        ("seat.unpinned", u0, None),
        ("seat.pinned", u0, None),
        *[("seat.assigned", user, None) for user in users[1:25]],
        ("seat.released", u0, "revoked"),
        ("seat.assigned", u25, None),
    ]
    assigned = events(app, "seat.assigned")
    assert assigned[0].details == {"pinned": True}
    assert assigned[1].details == {"pinned": False}
    assert {e.actor for e in seat_events(app)} == {"admin"}


def test_reassign_moves_the_seat_with_its_pin_or_changes_nothing(app: Core, mint: Mint) -> None:
    app.licensing.install(mint("license", seats=25), actor="admin")
    a, b, c, d, e = add_users(app, 5)
    ids = {user: account_id(app, user) for user in (a, b, c, d, e)}
    app.ledger.assign(ids[a], actor="admin", pinned=True)
    app.ledger.assign(ids[b], actor="admin")
    app.accounts.set_status(c, "disabled", actor="admin")
    seats_before = {h.login: h for h in app.ledger.holders()}

    with pytest.raises(SeatAlreadyHeld):
        app.ledger.reassign(ids[a], ids[b], actor="admin")
    with pytest.raises(AccountNotActive):
        app.ledger.reassign(ids[a], ids[c], actor="admin")
    with pytest.raises(SeatNotHeld):
        app.ledger.reassign(ids[d], ids[e], actor="admin")
    # Nothing half-applied: the source kept its seat (same row, same pin).
    assert {h.login: h for h in app.ledger.holders()} == seats_before
    assert events(app, "seat.reassigned") == []
    assert events(app, "seat.released") == []

    app.ledger.reassign(ids[a], ids[e], actor="admin")
    assert holders(app) == {b: False, e: True}
    assert app.ledger.used() == 2
    (moved,) = events(app, "seat.reassigned")
    assert moved.subject == e and moved.actor == "admin"
    assert moved.details == {"from": a, "to": e, "pinned": True}


def test_reassign_without_a_valid_licence_changes_nothing(
    app: Core, mint: Mint, clock: FakeClock
) -> None:
    app.licensing.install(mint("trial"), actor="admin")
    a, b = add_users(app, 2)
    app.ledger.assign(account_id(app, a), actor="admin")
    clock.advance(timedelta(days=31))  # the trial has ended; nobody has noticed yet
    with pytest.raises(LicenseInvalid):
        app.ledger.reassign(account_id(app, a), account_id(app, b), actor="admin")
    assert b not in holders(app)
    assert events(app, "seat.reassigned") == []


def test_disabling_an_account_frees_its_seat_at_once(app: Core, mint: Mint) -> None:
    app.licensing.install(mint("license", seats=25), actor="admin")
    u0, u1, u2 = add_users(app, 3)
    for user in (u0, u1, u2):
        assert login(app, user).allowed
    assert app.ledger.used() == 3

    assert app.accounts.set_status(u0, "disabled", actor="admin") is True
    assert app.ledger.used() == 2
    assert not app.ledger.holds_seat(account_id(app, u0))
    (released,) = events(app, "seat.released")
    assert (released.subject, released.outcome, released.actor) == (
        u0,
        "account_disabled",
        "admin",
    )

    assert login(app, u0).reason is Reason.ACCOUNT_DISABLED
    assert login(app, u0, "wrong password").reason is Reason.INVALID_CREDENTIALS
    assert not app.ledger.holds_seat(account_id(app, u0))
    assert app.ledger.used() == 2

    app.accounts.set_status(u1, "deleted", actor="admin")
    assert set(holders(app)) == {u2}
    assert events(app, "seat.released")[-1].outcome == "account_deleted"
    assert login(app, u1).reason is Reason.ACCOUNT_DISABLED

    # Enabled again, the account claims a seat like any first login.
    app.accounts.set_status(u0, "active", actor="admin")
    again = login(app, u0)
    assert again.allowed and again.seat_claimed
