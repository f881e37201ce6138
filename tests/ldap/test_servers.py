"""The directory-server fixtures behave like the directories seatgate will meet.

Real servers, real ldap3 connections, TLS validation always on. These tests pin
the behaviour the product's sync and login tests rely on (error codes, GUIDs,
uSNs, paging, the anonymous-bind trap).
"""

from __future__ import annotations

import re
import shutil
import ssl
import subprocess
import uuid
from typing import Any

import pytest
from ldap3 import BASE, NONE, SIMPLE, SUBTREE, Connection, Server
from ldap3.core.exceptions import (
    LDAPException,
    LDAPInvalidCredentialsResult,
    LDAPNoSuchObjectResult,
    LDAPPasswordIsMandatoryError,
    LDAPSocketOpenError,
    LDAPStartTLSError,
    LDAPStrongerAuthRequiredResult,
)
from ldap3.utils.conv import escape_bytes

from tests.ldap.conftest import LIMITED_SIZE, UniqueNames
from tests.ldap.servers import OpenLDAP, SambaAD

AD_USERS = SambaAD.person_filter


def entries(conn: Connection) -> list[dict[str, Any]]:
    """The searchResEntry results of the last search (Samba adds searchResRef referrals)."""
    return [item for item in conn.response if item.get("type") == "searchResEntry"]


def raw_one(conn: Connection, dn: str, attribute: str) -> bytes:
    conn.search(dn, "(objectClass=*)", BASE, attributes=[attribute])
    [entry] = entries(conn)
    [value] = entry["raw_attributes"][attribute]
    return bytes(value)


# --------------------------------------------------------------------------- Samba AD


@pytest.mark.parametrize("ldaps", [True, False], ids=["ldaps-636", "starttls-389"])
def test_samba_tls_bind_validates_against_the_test_ca(samba_ad: SambaAD, ldaps: bool) -> None:
    conn = samba_ad.connect(ldaps=ldaps)  # Tls(validate=CERT_REQUIRED, ca_certs_file=CA)
    try:
        assert conn.bound
        assert conn.server.tls.validate == ssl.CERT_REQUIRED
        assert str(conn.server.tls.ca_certs_file) == str(samba_ad.ca_file)
        if ldaps:
            assert conn.server.ssl
        else:
            assert conn.tls_started
        conn.search("", "(objectClass=*)", BASE, attributes=["defaultNamingContext"])
        assert conn.entries[0].defaultNamingContext.value == samba_ad.base_dn
    finally:
        conn.unbind()


@pytest.mark.parametrize(
    ("ldaps", "error"),
    [(True, LDAPSocketOpenError), (False, LDAPStartTLSError)],
    ids=["ldaps-636", "starttls-389"],
)
def test_samba_tls_with_an_unrelated_ca_is_refused(
    samba_ad: SambaAD, ldaps: bool, error: type[LDAPException]
) -> None:
    with pytest.raises(error, match="CERTIFICATE_VERIFY_FAILED"):
        samba_ad.connect(ldaps=ldaps, ca_file=samba_ad.other_ca_file)


def test_samba_refuses_a_simple_bind_without_tls(samba_ad: SambaAD) -> None:
    conn = Connection(
        Server(samba_ad.host, port=389, get_info=NONE),
        user=samba_ad.admin_upn,
        password=samba_ad.admin_password,
        authentication=SIMPLE,
    )
    assert not conn.bind()
    assert conn.result["result"] == 8
    assert conn.result["description"] == "strongerAuthRequired"
    assert "Transport encryption required" in conn.result["message"]
    conn.unbind()
    with pytest.raises(LDAPStrongerAuthRequiredResult):
        Connection(
            Server(samba_ad.host, port=389, get_info=NONE),
            user=samba_ad.admin_upn,
            password=samba_ad.admin_password,
            authentication=SIMPLE,
            raise_exceptions=True,
        ).bind()


def test_samba_user_binds_by_upn_dn_and_down_level_name(
    samba_ad: SambaAD, names: UniqueNames
) -> None:
    name = names("alice")
    dn = samba_ad.create_user(name, "Alice-pw-1", given="Alice", surname="Liddell", mail="a@x.test")
    assert dn == f"CN=Alice Liddell,{samba_ad.users_dn}"
    for login in (f"{name}@SEATGATE.TEST", dn, f"SEATGATE\\{name}"):
        conn = samba_ad.connect(login, "Alice-pw-1", ldaps=False)
        assert conn.bound, login
        conn.unbind()
    attributes = samba_ad.user_attributes(name, ["userAccountControl", "mail", "givenName"])
    assert attributes == {
        "userAccountControl": [b"512"],
        "mail": [b"a@x.test"],
        "givenName": [b"Alice"],
    }
    # Bare sAMAccountName is not a bind name (AD: data 52e).
    with pytest.raises(LDAPInvalidCredentialsResult, match="data 52e"):
        samba_ad.connect(name, "Alice-pw-1")


