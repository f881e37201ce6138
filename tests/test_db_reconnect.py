"""Pooled PostgreSQL connections the server closed are replaced, not reported.

No pre-ping runs before each use; instead a read retries once and a write
retries as for any transient failure. The server side of every pooled
connection is terminated here, as a PostgreSQL restart would.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator

import pytest
from sqlalchemy import create_engine, text

from seatgate.app import Core
from seatgate.seats.state import count_seats
from tests.conftest import PG_ADMIN_URL, add_users, create_pg_database, drop_pg_database


def terminate_backends_of(url: str) -> int:
    name = url.rsplit("/", 1)[1]
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            return len(
                conn.execute(
                    text(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE datname = :name AND pid <> pg_backend_pid()"
                    ),
                    {"name": name},
                ).all()
            )
    finally:
        admin.dispose()


@pytest.fixture
def pg_url() -> Iterator[str]:
    url = create_pg_database()
    yield url
    drop_pg_database(url)


@pytest.mark.postgres
def test_reads_and_writes_survive_pooled_connections_closed_by_the_server(
    build_app: Callable[..., Core], pg_url: str, mint: Callable[..., str]
) -> None:
    app = build_app(pg_url)
    db_url = pg_url
    app.licensing.install(mint("license", seats=25), actor="t")
    add_users(app, 2)
    assert app.gate.decide("user000", "user000-pw").allowed
    assert terminate_backends_of(db_url) >= 1

    assert app.db.read(count_seats) == 1  # a read on a dead pooled connection
    assert terminate_backends_of(db_url) >= 1
    assert app.gate.decide("user001", "user001-pw").allowed  # reads and writes
    assert app.db.read(count_seats) == 2


@pytest.mark.postgres
def test_the_session_check_survives_pooled_connections_closed_by_the_server(
    build_app: Callable[..., Core],
    pg_url: str,
    mint: Callable[..., str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = build_app(pg_url)
    app.licensing.install(mint("license", seats=25), actor="t")
    add_users(app, 1)
    assert app.gate.decide("user000", "user000-pw").allowed
    token = app.sessions.open(app.accounts.get("user000").id)
    assert app.sessions.check(token).allowed  # its autocommit read, on a pooled connection
    assert terminate_backends_of(pg_url) >= 1

    with caplog.at_level(logging.INFO, logger="seatgate.storage.quick_read"):
        assert app.sessions.check(token).allowed  # read again on a fresh connection
    assert "stale pooled connection, reading again" in caplog.text
    # The connection that replaced the dead one is back in transactions for the others.
    assert app.gate.decide("user000", "user000-pw").allowed
    assert app.db.read(count_seats) == 1
    app.sessions.end(token, actor="t")
    assert not app.sessions.check(token).allowed
