"""The composition root: Core builds each part once, and the front doors ask it for them."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from seatgate.adapters.ldap import LdapDirectory
from seatgate.app import Core
from seatgate.cli.main import cli
from seatgate.clock import FakeClock
from seatgate.config import load_config
from seatgate.config.ldap import LdapConfig
from seatgate.directory.model import SyncReport
from seatgate.directory.sync import DirectorySync
from seatgate.errors import ConfigError
from seatgate.gate.ratelimit import DatabaseRateLimiter
from seatgate.imports import AccountRecord
from seatgate.licensing.vendor import VendorKey
from seatgate.sessions.secret import installation_secret
from tests.conftest import make_config, write_config

PASSWORD_ENV = "SEATGATE_TEST_ROOT_LDAP_PW"
LDAP = LdapConfig(
    url="ldaps://dc.example.com",
    base_dn="dc=example,dc=com",
    bind_dn="cn=seatgate,dc=example,dc=com",
    bind_password_env=PASSWORD_ENV,
    max_disable_ratio=0.25,
    max_disable_count=7,
    seat_groups=("cn=licensed,dc=example,dc=com",),
)
LDAP_SECTION = {
    "url": LDAP.url,
    "base_dn": LDAP.base_dn,
    "bind_dn": LDAP.bind_dn,
    "bind_password_env": PASSWORD_ENV,
}


@pytest.fixture
def with_ldap(
    sqlite_url: str, vendor_key: VendorKey, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Core]:
    """An installation with an ``ldap:`` section and its bind password set (no server)."""
    monkeypatch.setenv(PASSWORD_ENV, "service-secret")
    config = replace(make_config(sqlite_url, vendor_key), ldap=LDAP)
    core = Core.build(config, clock=clock, check_schema=False)
    yield core
    core.close()


def test_the_directory_is_built_once_for_logins_and_syncs(with_ldap: Core) -> None:
    directory = with_ldap.directory()
    assert isinstance(directory, LdapDirectory)
    assert with_ldap.verifiers["ldap"] is directory
    assert with_ldap.directory() is directory


def test_the_directory_sync_takes_the_sections_limits_and_is_built_once(with_ldap: Core) -> None:
    sync = with_ldap.directory_sync()
    assert isinstance(sync, DirectorySync)
    assert (sync.max_disable_ratio, sync.max_disable_count) == (0.25, 7)
    assert sync.seat_groups == LDAP.seat_groups
    assert (sync.db, sync.ledger) == (with_ldap.db, with_ldap.ledger)
    assert with_ldap.directory_sync() is sync


def test_the_directory_sync_refuses_an_unset_bind_password_naming_it(
    with_ldap: Core, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(PASSWORD_ENV)
    with pytest.raises(ConfigError, match=PASSWORD_ENV):
        with_ldap.directory_sync()


def test_without_an_ldap_section_there_is_no_directory(app: Core) -> None:
    assert "ldap" not in app.verifiers
    with pytest.raises(ConfigError, match="no `ldap:` section"):
        app.directory()
    with pytest.raises(ConfigError, match="no `ldap:` section to sync from"):
        app.directory_sync()


def test_sync_ldap_reads_the_directory_the_core_built_for_logins(
    tmp_path: Path,
    sqlite_url: str,
    vendor_key: VendorKey,
    clock: FakeClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(PASSWORD_ENV, "service-secret")
    path = write_config(tmp_path / "seatgate.yaml", sqlite_url, vendor_key, {"ldap": LDAP_SECTION})
    assert CliRunner().invoke(cli, ["--config", str(path), "init"]).exit_code == 0
    built: list[LdapDirectory] = []
    original = LdapDirectory.__init__

    def counting(self: LdapDirectory, *args: Any, **kwargs: Any) -> None:
        built.append(self)
        original(self, *args, **kwargs)

    read: list[Any] = []

    def run(self: DirectorySync, reader: Any, **options: Any) -> SyncReport:
        read.append(reader)
        return SyncReport(full=bool(options["full"]), dry_run=bool(options["dry_run"]))

    monkeypatch.setattr(LdapDirectory, "__init__", counting)
    monkeypatch.setattr(DirectorySync, "run", run)
    result = CliRunner().invoke(
        cli, ["--config", str(path), "sync", "ldap", "--full", "--json"], obj={"clock": clock}
    )
    assert result.exit_code == 0, result.output
    assert len(built) == 1
    assert read == built


def test_sync_ldap_without_an_ldap_section_is_a_configuration_error(
    tmp_path: Path, sqlite_url: str, vendor_key: VendorKey
) -> None:
    path = write_config(tmp_path / "seatgate.yaml", sqlite_url, vendor_key)
    assert CliRunner().invoke(cli, ["--config", str(path), "init"]).exit_code == 0
    result = CliRunner().invoke(cli, ["--config", str(path), "sync", "ldap"])
    assert result.exit_code == 2
    assert "no `ldap:` section to sync from" in result.stderr


def test_account_files_go_through_the_core(
    build_app: Callable[..., Core], sqlite_url: str, tmp_path: Path
) -> None:
    app = build_app(sqlite_url)
    assert app.account_importer() is app.account_importer()
    path = tmp_path / "in.csv"
    path.write_text("login;name\nana;Ana\n", encoding="utf-8")
    seen: list[int] = []
    rows = list(app.csv_file(path, on_progress=seen.append).rows())
    assert [(r.line, r.login, r.display_name) for r in rows if isinstance(r, AccountRecord)] == [
        (2, "ana", "Ana")
    ]
    with app.account_importer().check(app.csv_file(path)) as checked:
        report = app.account_importer().apply(checked, actor="test")
    assert report.created == 1
    out = io.StringIO()
    assert app.write_accounts_csv(out, [app.accounts.get("ana")]) == 1
    assert out.getvalue().splitlines()[1].startswith("ana,Ana,")


def test_the_web_gate_signs_with_the_installation_secret_the_core_gives(
    build_app: Callable[..., Core], sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = build_app(sqlite_url)
    env = app.config.web.secret_key_env
    monkeypatch.delenv(env, raising=False)
    secret = app.session_secret()
    assert secret == installation_secret(app.db, env)
    assert len(secret) >= 32
    web = app.web_app()
    assert web.secret_key == secret
    assert web.extensions["seatgate"].core is app
    assert web.test_client().get("/login").status_code == 200


def test_serve_builds_a_rate_limited_core_from_the_configuration(
    tmp_path: Path, sqlite_url: str, vendor_key: VendorKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    from seatgate.cli import serve

    path = write_config(tmp_path / "seatgate.yaml", sqlite_url, vendor_key)
    assert CliRunner().invoke(cli, ["--config", str(path), "init"]).exit_code == 0
    served: list[tuple[str, int, Any, int]] = []

    def run_simple(host: str, port: int, web: Any, **_: Any) -> None:
        served.append((host, port, web, web.test_client().get("/login").status_code))

    monkeypatch.setattr(serve, "run_simple", run_simple)
    serve.run(load_config(path), "127.0.0.1", 8080)
    [(host, port, web, status)] = served
    assert (host, port, status) == ("127.0.0.1", 8080, 200)
    assert isinstance(web.extensions["seatgate"].core.gate.rate_limiter, DatabaseRateLimiter)