def test_samba_wrong_password_is_invalid_credentials_52e(
    samba_ad: SambaAD, names: UniqueNames
) -> None:
    name = names("bob")
    samba_ad.create_user(name, "Bob-pw-1")
    with pytest.raises(LDAPInvalidCredentialsResult, match="data 52e") as caught:
        samba_ad.connect(samba_ad.upn(name), "not-the-password")
    assert caught.value.result == 49


def test_samba_disabled_user_is_533_until_enabled(samba_ad: SambaAD, names: UniqueNames) -> None:
    name = names("carol")
    samba_ad.create_user(name, "Carol-pw-1")
    samba_ad.disable_user(name)
    assert samba_ad.user_attributes(name, ["userAccountControl"]) == {
        "userAccountControl": [b"514"]
    }
    with pytest.raises(LDAPInvalidCredentialsResult, match="data 533"):
        samba_ad.connect(samba_ad.upn(name), "Carol-pw-1")
    # The AD bitwise filter finds disabled accounts.
    disabled = samba_ad.find(f"(&{AD_USERS}(userAccountControl:1.2.840.113556.1.4.803:=2))")
    assert samba_ad.user_dn(name) in {str(e["dn"]) for e in disabled}

    samba_ad.enable_user(name)
    samba_ad.connect(samba_ad.upn(name), "Carol-pw-1").unbind()


def test_samba_set_password_and_delete(samba_ad: SambaAD, names: UniqueNames) -> None:
    name = names("dave")
    samba_ad.create_user(name, "Dave-pw-1")
    samba_ad.set_password(name, "Dave-pw-2")
    with pytest.raises(LDAPInvalidCredentialsResult, match="data 52e"):
        samba_ad.connect(samba_ad.upn(name), "Dave-pw-1")
    samba_ad.connect(samba_ad.upn(name), "Dave-pw-2").unbind()

    samba_ad.delete_user(name)
    assert samba_ad.find(f"(sAMAccountName={name})") == []
    with pytest.raises(LDAPInvalidCredentialsResult):
        samba_ad.connect(samba_ad.upn(name), "Dave-pw-2")


def test_samba_object_guid_is_bytes_le_and_survives_a_rename(
    samba_ad: SambaAD, names: UniqueNames
) -> None:
    old, new = names("erin"), names("erin")
    dn = samba_ad.create_user(old, "Erin-pw-1")
    conn = samba_ad.connect()
    try:
        raw = raw_one(conn, dn, "objectGUID")
        assert len(raw) == 16
        guid = uuid.UUID(bytes_le=raw)
        # The GUID in an LDAP filter: the raw bytes, escaped.
        conn.search(
            samba_ad.base_dn, f"(objectGUID={escape_bytes(raw)})", SUBTREE, attributes=["cn"]
        )
        assert [str(e["dn"]) for e in entries(conn)] == [dn]
        # <GUID=...> works as a search base too.
        conn.search(f"<GUID={guid}>", "(objectClass=*)", BASE, attributes=["sAMAccountName"])
        assert entries(conn)[0]["attributes"]["sAMAccountName"] == [old]

        new_dn = samba_ad.rename_user(old, new, new_cn=f"Erin {new}")
        assert new_dn == f"CN=Erin {new},{samba_ad.users_dn}" != dn
        assert uuid.UUID(bytes_le=raw_one(conn, new_dn, "objectGUID")) == guid
        conn.search(
            new_dn, "(objectClass=*)", BASE, attributes=["sAMAccountName", "userPrincipalName"]
        )
        attributes = entries(conn)[0]["attributes"]
        # Without schema (get_info=NONE) ldap3 returns every attribute as a list.
        assert attributes["sAMAccountName"] == [new]
        assert attributes["userPrincipalName"] == [f"{new}@seatgate.test"]
    finally:
        conn.unbind()
    samba_ad.connect(samba_ad.upn(new), "Erin-pw-1").unbind()
    with pytest.raises(LDAPInvalidCredentialsResult):
        samba_ad.connect(samba_ad.upn(old), "Erin-pw-1")


