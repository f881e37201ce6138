"""Changes that take an account's sessions away end them, for good, with the reason.

A new password (CLI, CSV import), a disabled or deleted account, a seat
revoked, moved away or released by a smaller licence, an account disabled or
gone in the directory: each ends the account's sessions in the transaction
of the change, audited as ``session.ended`` with the reason. Enabling the
account again or granting the seat again never revives them. Every test
runs on SQLite and on PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from flask.testing import FlaskClient

from seatgate.cli.main import cli
from seatgate.licensing.vendor import VendorKey
from seatgate.sessions.service import SessionState
from tests.conftest import write_config
from tests.test_directory_sync import FakeDirectory, make_sync, person
from tests.web_support import Web

Run = Callable[..., Result]
NEW_PASSWORD = "a-new-password-42"


@pytest.fixture
def run(web: Web, tmp_path: Path, db_url: str, vendor_key: VendorKey) -> Run:
    """run(*args, input=None) -> `seatgate --config <same database> args...` as `ops`."""
    config = write_config(tmp_path / "seatgate.yaml", db_url, vendor_key)

    def _run(*args: str, input: str | None = None) -> Result:
        result = CliRunner().invoke(
            cli,
            ["--config", str(config), *args],
            obj={"clock": web.clock},
            input=input,
            env={"LOGNAME": "ops", "SEATGATE_CONFIG": None},
        )
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise result.exception
        return result

    return _run


def signed_in(web: Web, login: str) -> FlaskClient:
    client = web.client()
    assert web.login(client, login).status_code == 303
    assert client.get("/api/me").status_code == 200
    return client


def refused(client: FlaskClient) -> bool:
    """Whether the session's next request is refused (the JSON API and the page)."""
    me = client.get("/api/me").status_code
    page = client.get("/")
    return me == 401 and page.status_code == 302 and "/login" in page.headers["Location"]


def assert_ended(web: Web, login: str, reason: str, cause: str | None = None) -> None:
    """The login's one session is listed as ended with ``reason``, and audited so."""
    account = web.core.accounts.get(login)
    listed = web.core.sessions.list(account_id=account.id)
    assert [(s.state, s.ended_reason) for s in listed] == [(SessionState.ENDED, reason)]
    ended = [e for e in web.events("session.ended") if e.subject == login]
    assert [e.outcome for e in ended] == [reason]
    if cause is not None:
        assert ended[0].details["cause"] == cause


def test_an_old_session_dies_when_the_password_is_changed_from_the_cli(web: Web, run: Run) -> None:
    client = signed_in(web, "user000")
    other = signed_in(web, "user001")
    result = run("accounts", "passwd", "user000", "--password-stdin", input=f"{NEW_PASSWORD}\n")
    assert result.exit_code == 0, result.output
    assert refused(client)
    assert_ended(web, "user000", "password_changed")
    assert not refused(other)
    # The new password opens a new session.
    fresh = web.client()
    assert web.login(fresh, "user000", NEW_PASSWORD).status_code == 303
    assert fresh.get("/api/me").status_code == 200


def test_an_old_session_dies_when_a_csv_import_replaces_the_password_hash(
    web: Web, tmp_path: Path
) -> None:
    client = signed_in(web, "user000")
    new_hash = web.core.hasher.hash(NEW_PASSWORD)
    path = tmp_path / "accounts.csv"
    path.write_text(f'login,password_hash\nuser000,"{new_hash}"\nuser001,\n', encoding="utf-8")
    importer = web.core.account_importer()
    with importer.check(web.core.csv_file(path)) as checked:
        importer.apply(checked, actor="ops")
    assert refused(client)
    assert_ended(web, "user000", "password_changed")


def test_a_session_stays_dead_when_a_disabled_account_is_enabled_again(web: Web) -> None:
    client = signed_in(web, "user000")
    web.core.accounts.set_status("user000", "disabled", actor="ops")
    web.core.accounts.set_status("user000", "active", actor="ops")
    assert refused(client)
    assert_ended(web, "user000", "account_disabled")
    # The seat the account lost was released once; no session ended twice.
    assert not web.holds("user000")


