"""The ldap3 adapter against a scripted connection: result codes, paging, ranges, AD sub-codes.

What a real server does is covered in tests/ldap/; these pin down the cases
a test server cannot easily produce (AD's 1,000-entry cap, ranged values).
"""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from seatgate.adapters import ldap as adapter
from seatgate.config.ldap import LdapConfig, parse_ldap
from seatgate.config.parse import Section
from seatgate.errors import (
    ConfigError,
    DirectoryAccountBlocked,
    DirectorySearchIncomplete,
)
from seatgate.records import Account

AD = LdapConfig(
    url="ldaps://dc1.seatgate.test",
    base_dn="DC=seatgate,DC=test",
    bind_dn="CN=svc,DC=seatgate,DC=test",
    page_size=2,
)


def ad_entry(n: int, uac: int = 512, **extra: list[bytes]) -> dict[str, Any]:
    raw = {
        "sAMAccountName": [f"user{n}".encode()],
        "objectGUID": [uuid.UUID(int=n).bytes_le],
        "userAccountControl": [str(uac).encode()],
        "uSNChanged": [str(1000 + n).encode()],
        **extra,
    }
    return {
        "type": "searchResEntry",
        "dn": f"CN=User {n},DC=seatgate,DC=test",
        "raw_attributes": raw,
    }


class ScriptedConnection:
    """Answers searches from a script of (result code, entries, cookie)."""

    def __init__(self, pages: list[tuple[int, list[dict[str, Any]], bytes | None]]) -> None:
        self.pages = pages
        self.searches: list[dict[str, Any]] = []
        self.result: dict[str, Any] = {}
        self.response: list[dict[str, Any]] = []

    def search(self, base: str, search_filter: str, scope: Any = None, **kwargs: Any) -> bool:
        self.searches.append({"base": base, "filter": search_filter, **kwargs})
        code, entries, cookie = self.pages.pop(0)
        controls = {adapter.PAGED_RESULTS_OID: {"value": {"cookie": cookie}}} if cookie else {}
        self.result = {
            "result": code,
            "description": {0: "success", 4: "sizeLimitExceeded", 9: "partialResults"}.get(code),
            "message": "",
            "controls": controls,
        }
        self.response = entries
        return code == 0


def entries_of(pages: list[tuple[int, list[dict[str, Any]], bytes | None]]) -> list[Any]:
    conn = ScriptedConnection(pages)
    return [entry for entry, _ in adapter.LdapDirectory(AD)._entries(conn, "(objectClass=user)")]  # type: ignore[arg-type]


def test_every_page_is_read_until_the_cookie_is_empty() -> None:
    found = entries_of(
        [
            (0, [ad_entry(1), ad_entry(2)], b"c1"),
            (0, [ad_entry(3), ad_entry(4)], b"c2"),
            (0, [ad_entry(5)], None),
        ]
    )
    assert [e.login for e in found] == ["user1", "user2", "user3", "user4", "user5"]


def test_size_limit_on_a_later_page_aborts_instead_of_losing_users() -> None:
    with pytest.raises(DirectorySearchIncomplete, match="sizeLimitExceeded"):
        entries_of([(0, [ad_entry(1), ad_entry(2)], b"c1"), (4, [ad_entry(3)], None)])


def test_ad_1000_entry_cap_without_paging_aborts() -> None:
    # A server that ignores the paging control stops at 1,000 with code 4.
    capped = [ad_entry(n) for n in range(1000)]
    with pytest.raises(DirectorySearchIncomplete, match="code 4"):
        entries_of([(4, capped, None)])


def test_partial_results_abort() -> None:
    with pytest.raises(DirectorySearchIncomplete, match="partialResults"):
        entries_of([(9, [ad_entry(1)], None)])


def test_referrals_in_the_results_are_skipped_not_followed() -> None:
    referral = {"type": "searchResRef", "uri": ["ldap://other.example/DC=other"]}
    found = entries_of([(0, [ad_entry(1), referral], None)])
    assert [e.login for e in found] == ["user1"]


def test_object_guid_is_read_as_little_endian_bytes() -> None:
    (entry,) = entries_of([(0, [ad_entry(7)], None)])
    assert entry.external_id == str(uuid.UUID(int=7))


def test_user_account_control_bit_2_means_disabled() -> None:
    found = entries_of([(0, [ad_entry(1, uac=514), ad_entry(2, uac=512)], None)])
    assert [e.disabled for e in found] == [True, False]


def test_ranged_member_of_values_are_fetched_to_the_end() -> None:
    first = [f"CN=G{i},DC=seatgate,DC=test".encode() for i in range(1500)]
    rest = [f"CN=G{i},DC=seatgate,DC=test".encode() for i in range(1500, 1600)]
    entry = ad_entry(1, **{"memberOf;range=0-1499": first})
    conn = ScriptedConnection(
        [
            (0, [entry], None),
            (
                0,
                [
                    {
                        "type": "searchResEntry",
                        "dn": entry["dn"],
                        "raw_attributes": {"memberOf;range=1500-*": rest},
                    }
                ],
                None,
            ),
        ]
    )
    (found,) = [e for e, _ in adapter.LdapDirectory(AD)._entries(conn, "(x=y)")]  # type: ignore[arg-type]
    assert len(found.groups) == 1600
    assert conn.searches[1]["attributes"] == ["memberOf;range=1500-*"]


class BindResult:
    def __init__(self, bound: bool, message: str = "", code: int = 49) -> None:
        self.bound = bound
        self.result = {
            "result": 0 if bound else code,
            "description": "invalidCredentials",
            "message": message,
        }

    def unbind(self) -> None:
        return None