def test_samba_usn_changed_increases_on_modify(samba_ad: SambaAD, names: UniqueNames) -> None:
    name = names("frank")
    dn = samba_ad.create_user(name, "Frank-pw-1")
    conn = samba_ad.connect()
    try:
        before = int(raw_one(conn, dn, "uSNChanged"))
        samba_ad.modify(name, {"mail": f"{name}@new.example"})
        assert raw_one(conn, dn, "mail") == f"{name}@new.example".encode()
        after = int(raw_one(conn, dn, "uSNChanged"))
        assert after > before
        conn.search(
            samba_ad.base_dn, f"(&{AD_USERS}(uSNChanged>={after}))", SUBTREE, attributes=["cn"]
        )
        assert dn in {str(e["dn"]) for e in entries(conn)}
        samba_ad.disable_user(name)  # a disable is a change too
        assert int(raw_one(conn, dn, "uSNChanged")) > after
    finally:
        conn.unbind()


def test_samba_groups_and_member_of(samba_ad: SambaAD, names: UniqueNames) -> None:
    user, group = names("gina"), names("grp")
    user_dn = samba_ad.create_user(user, "Gina-pw-1")
    group_dn = samba_ad.create_group(group)
    samba_ad.add_members(group, [user])
    conn = samba_ad.connect()
    try:
        conn.search(user_dn, "(objectClass=*)", BASE, attributes=["memberOf"])
        assert entries(conn)[0]["attributes"]["memberOf"] == [group_dn]
        conn.search(group_dn, "(objectClass=*)", BASE, attributes=["member"])
        assert entries(conn)[0]["attributes"]["member"] == [user_dn]
        samba_ad.remove_members(group, [user])
        conn.search(user_dn, "(objectClass=*)", BASE, attributes=["memberOf"])
        assert entries(conn)[0]["attributes"]["memberOf"] == []
    finally:
        conn.unbind()


def test_samba_bulk_users_come_back_complete_in_three_pages(
    samba_ad: SambaAD, names: UniqueNames
) -> None:
    created = samba_ad.create_users_bulk(names.prefix, 1200, "Bulk-pw-1")
    assert len(created) == 1200

    conn = samba_ad.connect(ldaps=False)
    found: list[str] = []
    pages = 0
    cookie: bytes | None = None
    try:
        while True:
            conn.search(
                samba_ad.base_dn,
                f"(&{AD_USERS}(sAMAccountName={names.prefix}*))",
                SUBTREE,
                attributes=["sAMAccountName", "userAccountControl"],
                paged_size=500,
                paged_cookie=cookie,
            )
            pages += 1
            page = entries(conn)
            assert len(page) <= 500
            found += [e["attributes"]["sAMAccountName"][0] for e in page]
            assert {e["attributes"]["userAccountControl"][0] for e in page} == {"512"}
            cookie = conn.result["controls"]["1.2.840.113556.1.4.319"]["value"]["cookie"]
            if not cookie:
                break
    finally:
        conn.unbind()
    assert pages == 3
    assert sorted(found) == created
    for name in (created[0], created[-1]):
        samba_ad.connect(samba_ad.upn(name), "Bulk-pw-1").unbind()
    with pytest.raises(LDAPInvalidCredentialsResult, match="data 52e"):
        samba_ad.connect(samba_ad.upn(created[1]), "Bulk-pw-2")


# --------------------------------------------------------------------------- OpenLDAP


def test_openldap_service_account_binds_with_starttls_and_the_test_ca(
    openldap: OpenLDAP,
) -> None:
    conn = openldap.connect(openldap.service_dn, openldap.service_password)
    try:
        assert conn.tls_started
        assert conn.server.tls.validate == ssl.CERT_REQUIRED
        assert conn.extend.standard.who_am_i() == f"dn:{openldap.service_dn}"
        conn.search(
            openldap.base_dn, "(objectClass=organizationalUnit)", SUBTREE, attributes=["ou"]
        )
        assert sorted(e.ou.value for e in conn.entries) == ["groups", "people"]
    finally:
        conn.unbind()
    with pytest.raises(LDAPStartTLSError, match="CERTIFICATE_VERIFY_FAILED"):
        openldap.connect(
            openldap.service_dn, openldap.service_password, ca_file=openldap.other_ca_file
        )


