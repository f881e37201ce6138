"""`seatgate sync ldap` against a real Active Directory (Samba AD DC on loopback).

Each test puts its users in its own OU and points ``base_dn`` at it, so the
shared domain controller's other users are out of sight. Transport is LDAPS
on 636 or StartTLS on 389, always validated against the test CA.
"""

from __future__ import annotations

from typing import Any

import pytest
from ldap3 import MODIFY_ADD

from seatgate.adapters.ldap import LdapDirectory
from seatgate.errors import DirectorySearchIncomplete, DirectoryUnavailable, SyncSafetyStop
from seatgate.gate.decision import Reason
from tests.ldap.conftest import UniqueNames
from tests.ldap.product import (
    PASSWORD,
    Installer,
    ad_bulk,
    ad_group,
    ad_guids,
    ad_modify,
    ad_ou,
    ad_set_disabled,
    ad_usn,
    directory_rows,
    make_sync,
    reader,
    refused,
    samba_config,
    seat_logins,
    snapshot,
    stored_mark,
)
from tests.ldap.servers import SambaAD


def installation(
    install: Installer, url: str, samba: SambaAD, base_dn: str, seats: int = 25, **options: Any
) -> Any:
    return install(
        url,
        samba_config(samba, base_dn, **options),
        service_password=samba.admin_password,
        seats=seats,
    )


def by_login(app: Any) -> dict[str, dict[str, Any]]:
    return {row["login"]: row for row in directory_rows(app).values()}


# --------------------------------------------------------------------------- paging, disable


def test_paged_full_sync_then_a_user_disabled_with_samba_tool_loses_the_seat(
    samba_ad: SambaAD, names: UniqueNames, install: Installer, db_url: str
) -> None:
    ou = ad_ou(samba_ad, names)
    users = ad_bulk(samba_ad, ou, names.prefix, 1200)
    app = installation(install, db_url, samba_ad, ou, transport="ldaps", page_size=500)
    pages: list[int] = []
    directory = LdapDirectory(samba_config(samba_ad, ou, page_size=500), on_page=pages.append)
    sync = make_sync(app)
    usn_before = ad_usn(samba_ad)

    report = sync.run(directory)

    # Three pages of at most 500, every account created, keyed by its objectGUID.
    assert pages == [500, 1000, 1200]
    assert report.full
    assert report.entries_seen == 1200
    assert len(report.created) == 1200
    assert report.conflicts == []
    rows = directory_rows(app)
    guids = ad_guids(samba_ad, ou)
    assert {guid: row["login"] for guid, row in rows.items()} == {
        guid: name for name, guid in guids.items()
    }
    assert {row["status"] for row in rows.values()} == {"active"}
    assert {row["login"]: row["dn"] for row in rows.values()} == users
    first_mark = stored_mark(app)
    assert first_mark is not None
    assert int(first_mark) >= usn_before

    victim = names.prefix + "00007"
    login = app.gate.decide(victim, PASSWORD)
    assert login.allowed
    assert login.seat_claimed
    assert seat_logins(app) == {victim}

    samba_ad.disable_user(victim)
    report = sync.run(directory)

    # Incremental: only the changed entry was read (its login also bumped its
    # uSNChanged: AD writes lastLogonTimestamp on the first bind).
    assert not report.full
    assert report.entries_seen == 1
    assert report.disabled == [victim]
    assert report.seats_freed == [victim]
    assert report.created == report.updated == report.deleted == []
    second_mark = stored_mark(app)
    assert second_mark is not None
    assert int(second_mark) > int(first_mark)
    assert directory_rows(app)[guids[victim]]["status"] == "disabled"
    assert seat_logins(app) == set()

    again = app.gate.decide(victim, PASSWORD)
    assert refused(again, Reason.ACCOUNT_DISABLED)
    assert seat_logins(app) == set()
    assert app.accounts.count() == 1200


