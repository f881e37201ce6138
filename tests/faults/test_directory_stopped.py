"""The directory server stops in the middle of a sync.

A real slapd (``fault_slapd``, port 3895) holds 2,000 users plus a dozen of
each test's own; the sync reads them 100 to a page. The reader's page hook
(``LdapDirectory(on_page=...)``, what ``seatgate sync ldap`` uses for its
progress line) stops slapd -- SIGKILL or SIGTERM -- right after the first
page, so the second page's search meets a dead server.

Before the stopped run, the directory was changed so that the run has
something of every kind to apply: a user deleted and one disabled (both
holding seats), one renamed (holding a seat), two with a new mail address
and three newcomers. The database must show none of it after the stopped
run, and all of it after the rerun.
"""

from __future__ import annotations

import secrets
import signal
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from ldap3.core.exceptions import LDAPException

from seatgate.adapters.ldap import LdapDirectory
from seatgate.app import Core
from seatgate.cli.main import cli
from seatgate.clock import FakeClock
from seatgate.config import load_config
from seatgate.directory.sync import DirectorySync
from seatgate.errors import DirectoryError
from seatgate.licensing.vendor import VendorKey
from tests.conftest import write_config
from tests.faults.conftest import restart_slapd, stop_slapd
from tests.faults.support import assert_consistent, inspector
from tests.ldap.product import (
    PASSWORD,
    PASSWORD_ENV,
    directory_rows,
    make_sync,
    ol_uuids,
    seat_logins,
    snapshot,
)
from tests.ldap.servers import OpenLDAP

pytestmark = [
    pytest.mark.slow,
    pytest.mark.filterwarnings(r"ignore:ssl\.match_hostname\(\) is deprecated:DeprecationWarning"),
]

POPULATION = 2000
POPULATION_PREFIX = "pop"
PAGE_SIZE = 100


@pytest.fixture(scope="module")
def population(fault_slapd: OpenLDAP) -> list[str]:
    """2,000 users every test of the module reads (and none changes)."""
    return fault_slapd.add_users_bulk(POPULATION_PREFIX, POPULATION, PASSWORD, mail_domain=None)


@dataclass
class Prepared:
    """An installation synced once, and the directory changed since."""

    app: Core
    config_path: Path
    sync: DirectorySync
    prefix: str
    seated: list[str]
    deleted: str
    disabled: str
    renamed: tuple[str, str]
    remailed: list[str]
    newcomers: list[str]


@pytest.fixture
def built() -> Iterator[list[Core]]:
    apps: list[Core] = []
    yield apps
    for app in apps:
        app.close()


def _prepare(
    server: OpenLDAP,
    folder: Path,
    db_url: str,
    vendor_key: VendorKey,
    clock: FakeClock,
    mint: Any,
    monkeypatch: pytest.MonkeyPatch,
    built: list[Core],
) -> Prepared:
    prefix = f"t{secrets.token_hex(3)}"
    own = server.add_users_bulk(prefix, 12, PASSWORD)
    monkeypatch.setenv(PASSWORD_ENV, server.service_password)
    ldap = {
        "url": server.url,
        "start_tls": True,
        "ca_file": str(server.ca_file),
        "base_dn": server.base_dn,
        "bind_dn": server.service_dn,
        "bind_password_env": PASSWORD_ENV,
        "preset": "openldap",
        "user_filter": (
            f"(&(objectClass=inetOrgPerson)(|(uid={POPULATION_PREFIX}*)(uid={prefix}*)))"
        ),
        "disabled_attribute": "employeeType",
        "disabled_values": ["disabled"],
        "page_size": PAGE_SIZE,
    }
    config_path = write_config(folder / "seatgate.yaml", db_url, vendor_key, {"ldap": ldap})
    app = Core.build(load_config(config_path), clock=clock, check_schema=False)
    built.append(app)
    app.init_schema()
    app.licensing.install(mint("license", seats=25), actor="test")
    sync = make_sync(app)
    first = sync.run(_reader(app))
    assert len(first.created) == POPULATION + len(own)
    seated = own[0:4]
    for uid in seated:
        assert app.gate.decide(uid, PASSWORD).seat_claimed

    prepared = Prepared(
        app=app,
        config_path=config_path,
        sync=sync,
        prefix=prefix,
        seated=seated,
        deleted=own[0],
        disabled=own[1],
        renamed=(own[2], f"{prefix}renamed"),
        remailed=own[4:6],
        newcomers=[f"{prefix}new{i}" for i in range(3)],
    )
    server.delete_user(prepared.deleted)
    server.modify(prepared.disabled, {"employeeType": "disabled"})
    server.rename_user(*prepared.renamed)
    for uid in prepared.remailed:
        server.modify(uid, {"mail": f"{uid}@moved.example"})
    for uid in prepared.newcomers:
        server.add_user(uid, PASSWORD)
    return prepared


