"""Directory sync rules, with an in-memory directory (the real servers are in tests/ldap/)."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import replace

import pytest
from sqlalchemy import func, select

from seatgate.app import Core
from seatgate.audit import log as audit
from seatgate.directory.model import DirectoryEntry, Snapshot, SyncReport
from seatgate.directory.sync import DirectorySync
from seatgate.errors import DirectorySearchIncomplete, SyncAlreadyRunning, SyncSafetyStop
from seatgate.gate.decision import Reason
from seatgate.records import Account
from seatgate.storage.locks import job_lock
from seatgate.storage.schema import accounts, audit_events


class FakeDirectory:
    """A directory in memory: full reads return everything, incremental ones what changed."""

    server_id = "ldaps://fake.example"

    def __init__(self, entries: Sequence[DirectoryEntry] = ()) -> None:
        self.entries = {e.external_id: e for e in entries}
        self.changed: set[str] = set()
        self.deleted: list[str] = []
        self.generation = 1
        self.fail_next = False

    def put(self, entry: DirectoryEntry) -> None:
        self.entries[entry.external_id] = entry
        self.changed.add(entry.external_id)

    def remove(self, external_id: str) -> None:
        del self.entries[external_id]
        self.deleted.append(external_id)

    def read(self, since: str | None) -> Snapshot:
        if self.fail_next:
            raise DirectorySearchIncomplete("sizeLimitExceeded (code 4)")
        self.generation += 1
        if since is None:
            snapshot = Snapshot(list(self.entries.values()), full=True, mark=str(self.generation))
        else:
            snapshot = Snapshot(
                [self.entries[i] for i in sorted(self.changed) if i in self.entries],
                full=False,
                mark=str(self.generation),
                deleted_ids=list(self.deleted),
            )
        self.changed.clear()
        self.deleted.clear()
        return snapshot


def person(n: int, **overrides: object) -> DirectoryEntry:
    entry = DirectoryEntry(
        external_id=f"guid-{n:04d}",
        login=f"user{n:04d}",
        dn=f"CN=User {n},OU=Staff,DC=seatgate,DC=test",
        display_name=f"User {n}",
        email=f"user{n:04d}@seatgate.test",
    )
    return replace(entry, **overrides)  # type: ignore[arg-type]


def make_sync(app: Core, **options: object) -> DirectorySync:
    settings: dict[str, object] = {"max_disable_ratio": 0.10, "max_disable_count": 500}
    settings.update(options)
    return DirectorySync(app.db, app.clock, app.ledger, **settings)  # type: ignore[arg-type]


class DirectoryPasswords:
    """Directory logins: password is 'pw-' + login; raises what it is told to."""

    def __init__(self) -> None:
        self.error: Exception | None = None

    def verify(self, account: Account, password: str) -> bool:
        if self.error is not None:
            raise self.error
        return password == f"pw-{account.login}"


@pytest.fixture
def licensed(app: Core, mint: Callable[..., str]) -> Core:
    app.licensing.install(mint("license", seats=25), actor="test")
    return app


def account_rows(app: Core) -> dict[str, dict[str, object]]:
    return app.db.read(
        lambda c: {r.external_id: dict(r._mapping) for r in c.execute(select(accounts))}
    )


def log_in(app: Core, login: str) -> bool:
    app.gate.verifiers["ldap"] = app.gate.verifiers.get("ldap") or DirectoryPasswords()
    return app.gate.decide(login, f"pw-{login}").allowed


def test_full_sync_creates_accounts_and_a_second_run_changes_nothing(licensed: Core) -> None:
    directory = FakeDirectory([person(i) for i in range(20)])
    sync = make_sync(licensed)
    first = sync.run(directory, full=True)
    assert len(first.created) == 20
    events_before = licensed.db.read(
        lambda c: c.execute(select(func.count()).select_from(audit_events)).scalar_one()
    )
    second = sync.run(directory, full=True)
    assert second.as_dict() | {"entries_seen": 0} == SyncReport(full=True, dry_run=False).as_dict()
    events_after = licensed.db.read(
        lambda c: c.execute(select(func.count()).select_from(audit_events)).scalar_one()
    )
    # The run's own record, and nothing about any account.
    assert events_after == events_before + 1
    (synced,) = licensed.db.read(lambda c: audit.recent(c, limit=1))
    assert (synced.action, synced.actor) == ("directory.synced", "sync:ldap")
    assert synced.details["entries_seen"] == 20
    assert synced.details["created"] == synced.details["updated"] == 0
    rows = account_rows(licensed)
    assert rows["guid-0003"]["source"] == "ldap"
    assert rows["guid-0003"]["password_hash"] is None
    assert rows["guid-0003"]["dn"] == "CN=User 3,OU=Staff,DC=seatgate,DC=test"


def test_renamed_user_keeps_account_and_seat(licensed: Core) -> None:
    directory = FakeDirectory([person(1)])
    sync = make_sync(licensed)
    sync.run(directory, full=True)
    assert log_in(licensed, "user0001")
    directory.put(person(1, login="renamed.one", dn="CN=Renamed,OU=Staff,DC=seatgate,DC=test"))
    report = sync.run(directory)
    assert report.renamed == [("user0001", "renamed.one")]
    rows = account_rows(licensed)
    assert rows["guid-0001"]["login"] == "renamed.one"
    assert [h.login for h in licensed.ledger.holders()] == ["renamed.one"]
    assert log_in(licensed, "renamed.one")
    assert not log_in(licensed, "user0001")


def test_two_users_swapping_logins_in_one_run(licensed: Core) -> None:
    directory = FakeDirectory([person(1), person(2)])
    sync = make_sync(licensed)
    sync.run(directory, full=True)
    directory.put(person(1, login="user0002"))
    directory.put(person(2, login="user0001"))
    report = sync.run(directory)
    assert report.conflicts == []
    rows = account_rows(licensed)
    assert rows["guid-0001"]["login"] == "user0002"
    assert rows["guid-0002"]["login"] == "user0001"


def test_disabled_in_directory_frees_the_seat_and_login_says_disabled(licensed: Core) -> None:
    directory = FakeDirectory([person(i) for i in range(20)])
    sync = make_sync(licensed)
    sync.run(directory, full=True)
    assert log_in(licensed, "user0005")
    directory.put(person(5, disabled=True))
    report = sync.run(directory)
    assert report.disabled == ["user0005"]
    assert report.seats_freed == ["user0005"]
    assert licensed.ledger.holders() == []
    decision = licensed.gate.decide("user0005", "pw-user0005")
    assert decision.reason is Reason.ACCOUNT_DISABLED


def test_entry_gone_in_full_run_is_marked_deleted_never_removed(licensed: Core) -> None:
    directory = FakeDirectory([person(i) for i in range(20)])
    sync = make_sync(licensed)
    sync.run(directory, full=True)
    assert log_in(licensed, "user0007")
    del directory.entries["guid-0007"]
    report = sync.run(directory, full=True)
    assert report.deleted == ["user0007"]
    assert report.seats_freed == ["user0007"]
    row = account_rows(licensed)["guid-0007"]
    assert row["status"] == "deleted"
    assert licensed.gate.decide("user0007", "pw-user0007").reason is Reason.INVALID_CREDENTIALS


def test_recreated_user_with_a_new_guid_is_a_new_account(licensed: Core) -> None:
    directory = FakeDirectory([person(i) for i in range(20)])
    sync = make_sync(licensed)
    sync.run(directory, full=True)
    del directory.entries["guid-0004"]
    directory.entries["guid-new"] = person(4, external_id="guid-new")
    report = sync.run(directory, full=True)
    assert report.deleted == ["user0004"] and report.created == ["user0004"]
    rows = account_rows(licensed)
    assert rows["guid-0004"]["status"] == "deleted"
    assert rows["guid-new"]["status"] == "active"
    assert rows["guid-new"]["id"] != rows["guid-0004"]["id"]


def test_incremental_run_without_deleted_search_reports_a_recreated_login_conflict(
    licensed: Core,
) -> None:
    directory = FakeDirectory([person(i) for i in range(20)])
    sync = make_sync(licensed)
    sync.run(directory, full=True)
    directory.entries.pop("guid-0004")  # gone, but this server cannot report deletions
    directory.put(person(4, external_id="guid-new"))
    report = sync.run(directory)
    assert report.created == []
    assert len(report.conflicts) == 1 and "--full" in report.conflicts[0]
    assert account_rows(licensed)["guid-0004"]["status"] == "active"


def test_incremental_deletions_reported_by_the_server_are_applied(licensed: Core) -> None:
    directory = FakeDirectory([person(i) for i in range(20)])
    sync = make_sync(licensed)
    sync.run(directory, full=True)
    directory.remove("guid-0002")
    report = sync.run(directory)
    assert report.deleted == ["user0002"]


def test_threshold_stops_the_run_and_changes_nothing(licensed: Core) -> None:
    directory = FakeDirectory([person(i) for i in range(20)])
    sync = make_sync(licensed)
    sync.run(directory, full=True)
    for n in (1, 2, 3):
        log_in(licensed, f"user{n:04d}")
    before = account_rows(licensed)
    for n in (1, 2, 3):
        directory.put(person(n, disabled=True))
    with pytest.raises(SyncSafetyStop) as stop:
        sync.run(directory)
    assert stop.value.count == 3
    assert "--confirm-disables 3" in str(stop.value)
    assert account_rows(licensed) == before
    assert len(licensed.ledger.holders()) == 3


def test_confirm_disables_must_match_the_count(licensed: Core) -> None:
    directory = FakeDirectory([person(i) for i in range(20)])
    sync = make_sync(licensed)
    sync.run(directory, full=True)
    for n in (1, 2, 3):
        directory.put(person(n, disabled=True))
    with pytest.raises(SyncSafetyStop):
        sync.run(directory, full=True, confirm_disables=2)
    report = sync.run(directory, full=True, confirm_disables=3)
    assert sorted(report.disabled) == ["user0001", "user0002", "user0003"]


def test_max_disable_count_applies_below_the_ratio(licensed: Core) -> None:
    directory = FakeDirectory([person(i) for i in range(20)])
    sync = make_sync(licensed, max_disable_ratio=1.0, max_disable_count=1)
    sync.run(directory, full=True)
    del directory.entries["guid-0001"]
    del directory.entries["guid-0002"]
    with pytest.raises(SyncSafetyStop, match="max_disable_count"):
        sync.run(directory, full=True)


def test_empty_full_search_never_disables_anyone(licensed: Core) -> None:
    directory = FakeDirectory([person(i) for i in range(5)])
    sync = make_sync(licensed, max_disable_ratio=1.0)
    sync.run(directory, full=True)
    log_in(licensed, "user0001")
    directory.entries.clear()
    with pytest.raises(DirectorySearchIncomplete, match="no entries"):
        sync.run(directory, full=True, confirm_disables=5)
    assert {r["status"] for r in account_rows(licensed).values()} == {"active"}
    assert len(licensed.ledger.holders()) == 1


def test_failed_search_changes_nothing(licensed: Core) -> None:
    directory = FakeDirectory([person(i) for i in range(5)])
    sync = make_sync(licensed)
    sync.run(directory, full=True)
    before = account_rows(licensed)
    directory.fail_next = True
    with pytest.raises(DirectorySearchIncomplete):
        sync.run(directory, full=True)
    assert account_rows(licensed) == before


def test_dry_run_reports_and_changes_nothing(licensed: Core) -> None:
    directory = FakeDirectory([person(i) for i in range(3)])
    sync = make_sync(licensed)
    report = sync.run(directory, full=True, dry_run=True)
    assert report.dry_run and len(report.created) == 3
    assert account_rows(licensed) == {}
    # the high-water mark was not stored either: the next run is full again
    assert sync.run(directory).full


def test_directory_login_conflicting_with_a_local_account_is_skipped(licensed: Core) -> None:
    licensed.accounts.add("user0001", password="local-pw", actor="test")
    report = make_sync(licensed).run(FakeDirectory([person(1), person(2)]), full=True)
    assert report.created == ["user0002"]
    assert "local account" in report.conflicts[0]
    assert licensed.accounts.get("user0001").source == "local"


def test_seat_groups_grant_in_group_order_while_seats_remain(
    app: Core, mint: Callable[..., str]
) -> None:
    app.licensing.install(mint("license", seats=25), actor="test")
    engineers = "CN=Engineers,OU=Groups,DC=seatgate,DC=test"
    sales = "CN=Sales,OU=Groups,DC=seatgate,DC=test"
    entries = [person(i, groups=(sales,)) for i in range(20)]
    entries += [person(100 + i, groups=(engineers,)) for i in range(10)]
    entries.append(person(200, groups=(engineers,), disabled=True))
    sync = make_sync(app, seat_groups=[engineers, sales])
    report = sync.run(FakeDirectory(entries), full=True)
    assert len(report.seats_granted) == 25
    holders = {h.login for h in app.ledger.holders()}
    assert {f"user{100 + i:04d}" for i in range(10)} <= holders  # first group first
    assert "user0200" not in holders  # disabled members get nothing


def test_seat_groups_respect_seats_reserved_for_admins(
    build_app: Callable[..., Core], db_url: str, mint: Callable[..., str]
) -> None:
    app = build_app(db_url, reserved_for_admins=2)
    app.licensing.install(mint("license", seats=25), actor="test")
    group = "CN=All,DC=seatgate,DC=test"
    report = make_sync(app, seat_groups=[group]).run(
        FakeDirectory([person(i, groups=(group,)) for i in range(30)]), full=True
    )
    assert len(report.seats_granted) == 23


def test_a_second_sync_while_one_runs_is_refused(licensed: Core) -> None:
    with job_lock(licensed.db, "ldap-sync"), pytest.raises(SyncAlreadyRunning):
        make_sync(licensed).run(FakeDirectory([person(1)]), full=True)


def test_every_change_is_audited(licensed: Core) -> None:
    directory = FakeDirectory([person(i) for i in range(20)])
    sync = make_sync(licensed)
    sync.run(directory, full=True)
    log_in(licensed, "user0001")
    directory.put(person(1, disabled=True))
    directory.put(person(2, login="two"))
    sync.run(directory)
    events = licensed.db.read(lambda c: audit.recent(c, limit=500))
    actions = [(e.action, e.subject) for e in events if e.actor == "sync:ldap"]
    assert actions.count(("account.created", "user0003")) == 1
    assert ("account.disabled", "user0001") in actions
    assert ("seat.released", "user0001") in actions
    assert ("account.renamed", "two") in actions
    renamed = next(e for e in events if e.action == "account.renamed")
    assert json.dumps(renamed.details, sort_keys=True) == '{"from": "user0002", "to": "two"}'


def test_directory_down_gives_directory_unavailable_and_no_fallback(licensed: Core) -> None:
    from seatgate.errors import DirectoryUnavailable

    make_sync(licensed).run(FakeDirectory([person(1)]), full=True)
    verifier = DirectoryPasswords()
    verifier.error = DirectoryUnavailable("timed out after 10 s")
    licensed.gate.verifiers["ldap"] = verifier
    decision = licensed.gate.decide("user0001", "pw-user0001")
    assert decision.reason is Reason.DIRECTORY_UNAVAILABLE
    assert licensed.ledger.holders() == []


def test_directory_blocked_account_is_refused_as_disabled_and_takes_no_seat(
    licensed: Core,
) -> None:
    from seatgate.errors import DirectoryAccountBlocked

    make_sync(licensed).run(FakeDirectory([person(1)]), full=True)
    verifier = DirectoryPasswords()
    verifier.error = DirectoryAccountBlocked("775", "the account is locked out")
    licensed.gate.verifiers["ldap"] = verifier
    decision = licensed.gate.decide("user0001", "pw-user0001")
    assert decision.reason is Reason.ACCOUNT_DISABLED
    assert licensed.ledger.holders() == []


def test_rename_conflict_still_applies_a_disable(licensed: Core) -> None:
    licensed.accounts.add("carol", password="local-pw", actor="test")
    directory = FakeDirectory([person(i) for i in range(20)])
    sync = make_sync(licensed)
    sync.run(directory, full=True)
    assert log_in(licensed, "user0001")
    directory.put(person(1, login="carol", disabled=True))
    report = sync.run(directory)
    assert len(report.conflicts) == 1 and "local account" in report.conflicts[0]
    assert report.disabled == ["user0001"] and report.seats_freed == ["user0001"]
    row = account_rows(licensed)["guid-0001"]
    assert (row["login"], row["status"]) == ("user0001", "disabled")
    assert licensed.ledger.holders() == []


def test_a_new_user_taking_the_name_of_a_user_whose_rename_conflicts(
    licensed: Core,
) -> None:
    licensed.accounts.add("carol", password="local-pw", actor="test")
    directory = FakeDirectory([person(i) for i in range(20)])
    sync = make_sync(licensed)
    sync.run(directory, full=True)
    # user0001 wants a taken name; a new user, read first, wants its old name.
    directory.put(person(99, login="user0001"))
    directory.put(person(1, login="carol"))
    directory.entries = {"guid-0099": directory.entries.pop("guid-0099"), **directory.entries}
    report = sync.run(directory, full=True)
    assert report.created == ["user0001"]
    assert len(report.conflicts) == 1
    rows = account_rows(licensed)
    assert rows["guid-0099"]["login_key"] == "user0001"
    assert "user0001" not in str(rows["guid-0001"]["login_key"]).split("\x1f")[0]
    # and the next run does not fail on the unique login key
    assert sync.run(directory, full=True).conflicts


def test_incremental_safety_ratio_counts_every_directory_account(licensed: Core) -> None:
    directory = FakeDirectory([person(i) for i in range(20)])
    sync = make_sync(licensed)  # at most 10 %
    sync.run(directory, full=True)
    directory.put(person(1, disabled=True))  # 1 of 20 accounts, though the run reads only 1
    assert sync.run(directory).disabled == ["user0001"]
    for n in (2, 3, 4):
        directory.put(person(n, disabled=True))  # 3 of the 20 (a disabled one still counts)
    with pytest.raises(SyncSafetyStop, match=r"10% of 20\)"):
        sync.run(directory)


def test_incremental_run_looks_up_only_the_accounts_it_may_change(
    licensed: Core, monkeypatch: pytest.MonkeyPatch
) -> None:
    from seatgate.directory import sync as sync_module

    looked_up: list[set[str] | None] = []
    load_known = sync_module.load_known

    def recording(conn: object, ids: Sequence[str] | None = None) -> object:
        looked_up.append(None if ids is None else set(ids))
        return load_known(conn, ids)  # type: ignore[arg-type]

    monkeypatch.setattr(sync_module, "load_known", recording)
    directory = FakeDirectory([person(i) for i in range(30)])
    sync = make_sync(licensed)
    sync.run(directory, full=True)
    directory.put(person(5, display_name="Renamed Five"))
    directory.put(person(40))
    directory.remove("guid-0007")
    report = sync.run(directory)
    assert looked_up == [None, {"guid-0005", "guid-0040", "guid-0007"}]
    assert (report.updated, report.created, report.deleted) == (
        ["user0005"],
        ["user0040"],
        ["user0007"],
    )
    rows = account_rows(licensed)
    assert rows["guid-0005"]["display_name"] == "Renamed Five"
    assert rows["guid-0007"]["status"] == "deleted"
    assert rows["guid-0006"]["status"] == "active"
