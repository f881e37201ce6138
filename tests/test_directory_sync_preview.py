"""The sync's preview, its run record in the audit trail, and runs audited as an admin.

With the in-memory directory of tests/test_directory_sync.py; the console
pages that use these are tested against real directory servers in tests/ldap/.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from seatgate.app import Core
from seatgate.audit import log as audit
from seatgate.directory.model import DISABLES, SEAT_REVOCATIONS, SafetyHold
from seatgate.errors import LastAdminStop, SeatRevocationSafetyStop, SyncSafetyStop
from seatgate.storage.schema import accounts
from tests.test_directory_sync import FakeDirectory, account_rows, log_in, make_sync, person

SEATS = "CN=Seats,OU=Groups,DC=seatgate,DC=test"
ADMINS = "CN=Admins,OU=Groups,DC=seatgate,DC=test"


@pytest.fixture
def licensed(app: Core, mint: Callable[..., str]) -> Core:
    app.licensing.install(mint("license", seats=25), actor="test")
    return app


def _audit_count(app: Core) -> int:
    return len(app.db.read(lambda c: audit.recent(c, limit=10_000)))


def test_preview_lists_the_changes_behind_a_stop_and_changes_nothing(licensed: Core) -> None:
    directory = FakeDirectory([person(i) for i in range(20)])
    sync = make_sync(licensed)
    sync.run(directory, full=True)
    for n in (1, 2, 3):
        log_in(licensed, f"user{n:04d}")
    for n in (1, 2, 3):
        directory.put(person(n, disabled=True))
    directory.put(person(30))
    rows, events = account_rows(licensed), _audit_count(licensed)

    report = sync.preview(directory, full=True)

    assert report.dry_run
    assert report.held == [SafetyHold(DISABLES, 3, 20, "max_disable_ratio (10% of 20)")]
    assert sorted(report.disabled) == ["user0001", "user0002", "user0003"]
    assert sorted(report.seats_freed) == ["user0001", "user0002", "user0003"]
    assert report.created == ["user0030"]
    assert account_rows(licensed) == rows
    assert _audit_count(licensed) == events
    assert len(licensed.ledger.holders()) == 3
    # The real run still stops without the preview's count, and goes with it.
    with pytest.raises(SyncSafetyStop):
        sync.run(directory, full=True)
    assert sync.run(directory, full=True, confirm_disables=3).disabled


def test_a_preview_under_the_limits_holds_nothing(licensed: Core) -> None:
    directory = FakeDirectory([person(i) for i in range(20)])
    sync = make_sync(licensed)
    sync.run(directory, full=True)
    directory.put(person(4, disabled=True))
    report = sync.preview(directory)
    assert report.held == []
    assert report.disabled == ["user0004"]


def test_preview_notes_exclusive_seat_revocations_over_the_limit(licensed: Core) -> None:
    members = [person(i, groups=(SEATS,)) for i in range(10)]
    directory = FakeDirectory(members)
    sync = make_sync(
        licensed, seat_groups=[SEATS], seat_groups_mode="exclusive", max_disable_count=2
    )
    sync.run(directory, full=True)
    assert len(licensed.ledger.holders()) == 10
    for n in range(4):
        directory.put(person(n, groups=()))

    report = sync.preview(directory, full=True)

    assert [h.kind for h in report.held] == [SEAT_REVOCATIONS]
    assert report.held[0].count == 4
    assert len(report.seats_revoked) == 4
    assert len(licensed.ledger.holders()) == 10
    with pytest.raises(SeatRevocationSafetyStop):
        sync.run(directory, full=True, confirm_seat_revocations=3)
    assert len(sync.run(directory, full=True, confirm_seat_revocations=4).seats_revoked) == 4


def test_preview_still_refuses_to_leave_no_admin(licensed: Core) -> None:
    directory = FakeDirectory([person(1, groups=(ADMINS,)), person(2)])
    sync = make_sync(licensed, admin_groups=[ADMINS], max_disable_ratio=1.0)
    sync.run(directory, full=True)
    directory.put(person(1, groups=()))
    with pytest.raises(LastAdminStop):
        sync.preview(directory)


def test_a_run_by_an_admin_is_audited_as_the_admin_with_its_summary(licensed: Core) -> None:
    directory = FakeDirectory([person(i, groups=(SEATS,)) for i in range(20)])
    sync = make_sync(licensed, seat_groups=[SEATS])
    sync.run(directory, full=True)
    for n in (1, 2, 3):
        directory.put(person(n, disabled=True, groups=(SEATS,)))
    directory.put(person(5, email="five@new.example", groups=(SEATS,)))

    sync.run(directory, confirm_disables=3, actor="root")

    events = licensed.db.read(lambda c: audit.recent(c, limit=30))
    mine = [e for e in events if e.actor == "root"]
    assert {(e.action, e.subject) for e in mine} >= {
        ("account.disabled", "user0001"),
        ("seat.released", "user0002"),
        ("account.updated", "user0005"),
    }
    synced = mine[0]  # the newest: the run's record comes last
    assert synced.action == "directory.synced"
    assert synced.details == {
        "full": False,
        "entries_seen": 4,
        "created": 0,
        "updated": 1,
        "renamed": 0,
        "disabled": 3,
        "enabled": 0,
        "deleted": 0,
        "seats_freed": 3,
        "seats_granted": 0,
        "seats_revoked": 0,
        "seats_kept_pinned": 0,
        "admins_granted": 0,
        "admins_revoked": 0,
        "conflicts": 0,
        "flagged": 0,
        "server": None,
        "confirmed_disables": 3,
    }
    disabled = licensed.db.read(
        lambda c: c.execute(accounts.select().where(accounts.c.status == "disabled")).all()
    )
    assert len(disabled) == 3