def test_incremental_sync_reads_only_what_changed_since_the_mark(
    samba_ad: SambaAD, names: UniqueNames, install: Installer, sqlite_url: str
) -> None:
    ou = ad_ou(samba_ad, names)
    users = ad_bulk(samba_ad, ou, names.prefix, 30)
    app = installation(install, sqlite_url, samba_ad, ou, transport="starttls")
    sync, directory = make_sync(app), reader(app)
    assert sync.run(directory).entries_seen == 30
    first_mark = stored_mark(app)
    assert first_mark is not None

    changed = [names.prefix + "00003", names.prefix + "00011", names.prefix + "00029"]
    ad_modify(
        samba_ad,
        {
            users[changed[0]]: {"mail": "three@new.example"},
            users[changed[1]]: {"displayName": "Eleven, renamed"},
            users[changed[2]]: {"mail": "last@new.example"},
        },
    )
    report = sync.run(directory)

    assert not report.full
    assert report.entries_seen == len(changed)
    assert sorted(report.updated) == changed
    assert report.created == report.disabled == report.renamed == []
    second_mark = stored_mark(app)
    assert second_mark is not None
    assert int(second_mark) > int(first_mark)
    rows = by_login(app)
    assert rows[changed[0]]["email"] == "three@new.example"
    assert rows[changed[1]]["display_name"] == "Eleven, renamed"

    # Nothing changed since: an incremental run reads nothing.
    quiet = sync.run(directory)
    assert (quiet.full, quiet.entries_seen, quiet.updated) == (False, 0, [])

    # A first login is a change in AD (lastLogonTimestamp is replicated): the
    # next run reads that one entry again and changes nothing.
    assert app.gate.decide(changed[0], PASSWORD).allowed
    after_login = sync.run(directory)
    assert after_login.entries_seen == 1
    assert after_login.as_dict()["updated"] == 0


# --------------------------------------------------------------------------- rename, delete


def test_rename_with_samba_tool_keeps_account_and_seat(
    samba_ad: SambaAD, names: UniqueNames, install: Installer, db_url: str
) -> None:
    ou = ad_ou(samba_ad, names)
    ad_bulk(samba_ad, ou, names.prefix, 10)
    app = installation(install, db_url, samba_ad, ou, transport="starttls")
    sync, directory = make_sync(app), reader(app)
    sync.run(directory)
    old, new = names.prefix + "00004", names("renamed")
    guid = ad_guids(samba_ad, ou)[old]
    assert app.gate.decide(old, PASSWORD).seat_claimed
    account_id = directory_rows(app)[guid]["id"]

    new_dn = samba_ad.rename_user(old, new, new_cn=f"Renamed {new}")
    report = sync.run(directory)

    assert report.renamed == [(old, new)]
    assert report.entries_seen == 1
    assert report.seats_freed == []
    row = directory_rows(app)[guid]
    assert (row["id"], row["login"], row["dn"], row["status"]) == (
        account_id,
        new,
        new_dn,
        "active",
    )
    assert seat_logins(app) == {new}
    assert app.accounts.count() == 10

    # The new name logs in on the seat it already holds (bind as the new DN) ...
    login = app.gate.decide(new, PASSWORD)
    assert login.allowed
    assert not login.seat_claimed
    # ... and the old name is unknown.
    assert refused(app.gate.decide(old, PASSWORD), Reason.INVALID_CREDENTIALS)
    assert app.ledger.used() == 1


def test_user_deleted_in_ad_is_marked_deleted_by_a_full_sync_and_the_row_stays(
    samba_ad: SambaAD, names: UniqueNames, install: Installer, sqlite_url: str
) -> None:
    ou = ad_ou(samba_ad, names)
    ad_bulk(samba_ad, ou, names.prefix, 12)
    app = installation(install, sqlite_url, samba_ad, ou)
    sync, directory = make_sync(app), reader(app)
    sync.run(directory)
    victim = names.prefix + "00005"
    guid = ad_guids(samba_ad, ou)[victim]
    assert app.gate.decide(victim, PASSWORD).seat_claimed

    samba_ad.delete_user(victim)
    report = sync.run(directory, full=True)

    assert report.full
    assert report.entries_seen == 11
    assert report.deleted == [victim]
    assert report.seats_freed == [victim]
    row = directory_rows(app)[guid]
    assert row["status"] == "deleted"
    assert row["login"] == victim  # shown as it was; only the key is freed
    assert row["login_key"] != victim
    assert app.accounts.count() == 12
    assert seat_logins(app) == set()
    assert refused(app.gate.decide(victim, PASSWORD), Reason.INVALID_CREDENTIALS)
    # A second full run has nothing more to do: the row is never removed.
    again = sync.run(directory, full=True)
    assert again.deleted == []
    assert directory_rows(app)[guid]["status"] == "deleted"


def test_incremental_sync_finds_a_deletion_with_show_deleted_from_the_domain_root(
    samba_ad: SambaAD, names: UniqueNames, install: Installer, sqlite_url: str
) -> None:
    ou = ad_ou(samba_ad, names)
    ad_bulk(samba_ad, ou, names.prefix, 12)
    user_filter = f"(&{SambaAD.person_filter}(sAMAccountName={names.prefix}*))"
    app = installation(install, sqlite_url, samba_ad, samba_ad.base_dn, user_filter=user_filter)
    sync, directory = make_sync(app), reader(app)
    assert len(sync.run(directory).created) == 12
    victim = names.prefix + "00002"
    guid = ad_guids(samba_ad, ou)[victim]
    assert app.gate.decide(victim, PASSWORD).seat_claimed

    samba_ad.delete_user(victim)
    report = sync.run(directory)

    assert not report.full
    assert report.deleted == [victim]
    assert report.seats_freed == [victim]
    assert directory_rows(app)[guid]["status"] == "deleted"
    assert app.accounts.count() == 12


