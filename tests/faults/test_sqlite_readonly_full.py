"""The SQLite database becomes read-only, or its disk fills up.

The database lives on a small tmpfs mounted for the test (``mount_tmpfs``),
so both faults are the kernel's, the same for root as for anyone:

``read_only``
    the filesystem is remounted read-only (EROFS). Linux refuses that while
    a file on it is open for writing, so the installation's pooled
    connections are closed first: the state of a gate that (re)opens its
    database after the filesystem went read-only;
``disk_full``
    a file fills the filesystem (ENOSPC) while the gate's connections stay
    open, so the failure comes as SQLite writes the transaction out, at
    COMMIT.

Then the front doors are driven -- ``LoginGate.decide`` itself, the
``seatgate login`` command in its own process and the Flask web gate -- and
after the filesystem has room (or is writable) again, the next login must
work with nothing half-written: the seat invariant, the audit chain, SQLite's
integrity check, and no seat or audit event of the logins that failed.
"""

from __future__ import annotations

import re
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from seatgate.adapters.flask.server import create_app
from seatgate.app import Core
from seatgate.config import load_config
from seatgate.errors import StorageError
from seatgate.licensing.vendor import VendorKey
from tests.conftest import add_users
from tests.faults.conftest import Tmpfs
from tests.faults.support import (
    assert_consistent,
    count_events,
    inspector,
    seat_holders,
    wall_clock_installation,
)

FAULTS = ("read_only", "disk_full")
ATTEMPTS = 4
# A failing request must answer at once: no busy-timeout wait, no retry storm.
ANSWER_LIMIT = 5.0
SEATGATE_COMMAND = Path(sys.executable).with_name("seatgate")
CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')


@dataclass
class Site:
    """An installation on a tmpfs, its web gate, and the fault to apply to it."""

    fault: str
    fs: Tmpfs
    db_url: str
    db_path: Path
    config_path: Path
    admin: Core
    core: Core
    web: Flask
    users: list[str]
    filler: Path | None = field(default=None)

    def break_it(self) -> None:
        if self.fault == "read_only":
            self.admin.db.dispose()
            self.core.db.dispose()
            self.fs.remount(read_only=True)
        else:
            self.filler = self.fs.fill()

    def repair(self) -> None:
        if self.fault == "read_only":
            self.fs.remount(read_only=False)
        elif self.filler is not None:
            self.filler.unlink()
            self.filler = None

    def client(self) -> FlaskClient:
        return self.web.test_client()


@pytest.fixture(params=FAULTS)
def site(
    request: pytest.FixtureRequest,
    mount_tmpfs: Callable[[str], Tmpfs],
    vendor_key: VendorKey,
) -> Iterator[Site]:
    """A licensed installation with four users on an 8 MiB tmpfs; ``user000`` holds a seat."""
    fs = mount_tmpfs("8m")
    db_path = fs.path / "seatgate.db"
    db_url = f"sqlite:///{db_path}"
    admin, config_path = wall_clock_installation(fs.path, db_url, vendor_key)
    users = add_users(admin, 4)
    # The web gate as it runs in production: failed logins rate-limited in the database.
    core = Core.build(load_config(config_path), rate_limited=True)
    web = create_app(core=core)
    # Exceptions are handled as in production (no TESTING propagation).
    web.config["PROPAGATE_EXCEPTIONS"] = False
    site = Site(request.param, fs, db_url, db_path, config_path, admin, core, web, users)
    assert _form_login(site.client(), users[0]).status_code == 303
    try:
        yield site
    finally:
        site.repair()
        core.close()
        admin.close()


def _form_login(client: FlaskClient, login: str) -> TestResponse:
    page = client.get("/login")
    assert page.status_code == 200
    match = CSRF_FIELD.search(page.get_data(as_text=True))
    assert match is not None
    return client.post(
        "/login", data={"login": login, "password": f"{login}-pw", "csrf_token": match.group(1)}
    )


def _check_nothing_half_written(site: Site, failed_login: str) -> None:
    """The database after the fault: consistent, and no trace of the logins that failed."""
    with inspector(site.db_url) as engine:
        assert_consistent(engine)
        assert failed_login not in seat_holders(engine)
        assert count_events(engine, "seat.claimed", failed_login) == 0
        assert count_events(engine, "login", failed_login) == 0
    conn = sqlite3.connect(site.db_path)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    finally:
        conn.close()


def _expected_words(fault: str) -> str:
    # SQLite's own words: a WAL database on a read-only filesystem cannot
    # create its shared-memory file, so it cannot be opened at all.
    return "unable to open database file" if fault == "read_only" else "disk is full"


