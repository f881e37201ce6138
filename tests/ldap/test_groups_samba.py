"""Seat groups that decide, nested groups and admin groups against a real Samba AD DC.

Nested groups use AD's in-chain matching rule (1.2.840.113556.1.4.1941):
the domain controller walks the chain. Each test has its own OU, the
``base_dn`` of its installation; its groups live there too.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import pytest
from ldap3 import MODIFY_ADD, MODIFY_DELETE

from seatgate.errors import LastAdminStop, SeatRevocationSafetyStop
from tests.ldap.conftest import UniqueNames
from tests.ldap.product import (
    Installer,
    ad_bulk,
    ad_group,
    ad_ou,
    directory_rows,
    make_sync,
    reader,
    samba_config,
    seat_logins,
    snapshot,
)
from tests.ldap.servers import SambaAD


def installation(install: Installer, url: str, samba: SambaAD, ou: str, **options: Any) -> Any:
    return install(url, samba_config(samba, ou, **options), service_password=samba.admin_password)


def members(
    samba: SambaAD, group: str, *, add: Sequence[str] = (), delete: Sequence[str] = ()
) -> dict[str, Any]:
    """Change a group's members over LDAP; returns the server's result."""
    changes: dict[str, list[tuple[str, list[str]]]] = {}
    if add:
        changes.setdefault("member", []).append((MODIFY_ADD, list(add)))
    if delete:
        changes.setdefault("member", []).append((MODIFY_DELETE, list(delete)))
    conn = samba.connect()
    try:
        conn.modify(group, changes)
        return dict(conn.result)
    finally:
        conn.unbind()


def groups_of(app: Any, login: str) -> set[str]:
    [row] = [r for r in directory_rows(app).values() if r["login"] == login]
    return {g.lower() for g in json.loads(row["groups"])}


def admins(app: Any) -> set[str]:
    return {r["login"] for r in directory_rows(app).values() if r["is_admin"]}


def test_a_user_three_levels_below_a_seat_group_gets_a_seat(
    samba_ad: SambaAD, names: UniqueNames, install: Installer, db_url: str
) -> None:
    ou = ad_ou(samba_ad, names)
    users = ad_bulk(samba_ad, ou, names.prefix, 3)
    (deep, deep_dn), (direct, direct_dn), (outside, _) = users.items()
    low = ad_group(samba_ad, ou, names("low"), [deep_dn])
    mid = ad_group(samba_ad, ou, names("mid"), [low])
    seat = ad_group(samba_ad, ou, names("seat"), [mid, direct_dn])
    flat = installation(install, db_url, samba_ad, ou, seat_groups=(seat,))
    assert make_sync(flat).run(reader(flat)).seats_granted == [direct]

    app = install.reopen(flat, samba_config(samba_ad, ou, seat_groups=(seat,), nested_groups=True))
    report = make_sync(app).run(reader(app), full=True)
    assert report.seats_granted == [deep]
    assert seat_logins(app) == {deep, direct}
    assert outside not in seat_logins(app)
    assert groups_of(app, deep) == {low.lower(), mid.lower(), seat.lower()}


def test_a_group_cycle_ends_the_expansion(
    samba_ad: SambaAD, names: UniqueNames, install: Installer, db_url: str
) -> None:
    ou = ad_ou(samba_ad, names)
    [(user, user_dn)] = ad_bulk(samba_ad, ou, names.prefix, 1).items()
    first = ad_group(samba_ad, ou, names("ring1"), [user_dn])
    second = ad_group(samba_ad, ou, names("ring2"), [first])
    result = members(samba_ad, first, add=[second])
    if result["result"] != 0:
        pytest.skip(f"this domain controller refuses a group cycle: {result['description']}")
    top = ad_group(samba_ad, ou, names("top"), [second])
    app = installation(install, db_url, samba_ad, ou, seat_groups=(top,), nested_groups=True)
    report = make_sync(app).run(reader(app))
    assert report.seats_granted == [user]
    assert groups_of(app, user) == {first.lower(), second.lower(), top.lower()}


def test_leaving_the_group_revokes_in_exclusive_mode_only_and_pinned_seats_stay(
    samba_ad: SambaAD, names: UniqueNames, install: Installer, db_url: str
) -> None:
    ou = ad_ou(samba_ad, names)
    users = ad_bulk(samba_ad, ou, names.prefix, 4)
    logins, dns = list(users), list(users.values())
    seat = ad_group(samba_ad, ou, names("seat"), dns)
    app = installation(
        install,
        db_url,
        samba_ad,
        ou,
        seat_groups=(seat,),
        seat_groups_mode="exclusive",
        max_disable_ratio=1.0,
    )
    sync = make_sync(app)
    assert sorted(sync.run(reader(app)).seats_granted) == sorted(logins)
    app.ledger.set_pinned(app.accounts.get(logins[1]).id, True, actor="test")
    grant = make_sync(app, seat_groups_mode="grant")

    assert members(samba_ad, seat, delete=dns[0:2])["result"] == 0
    # Grant mode keeps the seat; the group left is stored, so exclusive mode
    # takes it at its next run even though nothing changed in between.
    assert grant.run(reader(app)).seats_revoked == []
    assert seat_logins(app) == set(logins)
    report = sync.run(reader(app))

    assert (report.seats_revoked, report.seats_kept_pinned) == ([logins[0]], [logins[1]])
    assert seat_logins(app) == set(logins[1:])


def test_revocations_past_the_limit_need_confirmation(
    samba_ad: SambaAD, names: UniqueNames, install: Installer, db_url: str
) -> None:
    ou = ad_ou(samba_ad, names)
    users = ad_bulk(samba_ad, ou, names.prefix, 10)
    dns = list(users.values())
    seat = ad_group(samba_ad, ou, names("seat"), dns)
    app = installation(
        install, db_url, samba_ad, ou, seat_groups=(seat,), seat_groups_mode="exclusive"
    )
    sync = make_sync(app)
    sync.run(reader(app))
    members(samba_ad, seat, delete=dns[0:2])  # 2 of 10 > 10 %
    before = snapshot(app)
    with pytest.raises(SeatRevocationSafetyStop, match="--confirm-seat-revocations 2"):
        sync.run(reader(app))
    assert snapshot(app) == before
    report = sync.run(reader(app), confirm_seat_revocations=2)
    assert sorted(report.seats_revoked) == sorted(list(users)[0:2])


def test_admin_groups_grant_and_revoke_admin_and_guard_the_last_admin(
    samba_ad: SambaAD, names: UniqueNames, install: Installer, db_url: str
) -> None:
    ou = ad_ou(samba_ad, names)
    (first, first_dn), (second, second_dn) = ad_bulk(samba_ad, ou, names.prefix, 2).items()
    admin_group = ad_group(samba_ad, ou, names("adm"), [first_dn])
    team = ad_group(samba_ad, ou, names("team"), [second_dn])
    app = installation(
        install,
        db_url,
        samba_ad,
        ou,
        admin_groups=(admin_group,),
        nested_groups=True,
        max_disable_ratio=1.0,
    )
    sync = make_sync(app)
    assert sync.run(reader(app)).admins_granted == [first]

    # second becomes an admin through `team`, nested in the admin group.
    members(samba_ad, admin_group, add=[team], delete=[first_dn])
    report = sync.run(reader(app))
    assert (report.admins_granted, report.admins_revoked) == ([second], [first])

    members(samba_ad, admin_group, delete=[team])
    before = snapshot(app)
    with pytest.raises(LastAdminStop, match=second):
        sync.run(reader(app))
    assert snapshot(app) == before
    assert admins(app) == {second}
