"""The admin command line end to end, through click's CliRunner.

Exit codes: 0 ok, 1 refused or failed, 2 usage or configuration error.
The CLI runs on the real clock; licences minted at the FakeClock's date
(in the past) are fine, trials are minted at the real date.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner, Result

from seatgate.app import Core
from seatgate.cli.main import cli
from seatgate.config import load_config
from seatgate.licensing.vendor import VendorKey
from tests.conftest import INSTALLATION, add_users

TESTER = "sg-tester"
ACTOR = f"cli:{TESTER}"


def write_config(path: Path, vendor_key: VendorKey, **overrides: Any) -> Path:
    data: dict[str, Any] = {
        "installation_id": INSTALLATION,
        "database_url": "sqlite:///seatgate.db",
        "license": {"public_keys": {"k1": vendor_key.public_pem()}},
        "passwords": {"argon2_time_cost": 1, "argon2_memory_kib": 1024, "argon2_parallelism": 1},
    }
    data.update(overrides)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def check(result: Result) -> Result:
    """Re-raise a crash: a traceback is never a documented exit."""
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


@dataclass
class Cli:
    """Runs ``seatgate --config <path> ...`` in-process."""

    config: Path
    runner: CliRunner

    def run(self, *args: str, input: str | None = None, **env: str | None) -> Result:
        result = self.runner.invoke(
            cli,
            ["--config", str(self.config), *args],
            input=input,
            env={"LOGNAME": TESTER, "SEATGATE_CONFIG": None, **env},
        )
        return check(result)

    def ok(self, *args: str, input: str | None = None) -> Result:
        result = self.run(*args, input=input)
        assert result.exit_code == 0, (args, result.output)
        return result

    def json(self, *args: str) -> Any:
        return json.loads(self.ok(*args, "--json").stdout)

    def add(self, login: str, password: str, *extra: str) -> Result:
        return self.ok("accounts", "add", login, "--password-stdin", *extra, input=password + "\n")

    def login(self, login: str, password: str) -> Result:
        return self.run("login", login, "--password-stdin", input=password + "\n")


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def bare(tmp_path: Path, vendor_key: VendorKey, runner: CliRunner) -> Cli:
    """A configuration file and no database yet."""
    return Cli(write_config(tmp_path / "site" / "seatgate.yaml", vendor_key), runner)


@pytest.fixture
def sg(bare: Cli) -> Cli:
    """After `seatgate init`."""
    bare.ok("init")
    return bare


@pytest.fixture
def licensed(sg: Cli, mint: Callable[..., str], tmp_path: Path) -> Cli:
    """With a 25-seat licence (jti lic-25) installed from a file."""
    token_file = tmp_path / "licence.jwt"
    token_file.write_text(mint("license", seats=25, jti="lic-25") + "\n", encoding="ascii")
    sg.ok("license", "install", str(token_file))
    return sg


# -- exit codes and configuration errors ------------------------------------------------


def test_missing_config_file_exits_2(tmp_path: Path, runner: CliRunner) -> None:
    missing = tmp_path / "nowhere" / "seatgate.yaml"
    result = check(runner.invoke(cli, ["--config", str(missing), "accounts", "list"]))
    assert result.exit_code == 2
    assert "--config" in result.stderr
    assert str(missing) in result.stderr
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ({"seats": {"assignment": "sometimes"}}, "seats.assignment"),
        ({"seat": {"assignment": "auto"}}, "seat"),
        ({"license": {"isuer": "x"}}, "license.isuer"),
        ({"database_url": "mysql://root@localhost/sg"}, "database_url"),
    ],
    ids=["bad value", "unknown key", "unknown nested key", "bad url"],
)
def test_config_with_a_bad_key_exits_2_naming_it(
    tmp_path: Path, vendor_key: VendorKey, runner: CliRunner, override: Any, key: str
) -> None:
    config = write_config(tmp_path / "seatgate.yaml", vendor_key, **override)
    result = check(runner.invoke(cli, ["--config", str(config), "init"]))
    assert result.exit_code == 2
    assert f"`{key}`" in result.stderr
    assert not (tmp_path / "seatgate.db").exists()


@pytest.mark.parametrize(
    "args",
    [
        ("accounts", "list"),
        ("license", "status"),
        ("seats", "list"),
        ("audit",),
    ],
)
def test_command_before_init_says_to_run_init(bare: Cli, args: Sequence[str]) -> None:
    result = bare.run(*args)
    assert result.exit_code == 2
    assert "seatgate init" in result.stderr


def test_login_before_init_says_to_run_init(bare: Cli) -> None:
    result = bare.login("bob", "pw")
    assert result.exit_code == 2
    assert "seatgate init" in result.stderr


def test_unknown_command_is_a_usage_error(sg: Cli) -> None:
    assert sg.run("accounts", "frobnicate").exit_code == 2
    assert sg.run("seats", "assign").exit_code == 2  # missing LOGIN


# -- init -------------------------------------------------------------------------------


def test_init_creates_the_schema_then_reports_up_to_date(bare: Cli) -> None:
    first = bare.ok("init")
    assert "created" in first.stdout
    # The relative SQLite path is relative to the config file, not the cwd.
    assert (bare.config.parent / "seatgate.db").is_file()
    second = bare.ok("init")
    assert "up to date" in second.stdout
    assert "created" not in second.stdout


def test_init_keeps_the_data(licensed: Cli) -> None:
    licensed.add("alice", "alice-pw-1")
    assert "up to date" in licensed.ok("init").stdout
    assert [a["login"] for a in licensed.json("accounts", "list")] == ["alice"]
    assert licensed.json("license", "status")["valid"] is True


# -- licence ----------------------------------------------------------------------------

STATUS_FIELDS = {
    "valid",
    "edition",
    "unlimited",
    "seats_total",
    "seats_used",
    "seats_free",
    "trial",
    "expires_at",
    "tokens",
}


def test_status_without_a_licence(sg: Cli) -> None:
    result = sg.run("license", "status", "--json")
    assert result.exit_code == 1
    status = json.loads(result.stdout)
    assert set(status) >= STATUS_FIELDS
    assert status["valid"] is False
    assert status["reason"]
    assert status["tokens"] == []
    assert status["seats_used"] == 0
    text = sg.run("license", "status")
    assert text.exit_code == 1
    assert "NOT VALID" in text.stdout


def test_install_from_a_file_and_status(licensed: Cli) -> None:
    status = licensed.json("license", "status")
    assert set(status) >= STATUS_FIELDS
    assert "reason" not in status
    assert status["valid"] is True
    assert status["edition"] == "bizspace"
    assert status["unlimited"] is False
    assert status["trial"] is False
    assert status["expires_at"] is None
    assert (status["seats_total"], status["seats_used"], status["seats_free"]) == (25, 0, 25)
    assert len(status["tokens"]) == 1
    token = status["tokens"][0]
    assert (token["jti"], token["kind"], token["seats"]) == ("lic-25", "license", 25)
    text = licensed.ok("license", "status").stdout
    assert "valid" in text
    assert "0 used of 25" in text


def test_install_reports_what_it_installed(
    sg: Cli, mint: Callable[..., str], tmp_path: Path
) -> None:
    token_file = tmp_path / "t.jwt"
    token_file.write_text(mint("license", seats=40, jti="lic-40"), encoding="ascii")
    out = sg.ok("license", "install", str(token_file)).stdout
    assert out.startswith("installed license `lic-40`")
    assert "entitlement: bizspace licence, 40 seats" in out


def test_install_from_stdin_with_an_addon(licensed: Cli, mint: Callable[..., str]) -> None:
    addon = mint("addon", seats=5, lic="lic-25", jti="addon-5")
    out = licensed.ok("license", "install", "-", input=addon + "\n").stdout
    assert "installed addon `addon-5`" in out
    status = licensed.json("license", "status")
    assert status["seats_total"] == 30
    assert [(t["jti"], t["kind"], t["seats"]) for t in status["tokens"]] == [
        ("lic-25", "license", 25),
        ("addon-5", "addon", 5),
    ]


def test_install_dry_run_changes_nothing(sg: Cli, mint: Callable[..., str]) -> None:
    token = mint("license", seats=25, jti="lic-dry")
    out = sg.ok("license", "install", "--dry-run", "-", input=token).stdout
    assert out.startswith("would install license `lic-dry`")
    assert "entitlement: bizspace licence, 25 seats" in out
    status = json.loads(sg.run("license", "status", "--json").stdout)
    assert status["valid"] is False
    assert status["tokens"] == []
    # The real install still works afterwards.
    sg.ok("license", "install", "-", input=token)
    assert sg.json("license", "status")["valid"] is True


def test_install_dry_run_lists_who_would_lose_a_seat(sg: Cli, mint: Callable[..., str]) -> None:
    # 27 seats held; a newer 25-seat licence would release the 2 least recently used.
    sg.ok("license", "install", "-", input=mint("license", seats=27, jti="lic-27"))
    app = Core.build(load_config(sg.config))
    try:
        for login in add_users(app, 27):
            app.ledger.assign(app.accounts.get(login).id, actor="test")
    finally:
        app.close()
    smaller = mint("license", seats=25, jti="lic-25b", now=datetime.now(UTC))

    out = sg.ok("license", "install", "--dry-run", "-", input=smaller).stdout
    match = re.search(r"^2 seat holder\(s\) would lose their seat: (.+)$", out, re.MULTILINE)
    assert match is not None, out
    victims = match.group(1).split(", ")
    assert len(victims) == 2
    assert len(sg.json("seats", "list")) == 27
    assert sg.json("license", "status")["seats_total"] == 27

    out = sg.ok("license", "install", "-", input=smaller).stdout
    assert f"2 seat holder(s) lost their seat: {', '.join(victims)}" in out
    holders = {s["login"] for s in sg.json("seats", "list")}
    assert len(holders) == 25
    assert not holders & set(victims)


def test_install_of_a_bad_token_fails_and_changes_nothing(
    sg: Cli, mint: Callable[..., str]
) -> None:
    token = mint("license", seats=25)
    header, payload, signature = token.split(".")
    tampered = f"{header}.{payload}.{signature[:-4]}AAAA"
    result = sg.run("license", "install", "-", input=tampered)
    assert result.exit_code == 1
    assert "rejected" in result.stderr
    assert json.loads(sg.run("license", "status", "--json").stdout)["tokens"] == []

    foreign = mint("license", seats=25, installation_id="someone-else.example.com")
    assert sg.run("license", "install", "-", input=foreign).exit_code == 1


def test_install_of_a_missing_file_is_a_usage_error(sg: Cli, tmp_path: Path) -> None:
    result = sg.run("license", "install", str(tmp_path / "missing.jwt"))
    assert result.exit_code == 2


def test_installing_the_same_token_twice_fails(licensed: Cli, tmp_path: Path) -> None:
    result = licensed.run("license", "install", str(tmp_path / "licence.jwt"))
    assert result.exit_code == 1
    assert "already installed" in result.stderr


def test_trial_status(sg: Cli, mint: Callable[..., str]) -> None:
    now = datetime.now(UTC)
    sg.ok("license", "install", "-", input=mint("trial", now=now, jti="trial-1"))
    status = sg.json("license", "status")
    assert status["valid"] is True
    assert status["trial"] is True
    assert status["seats_total"] == 25
    expires = datetime.strptime(status["expires_at"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    assert abs(expires - (now + timedelta(days=30))) < timedelta(minutes=5)
    assert [(t["jti"], t["kind"], t["seats"]) for t in status["tokens"]] == [
        ("trial-1", "trial", 25)
    ]


def test_expired_trial_is_not_valid(sg: Cli, mint: Callable[..., str]) -> None:
    # Minted at the FakeClock's date, long before the real clock: ended.
    result = sg.run("license", "install", "-", input=mint("trial"))
    assert result.exit_code == 1
    status = json.loads(sg.run("license", "status", "--json").stdout)
    assert status["valid"] is False


def test_unlimited_status(sg: Cli, mint: Callable[..., str]) -> None:
    sg.ok("license", "install", "-", input=mint("license", seats=25, unlimited=True))
    status = sg.json("license", "status")
    assert status["valid"] is True
    assert status["unlimited"] is True
    assert status["seats_total"] is None
    assert status["seats_free"] is None


# -- accounts ---------------------------------------------------------------------------

ACCOUNT_FIELDS = {"login", "name", "email", "source", "status", "admin", "groups", "has_seat"}


def test_accounts_add_and_list(sg: Cli) -> None:
    out = sg.add("Alice", "alice-pw-1", "--admin", "--name", "Alice Martín", "--email", "a@x.es")
    assert out.stdout.strip() == "created admin account Alice"
    sg.add("bob", "bob-pw-1")
    listing = sg.json("accounts", "list")
    assert [a["login"] for a in listing] == ["Alice", "bob"]
    for item in listing:
        assert set(item) >= ACCOUNT_FIELDS
    alice, bob = listing
    assert alice == {
        **alice,
        "name": "Alice Martín",
        "email": "a@x.es",
        "source": "local",
        "status": "active",
        "admin": True,
        "groups": [],
        "has_seat": False,
    }
    assert (bob["name"], bob["email"], bob["admin"]) == (None, None, False)
    text = sg.ok("accounts", "list").stdout
    assert "Alice Martín" in text


def test_password_is_not_echoed(sg: Cli) -> None:
    result = sg.add("alice", "Very-Secret-Pw-77")
    assert "Very-Secret-Pw-77" not in result.output


def test_duplicate_login_in_another_case_exits_1(sg: Cli) -> None:
    sg.add("alice", "alice-pw-1")
    result = sg.run("accounts", "add", "ALICE ", "--password-stdin", input="pw-2\n")
    assert result.exit_code == 1
    assert "collides" in result.stderr
    assert len(sg.json("accounts", "list")) == 1


def test_empty_password_is_a_usage_error(sg: Cli) -> None:
    result = sg.run("accounts", "add", "alice", "--password-stdin", input="\n")
    assert result.exit_code == 2
    assert sg.json("accounts", "list") == []


def test_bad_email_exits_1(sg: Cli) -> None:
    result = sg.run(
        "accounts", "add", "alice", "--email", "not-an-email", "--password-stdin", input="pw\n"
    )
    assert result.exit_code == 1
    assert sg.json("accounts", "list") == []


def test_accounts_disable_releases_the_seat_and_enable(licensed: Cli) -> None:
    licensed.add("alice", "alice-pw-1")
    assert licensed.login("alice", "alice-pw-1").exit_code == 0
    assert licensed.json("accounts", "list")[0]["has_seat"] is True

    out = licensed.ok("accounts", "disable", "alice").stdout
    assert "disabled alice" in out
    assert "seat is free again" in out
    (alice,) = licensed.json("accounts", "list")
    assert (alice["status"], alice["has_seat"]) == ("disabled", False)
    assert licensed.json("seats", "list") == []
    refused = licensed.login("alice", "alice-pw-1")
    assert (refused.exit_code, refused.stdout.strip()) == (1, "refused: account_disabled")
    assert "already disabled" in licensed.ok("accounts", "disable", "alice").stdout

    assert licensed.ok("accounts", "enable", "alice").stdout.strip() == "enabled alice"
    assert licensed.json("accounts", "list")[0]["status"] == "active"
    assert licensed.login("alice", "alice-pw-1").exit_code == 0
    assert "already active" in licensed.ok("accounts", "enable", "alice").stdout


@pytest.mark.parametrize(
    "args",
    [
        ("accounts", "disable", "ghost"),
        ("accounts", "enable", "ghost"),
        ("seats", "assign", "ghost"),
        ("seats", "revoke", "ghost"),
        ("seats", "pin", "ghost"),
        ("seats", "reassign", "ghost", "alice"),
    ],
)
def test_unknown_account_exits_1(licensed: Cli, args: Sequence[str]) -> None:
    licensed.add("alice", "alice-pw-1")
    result = licensed.run(*args)
    assert result.exit_code == 1
    assert "ghost" in result.stderr


def test_accounts_passwd(licensed: Cli) -> None:
    licensed.add("alice", "alice-pw-1")
    licensed.ok("accounts", "passwd", "alice", "--password-stdin", input="alice-pw-2\n")
    assert licensed.login("alice", "alice-pw-1").exit_code == 1
    assert licensed.login("alice", "alice-pw-2").exit_code == 0


# -- seats ------------------------------------------------------------------------------

SEAT_FIELDS = {"login", "pinned", "assigned_at", "last_login_at"}


def test_seats_assign_pin_unpin_revoke(licensed: Cli) -> None:
    licensed.add("alice", "alice-pw-1")
    licensed.add("bob", "bob-pw-1")
    assert licensed.json("seats", "list") == []

    assert (
        "assigned a pinned seat to alice" in licensed.ok("seats", "assign", "alice", "--pin").stdout
    )
    (seat,) = licensed.json("seats", "list")
    assert set(seat) >= SEAT_FIELDS
    assert (seat["login"], seat["pinned"], seat["last_login_at"]) == ("alice", True, None)
    assigned = datetime.strptime(seat["assigned_at"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    assert abs(assigned - datetime.now(UTC)) < timedelta(minutes=5)

    assert licensed.login("alice", "alice-pw-1").exit_code == 0
    (seat,) = licensed.json("seats", "list")
    assert seat["last_login_at"] is not None

    licensed.ok("seats", "unpin", "alice")
    assert licensed.json("seats", "list")[0]["pinned"] is False
    licensed.ok("seats", "pin", "alice")
    assert licensed.json("seats", "list")[0]["pinned"] is True

    assert licensed.run("seats", "assign", "alice").exit_code == 1  # already holds one
    licensed.ok("seats", "assign", "bob")
    assert {s["login"]: s["pinned"] for s in licensed.json("seats", "list")} == {
        "alice": True,
        "bob": False,
    }
    assert licensed.json("license", "status")["seats_used"] == 2

    assert "revoked the seat of bob" in licensed.ok("seats", "revoke", "bob").stdout
    assert [s["login"] for s in licensed.json("seats", "list")] == ["alice"]
    by_login = {a["login"]: a["has_seat"] for a in licensed.json("accounts", "list")}
    assert by_login == {"alice": True, "bob": False}


def test_revoking_a_seat_nobody_holds_exits_1(licensed: Cli) -> None:
    licensed.add("alice", "alice-pw-1")
    result = licensed.run("seats", "revoke", "alice")
    assert result.exit_code == 1
    assert "holds no seat" in result.stderr
    assert licensed.run("seats", "pin", "alice").exit_code == 1


def test_assign_without_a_licence_exits_1(sg: Cli) -> None:
    sg.add("alice", "alice-pw-1")
    result = sg.run("seats", "assign", "alice")
    assert result.exit_code == 1
    assert sg.json("seats", "list") == []


def test_reassign_moves_the_seat_and_keeps_the_pin(licensed: Cli) -> None:
    licensed.add("alice", "alice-pw-1")
    licensed.add("bob", "bob-pw-1")
    licensed.ok("seats", "assign", "alice", "--pin")
    out = licensed.ok("seats", "reassign", "ALICE", "bob").stdout
    assert "moved the seat of alice to bob" in out
    (seat,) = licensed.json("seats", "list")
    assert (seat["login"], seat["pinned"]) == ("bob", True)
    # Both or neither: alice has no seat to give any more.
    result = licensed.run("seats", "reassign", "alice", "bob")
    assert result.exit_code == 1
    assert [s["login"] for s in licensed.json("seats", "list")] == ["bob"]


def test_full_ledger_refuses_and_reassign_admits(licensed: Cli) -> None:
    for i in range(25):
        licensed.add(f"u{i:02d}", "pw-u")
        licensed.ok("seats", "assign", f"u{i:02d}")
    licensed.add("late", "late-pw")
    refused = licensed.login("late", "late-pw")
    assert (refused.exit_code, refused.stdout.strip()) == (1, "refused: no_seat_available")
    assert "25 seats" in refused.stderr
    assert licensed.run("seats", "assign", "late").exit_code == 1
    licensed.ok("seats", "reassign", "u00", "late")
    assert licensed.login("late", "late-pw").stdout.strip() == "allowed"
    assert licensed.login("u00", "pw-u").stdout.strip() == "refused: no_seat_available"


def test_manual_assignment_login_says_no_seat_is_assigned(
    tmp_path: Path, vendor_key: VendorKey, runner: CliRunner, mint: Callable[..., str]
) -> None:
    config = tmp_path / "manual" / "seatgate.yaml"
    sg = Cli(write_config(config, vendor_key, seats={"assignment": "manual"}), runner)
    sg.ok("init")
    token_file = tmp_path / "licence.jwt"
    token_file.write_text(mint("license", seats=25) + "\n", encoding="ascii")
    sg.ok("license", "install", str(token_file))
    sg.add("alice", "alice-pw-1")
    refused = sg.login("alice", "alice-pw-1")
    assert (refused.exit_code, refused.stdout.strip()) == (1, "refused: no_seat_available")
    assert "No seat is assigned to this account" in refused.stderr
    assert "seats of the licence" not in refused.stderr
    sg.ok("seats", "assign", "alice")
    assert sg.login("alice", "alice-pw-1").stdout.strip() == "allowed"


# -- login ------------------------------------------------------------------------------


def test_login_allowed_and_refused(licensed: Cli) -> None:
    licensed.add("alice", "alice-pw-1")
    allowed = licensed.login("Alice", "alice-pw-1")
    assert (allowed.exit_code, allowed.stdout.strip()) == (0, "allowed")
    wrong = licensed.login("alice", "nope")
    assert (wrong.exit_code, wrong.stdout.strip()) == (1, "refused: invalid_credentials")
    unknown = licensed.login("ghost", "nope")
    assert (unknown.exit_code, unknown.stdout.strip()) == (1, "refused: invalid_credentials")
    assert wrong.stderr == unknown.stderr
    hostile = licensed.login("*)(uid=*", "alice-pw-1")
    assert (hostile.exit_code, hostile.stdout.strip()) == (1, "refused: invalid_credentials")


def test_login_without_a_licence(sg: Cli) -> None:
    sg.add("alice", "alice-pw-1")
    result = sg.login("alice", "alice-pw-1")
    assert (result.exit_code, result.stdout.strip()) == (1, "refused: license_invalid")
    wrong = sg.login("alice", "wrong")
    assert wrong.stdout.strip() == "refused: invalid_credentials"


def test_login_without_a_terminal_needs_password_stdin(licensed: Cli) -> None:
    licensed.add("alice", "alice-pw-1")
    result = licensed.run("login", "alice", input="alice-pw-1\n")
    assert result.exit_code == 2
    assert "--password-stdin" in result.stderr


# -- audit ------------------------------------------------------------------------------


def test_audit_names_the_cli_user_as_actor(licensed: Cli) -> None:
    licensed.add("alice", "alice-pw-1")
    licensed.ok("seats", "assign", "alice")
    licensed.login("alice", "alice-pw-1")
    licensed.login("alice", "wrong-pw")
    events = licensed.json("audit")
    by_action: dict[str, list[dict[str, Any]]] = {}
    for event in events:
        assert {"at", "actor", "action", "subject", "outcome"} <= set(event)
        by_action.setdefault(event["action"], []).append(event)
    assert by_action["license.installed"][0]["actor"] == ACTOR
    assert by_action["license.installed"][0]["subject"] == "lic-25"
    assert by_action["account.created"][0]["actor"] == ACTOR
    assert by_action["account.created"][0]["subject"] == "alice"
    assert by_action["seat.assigned"][0]["actor"] == ACTOR
    # Newest first.
    assert [e["outcome"] for e in by_action["login"]] == ["invalid_credentials", "allowed"]
    assert all(e["actor"] == "alice" for e in by_action["login"])
    text = json.dumps(events)
    assert "alice-pw-1" not in text
    assert "wrong-pw" not in text


def test_audit_filters_and_limits(licensed: Cli) -> None:
    licensed.add("alice", "alice-pw-1")
    for _ in range(3):
        licensed.login("alice", "alice-pw-1")
    logins = licensed.json("audit", "--action", "login")
    assert len(logins) == 3
    assert {e["action"] for e in logins} == {"login"}
    assert len(licensed.json("audit", "--limit", "2")) == 2
    text = licensed.ok("audit").stdout
    assert ACTOR in text


# -- where the configuration comes from ---------------------------------------------------


def test_seatgate_config_environment_variable(
    tmp_path: Path, vendor_key: VendorKey, runner: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = write_config(tmp_path / "etc" / "seatgate.yaml", vendor_key)
    empty = tmp_path / "cwd"
    empty.mkdir()
    monkeypatch.chdir(empty)
    env = {"SEATGATE_CONFIG": str(config), "LOGNAME": TESTER}
    result = check(runner.invoke(cli, ["init"], env=env))
    assert result.exit_code == 0, result.output
    assert (tmp_path / "etc" / "seatgate.db").is_file()
    assert not (empty / "seatgate.db").exists()
    listed = check(runner.invoke(cli, ["accounts", "list", "--json"], env=env))
    assert (listed.exit_code, json.loads(listed.stdout)) == (0, [])


def test_config_option_beats_the_environment_variable(
    tmp_path: Path, vendor_key: VendorKey, runner: CliRunner
) -> None:
    right = write_config(tmp_path / "right" / "seatgate.yaml", vendor_key)
    wrong = tmp_path / "wrong" / "seatgate.yaml"
    result = check(
        runner.invoke(cli, ["--config", str(right), "init"], env={"SEATGATE_CONFIG": str(wrong)})
    )
    assert result.exit_code == 0, result.output
    assert (tmp_path / "right" / "seatgate.db").is_file()


def test_default_config_is_seatgate_yaml_in_the_working_directory(
    tmp_path: Path, vendor_key: VendorKey, runner: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    env = {"SEATGATE_CONFIG": None, "LOGNAME": TESTER}
    missing = check(runner.invoke(cli, ["init"], env=env))
    assert missing.exit_code == 2
    assert "seatgate.yaml" in missing.stderr

    write_config(tmp_path / "seatgate.yaml", vendor_key)
    result = check(runner.invoke(cli, ["init"], env=env))
    assert result.exit_code == 0, result.output
    assert (tmp_path / "seatgate.db").is_file()


# -- the demo ---------------------------------------------------------------------------


def test_demo_admits_25_refuses_15_and_reassign_admits_the_first_refused(
    tmp_path: Path, runner: CliRunner
) -> None:
    folder = tmp_path / "demo"
    result = check(runner.invoke(cli, ["demo", "--folder", str(folder)]))
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()

    assert "25 admitted, 15 refused with no_seat_available" in lines
    rows = [line for line in lines if re.match(r"^\s*\d+\s{2}", line)]
    assert len(rows) == 40
    assert sum(line.endswith(" allowed") for line in rows) == 25
    refused_rows = [line for line in rows if line.endswith(" refused: no_seat_available")]
    assert len(refused_rows) == 15
    first_refused = refused_rows[0].split()[1]

    (move,) = [line for line in lines if line.startswith("admin reassigns the seat of ")]
    match = re.fullmatch(r"admin reassigns the seat of (\S+) to (\S+) \.\.\.", move)
    assert match is not None
    holder, waiting = match.groups()
    assert waiting == first_refused
    assert f"{waiting}: allowed" in lines
    assert f"{holder}: refused: no_seat_available" in lines
    assert "seats used: 25 of 25" in lines

    # The demo folder is a working installation.
    demo = Cli(folder / "seatgate.yaml", runner)
    seats = demo.json("seats", "list")
    assert len(seats) == 25
    assert waiting in {s["login"] for s in seats}
    assert holder not in {s["login"] for s in seats}
