"""Device cookies: others' failed guesses do not lock a real user's own browser out.

Every test runs on SQLite and on PostgreSQL, through the login page and API.
"""

from __future__ import annotations

from collections.abc import Callable

from flask.testing import FlaskClient

from seatgate.adapters.flask.devices import DEVICE_COOKIE
from tests.web_support import Web

WRONG = "Wrong-Battery-0815"
NAT = {"REMOTE_ADDR": "192.0.2.10"}


def login(web: Web, client: FlaskClient, user: str, password: str | None = None) -> int:
    answer = client.post(
        "/api/login",
        json={"login": user, "password": password or f"{user}-pw"},
        environ_base=NAT,
    )
    return answer.status_code


def device_cookie(client: FlaskClient) -> str:
    cookie = client.get_cookie(DEVICE_COOKIE)
    assert cookie is not None
    assert cookie.http_only and cookie.secure
    return cookie.value


def test_an_attacker_at_the_users_nat_address_cannot_lock_out_the_users_own_browser(
    make_web: Callable[..., Web],
) -> None:
    web = make_web(rate_limited=True, max_failures_per_address=20)
    users_browser = web.client()
    assert login(web, users_browser, "user000") == 200  # yesterday: the cookie is set
    device_cookie(users_browser)
    attacker = web.client()
    for n in range(20):
        login(web, attacker, "user000" if n < 5 else f"user{n:03d}", WRONG)
    # The lock-out is real: the right password from the attacker's browser is refused...
    assert login(web, attacker, "user000") == 429
    assert login(web, web.client(), "user001") == 429
    # ... but the user's own browser, behind the same address, gets in.
    assert login(web, users_browser, "user000") == 200
    page = web.login(users_browser, "user000")
    assert page.status_code == 303


def test_guesses_from_everywhere_do_not_lock_the_users_browser_out_at_a_new_address(
    make_web: Callable[..., Web],
) -> None:
    web = make_web(rate_limited=True, max_failures_per_login=10)
    users_browser = web.client()
    assert login(web, users_browser, "user000") == 200
    for n in range(10):
        web.client().post(
            "/api/login",
            json={"login": "user000", "password": WRONG},
            environ_base={"REMOTE_ADDR": f"198.51.100.{n}"},
        )
    roaming = {"REMOTE_ADDR": "203.0.113.7"}
    stranger = web.client().post(
        "/api/login", json={"login": "user000", "password": "user000-pw"}, environ_base=roaming
    )
    assert stranger.status_code == 429
    own = users_browser.post(
        "/api/login", json={"login": "user000", "password": "user000-pw"}, environ_base=roaming
    )
    assert own.status_code == 200


def test_a_forged_or_other_logins_device_cookie_gives_nothing(
    make_web: Callable[..., Web],
) -> None:
    web = make_web(rate_limited=True)
    other = web.client()
    assert login(web, other, "user001") == 200
    genuine = device_cookie(other)
    attacker = web.client()
    for _ in range(5):
        assert login(web, attacker, "user000", WRONG) == 401
    named, issued, signature = genuine.split(".")
    forged_key = "dXNlcjAwMA"  # "user000", with user001's signature
    for cookie in (
        genuine,
        f"{forged_key}.{issued}.{signature}",
        f"{named}.{issued}.{'0' * 64}",
        "garbage",
    ):
        attacker.set_cookie(DEVICE_COOKIE, cookie)
        assert login(web, attacker, "user000") == 429, cookie


def test_a_stolen_device_cookie_allows_only_three_guesses(make_web: Callable[..., Web]) -> None:
    web = make_web(rate_limited=True)
    users_browser = web.client()
    assert login(web, users_browser, "user000") == 200
    thief = web.client()
    thief.set_cookie(DEVICE_COOKIE, device_cookie(users_browser))
    for _ in range(3):
        assert login(web, thief, "user000", WRONG) == 401
    assert login(web, thief, "user000") == 429
    # The device's failures also count for the address, as anyone's do.
    assert (
        web.core.db.read(
            lambda c: c.exec_driver_sql(
                "SELECT count(*) FROM login_failures WHERE device IS NOT NULL"
            ).scalar_one()
        )
        == 3
    )


def test_the_users_device_login_gives_the_guesser_at_the_same_nat_address_no_new_guesses(
    make_web: Callable[..., Web],
) -> None:
    web = make_web(rate_limited=True)
    users_browser = web.client()
    assert login(web, users_browser, "user000") == 200
    attacker = web.client()
    for _ in range(5):
        assert login(web, attacker, "user000", WRONG) == 401
    assert login(web, users_browser, "user000") == 200
    assert login(web, attacker, "user000", WRONG) == 429
