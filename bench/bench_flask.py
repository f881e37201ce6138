"""A protected request through the seatgate Flask extension vs plain flask-login.

The same minimal Flask app twice, each with one protected view that returns
the same body:

- the floor: flask-login alone, its user loader returning a user object from
  a dict, the view behind ``@login_required``;
- the seat gate: ``SeatGate().init_app(app, core=...)`` as docs/operator.md
  "The web gate" shows, the view behind ``@seat_required``; every request re-checks
  in the database that the account is active, holds its seat, the licence
  is valid and the session is open.

Both use the Flask test client (no network) over ``https://`` (the gate's
cookies are ``Secure``), the same flask-login settings (session protection
off, as the extension sets it) and a signed-in session cookie. Batches of
requests alternate between the two apps; the figure is the median batch
time per request.
"""

from __future__ import annotations

import importlib
import secrets
from collections.abc import Callable
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from flask_login import LoginManager, UserMixin, login_required, login_user

from bench import BACKENDS, Installation, database, password_parameters, pick, workdir
from bench.common import Result, interleaved, result
from seatgate.app import Core
from seatgate.config import WebConfig

GOAL = 1.10
BASE_URL = "https://portal.example.com"
LOGIN = "alice"
PASSWORD = "correct horse battery staple"  # noqa: S105 - a throwaway account
BODY = "the portal"


class PlainUser(UserMixin):  # type: ignore[misc]
    """A flask-login user kept in a dict."""

    def __init__(self, user_id: str) -> None:
        self.id = user_id


def run(quick: bool) -> list[Result]:
    """One line per database: microseconds per protected request."""
    rounds = pick(quick, full=40, quick_size=12, smoke_size=2)
    batch = pick(quick, full=250, quick_size=100, smoke_size=5)
    with workdir() as folder:
        results = []
        for backend in BACKENDS:
            with database(backend, folder) as url:
                results.append(_measure(backend, url, rounds, batch))
        return results


def plain_app() -> tuple[Flask, FlaskClient]:
    """The floor: flask-login with users in a dict, and a signed-in client."""
    app = Flask("bench_plain")
    app.secret_key = secrets.token_urlsafe(48)
    _cookie_settings(app)
    users = {"1": PlainUser("1")}
    manager = LoginManager()
    manager.session_protection = None
    manager.user_loader(users.get)
    manager.init_app(app)

    @app.post("/sign-in")
    def sign_in() -> str:
        login_user(users["1"])
        return "signed in"

    app.add_url_rule("/portal", view_func=login_required(_portal))

    client = app.test_client()
    response = client.post("/sign-in", base_url=BASE_URL)
    if response.status_code != 200:
        raise RuntimeError(f"plain sign-in failed: {response.status}")
    return app, client


def gated_app(core: Core) -> tuple[Flask, FlaskClient]:
    """The same app behind the seatgate extension, and a client signed in as a seated user."""
    flask_adapter: Any = importlib.import_module("seatgate.adapters.flask")
    app = Flask("bench_gated")
    flask_adapter.SeatGate().init_app(app, core=core)

    app.add_url_rule("/portal", view_func=flask_adapter.seat_required(_portal))

    client = app.test_client()
    response = client.post(
        "/api/login", json={"login": LOGIN, "password": PASSWORD}, base_url=BASE_URL
    )
    if response.status_code != 200:
        raise RuntimeError(f"seatgate sign-in failed: {response.status} {response.get_data()!r}")
    return app, client


def _portal() -> str:
    """The protected view of both apps."""
    return BODY


def _cookie_settings(app: Flask) -> None:
    # What the extension sets on its app, so that the two differ only in the gate.
    app.config.update(
        SESSION_COOKIE_HTTPONLY=True, SESSION_COOKIE_SAMESITE="Lax", SESSION_COOKIE_SECURE=True
    )


def _requests(client: FlaskClient, count: int) -> Callable[[], None]:
    def work() -> None:
        for _ in range(count):
            response = client.get("/portal", base_url=BASE_URL)
            if response.status_code != 200 or response.get_data(as_text=True) != BODY:
                raise RuntimeError(f"the protected view answered {response.status}")

    return work


def _measure(backend: str, url: str, rounds: int, batch: int) -> Result:
    installation = Installation(
        url, passwords=password_parameters(), web=WebConfig(secure_cookies=True)
    )
    installation.create(seats=25)
    core = installation.open(rate_limited=True)
    try:
        core.accounts.add(LOGIN, password=PASSWORD, actor="bench")
        _, plain = plain_app()
        _, gated = gated_app(core)
        gated_s, plain_s = interleaved(
            _requests(gated, batch), _requests(plain, batch), rounds=rounds
        )
    finally:
        core.close()
    return result(
        f"flask.request.{backend}",
        gated_s / batch * 1e6,
        "µs",
        plain_s / batch * 1e6,
        ("<=", GOAL),
        notes=(
            "Flask test client, signed-in seated user; floor: same app with plain flask-login "
            f"(dict user loader); medians of {rounds} interleaved batches of {batch} requests"
        ),
    )
