"""Login forms (UPN, down-level) and the ``ldap:`` keys for several servers and those forms.

Unit tests of the pure parts; the real servers' view is in tests/ldap/test_failover.py
and tests/ldap/test_login_forms_real.py.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from seatgate.accounts.login_forms import (
    LoginForms,
    netbios_domain_of,
    upn_suffixes_of,
)
from seatgate.app import Core
from seatgate.config import WebConfig
from seatgate.config.ldap import parse_ldap
from seatgate.config.parse import Section
from seatgate.errors import ConfigError, InvalidLogin
from seatgate.gate.decision import Reason
from tests.conftest import make_config

CORP = LoginForms(upn_suffixes=("corp.example", "Corp.Example.COM"), netbios_domain="CORP")


def keys(forms: LoginForms, typed: str) -> list[tuple[str, bool]]:
    return [(c.key, c.directory_only) for c in forms.candidates(typed)]


@pytest.mark.parametrize(
    "typed",
    ["alice", "ALICE", " alice ", "alice@corp.example", "ALICE@CORP.EXAMPLE",
     "alice@corp.example.com", "CORP\\alice", "corp\\ALICE"],
)  # fmt: skip
def test_every_form_of_a_directory_login_names_the_same_account(typed: str) -> None:
    last = CORP.candidates(typed)[-1]
    assert last.key == "alice"
    # The bare name may be any source's; a UPN or down-level form only a directory's.
    assert last.directory_only == (typed.strip().lower() != "alice")
    assert CORP.limit_key(typed) == "alice"


def test_the_typed_text_itself_is_tried_first_for_any_source() -> None:
    assert keys(CORP, "alice@corp.example") == [
        ("alice@corp.example", False),
        ("alice", True),
    ]
    assert keys(CORP, "CORP\\alice") == [("corp\\alice", False), ("alice", True)]
    assert keys(CORP, "alice") == [("alice", False)]


@pytest.mark.parametrize(
    "typed",
    ["alice@other.example", "alice@corp.example.evil", "OTHER\\alice", "@corp.example",
     "CORP\\", "alice @corp.example", "CORP\\ alice", "alice@", "a\\b\\c"],
)  # fmt: skip
def test_foreign_or_malformed_forms_name_only_the_text_itself(typed: str) -> None:
    (only,) = CORP.candidates(typed)
    assert only.directory_only is False
    assert CORP.limit_key(typed) == only.key


def test_without_suffixes_or_domain_only_the_stored_login_counts() -> None:
    assert keys(LoginForms(), "alice@corp.example") == [("alice@corp.example", False)]
    assert keys(LoginForms(), "CORP\\alice") == [("corp\\alice", False)]


def test_unusable_text_is_refused_like_any_bad_login() -> None:
    for typed in ("", "   ", "CORP\\al\x00ice"):
        with pytest.raises(InvalidLogin):
            CORP.candidates(typed)


def test_defaults_come_from_the_base_dn() -> None:
    assert upn_suffixes_of("OU=Staff,DC=corp,DC=example") == ("corp.example",)
    assert upn_suffixes_of("dc=seatgate, dc=test") == ("seatgate.test",)
    assert upn_suffixes_of("o=company") == ()
    assert netbios_domain_of("OU=Staff,DC=corp,DC=example") == "CORP"
    assert netbios_domain_of("o=company") is None
    derived = LoginForms.of_directory("DC=corp,DC=example", None, None)
    assert derived == LoginForms(upn_suffixes=("corp.example",), netbios_domain="CORP")
    # Configured values replace the derived ones; an empty list turns UPNs off.
    assert LoginForms.of_directory("DC=corp,DC=example", (), "HQ") == LoginForms((), "HQ")
    assert LoginForms.of_directory("DC=corp,DC=example", None, "").netbios_domain is None


# --------------------------------------------------------------------------- configuration


def section(**values: Any) -> Any:
    data: dict[str, Any] = {
        "url": "ldaps://dc1.corp.example",
        "base_dn": "DC=corp,DC=example",
        "bind_dn": "CN=svc,DC=corp,DC=example",
    }
    data.update(values)
    data = {k: v for k, v in data.items() if v is not None}
    return parse_ldap(Section(data, "ldap"), Path("."))


def config_error(**values: Any) -> ConfigError:
    with pytest.raises(ConfigError) as error:
        section(**values)
    return error.value


def test_one_url_keeps_its_meaning_and_defaults() -> None:
    config = section()
    assert config.server_urls == ("ldaps://dc1.corp.example",)
    assert config.urls == ()
    assert config.server_down_seconds == 60
    assert config.upn_suffixes is None
    assert config.netbios_domain is None


def test_several_urls_in_order() -> None:
    urls = ["ldaps://dc1.corp.example", "ldaps://dc2.corp.example:636"]
    config = section(url=None, urls=urls, server_down_seconds=30)
    assert config.server_urls == tuple(urls)
    assert config.url == urls[0]
    assert config.server_down_seconds == 30


def test_url_and_urls_together_is_an_error_naming_both() -> None:
    error = config_error(urls=["ldaps://dc2.corp.example"])
    assert error.key == "ldap.urls"
    assert "not both" in str(error)


@pytest.mark.parametrize(
    ("values", "key", "words"),
    [
        ({"urls": []}, "ldap.urls", "at least one"),
        ({"urls": "ldaps://dc1"}, "ldap.urls", "list"),
        ({"urls": ["ldaps://dc1", "LDAPS://DC1/"]}, "ldap.urls[1]", "twice"),
        ({"urls": ["ldaps://dc1", "https://dc2"]}, "ldap.urls[1]", "ldaps://"),
        ({"urls": ["ldaps://dc1", "ldap://dc2"]}, "ldap.urls[1]", "clear text"),
        ({"urls": ["ldap://dc1", "ldaps://dc2"], "start_tls": True}, "ldap.start_tls", "dc2"),
    ],
)
def test_every_url_is_checked_and_the_error_names_it(
    values: dict[str, Any], key: str, words: str
) -> None:
    error = config_error(url=None, **values)
    assert error.key == key
    assert words in str(error)


def test_server_down_seconds_is_bounded() -> None:
    assert section(server_down_seconds=0).server_down_seconds == 0
    assert config_error(server_down_seconds=-1).key == "ldap.server_down_seconds"
    assert config_error(server_down_seconds="60").key == "ldap.server_down_seconds"


def test_login_form_keys() -> None:
    config = section(upn_suffixes=["corp.example", "mail.corp.example"], netbios_domain="CORP")
    assert config.upn_suffixes == ("corp.example", "mail.corp.example")
    assert config.netbios_domain == "CORP"
    assert section(upn_suffixes=[]).upn_suffixes == ()
    assert section(netbios_domain="").netbios_domain == ""
    assert config_error(upn_suffixes=["@corp.example"]).key == "ldap.upn_suffixes[0]"
    assert config_error(upn_suffixes="corp.example").key == "ldap.upn_suffixes"
    assert config_error(netbios_domain="CORP\\X").key == "ldap.netbios_domain"
    assert config_error(netbios_domain="corp.example").key == "ldap.netbios_domain"
    assert config_error(netbios_domain="A" * 16).key == "ldap.netbios_domain"


# --------------------------------------------------------------------------- the gate


def test_every_form_of_a_login_counts_against_it_for_the_limiter(
    vendor_key: Any, clock: Any, mint: Any, db_url: str
) -> None:
    config = replace(
        make_config(db_url, vendor_key), web=WebConfig(max_failures_per_login_and_address=2)
    )
    app = Core.build(config, clock=clock, check_schema=False, rate_limited=True)
    try:
        app.init_schema()
        app.licensing.install(mint("license", seats=25), actor="test")
        app.accounts.add("bob", password="Correct-Horse-4711", actor="test")
        app.gate.forms = CORP
        office = "192.0.2.10"
        # Guesses in the UPN and down-level forms are guesses at bob ...
        for typed in ("bob@corp.example", "CORP\\bob"):
            decision = app.gate.decide(typed, "Wrong-Battery-0815", address=office)
            assert decision.reason is Reason.INVALID_CREDENTIALS
            assert decision.account is None  # (bob is local: no directory form names him)
        # ... so bob's third attempt from that address is throttled, whatever its form.
        decision = app.gate.decide("BOB", "Correct-Horse-4711", address=office)
        assert decision.reason is Reason.RATE_LIMITED
        assert app.gate.decide("bob", "Correct-Horse-4711", address="192.0.2.99").allowed
    finally:
        app.close()
