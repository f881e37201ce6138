"""Refusals say why: the kind, the numbers, and the one place their words come from.

The gate tests run on SQLite and on PostgreSQL (the ``db_url`` fixture).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import pytest

import seatgate.audit.log
from seatgate.adapters.flask.i18n import catalog, translate
from seatgate.app import Core
from seatgate.gate.decision import Reason
from seatgate.gate.refusals import (
    MESSAGES,
    REASON_OF_KIND,
    MessagePart,
    Refusal,
    RefusalKind,
    english,
)
from seatgate.records import AuditEvent
from seatgate.texts import Plural
from tests.conftest import add_users
from tests.web_support import Web

NOT_ASSIGNED_EN = "No seat is assigned to this account. Ask an administrator for one."
NOT_ASSIGNED_ES = "Esta cuenta no tiene plaza asignada. Pida una a un administrador."
# Every refusal for want of a seat records a seat request (seatgate.seats.requests) and says so.
REQUESTED_EN = " Your request for a seat was recorded for the administrators."
REQUESTED_ES = " Su solicitud de plaza quedó registrada para los administradores."


def last_login_event(app: Core) -> AuditEvent:
    (event,) = app.db.read(lambda c: seatgate.audit.log.recent(c, action="login", limit=1))
    return event


# -- the refusal itself ------------------------------------------------------------


def test_every_kind_has_a_reason_and_only_the_seat_kinds_differ_from_it() -> None:
    assert set(REASON_OF_KIND) == set(RefusalKind)
    assert set(REASON_OF_KIND.values()) == set(Reason)
    differing = {kind for kind in RefusalKind if kind.value != REASON_OF_KIND[kind].value}
    assert differing == {RefusalKind.SEATS_TAKEN, RefusalKind.NOT_ASSIGNED}
    assert Refusal.not_assigned().reason is Reason.NO_SEAT_AVAILABLE
    assert Refusal.seats_taken(25, 0).reason is Reason.NO_SEAT_AVAILABLE


def test_seats_taken_names_the_seats_and_the_reserve_only_when_there_is_one() -> None:
    assert Refusal.seats_taken(25, 0).parts() == (MessagePart("no_seat_available", {"seats": 25}),)
    assert Refusal.seats_taken(25, 2).message == (
        "All 25 seats of the licence are in use. Ask an administrator for a seat. "
        "(Kept free for administrators: 2.)"
    )


def test_not_assigned_names_no_seat_count() -> None:
    refusal = Refusal.not_assigned()
    assert refusal.parts() == (MessagePart("no_seat_assigned", {}),)
    assert refusal.message == NOT_ASSIGNED_EN
    assert refusal.seats_total is None


def test_render_uses_the_given_translation_for_every_sentence() -> None:
    seen: list[tuple[str, dict[str, object]]] = []

    def translate(key: str, **values: object) -> str:
        seen.append((key, values))
        return f"<{key}>"

    assert Refusal.seats_taken(7, 1).render(translate) == "<no_seat_available> <no_seat_reserved>"
    assert seen == [("no_seat_available", {"seats": 7}), ("no_seat_reserved", {"reserved": 1})]


def _all_message_keys() -> set[str]:
    samples = [Refusal(kind) for kind in RefusalKind] + [
        Refusal.seats_taken(3, 1),
        Refusal(RefusalKind.SEATS_TAKEN, 3, requested=True),
    ]
    return {part.key for refusal in samples for part in refusal.parts()}


def test_every_refusal_message_key_has_english_and_spanish_in_the_web_catalogs() -> None:
    keys = _all_message_keys()
    assert keys == set(MESSAGES)
    for key in keys:
        text = MESSAGES[key]
        values = {"seats": 7, "reserved": 2}
        # The web gate's English is the core's, word for word.
        assert translate(key, "en", **values) == english(key, **values), key
        msgid = text.singular if isinstance(text, Plural) else text
        assert catalog("es").gettext(msgid) != msgid, key
        assert translate(key, "es", **values) != english(key, **values), key


def test_a_single_seat_is_told_in_the_singular_by_the_cli_and_the_pages() -> None:
    refusal = Refusal.seats_taken(1, 0)
    assert refusal.message == (
        "The licence's only seat is in use. Ask an administrator for a seat."
    )
    assert refusal.render(lambda key, **values: translate(key, "en", **values)) == refusal.message
    assert refusal.render(lambda key, **values: translate(key, "es", **values)) == (
        "La única plaza de la licencia está ocupada. Pida una plaza a un administrador."
    )
    assert Refusal.seats_taken(2, 0).render(
        lambda key, **values: translate(key, "es", **values)
    ) == ("Las 2 plazas de la licencia están ocupadas. Pida una plaza a un administrador.")


# -- the gate ----------------------------------------------------------------------


@pytest.fixture
def manual(build_app: Callable[..., Core], db_url: str, mint: Callable[..., str]) -> Core:
    """Manual assignment, a 25-seat licence, user000..user001 and admin000."""
    app = build_app(db_url, assignment="manual")
    app.licensing.install(mint("license", seats=25), actor="test")
    add_users(app, 2)
    add_users(app, 1, prefix="admin", admin=True)
    return app


def test_manual_assignment_without_a_seat_is_refused_as_not_assigned(manual: Core) -> None:
    decision = manual.gate.decide("user000", "user000-pw")
    assert not decision.allowed
    assert decision.reason is Reason.NO_SEAT_AVAILABLE
    assert str(decision) == "refused: no_seat_available"
    assert decision.refusal == replace(Refusal.not_assigned(), requested=True)
    assert decision.refusal is not None and decision.refusal.kind is RefusalKind.NOT_ASSIGNED
    assert decision.message == NOT_ASSIGNED_EN + REQUESTED_EN
    assert decision.seats_total is None
    assert decision.account is not None and decision.account.login == "user000"
    event = last_login_event(manual)
    assert (event.subject, event.outcome) == ("user000", "no_seat_available")
    assert event.details.get("detail") == "manual assignment"
    assert manual.ledger.used() == 0


def test_manual_assignment_with_a_wrong_password_tells_nothing_about_seats(
    manual: Core,
) -> None:
    decision = manual.gate.decide("user000", "wrong-pw")
    assert decision.refusal == Refusal(RefusalKind.INVALID_CREDENTIALS)
    assert decision.message == MESSAGES["invalid_credentials"]


def test_manual_assignment_admits_an_assigned_account_and_an_admin(manual: Core) -> None:
    manual.ledger.assign(manual.accounts.get("user001").id, actor="test")
    assigned = manual.gate.decide("user001", "user001-pw")
    assert assigned.allowed and assigned.refusal is None and assigned.message == "Welcome."
    admin = manual.gate.decide("admin000", "admin000-pw")
    assert admin.allowed and admin.seat_claimed


def fill_but_the_reserve(app: Core, logins: list[str]) -> None:
    """Assign a seat to each of ``logins`` (an admin's act, so the reserve does not apply)."""
    for login in logins:
        app.ledger.assign(app.accounts.get(login).id, actor="test")


def test_a_full_ledger_is_refused_as_seats_taken_with_the_seat_numbers(
    build_app: Callable[..., Core], db_url: str, mint: Callable[..., str]
) -> None:
    app = build_app(db_url, reserved_for_admins=2)
    app.licensing.install(mint("license", seats=25), actor="test")
    fill_but_the_reserve(app, add_users(app, 23, prefix="holder"))
    (late,) = add_users(app, 1)
    decision = app.gate.decide(late, f"{late}-pw")
    assert decision.reason is Reason.NO_SEAT_AVAILABLE
    assert decision.refusal == Refusal(RefusalKind.SEATS_TAKEN, 25, 2, requested=True)
    assert decision.seats_total == 25
    assert decision.message == Refusal.seats_taken(25, 2).message + REQUESTED_EN
    assert "(Kept free for administrators: 2.)" in decision.message
    assert "detail" not in last_login_event(app).details
    assert app.ledger.used() == 23


# -- the web gate renders, in the visitor's language ---------------------------------


def test_the_login_page_says_no_seat_is_assigned_in_english_and_spanish(
    make_web: Callable[..., Web],
) -> None:
    web = make_web(assignment="manual")
    english = web.login(web.client(), "user000")
    assert english.status_code == 403
    html = english.get_data(as_text=True)
    assert NOT_ASSIGNED_EN in html
    assert 'data-reason="no_seat_available" data-kind="not_assigned"' in html
    assert "seats of the licence" not in html

    client = web.client()
    client.get("/language/es")
    spanish = web.login(client, "user000").get_data(as_text=True)
    assert NOT_ASSIGNED_ES in spanish
    assert NOT_ASSIGNED_EN not in spanish


def test_the_json_api_says_no_seat_is_assigned_in_english_and_spanish(
    make_web: Callable[..., Web],
) -> None:
    web = make_web(assignment="manual")
    english = web.api_login(web.client(), "user000")
    assert english.status_code == 403
    assert english.get_json() == {
        "error": "no_seat_available",
        "message": NOT_ASSIGNED_EN + REQUESTED_EN,
        "seat_request": "recorded",
    }
    spanish = web.client().post(
        "/api/login",
        json={"login": "user000", "password": "user000-pw"},
        headers={"Accept-Language": "es"},
    )
    assert spanish.get_json() == {
        "error": "no_seat_available",
        "message": NOT_ASSIGNED_ES + REQUESTED_ES,
        "seat_request": "recorded",
    }


def test_the_web_gate_names_the_reserve_in_spanish(make_web: Callable[..., Web]) -> None:
    web = make_web(users=24, reserved_for_admins=2)
    fill_but_the_reserve(web.core, web.users[:23])
    answer = web.client().post(
        "/api/login",
        json={"login": web.users[23], "password": f"{web.users[23]}-pw"},
        headers={"Accept-Language": "es"},
    )
    assert answer.status_code == 403
    assert answer.get_json()["message"] == (
        "Las 25 plazas de la licencia están ocupadas. Pida una plaza a un administrador. "
        "(Reservadas para administradores: 2.)" + REQUESTED_ES
    )
