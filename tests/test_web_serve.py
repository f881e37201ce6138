"""The standalone gate (`seatgate serve`, gunicorn) built from a configuration file."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from seatgate.adapters.flask.server import create_app
from seatgate.cli.main import cli
from seatgate.errors import ConfigError


def _config(tmp_path: Path) -> Path:
    path = tmp_path / "seatgate.yaml"
    path.write_text(
        "installation_id: intranet.example\n"
        "database_url: sqlite:///seatgate.db\n"
        "passwords:\n  argon2_time_cost: 1\n  argon2_memory_kib: 1024\n"
        "web:\n  secret_key_env: SEATGATE_TEST_UNSET_SECRET\n",
        encoding="utf-8",
    )
    assert CliRunner().invoke(cli, ["--config", str(path), "init"]).exit_code == 0
    return path


def test_the_app_builds_from_a_config_file_and_serves_the_login_page(tmp_path: Path) -> None:
    app = create_app(_config(tmp_path))
    answer = app.test_client().get("/login")
    assert answer.status_code == 200
    assert 'id="login-submit"' in answer.get_data(as_text=True)


def test_every_web_node_of_an_installation_shares_the_generated_secret(tmp_path: Path) -> None:
    path = _config(tmp_path)
    assert create_app(path).secret_key == create_app(path).secret_key


def test_a_missing_configuration_fails_at_start_up(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SEATGATE_CONFIG", raising=False)
    with pytest.raises(ConfigError, match="SEATGATE_CONFIG"):
        create_app()


def test_serve_is_a_command() -> None:
    result = CliRunner().invoke(cli, ["serve", "--help"])
    assert result.exit_code == 0
    assert "--host" in result.output and "--port" in result.output


def test_demo_help_offers_no_serve() -> None:
    assert "--no-serve" in CliRunner().invoke(cli, ["demo", "--help"]).output
