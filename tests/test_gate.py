"""The login decision: the order of the checks, the reason codes, the audit trail.

Every test runs on SQLite and on PostgreSQL (the ``app`` fixture).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import select

import seatgate.audit.log
from seatgate.accounts.passwords import HashParameters, PasswordHasher
from seatgate.accounts.service import Accounts
from seatgate.app import Core
from seatgate.gate.decision import MESSAGES, Reason
from seatgate.records import AuditEvent
from seatgate.storage.schema import accounts as accounts_table
from seatgate.storage.schema import audit_events
from tests.conftest import add_users

BOB_PW = "Correct-Horse-4711"
WRONG_PW = "Wrong-Battery-0815"


def login_events(app: Core) -> list[AuditEvent]:
    """Every ``login`` audit event, newest first."""
    return app.db.read(lambda c: seatgate.audit.log.recent(c, action="login", limit=100_000))


def stored_hash(app: Core, login_key: str) -> str:
    return app.db.read(
        lambda c: c.execute(
            select(accounts_table.c.password_hash).where(accounts_table.c.login_key == login_key)
        ).scalar_one()
    )


class CallCounter:
    """Wraps a callable and counts the calls (the original still runs)."""

    def __init__(self, wrapped: Callable[..., Any]) -> None:
        self.wrapped = wrapped
        self.calls: list[tuple[Any, ...]] = []

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.calls.append(args)
        return self.wrapped(*args, **kwargs)


@pytest.fixture
def bob(app: Core) -> Core:
    """The installation with one local account "Bob" (no licence yet)."""
    app.accounts.add("Bob", password=BOB_PW, actor="test")
    return app


@pytest.fixture
def licensed(bob: Core, mint: Callable[..., str]) -> Core:
    """With a valid 25-seat licence installed."""
    bob.licensing.install(mint("license", seats=25), actor="test")
    return bob


def fill_seats(app: Core, count: int) -> list[str]:
    """Create ``count`` accounts and give each a seat."""
    logins = add_users(app, count, prefix="holder")
    for login in logins:
        app.ledger.assign(app.accounts.get(login).id, actor="test")
    return logins


# -- step 2: unknown login ---------------------------------------------------


def test_unknown_login_is_invalid_credentials_and_verifies_the_dummy_hash(
    licensed: Core, monkeypatch: pytest.MonkeyPatch
) -> None:
    spy = CallCounter(licensed.hasher.verify_dummy)
    monkeypatch.setattr(licensed.hasher, "verify_dummy", spy)

    decision = licensed.gate.decide("nobody", BOB_PW)

    assert not decision.allowed
    assert decision.reason is Reason.INVALID_CREDENTIALS
    assert decision.account is None
    assert len(spy.calls) == 1
    assert licensed.ledger.used() == 0


def test_known_login_with_a_password_does_not_use_the_dummy_hash(
    licensed: Core, monkeypatch: pytest.MonkeyPatch
) -> None:
    spy = CallCounter(licensed.hasher.verify_dummy)
    monkeypatch.setattr(licensed.hasher, "verify_dummy", spy)

    assert licensed.gate.decide("Bob", WRONG_PW).reason is Reason.INVALID_CREDENTIALS
    assert licensed.gate.decide("Bob", BOB_PW).allowed
    assert spy.calls == []


# -- step 3: the password ------------------------------------------------------


def test_wrong_password_is_invalid_credentials(licensed: Core) -> None:
    decision = licensed.gate.decide("Bob", WRONG_PW)
    assert not decision.allowed
    assert decision.reason is Reason.INVALID_CREDENTIALS
    assert decision.account is None
    assert licensed.ledger.used() == 0


@pytest.mark.parametrize("password", ["", " ", "\t \n", "\u3000"], ids=repr)
def test_empty_or_blank_password_is_refused_without_asking_the_verifier(
    licensed: Core, monkeypatch: pytest.MonkeyPatch, password: str
) -> None:
    verifier = licensed.gate.verifiers["local"]
    verify_spy = CallCounter(verifier.verify)
    monkeypatch.setattr(verifier, "verify", verify_spy)
    hash_spy = CallCounter(licensed.hasher.verify)
    monkeypatch.setattr(licensed.hasher, "verify", hash_spy)
    dummy_spy = CallCounter(licensed.hasher.verify_dummy)
    monkeypatch.setattr(licensed.hasher, "verify_dummy", dummy_spy)

    decision = licensed.gate.decide("Bob", password)

    assert decision.reason is Reason.INVALID_CREDENTIALS
    assert not decision.allowed
    assert verify_spy.calls == []
    assert hash_spy.calls == []
    # Same cost as any other refusal: one (dummy) verification.
    assert len(dummy_spy.calls) == 1
    assert licensed.ledger.used() == 0


def test_right_password_is_allowed_and_claims_a_seat(licensed: Core) -> None:
    decision = licensed.gate.decide("Bob", BOB_PW)
    assert decision.allowed
    assert decision.reason is None
    assert str(decision) == "allowed"
    assert decision.seat_claimed
    assert decision.account is not None and decision.account.login == "Bob"
    assert licensed.ledger.used() == 1
    again = licensed.gate.decide("Bob", BOB_PW)
    assert again.allowed and not again.seat_claimed
    assert licensed.ledger.used() == 1


# -- step 4: disabled accounts -------------------------------------------------


@pytest.mark.parametrize("status", ["disabled", "deleted"])
def test_disabled_account_with_the_right_password_is_account_disabled(
    licensed: Core, status: str
) -> None:
    licensed.accounts.set_status("Bob", status, actor="test")  # type: ignore[arg-type]
    decision = licensed.gate.decide("Bob", BOB_PW)
    assert not decision.allowed
    assert decision.reason is Reason.ACCOUNT_DISABLED
    assert decision.message == MESSAGES[Reason.ACCOUNT_DISABLED]
    assert licensed.ledger.used() == 0


def test_disabled_account_with_a_wrong_password_reveals_nothing(licensed: Core) -> None:
    licensed.accounts.set_status("Bob", "disabled", actor="test")
    wrong = licensed.gate.decide("Bob", WRONG_PW)
    unknown = licensed.gate.decide("nobody", WRONG_PW)
    assert wrong.reason is Reason.INVALID_CREDENTIALS
    assert (wrong.message, wrong.account) == (unknown.message, unknown.account)


def test_disabled_account_with_a_seat_loses_it_and_is_refused(licensed: Core) -> None:
    assert licensed.gate.decide("Bob", BOB_PW).allowed
    licensed.accounts.set_status("Bob", "disabled", actor="test")
    assert licensed.ledger.used() == 0
    assert licensed.gate.decide("Bob", BOB_PW).reason is Reason.ACCOUNT_DISABLED


# -- step 5: the licence -------------------------------------------------------


def test_no_licence_with_the_right_password_is_license_invalid(bob: Core) -> None:
    decision = bob.gate.decide("Bob", BOB_PW)
    assert not decision.allowed
    assert decision.reason is Reason.LICENSE_INVALID
    assert decision.message == MESSAGES[Reason.LICENSE_INVALID]
    assert bob.ledger.used() == 0


def test_no_licence_with_a_wrong_password_is_invalid_credentials(bob: Core) -> None:
    decision = bob.gate.decide("Bob", WRONG_PW)
    assert decision.reason is Reason.INVALID_CREDENTIALS


def test_disabled_comes_before_the_licence(bob: Core) -> None:
    bob.accounts.set_status("Bob", "disabled", actor="test")
    assert bob.gate.decide("Bob", BOB_PW).reason is Reason.ACCOUNT_DISABLED


# -- step 6: the seat ----------------------------------------------------------


def test_no_free_seat_is_no_seat_available_naming_the_seat_count(licensed: Core) -> None:
    fill_seats(licensed, 25)
    decision = licensed.gate.decide("Bob", BOB_PW)
    assert not decision.allowed
    assert decision.reason is Reason.NO_SEAT_AVAILABLE
    assert str(decision) == "refused: no_seat_available"
    assert "25 seats" in decision.message
    assert decision.seats_total == 25
    assert licensed.ledger.used() == 25


def test_no_free_seat_with_a_wrong_password_is_invalid_credentials(licensed: Core) -> None:
    fill_seats(licensed, 25)
    decision = licensed.gate.decide("Bob", WRONG_PW)
    assert decision.reason is Reason.INVALID_CREDENTIALS
    assert "seats" not in decision.message
    assert decision.seats_total is None


def test_a_seat_holder_is_allowed_when_every_seat_is_taken(licensed: Core) -> None:
    assert licensed.gate.decide("Bob", BOB_PW).allowed
    fill_seats(licensed, 24)
    assert licensed.ledger.used() == 25
    assert licensed.gate.decide("bob", BOB_PW).allowed


# -- what a refusal tells --------------------------------------------------------


def test_unknown_login_and_wrong_password_refusals_are_indistinguishable(
    licensed: Core,
) -> None:
    unknown = licensed.gate.decide("nobody", WRONG_PW)
    wrong = licensed.gate.decide("Bob", WRONG_PW)
    assert unknown.reason is wrong.reason is Reason.INVALID_CREDENTIALS
    assert unknown.message == wrong.message == MESSAGES[Reason.INVALID_CREDENTIALS]
    assert str(unknown) == str(wrong) == "refused: invalid_credentials"
    assert unknown.account is None and wrong.account is None
    assert unknown.seats_total is None and wrong.seats_total is None


# -- the audit log ---------------------------------------------------------------


def test_every_decision_writes_exactly_one_login_event_with_its_outcome(
    bob: Core, mint: Callable[..., str]
) -> None:
    app = bob
    app.accounts.add("dora", password="dora-pw-123", actor="test")
    app.accounts.set_status("dora", "disabled", actor="test")

    def decide_and_check(login: str, password: str, outcome: str) -> None:
        before = login_events(app)
        decision = app.gate.decide(login, password, address="198.51.100.7")
        after = login_events(app)
        assert len(after) == len(before) + 1, (login, outcome)
        newest = after[0]
        assert newest.outcome == outcome
        assert newest.details.get("address") == "198.51.100.7"
        assert ("allowed" if decision.allowed else decision.reason) == outcome

    # Without a licence.
    decide_and_check("nobody", "whatever-pw", "invalid_credentials")
    decide_and_check("Bob", WRONG_PW, "invalid_credentials")
    decide_and_check("Bob", "", "invalid_credentials")
    decide_and_check("Bob", BOB_PW, "license_invalid")
    decide_and_check("dora", "dora-pw-123", "account_disabled")
    decide_and_check("\x00", "x", "invalid_credentials")

    # With a licence: the first login claims a seat, the second holds it.
    app.licensing.install(mint("license", seats=25), actor="test")
    decide_and_check("Bob", BOB_PW, "allowed")
    decide_and_check("BOB", BOB_PW, "allowed")
    app.ledger.revoke(app.accounts.get("Bob").id, actor="test")
    fill_seats(app, 25)
    decide_and_check("Bob", BOB_PW, "no_seat_available")

    subjects = {e.subject for e in login_events(app)}
    assert {"Bob", "dora", "nobody"} <= subjects


def test_allowed_login_events_say_whether_a_seat_was_claimed(licensed: Core) -> None:
    licensed.gate.decide("Bob", BOB_PW)
    licensed.gate.decide("Bob", BOB_PW)
    second, first = login_events(licensed)[:2]
    assert (first.outcome, first.details["seat_claimed"]) == ("allowed", True)
    assert (second.outcome, second.details["seat_claimed"]) == ("allowed", False)
    assert first.subject == second.subject == "Bob"


def test_passwords_never_appear_in_the_audit_log(licensed: Core, mint: Callable[..., str]) -> None:
    app = licensed
    other_params = PasswordHasher(HashParameters(time_cost=2, memory_cost_kib=2048, parallelism=1))
    Accounts(app.db, app.clock, other_params, app.ledger).add(
        "carol", password="Carol-Rehash-Secret-3301", actor="test"
    )
    secrets = {
        BOB_PW,
        WRONG_PW,
        "Carol-Rehash-Secret-3301",
        "Unknown-User-Secret-9922",
        "New-Bob-Secret-5150",
    }
    app.gate.decide("Bob", BOB_PW)
    app.gate.decide("Bob", WRONG_PW)
    app.gate.decide("nobody", "Unknown-User-Secret-9922")
    app.gate.decide("carol", "Carol-Rehash-Secret-3301")  # rehashes
    app.accounts.set_password("Bob", "New-Bob-Secret-5150", actor="test")
    app.gate.decide("Bob", "New-Bob-Secret-5150")
    app.accounts.set_status("Bob", "disabled", actor="test")
    app.gate.decide("Bob", "New-Bob-Secret-5150")

    rows = app.db.read(lambda c: c.execute(select(audit_events)).all())
    actions = {row.action for row in rows}
    assert {"login", "account.password_set", "account.password_rehashed"} <= actions
    text = "\n".join(repr(tuple(row)) for row in rows)
    for secret in secrets:
        assert secret not in text


# -- hostile input ----------------------------------------------------------------

HOSTILE_LOGINS = [
    "*",
    "*)(uid=*",
    "admin)(|(uid=*",
    "admin*",
    "\\",
    "\\2a",
    "\x00",
    "admin\x00",
    "x" * 10_000,
    "",
    "   ",
    "' OR '1'='1",
    "%",
    "_dmin",
]


@pytest.mark.parametrize(
    "login", HOSTILE_LOGINS, ids=lambda s: repr(s[:20]) + (f"x{len(s)}" if len(s) > 20 else "")
)
def test_hostile_logins_are_refused_as_invalid_credentials(licensed: Core, login: str) -> None:
    # "admin" exists and the attacker even knows its password.
    licensed.accounts.add("admin", password="Admin-Pw-7070", actor="test", is_admin=True)
    before = len(login_events(licensed))

    decision = licensed.gate.decide(login, "Admin-Pw-7070")

    assert not decision.allowed
    assert decision.reason is Reason.INVALID_CREDENTIALS
    assert decision.account is None
    events = login_events(licensed)
    assert len(events) == before + 1
    assert events[0].outcome == "invalid_credentials"
    assert events[0].subject is not None
    assert len(events[0].subject) <= 256
    assert "\x00" not in events[0].subject
    assert licensed.ledger.used() == 0


def test_login_with_a_lone_surrogate_is_refused_without_an_exception(
    licensed: Core,
) -> None:
    decision = licensed.gate.decide("b\udcffob", BOB_PW)
    assert decision.reason is Reason.INVALID_CREDENTIALS


@pytest.mark.parametrize("login", ["Bob", "nobody"])
def test_password_with_a_lone_surrogate_is_refused_without_an_exception(
    licensed: Core, login: str
) -> None:
    decision = licensed.gate.decide(login, "pw\udcff")
    assert decision.reason is Reason.INVALID_CREDENTIALS


def test_overlong_password_is_refused_without_hashing_it(
    licensed: Core, monkeypatch: pytest.MonkeyPatch
) -> None:
    verifier = licensed.gate.verifiers["local"]
    verify_spy = CallCounter(verifier.verify)
    monkeypatch.setattr(verifier, "verify", verify_spy)
    decision = licensed.gate.decide("Bob", BOB_PW + "x" * 2000)
    assert decision.reason is Reason.INVALID_CREDENTIALS
    assert verify_spy.calls == []


# -- login normalisation ----------------------------------------------------------


@pytest.mark.parametrize(
    "typed", ["Bob", "BOB ", "bob", " bob", "\uff22\uff4f\uff42", "\uff42\uff4f\uff42"]
)
def test_login_is_compared_normalised(licensed: Core, typed: str) -> None:
    decision = licensed.gate.decide(typed, BOB_PW)
    assert decision.allowed, typed
    assert decision.account is not None
    assert decision.account.login == "Bob"
    assert login_events(licensed)[0].subject == "Bob"


def test_every_spelling_of_one_login_shares_one_seat(licensed: Core) -> None:
    ids = set()
    for typed in ("Bob", "BOB ", "bob", "\uff22\uff4f\uff42"):
        decision = licensed.gate.decide(typed, BOB_PW)
        assert decision.allowed
        assert decision.account is not None
        ids.add(decision.account.id)
    assert len(ids) == 1
    assert licensed.ledger.used() == 1


def test_a_different_login_is_not_normalised_into_bob(licensed: Core) -> None:
    for typed in ("Bo b", "Bobb", "B\u00f6b", "B0b"):
        assert licensed.gate.decide(typed, BOB_PW).reason is Reason.INVALID_CREDENTIALS


# -- rehashing after a parameter change ---------------------------------------------

OLD_PARAMS = HashParameters(time_cost=2, memory_cost_kib=2048, parallelism=1)
CAROL_PW = "Carol-Old-Params-1234"


@pytest.fixture
def carol_old_hash(licensed: Core) -> Core:
    """An account whose hash was made with other argon2 parameters than the app's."""
    old = Accounts(licensed.db, licensed.clock, PasswordHasher(OLD_PARAMS), licensed.ledger)
    old.add("Carol", password=CAROL_PW, actor="test")
    assert "m=2048,t=2,p=1" in stored_hash(licensed, "carol")
    assert licensed.hasher.needs_rehash(stored_hash(licensed, "carol"))
    return licensed