def test_login_fails_with_a_storage_error_and_works_once_repaired(site: Site) -> None:
    """``LoginGate.decide`` under the fault: the same clear StorageError each time, then recovery.

    Proves: a first login and a seat holder's login both raise
    :class:`StorageError` (one line, naming SQLite's problem) at once and the
    same way on every attempt; once the filesystem is repaired nothing of
    those attempts is in the database, and the next logins work -- the
    waiting account claims a seat, the holder keeps its own.
    """
    newcomer, holder = site.users[1], site.users[0]
    site.break_it()
    messages = set()
    for _ in range(ATTEMPTS):
        for login in (newcomer, holder):
            started = time.monotonic()
            with pytest.raises(StorageError) as failed:
                site.core.gate.decide(login, f"{login}-pw")
            assert time.monotonic() - started < ANSWER_LIMIT
            messages.add(str(failed.value))
    site.repair()

    assert all("\n" not in message for message in messages), messages
    assert all(_expected_words(site.fault) in message for message in messages), messages
    _check_nothing_half_written(site, newcomer)
    decision = site.core.gate.decide(newcomer, f"{newcomer}-pw")
    assert decision.allowed and decision.seat_claimed
    decision = site.core.gate.decide(holder, f"{holder}-pw")
    assert decision.allowed and not decision.seat_claimed
    with inspector(site.db_url) as engine:
        assert seat_holders(engine) == {newcomer, holder}
        assert_consistent(engine)


def _cli_login(site: Site, login: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            str(SEATGATE_COMMAND),
            "--config",
            str(site.config_path),
            "login",
            login,
            "--password-stdin",
        ],
        input=f"{login}-pw\n",
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_cli_login_names_the_database_problem_in_one_line(site: Site) -> None:
    """``seatgate login`` under the fault: exit 1 and one ``seatgate:`` line, twice alike.

    Proves: the command line never shows a traceback for an unusable
    database; it prints one line naming SQLite's problem and exits 1, the
    same on a second run; after the repair the same command prints
    ``allowed``.
    """
    newcomer = site.users[1]
    site.break_it()
    runs = [_cli_login(site, newcomer) for _ in range(2)]
    site.repair()

    for run in runs:
        assert run.returncode == 1, run.stderr
        assert run.stdout == ""
        lines = run.stderr.strip().splitlines()
        assert len(lines) == 1, run.stderr
        assert lines[0].startswith("seatgate: ")
        assert _expected_words(site.fault) in lines[0]
    assert runs[0].stderr == runs[1].stderr
    _check_nothing_half_written(site, newcomer)
    after = _cli_login(site, newcomer)
    assert (after.returncode, after.stdout.strip()) == (0, "allowed"), after.stderr


def test_web_gate_answers_503_with_a_readable_message(site: Site) -> None:
    """The login form and ``POST /api/login`` under the fault: 503 and words, every time.

    Proves (once fixed): each attempt is answered at once with 503 and the
    gate's own message -- the error page for the form, ``{"error",
    "message"}`` for the API -- never a traceback or the generic 500 page;
    the gate keeps serving the sign-in page between attempts; once repaired,
    the same login signs in.
    """
    newcomer = site.users[1]
    site.break_it()
    try:
        for _ in range(ATTEMPTS):
            started = time.monotonic()
            page = _form_login(site.client(), newcomer)
            assert time.monotonic() - started < ANSWER_LIMIT
            body = page.get_data(as_text=True)
            assert page.status_code == 503, body[:300]
            assert 'id="error-message"' in body
            assert "Traceback" not in body and "Internal Server Error" not in body

            api = site.client().post(
                "/api/login", json={"login": newcomer, "password": f"{newcomer}-pw"}
            )
            assert api.status_code == 503
            reply = api.get_json()
            assert isinstance(reply, dict)
            assert reply.get("error") and reply.get("message")
    finally:
        site.repair()

    _check_nothing_half_written(site, newcomer)
    assert _form_login(site.client(), newcomer).status_code == 303


@pytest.mark.parametrize("site", ["disk_full"], indirect=True)
def test_disk_full_at_commit_is_reported_as_not_saved(site: Site) -> None:
    """A full disk at COMMIT on SQLite: the message names the full disk, not "may have been saved".

    Proves (once fixed): the error a login gets names the full disk and does
    not send the reader to check whether the change was saved -- SQLite
    rolled it back, which the database afterwards confirms.
    """
    newcomer = site.users[1]
    site.break_it()
    with pytest.raises(StorageError) as failed:
        site.core.gate.decide(newcomer, f"{newcomer}-pw")
    site.repair()

    _check_nothing_half_written(site, newcomer)
    message = str(failed.value)
    assert "disk is full" in message
    assert "may or may not have been saved" not in message
    assert "connection failed" not in message
