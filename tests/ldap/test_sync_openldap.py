"""`seatgate sync ldap` against a real OpenLDAP slapd (StartTLS, the test CA).

Each test's users carry the test's tag in their uid and the user filter
selects on it, so the other tests' users on the shared server are out of
sight. OpenLDAP has no uSN: incremental runs select ``modifyTimestamp >=
mark`` (whole seconds), and deletions are found by full runs only.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner, Result
from ldap3 import SUBTREE

from seatgate.cli.main import cli
from seatgate.errors import DirectorySearchIncomplete, SyncSafetyStop
from seatgate.gate.decision import Reason
from seatgate.licensing.vendor import VendorKey
from tests.conftest import INSTALLATION
from tests.ldap.conftest import LIMITED_SIZE, UniqueNames
from tests.ldap.product import (
    PASSWORD,
    Installer,
    directory_rows,
    make_sync,
    next_second,
    ol_timestamps,
    ol_uuids,
    openldap_config,
    reader,
    refused,
    seat_logins,
    snapshot,
    stored_mark,
    tag_filter,
)
from tests.ldap.servers import OpenLDAP


def installation(
    install: Installer, url: str, server: OpenLDAP, user_filter: str, **options: Any
) -> Any:
    return install(
        url,
        openldap_config(server, user_filter, **options),
        service_password=server.service_password,
    )


def by_login(app: Any) -> dict[str, dict[str, Any]]:
    return {row["login"]: row for row in directory_rows(app).values()}


# --------------------------------------------------------------------------- incremental


def test_incremental_sync_by_modify_timestamp(
    openldap: OpenLDAP, names: UniqueNames, install: Installer, db_url: str
) -> None:
    people = tag_filter(names)
    created = openldap.add_users_bulk(names.prefix, 20, PASSWORD)
    next_second()
    openldap.modify(created[-1], {"description": "touched"})  # alone in the newest second
    app = installation(install, db_url, openldap, people)
    sync, directory = make_sync(app), reader(app)

    first = sync.run(directory)

    assert first.full
    assert sorted(first.created) == created
    uuids = ol_uuids(openldap, people)
    assert {g: r["login"] for g, r in directory_rows(app).items()} == {
        g: uid for uid, g in uuids.items()
    }
    stamps = ol_timestamps(openldap, people)
    first_mark = stored_mark(app)
    assert first_mark == max(stamps.values())
    # Entries stamped in the mark's own second are read again (">=": a change
    # later in that second must not be missed); nothing else unchanged is.
    boundary = {uid for uid, stamp in stamps.items() if stamp == first_mark}
    assert boundary == {created[-1]}
    assert app.gate.decide(created[7], PASSWORD).seat_claimed

    next_second()
    changed_mail, renamed_from = created[3], created[7]
    renamed_to, newcomer = names("renamed"), names("new")
    openldap.modify(changed_mail, {"mail": "three@new.example"})
    openldap.rename_user(renamed_from, renamed_to)
    openldap.add_user(newcomer, PASSWORD)

    report = sync.run(directory)

    assert not report.full
    changed = {changed_mail, renamed_to, newcomer}
    assert report.entries_seen == len(changed | boundary) == 4  # of 21
    assert report.updated == [changed_mail]
    assert report.renamed == [(renamed_from, renamed_to)]
    assert report.created == [newcomer]
    assert report.disabled == report.deleted == []
    second_mark = stored_mark(app)
    assert second_mark is not None
    assert first_mark is not None
    assert second_mark > first_mark
    stamps = ol_timestamps(openldap, people)
    assert second_mark == max(stamps[uid] for uid in changed) == max(stamps.values())
    rows = by_login(app)
    assert rows[changed_mail]["email"] == "three@new.example"
    assert rows[renamed_to]["dn"] == openldap.user_dn(renamed_to)
    assert seat_logins(app) == {renamed_to}  # the seat moved with the rename
    assert app.gate.decide(renamed_to, PASSWORD).allowed

    # No change since: the run re-reads only the mark's second and changes nothing.
    quiet = sync.run(directory)
    assert quiet.entries_seen == sum(1 for s in stamps.values() if s == second_mark)
    assert quiet.entries_seen < 21
    assert (quiet.full, quiet.created, quiet.updated, quiet.renamed) == (False, [], [], [])
    assert stored_mark(app) == second_mark


def test_user_added_to_a_seat_group_gets_a_seat_at_the_next_incremental_sync(
    openldap: OpenLDAP, names: UniqueNames, install: Installer, sqlite_url: str
) -> None:
    users = openldap.add_users_bulk(names.prefix, 4, PASSWORD)
    group = openldap.add_group(names("staff"), users[0:2])
    next_second()
    openldap.modify(users[3], {"description": "touched"})  # the mark: after users[2]
    app = installation(install, sqlite_url, openldap, tag_filter(names), seat_groups=(group,))
    sync = make_sync(app)
    assert sorted(sync.run(reader(app)).seats_granted) == users[0:2]
    assert ol_timestamps(openldap, tag_filter(names))[users[2]] < str(stored_mark(app))

    openldap.add_members(group_cn(group), [users[2]])
    report = sync.run(reader(app))

    assert report.seats_granted == [users[2]]


def group_cn(dn: str) -> str:
    return dn.split(",", 1)[0].split("=", 1)[1]


# --------------------------------------------------------------------------- safety


def test_size_limit_aborts_the_sync_instead_of_deleting_the_unseen_users(
    openldap_limited: OpenLDAP, names: UniqueNames, install: Installer, sqlite_url: str
) -> None:
    server = openldap_limited
    early = server.add_users_bulk(names.prefix + "a", 30, PASSWORD)
    late = server.add_users_bulk(names.prefix + "z", 30, PASSWORD)
    # First the 30 "late" users only: under the size limit of 50.
    app = installation(
        install, sqlite_url, server, f"(&(objectClass=inetOrgPerson)(uid={names.prefix}z*))"
    )
    # No ratio or count limit: only the size-limit check stands between the
    # unseen users and a deletion.
    sync = make_sync(app, max_disable_ratio=1.0, max_disable_count=10**6)
    assert sorted(sync.run(reader(app)).created) == late
    assert app.gate.decide(late[-1], PASSWORD).seat_claimed
    before = snapshot(app)

    everyone = f"(&(objectClass=inetOrgPerson)(uid={names.prefix}*))"
    # The server stops after 50 of the 60 (even paged), and known users are among
    # the ones it leaves out.
    conn = server.connect(server.service_dn, server.service_password)
    try:
        seen = conn.extend.standard.paged_search(
            server.base_dn, everyone, SUBTREE, attributes=["uid"], paged_size=20, generator=False
        )
        assert conn.result["description"] == "sizeLimitExceeded"
    finally:
        conn.unbind()
    seen_uids = {e["attributes"]["uid"][0] for e in seen if e.get("type") == "searchResEntry"}
    assert len(seen_uids) == LIMITED_SIZE
    assert set(late) - seen_uids
    assert set(early) <= seen_uids

    for full in (True, False):
        with pytest.raises(DirectorySearchIncomplete, match="sizeLimitExceeded"):
            sync.run(reader(app, user_filter=everyone, page_size=20), full=full)
        assert snapshot(app) == before
    assert seat_logins(app) == {late[-1]}


def test_disables_and_deletions_over_the_threshold_stop_until_confirmed(
    openldap: OpenLDAP, names: UniqueNames, install: Installer, sqlite_url: str
) -> None:
    people = tag_filter(names)
    created = openldap.add_users_bulk(names.prefix, 20, PASSWORD)
    app = installation(
        install,
        sqlite_url,
        openldap,
        people,
        disabled_attribute="employeeType",
        disabled_values=("disabled",),
    )
    sync, directory = make_sync(app), reader(app)
    sync.run(directory)
    disabled, deleted = created[0:3], created[10]
    for uid in (disabled[0], deleted):
        assert app.gate.decide(uid, PASSWORD).seat_claimed
    deleted_id = ol_uuids(openldap, f"(uid={deleted})")[deleted]

    next_second()
    for uid in disabled:
        openldap.modify(uid, {"employeeType": "disabled"})
    openldap.delete_user(deleted)
    before = snapshot(app)

    # Incremental: the 3 disables are seen (the deletion is not: no uSN, no tombstones).
    with pytest.raises(SyncSafetyStop, match="--confirm-disables 3") as stop:
        sync.run(directory)
    assert (stop.value.count, stop.value.total) == (3, 20)
    assert snapshot(app) == before
    # Full: 3 disables + 1 deletion of 20 > 10 %.
    with pytest.raises(SyncSafetyStop, match="--confirm-disables 4") as stop:
        sync.run(directory, full=True)
    assert (stop.value.count, stop.value.total) == (4, 20)
    with pytest.raises(SyncSafetyStop):
        sync.run(directory, full=True, confirm_disables=3)
    assert snapshot(app) == before

    report = sync.run(directory, full=True, confirm_disables=4)

    assert sorted(report.disabled) == disabled
    assert report.deleted == [deleted]
    assert sorted(report.seats_freed) == sorted([disabled[0], deleted])
    assert seat_logins(app) == set()
    rows = directory_rows(app)
    assert rows[deleted_id]["status"] == "deleted"
    assert len(rows) == 20
    assert refused(app.gate.decide(disabled[0], PASSWORD), Reason.ACCOUNT_DISABLED)


def test_empty_or_failed_search_changes_nothing(
    openldap: OpenLDAP, names: UniqueNames, install: Installer, sqlite_url: str
) -> None:
    openldap.add_users_bulk(names.prefix, 10, PASSWORD)
    app = installation(install, sqlite_url, openldap, tag_filter(names))
    sync = make_sync(app, max_disable_ratio=1.0, max_disable_count=10**6)
    sync.run(reader(app))
    assert app.gate.decide(names.prefix + "00004", PASSWORD).seat_claimed
    before = snapshot(app)

    nobody = f"(&(objectClass=inetOrgPerson)(uid=nobody-{names.tag}))"
    with pytest.raises(DirectorySearchIncomplete, match="no entries"):
        sync.run(reader(app, user_filter=nobody), full=True)
    assert snapshot(app) == before
    missing = f"ou=gone-{names.tag},{openldap.base_dn}"
    with pytest.raises(DirectorySearchIncomplete, match="noSuchObject"):
        sync.run(reader(app, base_dn=missing), full=True)
    assert snapshot(app) == before
    assert len(by_login(app)) == 10
    assert seat_logins(app) == {names.prefix + "00004"}


# --------------------------------------------------------------------------- command line


def write_config(path: Path, vendor_key: VendorKey, server: OpenLDAP, user_filter: str) -> Path:
    data: dict[str, Any] = {
        "installation_id": INSTALLATION,
        "database_url": "sqlite:///seatgate.db",
        "license": {"public_keys": {"k1": vendor_key.public_pem()}},
        "passwords": {"argon2_time_cost": 1, "argon2_memory_kib": 1024, "argon2_parallelism": 1},
        "ldap": {
            "url": server.url,
            "start_tls": True,
            "ca_file": str(server.ca_file),
            "base_dn": server.base_dn,
            "bind_dn": server.service_dn,
            "preset": "openldap",
            "user_filter": user_filter,
            "disabled_attribute": "employeeType",
            "disabled_values": ["disabled"],
        },
    }
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def test_cli_sync_ldap_json_dry_run_and_confirm_disables(
    openldap: OpenLDAP, names: UniqueNames, vendor_key: VendorKey, tmp_path: Path
) -> None:
    created = openldap.add_users_bulk(names.prefix, 20, PASSWORD)
    config = write_config(tmp_path / "seatgate.yaml", vendor_key, openldap, tag_filter(names))
    runner = CliRunner()

    def run(*args: str) -> Result:
        result = runner.invoke(
            cli,
            ["--config", str(config), *args],
            env={"SEATGATE_LDAP_PASSWORD": openldap.service_password, "SEATGATE_CONFIG": None},
        )
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise result.exception
        return result

    def accounts() -> dict[str, str]:
        listed = run("accounts", "list", "--json")
        assert listed.exit_code == 0, listed.output
        return {a["login"]: a["status"] for a in json.loads(listed.stdout)}

    assert run("init").exit_code == 0

    dry = run("sync", "ldap", "--dry-run", "--json")
    assert dry.exit_code == 0, dry.output
    summary = json.loads(dry.stdout)
    assert (summary["dry_run"], summary["full"], summary["created"]) == (True, True, 20)
    assert accounts() == {}

    applied = run("sync", "ldap", "--json")
    assert applied.exit_code == 0, applied.output
    summary = json.loads(applied.stdout)
    assert (summary["dry_run"], summary["full"], summary["entries_seen"]) == (False, True, 20)
    assert summary["created"] == 20
    assert accounts() == dict.fromkeys(created, "active")

    next_second()
    for uid in created[:3]:  # 3 of 20 > 10 %
        openldap.modify(uid, {"employeeType": "disabled"})
    stopped = run("sync", "ldap")
    assert stopped.exit_code == 1
    assert "--confirm-disables 3" in stopped.stderr
    assert "Traceback" not in stopped.output
    assert set(accounts().values()) == {"active"}

    preview = run("sync", "ldap", "--dry-run", "--confirm-disables", "3", "--json")
    assert preview.exit_code == 0, preview.output
    assert json.loads(preview.stdout)["disabled"] == 3
    assert set(accounts().values()) == {"active"}

    confirmed = run("sync", "ldap", "--confirm-disables", "3", "--json")
    assert confirmed.exit_code == 0, confirmed.output
    summary = json.loads(confirmed.stdout)
    assert (summary["full"], summary["disabled"]) == (False, 3)
    statuses = accounts()
    assert {u for u, s in statuses.items() if s == "disabled"} == set(created[:3])

    # Without the service password the command says which variable to set.
    missing = runner.invoke(
        cli, ["--config", str(config), "sync", "ldap"], env={"SEATGATE_LDAP_PASSWORD": None}
    )
    assert missing.exit_code == 2
    assert "SEATGATE_LDAP_PASSWORD" in missing.stderr
