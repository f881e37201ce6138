"""Every door goes through one seat decision: the seat-limit scenarios through each door.

A password login (``LoginGate.decide``) and a login another mechanism
authenticated (``LoginGate.admit_authenticated``: a Kerberos ticket, a
trusted proxy's assertion) must come to the same answer for the same
account, licence and seats, and each decision is audited with its method.
Every test runs on SQLite and on PostgreSQL (the ``app`` fixture).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sqlalchemy import func, select

from seatgate.accounts.login_forms import LoginForms
from seatgate.app import Core
from seatgate.gate.decision import Decision, Method, Reason
from seatgate.storage.schema import login_failures
from tests.test_gate import BOB_PW, fill_seats, login_events

DOORS = ("password", "kerberos", "upstream")
Door = Callable[[Core, str], Decision]


def through(door: str) -> Door:
    """Log in as ``login`` through ``door`` (the right password for the password door)."""
    if door == "password":
        return lambda app, login: app.gate.decide(login, BOB_PW, address="192.0.2.7")
    method = Method(door)
    return lambda app, login: app.gate.admit_authenticated(
        login, method=method, address="192.0.2.7"
    )


@pytest.fixture(params=DOORS)
def door(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def licensed(app: Core, mint: Callable[..., str]) -> Core:
    """Bob, a local account, and a 25-seat licence."""
    app.accounts.add("Bob", password=BOB_PW, actor="test")
    app.licensing.install(mint("license", seats=25), actor="test")
    return app


def test_a_first_login_claims_a_seat_and_the_next_keeps_it(licensed: Core, door: str) -> None:
    first = through(door)(licensed, "Bob")
    assert first.allowed and first.seat_claimed
    assert first.account is not None and first.account.login == "Bob"
    again = through(door)(licensed, "bob")
    assert again.allowed and not again.seat_claimed
    assert licensed.ledger.used() == 1


def test_no_free_seat_is_no_seat_available_naming_the_count(licensed: Core, door: str) -> None:
    fill_seats(licensed, 25)
    decision = through(door)(licensed, "Bob")
    assert decision.reason is Reason.NO_SEAT_AVAILABLE
    assert decision.seats_total == 25
    assert licensed.ledger.used() == 25


def test_a_seat_holder_gets_in_when_every_seat_is_taken(licensed: Core, door: str) -> None:
    assert through(door)(licensed, "Bob").allowed
    fill_seats(licensed, 24)
    assert through(door)(licensed, "Bob").allowed


def test_a_disabled_account_is_refused_and_its_seat_stays_free(licensed: Core, door: str) -> None:
    licensed.accounts.set_status("Bob", "disabled", actor="test")
    assert through(door)(licensed, "Bob").reason is Reason.ACCOUNT_DISABLED
    assert licensed.ledger.used() == 0


def test_without_a_licence_the_answer_is_license_invalid(app: Core, door: str) -> None:
    app.accounts.add("Bob", password=BOB_PW, actor="test")
    assert through(door)(app, "Bob").reason is Reason.LICENSE_INVALID
    assert app.ledger.used() == 0


def test_the_doors_give_the_same_answers(licensed: Core) -> None:
    fill_seats(licensed, 25)
    answers = {door: through(door)(licensed, "Bob") for door in DOORS}
    assert {(d.reason, d.message, d.seats_total) for d in answers.values()} == {
        (Reason.NO_SEAT_AVAILABLE, answers["password"].message, 25)
    }


def test_each_decision_is_audited_once_with_its_method(licensed: Core, door: str) -> None:
    before = len(login_events(licensed))
    assert through(door)(licensed, "Bob").allowed
    fill_seats(licensed, 24)
    licensed.accounts.add("Carol", password=BOB_PW, actor="test")
    assert through(door)(licensed, "Carol").reason is Reason.NO_SEAT_AVAILABLE
    events = login_events(licensed)[: len(login_events(licensed)) - before]
    assert [(e.subject, e.outcome, e.details["method"]) for e in events] == [
        ("Carol", "no_seat_available", door),
        ("Bob", "allowed", door),
    ]


def test_an_unknown_login_s_password_attempt_is_audited_as_password(licensed: Core) -> None:
    decision = licensed.gate.decide("nobody", BOB_PW)
    assert decision.reason is Reason.INVALID_CREDENTIALS
    assert login_events(licensed)[0].details["method"] == "password"


@pytest.mark.parametrize("method", [Method.KERBEROS, Method.UPSTREAM])
def test_an_identity_with_no_account_is_refused_as_unknown(licensed: Core, method: Method) -> None:
    decision = licensed.gate.admit_authenticated("nobody@corp", method=method)
    assert decision.reason is Reason.INVALID_CREDENTIALS
    assert decision.account is None
    event = login_events(licensed)[0]
    assert (event.subject, event.details["known"], event.details["method"]) == (
        "nobody@corp",
        False,
        method.value,
    )


@pytest.mark.parametrize("login", ["", "bad\x00login", "x" * 5000])
def test_an_unusable_identity_is_refused_without_an_exception(licensed: Core, login: str) -> None:
    decision = licensed.gate.admit_authenticated(login, method=Method.UPSTREAM)
    assert decision.reason is Reason.INVALID_CREDENTIALS


@pytest.mark.parametrize("method", [Method.PASSWORD, Method.DIRECTORY])
def test_password_methods_cannot_skip_the_password(licensed: Core, method: Method) -> None:
    with pytest.raises(ValueError, match="with their password"):
        licensed.gate.admit_authenticated("Bob", method=method)
    assert licensed.ledger.used() == 0


def test_identity_doors_leave_the_failed_login_counters_alone(licensed: Core) -> None:
    """No password was guessed: nothing is reserved, counted or forgotten."""
    count = select(func.count()).select_from(login_failures)
    licensed.gate.decide("Bob", "Wrong-Battery-0815", address="192.0.2.7")
    failures = licensed.db.read(lambda conn: conn.execute(count).scalar_one())
    assert through("kerberos")(licensed, "Bob").allowed
    assert licensed.db.read(lambda conn: conn.execute(count).scalar_one()) == failures


def test_a_proxy_may_assert_a_directory_user_in_upn_or_down_level_form(licensed: Core) -> None:
    # mod_auth_gssapi passes the principal (dirk@CORP.EXAMPLE), others CORP\dirk.
    licensed.gate.forms = LoginForms(upn_suffixes=("corp.example",), netbios_domain="CORP")
    licensed.accounts.add("dirk", password=None, actor="test", source="ldap")
    for asserted in ("dirk@CORP.EXAMPLE", "CORP\\dirk", "DIRK"):
        decision = licensed.gate.admit_authenticated(asserted, method=Method.UPSTREAM)
        assert decision.allowed and decision.account is not None
        assert decision.account.login == "dirk"
    # A local account has no directory forms: the proxy's UPN names nobody.
    refused = licensed.gate.admit_authenticated("Bob@corp.example", method=Method.UPSTREAM)
    assert refused.reason is Reason.INVALID_CREDENTIALS
    # A foreign domain names nobody either.
    foreign = licensed.gate.admit_authenticated("dirk@other.example", method=Method.UPSTREAM)
    assert foreign.reason is Reason.INVALID_CREDENTIALS