def rehash_events(app: Core) -> list[AuditEvent]:
    return app.db.read(
        lambda c: seatgate.audit.log.recent(c, action="account.password_rehashed", subject="Carol")
    )


def test_successful_login_rehashes_with_the_configured_parameters(
    carol_old_hash: Core,
) -> None:
    app = carol_old_hash
    old_hash = stored_hash(app, "carol")

    assert app.gate.decide("carol", CAROL_PW).allowed

    new_hash = stored_hash(app, "carol")
    assert new_hash != old_hash
    assert new_hash.startswith("$argon2id$")
    assert "m=1024,t=1,p=1" in new_hash
    assert not app.hasher.needs_rehash(new_hash)
    assert len(rehash_events(app)) == 1

    # The new hash works, and is not replaced again.
    assert app.gate.decide("Carol", CAROL_PW).allowed
    assert app.gate.decide("Carol", WRONG_PW).reason is Reason.INVALID_CREDENTIALS
    assert stored_hash(app, "carol") == new_hash
    assert len(rehash_events(app)) == 1


def test_failed_login_does_not_rehash(carol_old_hash: Core) -> None:
    app = carol_old_hash
    old_hash = stored_hash(app, "carol")
    assert app.gate.decide("carol", WRONG_PW).reason is Reason.INVALID_CREDENTIALS
    assert stored_hash(app, "carol") == old_hash
    assert rehash_events(app) == []


