"""A protected request through the seatgate Flask extension, against two floors.

The same minimal Flask app three times, each with one protected view that
returns the same body:

- the seat gate: ``SeatGate().init_app(app, core=...)`` as docs/operator.md
  "The web gate" shows, the view behind ``@seat_required``; every request
  re-checks in the database that the session is open, the account active,
  its seat held and the licence valid;
- the peer, what a portal without seatgate typically runs: flask-login whose
  user loader reads the user row from the same database with SQLAlchemy, as
  a Flask-SQLAlchemy app does. An ORM model mapped on the product's
  ``accounts`` table (every column), one engine with its default pool made at
  app start, a scoped session per app context that the loader's
  ``session.get(User, id)`` uses and that is removed at app-context teardown
  (Flask-SQLAlchemy's own scoping and teardown); the default transaction
  handling, so on PostgreSQL the read is BEGIN, SELECT, and the ROLLBACK when
  the connection goes back to the pool;
- flask-login with a dict user loader (no I/O at all).

A fourth app shows how much of the budget against the dict loader one
round trip to the database takes: the dict app whose loader also runs one
bare ``SELECT 1`` on the database's own driver (on PostgreSQL, psycopg's
``exec_prepared`` of a statement prepared once on an autocommit
connection, as the gate's check reads; on SQLite, one ``sqlite3``
execute). A check that must see a change committed on another node before
the request started reads the database at least once per request, so a
gate costs about that app's time plus its own work besides the read (the
gate also stands in for flask-login's session loading, which that app
pays). Its time, and its ratio to the dict app, are in the notes of
``flask.request_vs_dict.*``.

All four use the Flask test client (no network) over ``https://`` (the
gate's cookies are ``Secure``), the same flask-login settings (session
protection off, as the extension sets it) and a signed-in session cookie.
Each round runs one batch of requests on each app, in an order that rotates
from round to round; a figure is the median batch time per request.
``flask.request.*`` is the gate over the peer, ``flask.request_vs_dict.*``
the gate over the dict loader.
"""

from __future__ import annotations

import importlib
import secrets
import sqlite3
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

from flask import Flask
from flask.globals import app_ctx
from flask.testing import FlaskClient
from flask_login import LoginManager, UserMixin, login_required, login_user
from sqlalchemy import Engine, create_engine
from sqlalchemy.engine import make_url
from sqlalchemy.orm import DeclarativeBase, scoped_session, sessionmaker

from bench import BACKENDS, Installation, database, password_parameters, pick, workdir
from bench.common import Result, result
from seatgate.app import Core
from seatgate.config import WebConfig
from seatgate.storage.schema import accounts

GOAL = 1.10
"""The gate over the peer (flask-login with a SQLAlchemy user loader)."""
GOAL_VS_DICT = 1.5
"""The gate over flask-login with a dict user loader."""
BASE_URL = "https://portal.example.com"
LOGIN = "alice"
PASSWORD = "correct horse battery staple"  # noqa: S105 - a throwaway account
BODY = "the portal"


class PlainUser(UserMixin):  # type: ignore[misc]
    """A flask-login user kept in a dict."""

    def __init__(self, user_id: str) -> None:
        self.id = user_id


class PeerBase(DeclarativeBase):
    """The peer portal's declarative base."""


class PeerUser(UserMixin, PeerBase):  # type: ignore[misc]
    """The peer portal's user model, mapped on the product's ``accounts`` table."""

    __table__ = accounts


def run(quick: bool) -> list[Result]:
    """Two lines per database: the gate over the peer, and over the dict loader (µs/request)."""
    rounds = pick(quick, full=40, quick_size=16, smoke_size=2)
    batch = pick(quick, full=250, quick_size=100, smoke_size=5)
    with workdir() as folder:
        results = []
        for backend in BACKENDS:
            with database(backend, folder) as url:
                results += _measure(backend, url, rounds, batch)
        return results


def plain_app(each_load: Callable[[], None] | None = None) -> tuple[Flask, FlaskClient]:
    """The floor: flask-login with users in a dict, and a signed-in client; with
    ``each_load``, called by the user loader on every request (the round-trip app)."""
    app = Flask("bench_plain" if each_load is None else "bench_round_trip")
    app.secret_key = secrets.token_urlsafe(48)
    _cookie_settings(app)
    users = {"1": PlainUser("1")}
    loader: Callable[[str], PlainUser | None] = users.get
    if each_load is not None:
        load = each_load

        def loader(user_id: str) -> PlainUser | None:
            load()
            return users.get(user_id)

    return app, _flask_login_client(app, loader, lambda: users["1"])


def peer_app(url: str, account_id: int) -> tuple[Flask, FlaskClient, Engine]:
    """The peer: flask-login loading the user row with SQLAlchemy, as Flask-SQLAlchemy does."""
    app = Flask("bench_peer")
    app.secret_key = secrets.token_urlsafe(48)
    _cookie_settings(app)
    engine = create_engine(url)
    # Flask-SQLAlchemy's scoping: one session per app context, removed at its teardown.
    db_session = scoped_session(
        sessionmaker(engine),
        scopefunc=lambda: id(app_ctx._get_current_object()),  # type: ignore[attr-defined]
    )
    app.teardown_appcontext(lambda _exc: db_session.remove())
    client = _flask_login_client(
        app,
        lambda user_id: db_session.get(PeerUser, int(user_id)),
        lambda: db_session.get(PeerUser, account_id),
    )
    return app, client, engine


