"""The web session secret: from the environment, or generated once and shared through the database.

Every database test runs on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import pytest
from sqlalchemy import select

from seatgate.app import Core
from seatgate.errors import ConfigError
from seatgate.sessions import secret as session_secret
from seatgate.sessions.secret import SETTINGS_KEY, installation_secret
from seatgate.storage import Database, schema, settings

ENV = "SEATGATE_TEST_SECRET_KEY"
GOOD = "k" * 40


def stored_secrets(app: Core) -> list[str]:
    return list(
        app.db.read(
            lambda c: c.execute(
                select(schema.settings.c.value).where(schema.settings.c.key == SETTINGS_KEY)
            ).scalars()
        )
    )


def test_the_environment_variable_is_used_when_set_and_nothing_is_stored(
    app: Core, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV, GOOD)
    assert installation_secret(app.db, ENV) == GOOD
    assert stored_secrets(app) == []


def test_an_explicit_environ_mapping_is_read_instead_of_the_process_environment(
    app: Core, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV, "p" * 40)
    assert installation_secret(app.db, ENV, environ={ENV: GOOD}) == GOOD


@pytest.mark.parametrize("short", ["Qz7-tiny", "Qz7" * 10])
def test_a_short_secret_in_the_environment_is_a_config_error_that_does_not_reveal_it(
    app: Core, monkeypatch: pytest.MonkeyPatch, short: str
) -> None:
    monkeypatch.setenv(ENV, short)
    with pytest.raises(ConfigError) as caught:
        installation_secret(app.db, ENV)
    assert caught.value.key == "web.secret_key_env"
    assert ENV in str(caught.value)
    assert "at least 32" in str(caught.value)
    assert short not in str(caught.value).replace(ENV, "")
    assert stored_secrets(app) == []


def test_exactly_32_characters_are_enough(app: Core, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV, "z" * 32)
    assert installation_secret(app.db, ENV) == "z" * 32


@pytest.mark.parametrize("value", [None, ""])
def test_unset_or_empty_generates_one_secret_stores_it_and_keeps_it(
    app: Core,
    build_app: Callable[..., Core],
    db_url: str,
    monkeypatch: pytest.MonkeyPatch,
    value: str | None,
) -> None:
    if value is None:
        monkeypatch.delenv(ENV, raising=False)
    else:
        monkeypatch.setenv(ENV, value)

    first = installation_secret(app.db, ENV)
    assert len(first) >= 32
    assert stored_secrets(app) == [first]
    assert installation_secret(app.db, ENV) == first
    # Another web node on the same database signs with the same secret.
    other_node = build_app(db_url)
    assert installation_secret(other_node.db, ENV) == first
    assert stored_secrets(app) == [first]


def test_the_generated_secret_is_never_logged(
    app: Core, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delenv(ENV, raising=False)
    with caplog.at_level(logging.DEBUG):
        secret = installation_secret(app.db, ENV)
    assert "generated the web session secret" in caplog.text
    assert secret not in caplog.text


def test_nodes_starting_together_end_up_with_one_secret(
    app: Core, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(ENV, raising=False)
    nodes = 8
    barrier = threading.Barrier(nodes)
    results: list[str] = []
    errors: list[BaseException] = []

    def node() -> None:
        db = Database(app.db.url)  # each node has its own engine and connections
        try:
            barrier.wait()
            results.append(installation_secret(db, ENV))
        except BaseException as exc:
            errors.append(exc)
        finally:
            db.dispose()

    threads = [threading.Thread(target=node) for _ in range(nodes)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert errors == []
    assert len(results) == nodes
    assert len(set(results)) == 1
    assert stored_secrets(app) == results[:1]


def test_a_node_that_loses_the_insert_race_adopts_the_winners_secret(
    app: Core, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(ENV, raising=False)
    winner = "w" * 64
    app.db.write(lambda c: settings.put(c, SETTINGS_KEY, winner))
    real_get = settings.get
    calls = 0

    def get_before_the_winner_committed(conn: object, key: str) -> str | None:
        # The first two reads (before and inside the write) happened before the
        # winner's commit became visible; then the insert hits the winner's row.
        nonlocal calls
        calls += 1
        return None if calls <= 2 else real_get(conn, key)  # type: ignore[arg-type]

    monkeypatch.setattr(session_secret.settings, "get", get_before_the_winner_committed)

    assert installation_secret(app.db, ENV) == winner
    assert calls == 3
    assert stored_secrets(app) == [winner]