def test_account_made_by_an_installation_with_other_parameters_is_rehashed(
    build_app: Callable[..., Core], db_url: str, mint: Callable[..., str]
) -> None:
    # Two installations on the same database: one with the old parameters
    # creates the account, the current one rehashes it on login.
    import dataclasses

    current = build_app(db_url)
    old = Core.build(dataclasses.replace(current.config, passwords=OLD_PARAMS), clock=current.clock)
    try:
        old.accounts.add("Carol", password=CAROL_PW, actor="test")
    finally:
        old.close()
    current.licensing.install(mint("license", seats=25), actor="test")
    old_hash = stored_hash(current, "carol")
    assert "m=2048,t=2,p=1" in old_hash

    assert current.gate.decide("Carol", CAROL_PW).allowed
    assert "m=1024,t=1,p=1" in stored_hash(current, "carol")
    assert len(rehash_events(current)) == 1
    assert current.gate.decide("Carol", CAROL_PW).allowed


def test_rehash_never_overwrites_a_password_an_admin_set_meanwhile(
    carol_old_hash: Core, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = carol_old_hash
    original = app.hasher.hash
    reset_done: list[bool] = []

    def hash_after_an_admin_reset(password: str) -> str:
        # The admin's reset lands between the login's verification and its write.
        if not reset_done:
            reset_done.append(True)
            app.accounts.set_password("carol", "Carol-Reset-By-Admin-77", actor="admin")
        return original(password)

    monkeypatch.setattr(app.hasher, "hash", hash_after_an_admin_reset)
    assert app.gate.decide("carol", CAROL_PW).allowed
    monkeypatch.undo()
    assert app.gate.decide("carol", "Carol-Reset-By-Admin-77").allowed
    assert app.gate.decide("carol", CAROL_PW).reason is Reason.INVALID_CREDENTIALS
    assert rehash_events(app) == []


def test_a_unique_key_taken_meanwhile_is_a_conflict_not_a_retry(app: Core) -> None:
    from sqlalchemy import insert

    from seatgate.errors import StorageConflict
    from seatgate.storage.schema import settings

    app.db.write(lambda c: c.execute(insert(settings).values(key="k", value="1")))
    attempts: list[int] = []

    def duplicate(conn: Any) -> None:
        attempts.append(1)
        conn.execute(insert(settings).values(key="k", value="2"))

    with pytest.raises(StorageConflict):
        app.db.write(duplicate)
    assert attempts == [1]