def test_openldap_users_bind_read_and_fail_on_wrong_password(
    openldap: OpenLDAP, names: UniqueNames
) -> None:
    hashed, plain = names("hank"), names("ivy")
    openldap.add_user(hashed, "Hank-pw-1", cn="Hank Hill", mail="hank@example.com")
    openldap.add_user(plain, "Ivy-pw-1", mail="ivy@example.com", hash_password=False)
    stored = openldap.entry(openldap.user_dn(hashed), ["userPassword"])["userPassword"]
    assert stored[0].startswith("{SSHA}")
    logins = [
        (hashed, "Hank-pw-1", plain, "ivy@example.com"),
        (plain, "Ivy-pw-1", hashed, "hank@example.com"),
    ]
    for uid, password, other, other_mail in logins:
        conn = openldap.connect(openldap.user_dn(uid), password)
        assert conn.extend.standard.who_am_i() == f"dn:{openldap.user_dn(uid)}"
        # Users read other entries, but not their password hashes.
        conn.search(
            openldap.user_dn(other), "(objectClass=*)", BASE, attributes=["mail", "userPassword"]
        )
        found = conn.entries[0].entry_attributes_as_dict
        assert found["mail"] == [other_mail]
        assert found.get("userPassword") in (None, [])  # absent (ldap3 lists it empty)
        conn.unbind()
    # The service account reads everything.
    svc = openldap.connect(openldap.service_dn, openldap.service_password)
    svc.search(openldap.user_dn(hashed), "(objectClass=*)", BASE, attributes=["userPassword"])
    assert svc.entries[0].userPassword.values == stored
    svc.unbind()
    with pytest.raises(LDAPInvalidCredentialsResult):
        openldap.connect(openldap.user_dn(hashed), "wrong")

    openldap.modify(hashed, {"mail": "hank@new.example", "description": ["x", "y"]})
    after = openldap.entry(openldap.user_dn(hashed), ["mail", "description"])
    assert after == {"mail": ["hank@new.example"], "description": ["x", "y"]}
    openldap.modify(hashed, {"description": None})
    assert openldap.entry(openldap.user_dn(hashed), ["description"]) == {}

    openldap.delete_user(plain)
    with pytest.raises(LDAPNoSuchObjectResult):
        openldap.entry(openldap.user_dn(plain), ["uid"])


def test_openldap_dn_with_empty_password_is_an_anonymous_success(
    openldap: OpenLDAP, names: UniqueNames
) -> None:
    uid = names("jack")
    dn = openldap.add_user(uid, "Jack-pw-1")
    # ldap3 refuses an empty simple-bind password before sending anything ...
    with pytest.raises(LDAPPasswordIsMandatoryError):
        Connection(openldap.server(), user=dn, password="", authentication=SIMPLE).bind()
    # ... but the server accepts DN + empty password as an (anonymous) success:
    # the trap a directory login must refuse before it binds.
    result = openldap.ldapwhoami(dn, "")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "anonymous"
    # With the right password it is the user; with a wrong one it fails.
    assert openldap.ldapwhoami(dn, "Jack-pw-1").stdout.strip() == f"dn:{dn}"
    wrong = openldap.ldapwhoami(dn, "wrong")
    assert wrong.returncode == 49, wrong.stderr


def test_openldap_caps_unpaged_searches_but_not_paged_ones(
    openldap: OpenLDAP, names: UniqueNames
) -> None:
    created = openldap.add_users_bulk(names.prefix, 1200, "Bulk-pw-1")
    conn = openldap.connect(openldap.service_dn, openldap.service_password)
    try:
        query = (openldap.people_dn, f"(uid={names.prefix}*)", SUBTREE)
        conn.search(*query, attributes=["uid"])
        assert len(conn.entries) == 1000
        assert conn.result["result"] == 4  # sizeLimitExceeded (ldap3 does not raise)
        paged = conn.extend.standard.paged_search(
            *query, attributes=["uid"], paged_size=500, generator=False
        )
        assert sorted(e["attributes"]["uid"][0] for e in paged) == created
        assert conn.result["result"] == 0
    finally:
        conn.unbind()
    conn = openldap.connect(openldap.user_dn(created[-1]), "Bulk-pw-1")
    assert conn.bound
    conn.unbind()


