"""Seat groups that decide, nested groups and admin groups against a real OpenLDAP slapd.

Groups are groupOfNames in ou=groups (the memberOf overlay names a user's
direct groups); nested groups are expanded level by level by seatgate.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner, Result

from seatgate.adapters.ldap_groups import MAX_NESTING_DEPTH
from seatgate.cli.main import cli
from seatgate.errors import LastAdminStop, SeatRevocationSafetyStop
from seatgate.licensing.vendor import VendorKey
from tests.conftest import INSTALLATION
from tests.ldap.conftest import UniqueNames
from tests.ldap.product import (
    PASSWORD,
    Installer,
    directory_rows,
    make_sync,
    next_second,
    openldap_config,
    reader,
    seat_logins,
    snapshot,
    tag_filter,
)
from tests.ldap.servers import OpenLDAP


def installation(
    install: Installer, url: str, server: OpenLDAP, names: UniqueNames, **options: Any
) -> Any:
    return install(
        url,
        openldap_config(server, tag_filter(names), **options),
        service_password=server.service_password,
    )


def cn(dn: str) -> str:
    return dn.split(",", 1)[0].split("=", 1)[1]


def groups_of(app: Any, login: str) -> set[str]:
    [row] = [r for r in directory_rows(app).values() if r["login"] == login]
    return {g.lower() for g in json.loads(row["groups"])}


def admins(app: Any) -> set[str]:
    return {r["login"] for r in directory_rows(app).values() if r["is_admin"]}


def test_a_user_three_levels_below_a_seat_group_gets_a_seat(
    openldap: OpenLDAP, names: UniqueNames, install: Installer, db_url: str
) -> None:
    deep, direct, outside = openldap.add_users_bulk(names.prefix, 3, PASSWORD)
    low = openldap.add_group(names("low"), [deep])
    mid = openldap.add_group(names("mid"), [low])
    seat = openldap.add_group(names("seat"), [mid, direct])
    flat = installation(install, db_url, openldap, names, seat_groups=(seat,))
    assert make_sync(flat).run(reader(flat)).seats_granted == [direct]

    app = install.reopen(
        flat, openldap_config(openldap, tag_filter(names), seat_groups=(seat,), nested_groups=True)
    )
    report = make_sync(app).run(reader(app), full=True)
    assert report.seats_granted == [deep]
    assert seat_logins(app) == {deep, direct}
    assert outside not in seat_logins(app)
    # The stored groups (accounts list --json, X-Seatgate-Groups) include the nested ones.
    assert groups_of(app, deep) == {low.lower(), mid.lower(), seat.lower()}


def test_a_group_cycle_ends_the_expansion(
    openldap: OpenLDAP, names: UniqueNames, install: Installer, db_url: str
) -> None:
    [user] = openldap.add_users_bulk(names.prefix, 1, PASSWORD)
    first = openldap.add_group(names("ring1"), [user])
    second = openldap.add_group(names("ring2"), [first])
    openldap.add_members(cn(first), [second])  # ring1 <-> ring2
    top = openldap.add_group(names("top"), [second])
    app = installation(install, db_url, openldap, names, seat_groups=(top,), nested_groups=True)
    report = make_sync(app).run(reader(app))
    assert report.seats_granted == [user]
    assert groups_of(app, user) == {first.lower(), second.lower(), top.lower()}


def test_expansion_stops_at_the_depth_bound(
    openldap: OpenLDAP, names: UniqueNames, install: Installer, db_url: str
) -> None:
    [user] = openldap.add_users_bulk(names.prefix, 1, PASSWORD)
    chain = [openldap.add_group(names("lvl"), [user])]
    for _ in range(MAX_NESTING_DEPTH + 1):
        chain.append(openldap.add_group(names("lvl"), [chain[-1]]))
    app = installation(
        install, db_url, openldap, names, seat_groups=(chain[-1],), nested_groups=True
    )
    report = make_sync(app).run(reader(app))
    # Its own group and MAX_NESTING_DEPTH levels above it; the last one is too far.
    assert groups_of(app, user) == {dn.lower() for dn in chain[:-1]}
    assert report.seats_granted == []


def test_leaving_the_group_revokes_in_exclusive_mode_only_and_pinned_seats_stay(
    openldap: OpenLDAP, names: UniqueNames, install: Installer, db_url: str
) -> None:
    users = openldap.add_users_bulk(names.prefix, 4, PASSWORD)
    seat = openldap.add_group(names("seat"), users)
    app = installation(
        install,
        db_url,
        openldap,
        names,
        seat_groups=(seat,),
        seat_groups_mode="exclusive",
        max_disable_ratio=1.0,
    )
    sync = make_sync(app)
    assert sorted(sync.run(reader(app)).seats_granted) == users
    app.ledger.set_pinned(app.accounts.get(users[1]).id, True, actor="test")
    grant = make_sync(app, seat_groups_mode="grant")

    next_second()
    openldap.remove_members(cn(seat), users[0:2])
    # Grant mode keeps the seat; the group left is stored, so exclusive mode
    # takes it at its next run even though nothing changed in between.
    assert grant.run(reader(app)).seats_revoked == []
    assert seat_logins(app) == set(users)
    report = sync.run(reader(app))

    assert (report.seats_revoked, report.seats_kept_pinned) == ([users[0]], [users[1]])
    assert seat_logins(app) == set(users[1:])


def test_revocations_past_the_limit_need_confirmation(
    openldap: OpenLDAP, names: UniqueNames, install: Installer, db_url: str
) -> None:
    users = openldap.add_users_bulk(names.prefix, 10, PASSWORD)
    seat = openldap.add_group(names("seat"), users)
    app = installation(
        install, db_url, openldap, names, seat_groups=(seat,), seat_groups_mode="exclusive"
    )
    sync = make_sync(app)
    sync.run(reader(app))
    next_second()
    openldap.remove_members(cn(seat), users[0:2])  # 2 of 10 > 10 %
    before = snapshot(app)
    with pytest.raises(SeatRevocationSafetyStop, match="--confirm-seat-revocations 2"):
        sync.run(reader(app))
    assert snapshot(app) == before
    report = sync.run(reader(app), confirm_seat_revocations=2)
    assert sorted(report.seats_revoked) == users[0:2]


def test_admin_groups_grant_and_revoke_admin_and_guard_the_last_admin(
    openldap: OpenLDAP, names: UniqueNames, install: Installer, db_url: str
) -> None:
    first, second = openldap.add_users_bulk(names.prefix, 2, PASSWORD)
    admin_group = openldap.add_group(names("adm"), [first])
    team = openldap.add_group(names("team"), [second])
    app = installation(
        install,
        db_url,
        openldap,
        names,
        admin_groups=(admin_group,),
        nested_groups=True,
        max_disable_ratio=1.0,
    )
    sync = make_sync(app)
    assert sync.run(reader(app)).admins_granted == [first]
    assert admins(app) == {first}

    next_second()
    openldap.add_members(cn(admin_group), [team])  # second is an admin through `team`
    openldap.remove_members(cn(admin_group), [first])
    report = sync.run(reader(app))
    assert (report.admins_granted, report.admins_revoked) == ([second], [first])

    next_second()
    openldap.add_members(cn(admin_group), [openldap.service_dn])  # groupOfNames needs one
    openldap.remove_members(cn(admin_group), [team])
    before = snapshot(app)
    with pytest.raises(LastAdminStop, match=second):
        sync.run(reader(app))
    assert snapshot(app) == before
    assert admins(app) == {second}


# --------------------------------------------------------------------------- command line


def test_cli_sync_json_lists_seat_changes_and_accounts_list_has_groups(
    openldap: OpenLDAP,
    names: UniqueNames,
    vendor_key: VendorKey,
    mint: Any,
    tmp_path: Path,
) -> None:
    users = openldap.add_users_bulk(names.prefix, 3, PASSWORD)
    seat = openldap.add_group(names("seat"), users)
    config = tmp_path / "seatgate.yaml"
    data: dict[str, Any] = {
        "installation_id": INSTALLATION,
        "database_url": "sqlite:///seatgate.db",
        "license": {"public_keys": {"k1": vendor_key.public_pem()}},
        "passwords": {"argon2_time_cost": 1, "argon2_memory_kib": 1024, "argon2_parallelism": 1},
        "ldap": {
            "url": openldap.url,
            "start_tls": True,
            "ca_file": str(openldap.ca_file),
            "base_dn": openldap.base_dn,
            "bind_dn": openldap.service_dn,
            "preset": "openldap",
            "user_filter": tag_filter(names),
            "seat_groups": [seat],
            "seat_groups_mode": "exclusive",
            "max_disable_ratio": 1.0,
        },
    }
    config.write_text(yaml.safe_dump(data), encoding="utf-8")
    (tmp_path / "licence.jwt").write_text(mint("license", seats=25), encoding="ascii")

    def run(*args: str) -> Result:
        result = CliRunner().invoke(
            cli,
            ["--config", str(config), *args],
            env={"SEATGATE_LDAP_PASSWORD": openldap.service_password, "SEATGATE_CONFIG": None},
        )
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise result.exception
        assert result.exit_code == 0, result.output
        return result

    run("init")
    run("license", "install", str(tmp_path / "licence.jwt"))
    first = json.loads(run("sync", "ldap", "--json").stdout)
    assert sorted(first["seats_granted"]) == users
    listed = {a["login"]: a for a in json.loads(run("accounts", "list", "--json").stdout)}
    assert [g.lower() for g in listed[users[0]]["groups"]] == [seat.lower()]
    assert listed[users[0]]["admin"] is False

    next_second()
    openldap.remove_members(cn(seat), [users[0]])
    dry = json.loads(run("sync", "ldap", "--dry-run", "--json").stdout)
    assert (dry["dry_run"], dry["seats_revoked"], dry["seats_kept_pinned"]) == (
        True,
        [users[0]],
        [],
    )
    assert listed[users[0]]["has_seat"] is True
    applied = json.loads(run("sync", "ldap", "--json").stdout)
    assert applied["seats_revoked"] == [users[0]]
    after = {a["login"]: a for a in json.loads(run("accounts", "list", "--json").stdout)}
    assert (after[users[0]]["has_seat"], after[users[0]]["groups"]) == (False, [])
