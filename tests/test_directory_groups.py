"""Exclusive seat groups, admin groups and the last-admin guard, with an in-memory directory.

The same rules against the real servers are in tests/ldap/test_groups_*.py.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from seatgate.app import Core
from seatgate.audit import log as audit
from seatgate.config.ldap import parse_ldap
from seatgate.config.parse import Section
from seatgate.errors import ConfigError, LastAdminStop, SeatRevocationSafetyStop
from tests.test_directory_sync import FakeDirectory, account_rows, make_sync, person

SEATS = "CN=Seats,OU=Groups,DC=seatgate,DC=test"
OTHER_SEATS = "CN=More Seats,OU=Groups,DC=seatgate,DC=test"
ADMINS = "CN=Portal Admins,OU=Groups,DC=seatgate,DC=test"


@pytest.fixture
def licensed(app: Core, mint: Callable[..., str]) -> Core:
    app.licensing.install(mint("license", seats=25), actor="test")
    return app


def holders(app: Core) -> set[str]:
    return {h.login for h in app.ledger.holders()}


def sync_events(app: Core) -> list[tuple[str, str | None, str | None]]:
    events = app.db.read(lambda c: audit.recent(c, limit=1000))
    return [(e.action, e.subject, e.outcome) for e in events if e.actor == "sync:ldap"]


def exclusive(app: Core, **options: Any) -> Any:
    # No ratio limit unless a test sets one: these directories are tiny.
    settings: dict[str, Any] = {"max_disable_ratio": 1.0, **options}
    return make_sync(
        app, seat_groups=[SEATS, OTHER_SEATS], seat_groups_mode="exclusive", **settings
    )


def test_exclusive_mode_revokes_seats_outside_the_groups_and_keeps_pinned_ones(
    licensed: Core,
) -> None:
    directory = FakeDirectory(
        [person(1, groups=(SEATS,)), person(2, groups=(OTHER_SEATS,)), person(3, groups=(SEATS,))]
    )
    local = licensed.accounts.add("local1", password="local-pw-1!", actor="test")
    licensed.ledger.assign(local.id, actor="test")
    sync = exclusive(licensed)
    assert sorted(sync.run(directory, full=True).seats_granted) == [
        "user0001",
        "user0002",
        "user0003",
    ]
    licensed.ledger.set_pinned(licensed.accounts.get("user0003").id, True, actor="test")

    directory.put(person(1, groups=()))
    directory.put(person(3, groups=("CN=Elsewhere,DC=seatgate,DC=test",)))
    report = sync.run(directory)

    assert report.seats_revoked == ["user0001"]
    assert report.seats_kept_pinned == ["user0003"]
    assert holders(licensed) == {"user0002", "user0003", "local1"}
    assert ("seat.released", "user0001", "not_in_seat_group") in sync_events(licensed)
    as_json = report.as_dict()
    assert (as_json["seats_revoked"], as_json["seats_kept_pinned"]) == (["user0001"], ["user0003"])


def test_grant_mode_never_takes_a_seat(licensed: Core) -> None:
    directory = FakeDirectory([person(1, groups=(SEATS,))])
    sync = make_sync(licensed, seat_groups=[SEATS])
    sync.run(directory, full=True)
    directory.put(person(1, groups=()))
    report = sync.run(directory)
    assert (report.seats_revoked, holders(licensed)) == ([], {"user0001"})


def test_exclusive_mode_frees_seats_for_members_in_the_same_run(licensed: Core) -> None:
    directory = FakeDirectory([person(i, groups=(SEATS,)) for i in range(25)] + [person(100)])
    sync = exclusive(licensed)
    assert len(sync.run(directory, full=True).seats_granted) == 25
    directory.put(person(0, groups=()))
    directory.put(person(100, groups=(OTHER_SEATS,)))
    report = sync.run(directory)
    assert (report.seats_revoked, report.seats_granted) == (["user0000"], ["user0100"])
    assert "user0100" in holders(licensed) and len(holders(licensed)) == 25


def test_revocations_beyond_the_limits_stop_the_sync_until_confirmed(licensed: Core) -> None:
    directory = FakeDirectory([person(i, groups=(SEATS,)) for i in range(10)])
    sync = exclusive(licensed, max_disable_count=2)
    sync.run(directory, full=True)
    for i in range(3):
        directory.put(person(i, groups=()))
    before = account_rows(licensed), holders(licensed)

    with pytest.raises(SeatRevocationSafetyStop, match="--confirm-seat-revocations 3"):
        sync.run(directory)
    assert (account_rows(licensed), holders(licensed)) == before
    with pytest.raises(SeatRevocationSafetyStop):
        sync.run(directory, full=True, confirm_seat_revocations=2)
    with pytest.raises(SeatRevocationSafetyStop):
        # A disables confirmation does not confirm revocations.
        sync.run(directory, full=True, confirm_disables=3)

    dry = sync.run(directory, full=True, dry_run=True, confirm_seat_revocations=3)
    assert dry.seats_revoked == ["user0000", "user0001", "user0002"]
    assert holders(licensed) == before[1]
    report = sync.run(directory, full=True, confirm_seat_revocations=3)
    assert len(report.seats_revoked) == 3
    assert len(holders(licensed)) == 7


def test_admin_groups_grant_and_revoke_admin_and_leave_local_admins_alone(
    licensed: Core,
) -> None:
    licensed.accounts.add("root", password="root-pw-12!", actor="test", is_admin=True)
    directory = FakeDirectory([person(1, groups=(ADMINS,)), person(2)])
    sync = make_sync(licensed, admin_groups=[ADMINS])
    report = sync.run(directory, full=True)
    assert (report.admins_granted, report.admins_revoked) == (["user0001"], [])
    assert licensed.accounts.get("user0001").is_admin
    assert not licensed.accounts.get("user0002").is_admin

    directory.put(person(1))
    directory.put(person(2, groups=(ADMINS.upper(),)))  # DNs compare without case
    report = sync.run(directory)
    assert (report.admins_granted, report.admins_revoked) == (["user0002"], ["user0001"])
    assert licensed.accounts.get("root").is_admin
    events = sync_events(licensed)
    assert ("account.admin_granted", "user0001", None) in events
    assert ("account.admin_revoked", "user0001", None) in events
    assert ("account.admin_granted", "user0002", None) in events


def test_a_sync_that_would_leave_no_active_admin_changes_nothing(licensed: Core) -> None:
    directory = FakeDirectory([person(1, groups=(ADMINS,)), person(2)])
    sync = make_sync(licensed, admin_groups=[ADMINS], max_disable_ratio=1.0)
    sync.run(directory, full=True)
    directory.put(person(1, groups=()))
    directory.put(person(2, display_name="Changed"))
    before = account_rows(licensed)

    with pytest.raises(LastAdminStop, match=r"no active admin.*user0001"):
        sync.run(directory)
    assert account_rows(licensed) == before
    directory.put(person(1, groups=(ADMINS,), disabled=True))
    with pytest.raises(LastAdminStop):
        sync.run(directory)  # disabled in the directory: no longer an active admin

    licensed.accounts.add("root", password="root-pw-12!", actor="test", is_admin=True)
    directory.put(person(1, groups=()))
    assert sync.run(directory).admins_revoked == ["user0001"]


def test_the_guard_does_not_block_an_installation_that_had_no_admin(licensed: Core) -> None:
    report = make_sync(licensed, admin_groups=[ADMINS]).run(FakeDirectory([person(1)]), full=True)
    assert report.created == ["user0001"]


def test_accounts_list_json_has_the_stored_groups(licensed: Core) -> None:
    from seatgate.reports.documents import accounts_json

    make_sync(licensed).run(FakeDirectory([person(1, groups=(SEATS, ADMINS))]), full=True)
    [listed] = accounts_json(licensed.accounts.list())
    assert sorted(listed["groups"]) == sorted([SEATS, ADMINS])


def _ldap(tmp_path: Path, **data: object) -> Any:
    section = {"url": "ldaps://dc.example", "base_dn": "DC=x", "bind_dn": "CN=s,DC=x", **data}
    return parse_ldap(Section(section, "ldap"), tmp_path)


def test_group_settings_are_parsed_and_checked(tmp_path: Path) -> None:
    config = _ldap(
        tmp_path,
        seat_groups=[SEATS],
        seat_groups_mode="exclusive",
        nested_groups=True,
        admin_groups=[ADMINS],
        group_base_dn="OU=Groups,DC=x",
    )
    assert (config.seat_groups_mode, config.nested_groups) == ("exclusive", True)
    assert (config.admin_groups, config.group_base_dn) == ((ADMINS,), "OU=Groups,DC=x")
    defaults = _ldap(tmp_path)
    assert (defaults.seat_groups_mode, defaults.nested_groups, defaults.admin_groups) == (
        "grant",
        False,
        (),
    )
    with pytest.raises(ConfigError, match=r"ldap\.seat_groups_mode.*needs ldap\.seat_groups"):
        _ldap(tmp_path, seat_groups_mode="exclusive")
    with pytest.raises(ConfigError, match=r"ldap\.seat_groups_mode.*grant, exclusive"):
        _ldap(tmp_path, seat_groups=[SEATS], seat_groups_mode="only")
    with pytest.raises(ConfigError, match=r"ldap\.admin_groups"):
        _ldap(tmp_path, admin_groups="CN=Admins")
    with pytest.raises(ConfigError, match=r"ldap\.nested_groups"):
        _ldap(tmp_path, nested_groups="yes")
