"""The login forms a directory user types, against the real servers: one account, one DN bound.

``alice``, ``ALICE``, ``alice@<suffix>`` (UPN) and ``<NETBIOS>\\alice``
(down-level) all reach the same stored account, and the bind is always as
the DN the sync stored. Shown with forms the server itself would refuse as a
bind name: a configured UPN suffix Samba does not know, a NetBIOS name that
is not Samba's, and on OpenLDAP (which knows no UPN at all) an entry whose
DN holds no part of the login. Every bind is recorded by wrapping the
adapter's ``open_connection``.
"""

from __future__ import annotations

from typing import Any

import pytest
from ldap3.core.exceptions import LDAPException

import seatgate.adapters.ldap as adapter
from seatgate.adapters.ldap_servers import open_connection
from seatgate.gate.decision import Reason
from tests.ldap.conftest import UniqueNames
from tests.ldap.product import (
    PASSWORD,
    Installer,
    ad_bulk,
    ad_ou,
    make_sync,
    ol_container,
    openldap_config,
    reader,
    refused,
    samba_config,
    seat_logins,
    tag_filter,
)
from tests.ldap.servers import OpenLDAP, SambaAD, ssha

FOREIGN = [
    "{name}@other.example",
    "OTHER\\{name}",
    "{name}@",
    "\\{name}",
    "{name}@corp.example.evil",
]