def _flask_login_client(
    app: Flask, loader: Callable[[str], Any], signing_in: Callable[[], Any]
) -> FlaskClient:
    """flask-login on ``app`` with ``loader``, the protected view, and a client signed in
    as ``signing_in()`` (session protection off, as the extension sets it)."""
    manager = LoginManager()
    manager.session_protection = None
    manager.user_loader(loader)
    manager.init_app(app)

    @app.post("/sign-in")
    def sign_in() -> str:
        user = signing_in()
        if user is None:
            raise RuntimeError("the user to sign in is missing")
        login_user(user)
        return "signed in"

    app.add_url_rule("/portal", view_func=login_required(_portal))

    client = app.test_client()
    response = client.post("/sign-in", base_url=BASE_URL)
    if response.status_code != 200:
        raise RuntimeError(f"{app.name} sign-in failed: {response.status}")
    return client


def _bare_read(url: str) -> tuple[Callable[[], None], Callable[[], None]]:
    """One ``SELECT 1`` on the database's own driver, the least a per-request read costs."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        connection = sqlite3.connect(parsed.database or "", check_same_thread=False)

        def read_sqlite() -> None:
            if connection.execute("SELECT 1").fetchone() != (1,):
                raise RuntimeError("SELECT 1 did not answer 1")

        return read_sqlite, connection.close
    import psycopg  # noqa: PLC0415 (the pg extra)
    from psycopg import pq  # noqa: PLC0415

    dsn = parsed.set(drivername="postgresql").render_as_string(hide_password=False)
    conn = psycopg.connect(dsn, autocommit=True)
    pgconn = conn.pgconn
    pgconn.prepare(b"bench_select_one", b"SELECT 1")

    def read_postgres() -> None:
        result = pgconn.exec_prepared(b"bench_select_one", [], result_format=pq.Format.BINARY)
        if result.status != pq.ExecStatus.TUPLES_OK or result.ntuples != 1:
            raise RuntimeError(f"SELECT 1 failed: {result.error_message!r}")

    return read_postgres, conn.close


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
    """The protected view of every app."""
    return BODY


def _cookie_settings(app: Flask) -> None:
    # What the extension sets on its app, so that the apps differ only in the gate.
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


def rotated(works: Sequence[Callable[[], None]], *, rounds: int, warmup: int = 2) -> list[float]:
    """Median times of ``works``, one run of each per round, the order rotating every round."""
    for _ in range(warmup):
        for work in works:
            work()
    times: list[list[float]] = [[] for _ in works]
    for turn in range(rounds):
        for step in range(len(works)):
            index = (turn + step) % len(works)
            start = time.perf_counter()
            works[index]()
            times[index].append(time.perf_counter() - start)
    return [statistics.median(each) for each in times]


def _measure(backend: str, url: str, rounds: int, batch: int) -> list[Result]:
    installation = Installation(
        url, passwords=password_parameters(), web=WebConfig(secure_cookies=True)
    )
    installation.create(seats=25)
    core = installation.open(rate_limited=True)
    try:
        account = core.accounts.add(LOGIN, password=PASSWORD, actor="bench")
        _, plain = plain_app()
        _, gated = gated_app(core)
        _, peer, peer_engine = peer_app(url, account.id)
        select_one, close_bound = _bare_read(url)
        _, bound = plain_app(each_load=select_one)
        try:
            apps = (gated, peer, plain, bound)
            gated_s, peer_s, plain_s, bound_s = rotated(
                [_requests(client, batch) for client in apps], rounds=rounds
            )
        finally:
            peer_engine.dispose()
            close_bound()
    finally:
        core.close()
    gated_us, peer_us, plain_us, bound_us = (
        t / batch * 1e6 for t in (gated_s, peer_s, plain_s, bound_s)
    )
    how = (
        f"Flask test client, signed-in seated user; medians of {rounds} rounds, each one batch "
        f"of {batch} requests per app in rotating order"
    )
    return [
        result(
            f"flask.request.{backend}",
            gated_us,
            "µs",
            peer_us,
            ("<=", GOAL),
            notes=(
                f"{how}; floor: the same app with flask-login whose user_loader reads the "
                "account row with SQLAlchemy ORM session.get (model mapped on the accounts "
                "table, one engine and default pool made at start, scoped session removed at "
                "app-context teardown, as Flask-SQLAlchemy does)"
            ),
        ),
        result(
            f"flask.request_vs_dict.{backend}",
            gated_us,
            "µs",
            plain_us,
            ("<=", GOAL_VS_DICT),
            notes=(
                f"{how}; floor: the same app with flask-login and a dict user loader (no I/O); "
                f"bound: that app plus one bare SELECT 1 per request took {bound_us:,.0f} µs, "
                f"{bound_us / plain_us:.3f}x the floor (the round trip's share of the budget: "
                "a gate that reads the database per request costs about that plus its own work)"
            ),
        ),
    ]
