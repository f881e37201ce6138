"""Files holding secrets are created owner-only, whatever the umask.

The SQLite database holds password hashes and the session-signing secret;
a vendor private key signs licences. Each is created mode 0600 even under the
common umask 022, which would otherwise leave it world-readable. A
configuration file that holds a secret inline and that others may read is
warned about when it is loaded.
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from sqlalchemy import text

from seatgate.app import Core
from seatgate.cli.main import cli
from seatgate.config import load_config
from seatgate.licensing.vendor import VendorKey
from tests.test_cli import check, write_config


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def world_readable_umask() -> Iterator[None]:
    """The usual umask 022: files made with the default mode end up 0644."""
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def test_sqlite_database_and_its_wal_and_shm_are_not_world_readable_after_init(
    tmp_path: Path, vendor_key: VendorKey, world_readable_umask: None
) -> None:
    config = write_config(tmp_path / "site" / "seatgate.yaml", vendor_key)
    result = check(CliRunner().invoke(cli, ["--config", str(config), "init"]))
    assert result.exit_code == 0, result.output
    database = config.parent / "seatgate.db"
    assert mode(database) == 0o600

    # -wal and -shm exist while a connection is open; SQLite removes them at the last close.
    app = Core.build(load_config(config))
    try:
        app.db.write(lambda conn: conn.execute(text("CREATE TABLE probe (x INTEGER)")))
        wal = database.with_name("seatgate.db-wal")
        shm = database.with_name("seatgate.db-shm")
        assert wal.exists() and shm.exists()
        assert (mode(database), mode(wal), mode(shm)) == (0o600, 0o600, 0o600)
    finally:
        app.close()


def test_existing_database_keeps_the_mode_its_operator_gave_it(
    tmp_path: Path, vendor_key: VendorKey, world_readable_umask: None
) -> None:
    config = write_config(tmp_path / "site" / "seatgate.yaml", vendor_key)
    database = config.parent / "seatgate.db"
    database.touch(mode=0o640)
    database.chmod(0o640)
    check(CliRunner().invoke(cli, ["--config", str(config), "init"]))
    assert mode(database) == 0o640


def test_vendor_private_key_is_owner_only_even_with_an_empty_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        result = check(
            CliRunner().invoke(cli, ["vendor", "keygen", "--out", str(tmp_path / "k.pem")])
        )
    finally:
        os.umask(old)
    assert result.exit_code == 0, result.output
    assert mode(tmp_path / "k.pem") == 0o600


def config_with_a_database_password(tmp_path: Path, vendor_key: VendorKey, file_mode: int) -> Path:
    path = write_config(tmp_path / "seatgate.yaml", vendor_key)
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    data["database_url"] = "postgresql+psycopg://seatgate:s3cret-pw@db.example/seatgate"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    path.chmod(file_mode)
    return path


def test_config_file_with_a_password_that_others_can_read_is_warned_about(
    tmp_path: Path, vendor_key: VendorKey, caplog: pytest.LogCaptureFixture
) -> None:
    path = config_with_a_database_password(tmp_path, vendor_key, 0o644)
    with caplog.at_level(logging.WARNING, logger="seatgate.config"):
        load_config(path)
    [record] = [r for r in caplog.records if r.name == "seatgate.config"]
    message = record.getMessage()
    assert str(path) in message
    assert "0644" in message
    assert "database_url" in message
    assert "s3cret-pw" not in message


@pytest.mark.parametrize("file_mode", [0o600, 0o400])
def test_config_file_with_a_password_readable_only_by_its_owner_is_not_warned_about(
    tmp_path: Path, vendor_key: VendorKey, caplog: pytest.LogCaptureFixture, file_mode: int
) -> None:
    path = config_with_a_database_password(tmp_path, vendor_key, file_mode)
    with caplog.at_level(logging.WARNING, logger="seatgate.config"):
        load_config(path)
    assert not [r for r in caplog.records if r.name == "seatgate.config"]


def test_config_file_without_secrets_may_be_world_readable(
    tmp_path: Path, vendor_key: VendorKey, caplog: pytest.LogCaptureFixture
) -> None:
    path = write_config(tmp_path / "seatgate.yaml", vendor_key)
    path.chmod(0o644)
    with caplog.at_level(logging.WARNING, logger="seatgate.config"):
        load_config(path)
    assert not [r for r in caplog.records if r.name == "seatgate.config"]