@pytest.fixture
def binds(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The bind name of every connection the adapter opens."""
    names: list[str] = []

    def recording(config: Any, url: str, user: str, password: str) -> Any:
        names.append(user)
        return open_connection(config, url, user, password)

    monkeypatch.setattr(adapter, "open_connection", recording)
    return names


def user_binds(binds: list[str]) -> list[str]:
    # Decoy binds (a DN no entry has) are not a user's.
    return [name for name in binds if "seatgate-decoy-" not in name]


def assert_forms_reach(app: Any, forms: list[str], dn: str, binds: list[str]) -> None:
    for typed in forms:
        binds.clear()
        decision = app.gate.decide(typed, PASSWORD)
        assert decision.allowed, typed
        assert decision.account is not None and decision.account.dn == dn, typed
        assert user_binds(binds) == [dn], typed


def assert_refused_without_a_user_bind(app: Any, forms: list[str], binds: list[str]) -> None:
    for typed in forms:
        binds.clear()
        decision = app.gate.decide(typed, PASSWORD)
        assert refused(decision, Reason.INVALID_CREDENTIALS), typed
        assert decision.account is None, typed
        # The unknown-login path: no user bind, one decoy bind at a bind's cost.
        assert user_binds(binds) == [], typed
        assert len(binds) == 1, typed


# --------------------------------------------------------------------------- Samba AD


def test_ad_login_forms_reach_one_account_and_bind_as_its_dn(
    samba_ad: SambaAD, names: UniqueNames, install: Installer, db_url: str, binds: list[str]
) -> None:
    ou = ad_ou(samba_ad, names)
    users = ad_bulk(samba_ad, ou, names.prefix, 2)
    app = install(db_url, samba_config(samba_ad, ou), service_password=samba_ad.admin_password)
    make_sync(app).run(reader(app))
    alice = names.prefix + "00000"

    # Defaults: the UPN suffix and NetBIOS name come from base_dn (seatgate.test, SEATGATE).
    defaults = [alice, alice.upper(), f"{alice}@seatgate.test", f"{alice.upper()}@SEATGATE.TEST",
                f"SEATGATE\\{alice}", f"seatgate\\{alice.upper()}"]  # fmt: skip
    assert_forms_reach(app, defaults, users[alice], binds)
    assert seat_logins(app) == {alice}
    assert_refused_without_a_user_bind(app, [f.format(name=alice) for f in FOREIGN], binds)


def test_ad_configured_forms_the_dc_would_refuse_still_bind_as_the_stored_dn(
    samba_ad: SambaAD, names: UniqueNames, install: Installer, sqlite_url: str, binds: list[str]
) -> None:
    ou = ad_ou(samba_ad, names)
    users = ad_bulk(samba_ad, ou, names.prefix, 2)
    config = samba_config(samba_ad, ou, upn_suffixes=("corp.example",), netbios_domain="CORP")
    app = install(sqlite_url, config, service_password=samba_ad.admin_password)
    make_sync(app).run(reader(app))
    alice = names.prefix + "00001"
    # Samba knows neither name: a bind built from the typed text would fail.
    for name in (f"{alice}@corp.example", f"CORP\\{alice}"):
        with pytest.raises(LDAPException):
            samba_ad.connect(name, PASSWORD).unbind()

    assert_forms_reach(app, [f"{alice}@corp.example", f"corp\\{alice}"], users[alice], binds)
    # Only the configured suffix and domain count: Samba's own are foreign here.
    assert_refused_without_a_user_bind(app, [f"{alice}@seatgate.test", f"SEATGATE\\{alice}"], binds)


# --------------------------------------------------------------------------- OpenLDAP


def test_openldap_login_forms_bind_as_a_dn_that_holds_no_part_of_the_login(
    openldap: OpenLDAP, names: UniqueNames, install: Installer, db_url: str, binds: list[str]
) -> None:
    parent = ol_container(openldap, names)
    uid = names("dana")
    dn = f"cn=Dana Smith {names.tag},{parent}"
    conn = openldap.connect()
    try:
        attributes = {"uid": uid, "cn": f"Dana Smith {names.tag}", "sn": "Smith"}
        conn.add(dn, ["inetOrgPerson"], {**attributes, "userPassword": ssha(PASSWORD)})
    finally:
        conn.unbind()
    app = install(
        db_url,
        openldap_config(openldap, tag_filter(names)),
        service_password=openldap.service_password,
    )
    assert make_sync(app).run(reader(app)).created == [uid]

    forms = [uid, uid.upper(), f"{uid}@seatgate.test", f"{uid}@SEATGATE.test", f"SEATGATE\\{uid}"]
    assert_forms_reach(app, forms, dn, binds)
    assert seat_logins(app) == {uid}
    assert_refused_without_a_user_bind(app, [f.format(name=uid) for f in FOREIGN], binds)
    # A wrong password in any form is a wrong password.
    wrong = app.gate.decide(f"SEATGATE\\{uid}", PASSWORD + "x")
    assert refused(wrong, Reason.INVALID_CREDENTIALS)


def test_openldap_a_stored_login_that_looks_like_a_upn_wins_over_the_directory_form(
    openldap: OpenLDAP, names: UniqueNames, install: Installer, sqlite_url: str, binds: list[str]
) -> None:
    parent = ol_container(openldap, names)
    uid = names("zed")
    conn = openldap.connect()
    dn = f"uid={uid},{parent}"
    try:
        conn.add(dn, ["inetOrgPerson"], {"uid": uid, "cn": uid, "sn": uid,
                                          "userPassword": ssha(PASSWORD)})  # fmt: skip
    finally:
        conn.unbind()
    app = install(
        sqlite_url,
        openldap_config(openldap, tag_filter(names)),
        service_password=openldap.service_password,
    )
    make_sync(app).run(reader(app))
    local = app.accounts.add(f"{uid}@seatgate.test", password="Local-pw-1", actor="test")

    # The typed text is the local account's login: that account, its own password.
    typed = f"{uid}@seatgate.test"
    assert refused(app.gate.decide(typed, PASSWORD), Reason.INVALID_CREDENTIALS)
    allowed = app.gate.decide(typed, "Local-pw-1")
    assert allowed.allowed and allowed.account is not None
    assert allowed.account.id == local.id
    # The down-level form and the bare name still reach the directory account.
    assert_forms_reach(app, [f"SEATGATE\\{uid}", uid], dn, binds)
