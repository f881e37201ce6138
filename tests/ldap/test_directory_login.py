"""Directory logins through the gate: `app.gate.decide(login, password)` binds as the user's DN.

Against the real servers: AD's answers (52e wrong password, 533 disabled), the
OpenLDAP empty-password trap (DN + "" is an anonymous *success* there), and
hostile login texts that a naive filter ``(uid=<login>)`` would turn into a
match on someone else.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest
from ldap3 import SUBTREE

from seatgate.adapters.ldap import LdapDirectory
from seatgate.gate.decision import Reason
from seatgate.storage.schema import audit_events
from tests.ldap.conftest import UniqueNames
from tests.ldap.product import (
    PASSWORD,
    Installer,
    ad_bulk,
    ad_ou,
    ad_set_disabled,
    ldap_config,
    make_sync,
    ol_add_people,
    ol_container,
    openldap_config,
    reader,
    refused,
    samba_config,
    seat_logins,
    tag_filter,
)
from tests.ldap.servers import OpenLDAP, SambaAD

# Login texts that are LDAP filter syntax. Every test directory holds an
# `admin` (or a user the wildcard would match) with PASSWORD.
HOSTILE_LOGINS = [
    "*",
    "*)(uid=*",
    "admin)(|(uid=*",
    "admin*",
    "*)(sAMAccountName=*",
    "admin)(|(sAMAccountName=*",
    "\\",
    "\\2a",
    "\x00",
    "admin\x00",
]


def login_events(app: Any) -> list[dict[str, Any]]:
    from sqlalchemy import select

    query = select(audit_events).where(audit_events.c.action == "login")
    return app.db.read(lambda conn: [dict(r._mapping) for r in conn.execute(query)])


# --------------------------------------------------------------------------- Samba AD


@pytest.mark.parametrize("transport", ["starttls", "ldaps"])
def test_ad_login_right_wrong_and_disabled(
    samba_ad: SambaAD,
    names: UniqueNames,
    install: Installer,
    sqlite_url: str,
    transport: str,
) -> None:
    ou = ad_ou(samba_ad, names)
    users = ad_bulk(samba_ad, ou, names.prefix, 10)
    app = install(
        sqlite_url,
        samba_config(samba_ad, ou, transport=transport),
        service_password=samba_ad.admin_password,
    )
    make_sync(app).run(reader(app))
    alice, bob, carol = (names.prefix + n for n in ("00000", "00001", "00002"))

    # Right password: allowed, and the first login claims a seat.
    first = app.gate.decide(alice, PASSWORD)
    assert first.allowed
    assert first.seat_claimed
    assert first.account is not None
    assert first.account.dn == users[alice]
    # Logins are compared normalised: the same account in capitals.
    again = app.gate.decide(alice.upper(), PASSWORD)
    assert again.allowed
    assert not again.seat_claimed
    assert seat_logins(app) == {alice}
    # Audited as directory logins (the bind verified the password).
    methods = [
        json.loads(e["details"])["method"] for e in login_events(app) if e["outcome"] == "allowed"
    ]
    assert methods == ["directory", "directory"]

    # Wrong password (AD: data 52e): invalid_credentials, no account disclosed, no seat.
    wrong = app.gate.decide(bob, PASSWORD + "x")
    assert refused(wrong, Reason.INVALID_CREDENTIALS)
    assert wrong.account is None
    assert seat_logins(app) == {alice}

    # Disabled in AD, not yet synced: the bind says data 533 -> account_disabled ...
    ad_set_disabled(samba_ad, [users[carol]])
    blocked = app.gate.decide(carol, PASSWORD)
    assert refused(blocked, Reason.ACCOUNT_DISABLED)
    # ... but only with the right password: a guess learns nothing (AD: 52e).
    assert refused(app.gate.decide(carol, "a-guess"), Reason.INVALID_CREDENTIALS)
    assert seat_logins(app) == {alice}
    details = [e["details"] for e in login_events(app) if e["outcome"] == "account_disabled"]
    assert len(details) == 1
    assert "the account is disabled" in str(details[0])

    # After the sync the account is disabled in seatgate too: still no seat.
    report = make_sync(app).run(reader(app))
    assert report.disabled == [carol]
    assert refused(app.gate.decide(carol, PASSWORD), Reason.ACCOUNT_DISABLED)
    assert seat_logins(app) == {alice}


def test_ad_login_with_a_wrong_ca_is_directory_unavailable_and_never_falls_back(
    samba_ad: SambaAD, names: UniqueNames, install: Installer, sqlite_url: str
) -> None:
    ou = ad_ou(samba_ad, names)
    ad_bulk(samba_ad, ou, names.prefix, 3)
    app = install(sqlite_url, samba_config(samba_ad, ou), service_password=samba_ad.admin_password)
    make_sync(app).run(reader(app))
    login = names.prefix + "00001"
    untrusting = install.reopen(app, replace(ldap_config(app), ca_file=samba_ad.other_ca_file))

    decision = untrusting.gate.decide(login, PASSWORD)

    assert refused(decision, Reason.DIRECTORY_UNAVAILABLE)
    assert seat_logins(app) == set()
    assert app.gate.decide(login, PASSWORD).allowed  # the same login with the right CA


def test_ad_hostile_logins_are_refused_and_match_no_entry(
    samba_ad: SambaAD, names: UniqueNames, install: Installer, sqlite_url: str
) -> None:
    ou = ad_ou(samba_ad, names)
    ad_bulk(samba_ad, ou, names.prefix, 3)
    # `admin` is unique in the domain: this is the only test that creates it.
    admin_dn = samba_ad.create_user("admin", PASSWORD, ou=ou.split(",", 1)[0])
    app = install(sqlite_url, samba_config(samba_ad, ou), service_password=samba_ad.admin_password)
    make_sync(app).run(reader(app))
    # A naive filter would match: the wildcard finds all four, `admin*` finds admin.
    conn = samba_ad.connect()
    try:
        for naive, expected in (("(sAMAccountName=*)", 4), ("(sAMAccountName=admin*)", 1)):
            conn.search(ou, naive, SUBTREE, attributes=["sAMAccountName"])
            found = [str(e["dn"]) for e in conn.response if e.get("type") == "searchResEntry"]
            assert len(found) == expected
            assert admin_dn in found
    finally:
        conn.unbind()

    for login in HOSTILE_LOGINS:
        decision = app.gate.decide(login, PASSWORD)
        assert refused(decision, Reason.INVALID_CREDENTIALS), repr(login)
        assert decision.account is None, repr(login)
    assert seat_logins(app) == set()
    assert app.ledger.used() == 0

    # The real `admin` logs in with the same password.
    assert app.gate.decide("admin", PASSWORD).seat_claimed
    assert seat_logins(app) == {"admin"}


# --------------------------------------------------------------------------- OpenLDAP


def test_openldap_empty_password_is_refused_although_the_server_accepts_it(
    openldap: OpenLDAP, names: UniqueNames, install: Installer, sqlite_url: str
) -> None:
    uid = names("jane")
    dn = openldap.add_user(uid, PASSWORD)
    app = install(
        sqlite_url,
        openldap_config(openldap, tag_filter(names)),
        service_password=openldap.service_password,
    )
    assert make_sync(app).run(reader(app)).created == [uid]
    account = app.accounts.get(uid)
    assert account.dn == dn

    # The trap: this server answers DN + empty password with an anonymous success.
    whoami = openldap.ldapwhoami(dn, "")
    assert whoami.returncode == 0, whoami.stderr
    assert whoami.stdout.strip() == "anonymous"

    for password in ("", "   ", "\t"):
        decision = app.gate.decide(uid, password)
        assert refused(decision, Reason.INVALID_CREDENTIALS), repr(password)
        assert decision.account is None
    verifier = app.verifiers["ldap"]
    assert isinstance(verifier, LdapDirectory)
    assert verifier.verify(account, "") is False
    assert verifier.verify(account, "   ") is False
    assert seat_logins(app) == set()

    # Right password: allowed; wrong: refused.
    assert refused(app.gate.decide(uid, "wrong-pw"), Reason.INVALID_CREDENTIALS)
    assert app.gate.decide(uid, PASSWORD).seat_claimed
    assert seat_logins(app) == {uid}


def test_openldap_disabled_attribute_refuses_the_login_without_a_seat(
    openldap: OpenLDAP, names: UniqueNames, install: Installer, sqlite_url: str
) -> None:
    kept, gone = names("kept"), names("gone")
    for uid in (kept, gone):
        openldap.add_user(uid, PASSWORD)
    app = install(
        sqlite_url,
        openldap_config(
            openldap,
            tag_filter(names),
            disabled_attribute="employeeType",
            disabled_values=("disabled",),
        ),
        service_password=openldap.service_password,
    )
    sync = make_sync(app, max_disable_ratio=1.0)
    sync.run(reader(app))
    assert app.gate.decide(gone, PASSWORD).seat_claimed

    openldap.modify(gone, {"employeeType": "disabled"})
    openldap.modify(kept, {"employeeType": "staff"})  # another value: still enabled
    report = sync.run(reader(app))

    assert report.disabled == [gone]
    assert report.seats_freed == [gone]
    # OpenLDAP itself still accepts the bind: seatgate's own status refuses it.
    assert openldap.ldapwhoami(openldap.user_dn(gone), PASSWORD).returncode == 0
    assert refused(app.gate.decide(gone, PASSWORD), Reason.ACCOUNT_DISABLED)
    assert app.gate.decide(kept, PASSWORD).seat_claimed
    assert seat_logins(app) == {kept}


def test_openldap_hostile_logins_are_refused_and_match_no_entry(
    openldap: OpenLDAP, names: UniqueNames, install: Installer, sqlite_url: str
) -> None:
    container = ol_container(openldap, names)
    people = ol_add_people(openldap, container, ["admin", "*", "bob", "carol"])
    app = install(
        sqlite_url,
        openldap_config(openldap, "(objectClass=inetOrgPerson)", base_dn=container),
        service_password=openldap.service_password,
    )
    assert len(make_sync(app).run(reader(app)).created) == 4
    # A naive filter would match: (uid=*) finds every entry, (uid=admin*) finds admin.
    conn = openldap.connect(openldap.service_dn, openldap.service_password)
    try:
        conn.search(container, "(uid=*)", SUBTREE, attributes=["uid"])
        assert len(conn.entries) == 4
        conn.search(container, "(uid=admin*)", SUBTREE, attributes=["uid"])
        assert [e.entry_dn for e in conn.entries] == [people["admin"]]
    finally:
        conn.unbind()

    for login in HOSTILE_LOGINS:
        if login == "*":
            continue  # a real user is called `*` here: see below
        decision = app.gate.decide(login, PASSWORD)
        assert refused(decision, Reason.INVALID_CREDENTIALS), repr(login)
        assert decision.account is None, repr(login)
    assert seat_logins(app) == set()

    # `*` is only the user literally called `*` (its own DN, its own password).
    star = app.gate.decide("*", PASSWORD)
    assert star.allowed
    assert star.account is not None
    assert star.account.dn == people["*"]
    assert seat_logins(app) == {"*"}
    assert refused(app.gate.decide("*", "not-the-password"), Reason.INVALID_CREDENTIALS)
    assert app.gate.decide("admin", PASSWORD).seat_claimed
    assert seat_logins(app) == {"*", "admin"}