def test_incremental_sync_finds_a_deletion_when_base_dn_is_an_ou(
    samba_ad: SambaAD, names: UniqueNames, install: Installer, sqlite_url: str
) -> None:
    ou = ad_ou(samba_ad, names)
    ad_bulk(samba_ad, ou, names.prefix, 12)
    app = installation(install, sqlite_url, samba_ad, ou)
    sync, directory = make_sync(app), reader(app)
    sync.run(directory)
    victim = names.prefix + "00002"
    assert app.gate.decide(victim, PASSWORD).seat_claimed

    samba_ad.delete_user(victim)
    report = sync.run(directory)

    assert report.deleted == [victim]
    assert report.seats_freed == [victim]


# --------------------------------------------------------------------------- seat groups


def test_seat_groups_grant_seats_in_group_order_while_seats_remain(
    samba_ad: SambaAD, names: UniqueNames, install: Installer, sqlite_url: str
) -> None:
    ou = ad_ou(samba_ad, names)
    users = ad_bulk(samba_ad, ou, names.prefix, 40)
    logins = sorted(users)
    # 25 seats: the first group's 20 enabled members, then 5 of the second group's 10.
    first_members, second_members, disabled = logins[0:20], logins[20:30], logins[39]
    first = ad_group(samba_ad, ou, names("first"), [users[n] for n in [*first_members, disabled]])
    second = ad_group(samba_ad, ou, names("second"), [users[n] for n in second_members])
    ad_set_disabled(samba_ad, [users[disabled]])  # a disabled member gets nothing
    app = installation(install, sqlite_url, samba_ad, ou, seats=25, seat_groups=(first, second))
    sync = make_sync(app)

    report = sync.run(reader(app))

    assert len(report.seats_granted) == 25
    assert sorted(report.seats_granted[:20]) == first_members
    assert set(report.seats_granted[20:]) < set(second_members)
    assert seat_logins(app) == set(report.seats_granted)
    assert disabled not in seat_logins(app)
    rows = by_login(app)
    assert first in rows[first_members[0]]["groups"]
    assert second in rows[second_members[0]]["groups"]
    # The licence is full: a member left over and a non-member both find no seat.
    leftover = next(n for n in second_members if n not in seat_logins(app))
    assert refused(app.gate.decide(leftover, PASSWORD), Reason.NO_SEAT_AVAILABLE)
    assert refused(app.gate.decide(logins[30], PASSWORD), Reason.NO_SEAT_AVAILABLE)
    assert sync.run(reader(app), full=True).seats_granted == []


def test_user_added_to_a_seat_group_gets_a_seat_at_the_next_incremental_sync(
    samba_ad: SambaAD, names: UniqueNames, install: Installer, sqlite_url: str
) -> None:
    ou = ad_ou(samba_ad, names)
    users = ad_bulk(samba_ad, ou, names.prefix, 10)
    logins = sorted(users)
    group = ad_group(samba_ad, ou, names("staff"), [users[logins[0]], users[logins[1]]])
    app = installation(install, sqlite_url, samba_ad, ou, seat_groups=(group,))
    sync = make_sync(app)
    assert sorted(sync.run(reader(app)).seats_granted) == logins[0:2]

    ad_modify_members(samba_ad, group, [users[logins[2]]])
    report = sync.run(reader(app))

    assert report.seats_granted == [logins[2]]
    assert group in by_login(app)[logins[2]]["groups"]


def test_a_freed_seat_goes_to_the_first_seat_group_in_an_incremental_sync(
    samba_ad: SambaAD, names: UniqueNames, install: Installer, sqlite_url: str
) -> None:
    ou = ad_ou(samba_ad, names)
    users = ad_bulk(samba_ad, ou, names.prefix, 30)
    logins = sorted(users)
    # 26 members of the first group for 25 seats: one waits.
    first = ad_group(samba_ad, ou, names("first"), [users[n] for n in logins[0:26]])
    second = ad_group(samba_ad, ou, names("second"), [users[logins[26]]])
    app = installation(install, sqlite_url, samba_ad, ou, seat_groups=(first, second))
    sync = make_sync(app)
    granted = sync.run(reader(app)).seats_granted
    assert len(granted) == 25
    assert set(granted) < set(logins[0:26])
    waiting = next(n for n in logins[0:26] if n not in granted)

    # One seat holder of the first group is disabled; a second-group member changes.
    ad_set_disabled(samba_ad, [users[granted[0]]])
    ad_modify(samba_ad, {users[logins[26]]: {"mail": "second@new.example"}})
    report = sync.run(reader(app))

    assert report.seats_freed == [granted[0]]
    assert report.seats_granted == [waiting]