def test_a_session_dies_with_its_deleted_account(web: Web) -> None:
    client = signed_in(web, "user000")
    web.core.accounts.set_status("user000", "deleted", actor="ops")
    web.core.accounts.set_status("user000", "active", actor="ops")
    assert refused(client)
    assert_ended(web, "user000", "account_deleted")


def test_a_csv_import_disabling_the_account_ends_its_session_for_good(
    web: Web, tmp_path: Path
) -> None:
    client = signed_in(web, "user000")
    path = tmp_path / "accounts.csv"
    path.write_text("login,active\nuser000,no\n", encoding="utf-8")
    importer = web.core.account_importer()
    with importer.check(web.core.csv_file(path)) as checked:
        importer.apply(checked, actor="ops")
    web.core.accounts.set_status("user000", "active", actor="ops")
    assert refused(client)
    assert_ended(web, "user000", "account_disabled")


def test_a_revoked_seat_granted_again_does_not_revive_the_session(web: Web) -> None:
    client = signed_in(web, "user000")
    account = web.core.accounts.get("user000")
    web.clock.advance(timedelta(minutes=5))
    web.core.ledger.revoke(account.id, actor="ops")
    web.core.ledger.assign(account.id, actor="ops")
    assert refused(client)
    assert_ended(web, "user000", "seat_lost", cause="revoked")


def test_a_seat_revoked_and_reassigned_in_the_login_instant_does_not_revive_the_session(
    web: Web,
) -> None:
    """The clock does not move: the seat's new grant has the session's own timestamp."""
    client = signed_in(web, "user000")
    account = web.core.accounts.get("user000")
    web.core.ledger.revoke(account.id, actor="ops")
    web.core.ledger.assign(account.id, actor="ops")
    assert refused(client)
    assert_ended(web, "user000", "seat_lost", cause="revoked")


def test_a_seat_moved_away_and_back_in_the_same_instant_does_not_revive_the_session(
    web: Web,
) -> None:
    client = signed_in(web, "user000")
    mine = web.core.accounts.get("user000").id
    other = web.core.accounts.get("user002").id
    web.core.ledger.reassign(mine, other, actor="ops")
    web.core.ledger.reassign(other, mine, actor="ops")
    assert refused(client)
    assert_ended(web, "user000", "seat_lost", cause="reassigned")


def test_a_licence_shrinking_below_the_seats_in_use_ends_the_released_sessions(
    make_web: Callable[..., Web], mint: Callable[..., str]
) -> None:
    web = make_web(seats=25, users=26, licence=False)
    web.core.licensing.install(mint("license", seats=25, jti="lic-a"), actor="ops")
    web.core.licensing.install(mint("addon", seats=5, lic="lic-a", jti="addon-a"), actor="ops")
    # The least recently used seat is the one the shrink releases: user000's.
    client = signed_in(web, "user000")
    for login in web.users[1:]:
        web.clock.advance(timedelta(seconds=1))
        web.core.ledger.assign(web.core.accounts.get(login).id, actor="ops")
    kept = signed_in(web, "user025")
    web.core.licensing.remove("addon-a", actor="ops")
    assert not web.holds("user000")
    assert refused(client)
    assert_ended(web, "user000", "seat_lost", cause="entitlement_shrank")
    assert not refused(kept)


def test_a_user_disabled_in_the_directory_loses_the_session_for_good(web: Web) -> None:
    directory = FakeDirectory([person(i) for i in range(3)])
    sync = make_sync(web.core, max_disable_ratio=1.0)
    sync.run(directory, full=True)
    account = web.core.accounts.get("user0001")
    web.core.ledger.assign(account.id, actor="ops")
    web.clock.advance(timedelta(seconds=1))
    token = web.core.sessions.open(account.id)
    assert web.core.sessions.check(token).allowed
    directory.put(person(1, disabled=True))
    sync.run(directory)
    directory.put(person(1))
    sync.run(directory)
    assert not web.core.sessions.check(token).allowed
    ended = [e for e in web.events("session.ended") if e.subject == "user0001"]
    assert {e.outcome for e in ended} == {"account_disabled"}