def _reader(app: Core, on_page: Any = None) -> LdapDirectory:
    assert app.config.ldap is not None
    return LdapDirectory(app.config.ldap, on_page=on_page)


def _stop_after_first_page(server: OpenLDAP, how: signal.Signals) -> Any:
    pages: list[int] = []

    def after_page(seen: int) -> None:
        pages.append(seen)
        if len(pages) == 1:
            assert seen == PAGE_SIZE
            stop_slapd(server, how)

    return after_page


def _check_rerun(server: OpenLDAP, prepared: Prepared, db_url: str) -> None:
    """Run the full sync again: everything pending is applied, the accounts match the directory."""
    report = prepared.sync.run(_reader(prepared.app), full=True)

    assert sorted(report.created) == prepared.newcomers
    assert report.deleted == [prepared.deleted]
    assert report.disabled == [prepared.disabled]
    assert report.renamed == [prepared.renamed]
    assert sorted(report.updated) == prepared.remailed
    assert sorted(report.seats_freed) == sorted([prepared.deleted, prepared.disabled])
    assert seat_logins(prepared.app) == {prepared.renamed[1], prepared.seated[3]}
    uuids = ol_uuids(server, f"(|(uid={POPULATION_PREFIX}*)(uid={prepared.prefix}*))")
    active = {
        row["external_id"]: row["login"]
        for row in directory_rows(prepared.app).values()
        if row["status"] == "active"
    }
    assert active == {uuid: uid for uid, uuid in uuids.items() if uid != prepared.disabled}
    with inspector(db_url) as engine:
        assert_consistent(engine)


@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGTERM], ids=["sigkill", "sigterm"])
def test_directory_stopped_mid_sync_changes_nothing_and_the_rerun_completes(
    fault_slapd: OpenLDAP,
    population: list[str],
    tmp_path: Path,
    db_url: str,
    vendor_key: VendorKey,
    clock: FakeClock,
    mint: Any,
    monkeypatch: pytest.MonkeyPatch,
    built: list[Core],
    how: signal.Signals,
) -> None:
    """slapd dies after the first page: the sync fails and the database is untouched.

    Proves: accounts, seats, the sync mark and the audit log are exactly as
    before the run (not one of the pending creations, updates, renames,
    disables, deletions or seat releases was applied), the seat invariant and
    the audit chain hold; once slapd runs again the same full sync completes
    and the accounts match the directory. (Which error the stopped run
    raises is the next test's subject.)
    """
    server = fault_slapd
    prepared = _prepare(server, tmp_path, db_url, vendor_key, clock, mint, monkeypatch, built)
    before = snapshot(prepared.app)

    try:
        with pytest.raises((DirectoryError, LDAPException)):
            prepared.sync.run(_reader(prepared.app, _stop_after_first_page(server, how)), full=True)
        assert not server.running
    finally:
        if not server.running:
            restart_slapd(server)

    assert snapshot(prepared.app) == before
    with inspector(db_url) as engine:
        assert_consistent(engine)
    _check_rerun(server, prepared, db_url)


def test_directory_stopped_mid_sync_is_a_one_line_directory_error(
    fault_slapd: OpenLDAP,
    population: list[str],
    tmp_path: Path,
    sqlite_url: str,
    vendor_key: VendorKey,
    clock: FakeClock,
    mint: Any,
    monkeypatch: pytest.MonkeyPatch,
    built: list[Core],
) -> None:
    """``seatgate sync ldap --full`` with slapd killed after the first page: exit 1, one line.

    Proves (once fixed): the core raises :class:`DirectoryUnavailable`
    naming the server, and the command line prints one ``seatgate: ...``
    line about the directory and exits 1 -- no traceback -- while the
    database stays as it was.
    """
    server = fault_slapd
    prepared = _prepare(server, tmp_path, sqlite_url, vendor_key, clock, mint, monkeypatch, built)
    before = snapshot(prepared.app)
    # The command builds its own reader; give it the page hook the test needs.
    original_init = LdapDirectory.__init__

    def with_hook(self: LdapDirectory, config: Any, *, on_page: Any = None) -> None:
        original_init(self, config, on_page=_stop_after_first_page(server, signal.SIGKILL))

    monkeypatch.setattr(LdapDirectory, "__init__", with_hook)
    try:
        result = CliRunner().invoke(
            cli,
            ["--config", str(prepared.config_path), "sync", "ldap", "--full"],
            obj={"clock": clock},
        )
    finally:
        monkeypatch.setattr(LdapDirectory, "__init__", original_init)
        if not server.running:
            restart_slapd(server)

    assert snapshot(prepared.app) == before
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(
        result.exception
    )
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("seatgate: ")
    assert server.url in lines[0]
    assert "Traceback" not in result.output