def ad_modify_members(samba: SambaAD, group_dn: str, member_dns: list[str]) -> None:
    conn = samba.connect()
    try:
        conn.modify(group_dn, {"member": [(MODIFY_ADD, member_dns)]})
    finally:
        conn.unbind()


# --------------------------------------------------------------------------- safety


def test_disable_threshold_stops_the_sync_until_confirmed_with_the_exact_count(
    samba_ad: SambaAD, names: UniqueNames, install: Installer, sqlite_url: str
) -> None:
    ou = ad_ou(samba_ad, names)
    users = ad_bulk(samba_ad, ou, names.prefix, 20)
    app = installation(install, sqlite_url, samba_ad, ou)
    sync, directory = make_sync(app), reader(app)
    sync.run(directory)
    victims = [names.prefix + n for n in ("00001", "00008", "00015")]
    for victim in victims[:2]:
        assert app.gate.decide(victim, PASSWORD).seat_claimed

    ad_set_disabled(samba_ad, [users[v] for v in victims])  # 3 of 20 > 10 %
    before = snapshot(app)
    with pytest.raises(SyncSafetyStop, match="--confirm-disables 3") as stop:
        sync.run(directory)
    assert (stop.value.count, stop.value.total) == (3, 20)
    assert snapshot(app) == before
    with pytest.raises(SyncSafetyStop):
        sync.run(directory, confirm_disables=2)  # must be the exact number
    assert snapshot(app) == before

    report = sync.run(directory, confirm_disables=3)

    assert sorted(report.disabled) == victims
    assert sorted(report.seats_freed) == victims[:2]
    assert seat_logins(app) == set()
    assert {r["login"] for r in directory_rows(app).values() if r["status"] == "disabled"} == set(
        victims
    )


def test_empty_or_failed_search_changes_nothing(
    samba_ad: SambaAD, names: UniqueNames, install: Installer, sqlite_url: str
) -> None:
    ou = ad_ou(samba_ad, names)
    ad_bulk(samba_ad, ou, names.prefix, 10)
    app = installation(install, sqlite_url, samba_ad, ou)
    # No ratio or count limit: the empty-search rule alone must hold.
    sync = make_sync(app, max_disable_ratio=1.0, max_disable_count=10**6)
    sync.run(reader(app))
    assert app.gate.decide(names.prefix + "00000", PASSWORD).seat_claimed
    before = snapshot(app)

    nobody = f"(&{SambaAD.person_filter}(sAMAccountName=nobody-{names.tag}))"
    with pytest.raises(DirectorySearchIncomplete, match="no entries"):
        sync.run(reader(app, user_filter=nobody), full=True)
    assert snapshot(app) == before

    # A base DN that does not exist (a typo, a moved OU): noSuchObject.
    missing = f"OU=gone-{names.tag},{samba_ad.base_dn}"
    with pytest.raises(DirectorySearchIncomplete, match="noSuchObject"):
        sync.run(reader(app, base_dn=missing), full=True)
    assert snapshot(app) == before

    # An incremental run that finds nothing changes no account and no seat.
    quiet = sync.run(reader(app, user_filter=nobody))
    assert quiet.entries_seen == 0
    after = snapshot(app)
    assert (after["accounts"], after["seats"]) == (before["accounts"], before["seats"])


@pytest.mark.parametrize("transport", ["ldaps", "starttls"])
def test_wrong_ca_file_fails_the_sync_with_directory_unavailable(
    samba_ad: SambaAD,
    names: UniqueNames,
    install: Installer,
    sqlite_url: str,
    transport: str,
) -> None:
    ou = ad_ou(samba_ad, names)
    users = ad_bulk(samba_ad, ou, names.prefix, 10)
    app = installation(install, sqlite_url, samba_ad, ou, transport=transport)
    sync = make_sync(app)
    assert len(sync.run(reader(app)).created) == 10
    # Changes a working sync would apply.
    ad_set_disabled(samba_ad, [users[names.prefix + "00001"]])
    ad_modify(samba_ad, {users[names.prefix + "00002"]: {"mail": "new@new.example"}})
    before = snapshot(app)

    for full in (False, True):
        with pytest.raises(DirectoryUnavailable, match="CERTIFICATE_VERIFY_FAILED"):
            sync.run(reader(app, ca_file=samba_ad.other_ca_file), full=full)
        assert snapshot(app) == before

    # With the right CA the same run goes through.
    report = sync.run(reader(app))
    assert report.disabled == [names.prefix + "00001"]
    assert report.updated == [names.prefix + "00002"]
