"""The happy path end to end on each database: licence, account, login, seat."""

from __future__ import annotations

from collections.abc import Callable

from seatgate.app import Core
from seatgate.gate.decision import Reason
from tests.conftest import add_users


def test_first_login_claims_a_seat_and_26th_is_refused(app: Core, mint: Callable[..., str]) -> None:
    app.licensing.install(mint("license", seats=25), actor="test")
    logins = add_users(app, 26)
    decisions = [app.gate.decide(login, f"{login}-pw") for login in logins]
    assert [d.allowed for d in decisions] == [True] * 25 + [False]
    assert decisions[-1].reason is Reason.NO_SEAT_AVAILABLE
    assert "25 seats" in decisions[-1].message
    assert app.ledger.used() == 25