def test_openldap_low_size_limit_stops_paged_search_early(
    openldap_limited: OpenLDAP, names: UniqueNames
) -> None:
    server = openldap_limited
    server.add_users_bulk(names.prefix, LIMITED_SIZE + 30, "Bulk-pw-1")
    conn = server.connect(server.service_dn, server.service_password)
    try:
        query = (server.people_dn, f"(uid={names.prefix}*)", SUBTREE)
        conn.search(*query, attributes=["uid"])
        assert (conn.result["result"], len(conn.entries)) == (4, LIMITED_SIZE)
        # ldap3's paged_search stops silently: no exception, fewer entries, code 4.
        paged = conn.extend.standard.paged_search(
            *query, attributes=["uid"], paged_size=20, generator=False
        )
        assert len(paged) == LIMITED_SIZE
        assert conn.result["result"] == 4
        assert conn.result["description"] == "sizeLimitExceeded"
    finally:
        conn.unbind()
    # The rootdn is not limited.
    admin = server.connect()
    admin.search(server.people_dn, f"(uid={names.prefix}*)", SUBTREE, attributes=["uid"])
    assert (admin.result["result"], len(admin.entries)) == (0, LIMITED_SIZE + 30)
    admin.unbind()


def test_openldap_entry_uuid_and_member_of_survive_a_rename(
    openldap: OpenLDAP, names: UniqueNames
) -> None:
    old, new, other, group = names("kim"), names("kim"), names("lee"), names("grp")
    openldap.add_user(old, "Kim-pw-1", cn="Kim Possible")
    openldap.add_user(other, "Lee-pw-1")
    group_dn = openldap.add_group(group, [old, other])

    conn = openldap.connect(openldap.service_dn, openldap.service_password)
    try:
        conn.search(openldap.user_dn(old), "(objectClass=*)", BASE, attributes=["*"])
        assert "memberOf" not in conn.entries[0].entry_attributes_as_dict  # not for "*"
        conn.search(
            openldap.user_dn(old), "(objectClass=*)", BASE, attributes=["entryUUID", "memberOf"]
        )
        before = conn.entries[0]
        assert before.memberOf.values == [group_dn]
        entry_uuid = uuid.UUID(before.entryUUID.value)

        new_dn = openldap.rename_user(old, new)
        conn.search(new_dn, "(objectClass=*)", BASE, attributes=["entryUUID", "memberOf", "uid"])
        after = conn.entries[0]
        assert uuid.UUID(after.entryUUID.value) == entry_uuid
        assert after.uid.values == [new]
        assert after.memberOf.values == [group_dn]
        # refint rewrote the group's member value.
        conn.search(group_dn, "(objectClass=*)", BASE, attributes=["member"])
        assert sorted(conn.entries[0].member.values) == sorted([new_dn, openldap.user_dn(other)])
        openldap.remove_members(group, [other])
        conn.search(group_dn, "(objectClass=*)", BASE, attributes=["member"])
        assert conn.entries[0].member.values == [new_dn]
        conn.search(openldap.user_dn(other), "(objectClass=*)", BASE, attributes=["memberOf"])
        assert conn.entries[0].memberOf.values == []
        # Incremental sync on OpenLDAP: modifyTimestamp (no uSN).
        conn.search(new_dn, "(objectClass=*)", BASE, attributes=["modifyTimestamp"])
        assert re.fullmatch(r"\d{14}Z", conn.entries[0].modifyTimestamp.raw_values[0].decode())
    finally:
        conn.unbind()
    with pytest.raises(LDAPInvalidCredentialsResult):
        openldap.connect(openldap.user_dn(old), "Kim-pw-1")
    openldap.connect(new_dn, "Kim-pw-1").unbind()


def test_openldap_raw_ldapwhoami_validates_the_certificate(openldap: OpenLDAP) -> None:
    """libldap (not only ldap3) trusts the test CA and nothing else."""
    ok = openldap.ldapwhoami(openldap.service_dn, openldap.service_password)
    assert ok.stdout.strip() == f"dn:{openldap.service_dn}", ok.stderr
    refused = subprocess.run(
        [
            shutil.which("ldapwhoami") or "ldapwhoami",
            *("-x", "-ZZ", "-H", openldap.url),
            *("-D", openldap.service_dn, "-w", openldap.service_password),
        ],
        check=False,
        capture_output=True,
        text=True,
        env={"LDAPTLS_CACERT": str(openldap.other_ca_file), "LDAPTLS_REQCERT": "demand"},
    )
    assert refused.returncode != 0
    assert "ldap_start_tls" in refused.stderr