def directory_account() -> Account:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    return Account(
        id=1,
        login="ana",
        login_key="ana",
        display_name=None,
        email=None,
        source="ldap",
        status="active",
        is_admin=False,
        created_at=now,
        updated_at=now,
        dn="CN=Ana,DC=seatgate,DC=test",
    )


@pytest.mark.parametrize(
    ("code", "meaning"),
    [
        ("530", "not permitted at this time"),
        ("531", "not permitted from this workstation"),
        ("532", "password has expired"),
        ("533", "disabled"),
        ("701", "account has expired"),
        ("773", "must be changed"),
    ],
)
def test_ad_sub_codes_of_a_right_password_mean_blocked(
    monkeypatch: pytest.MonkeyPatch, code: str, meaning: str
) -> None:
    message = f"80090308: LdapErr: AcceptSecurityContext error, data {code}, v4563"
    monkeypatch.setattr(
        adapter.LdapDirectory, "_connect", lambda self, u, p: BindResult(False, message)
    )
    with pytest.raises(DirectoryAccountBlocked, match=meaning) as blocked:
        adapter.LdapDirectory(AD).verify(directory_account(), "right-password")
    assert blocked.value.code == code


@pytest.mark.parametrize("code", ["52e", "775"])
def test_wrong_password_or_locked_out_is_just_false(
    monkeypatch: pytest.MonkeyPatch, code: str
) -> None:
    # AD answers 775 (locked out) whatever the password: telling it would
    # confirm to a guesser that the account exists.
    message = f"80090308: LdapErr: AcceptSecurityContext error, data {code}, v4563"
    monkeypatch.setattr(
        adapter.LdapDirectory, "_connect", lambda self, u, p: BindResult(False, message)
    )
    assert adapter.LdapDirectory(AD).verify(directory_account(), "wrong") is False


@pytest.mark.parametrize("password", ["", " ", "\t\n"])
def test_empty_password_is_refused_before_any_bind(
    monkeypatch: pytest.MonkeyPatch, password: str
) -> None:
    calls: list[str] = []
    monkeypatch.setattr(adapter.LdapDirectory, "_connect", lambda self, u, p: calls.append(u))
    assert adapter.LdapDirectory(AD).verify(directory_account(), password) is False
    assert calls == []


def ldap_section(**values: object) -> LdapConfig:
    data: dict[str, object] = {
        "url": "ldaps://dc1.example.com",
        "base_dn": "DC=example,DC=com",
        "bind_dn": "CN=svc,DC=example,DC=com",
    }
    data.update(values)
    return parse_ldap(Section(data, "ldap"), Path("."))


def test_plain_ldap_url_needs_start_tls_or_explicit_insecure() -> None:
    with pytest.raises(ConfigError) as error:
        ldap_section(url="ldap://dc1.example.com")
    assert error.value.key == "ldap.url"
    assert ldap_section(url="ldap://dc1.example.com", start_tls=True).start_tls
    assert ldap_section(url="ldap://dc1.example.com", insecure=True).insecure


def test_empty_service_secret_is_a_configuration_error(monkeypatch: pytest.MonkeyPatch) -> None:
    config = ldap_section(bind_password_env="SEATGATE_TEST_SECRET")
    monkeypatch.setenv("SEATGATE_TEST_SECRET", "   ")
    with pytest.raises(ConfigError) as error:
        config.bind_password()
    assert error.value.key == "ldap.bind_password_env"
    monkeypatch.delenv("SEATGATE_TEST_SECRET")
    with pytest.raises(ConfigError):
        config.bind_password()


def test_openldap_preset_and_attribute_overrides() -> None:
    config = ldap_section(preset="openldap", attributes={"login": "mail"})
    assert config.user_filter == "(objectClass=inetOrgPerson)"
    assert config.attributes.login == "mail"
    assert config.attributes.id == "entryUUID"
    with pytest.raises(ConfigError) as error:
        ldap_section(attributes={"logn": "uid"})
    assert error.value.key == "ldap.attributes.logn"


def test_retired_bind_name_key_is_accepted_with_a_warning_and_not_read(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # An older release accepted ldap.attributes.bind_name but never used it:
    # a file that still has it keeps starting, and the admin is told to drop it.
    with caplog.at_level(logging.WARNING, logger="seatgate.config.ldap"):
        config = ldap_section(attributes={"bind_name": "userPrincipalName", "login": "mail"})
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "`ldap.attributes.bind_name` is no longer used" in warnings[0]
    assert "remove it" in warnings[0]
    assert config.attributes.login == "mail"
    assert not hasattr(config.attributes, "bind_name")
    # The AD preset used to fetch userPrincipalName for every entry; nothing reads it.
    assert "userPrincipalName" not in adapter.LdapDirectory(config)._attributes()
    # Other unknown keys are still refused.
    with pytest.raises(ConfigError) as error:
        ldap_section(attributes={"bind_name": "x", "bindname": "x"})
    assert error.value.key == "ldap.attributes.bindname"


def test_ldap_config_without_retired_keys_logs_nothing(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="seatgate.config.ldap"):
        ldap_section(attributes={"login": "mail"})
    assert caplog.records == []


def test_incremental_filters_escape_and_validate_the_stored_mark() -> None:
    directory = adapter.LdapDirectory(AD)
    assert directory._changed_filter("1234") == "(uSNChanged>=1235)"
    assert not directory._valid_mark("12)(uid=*")
