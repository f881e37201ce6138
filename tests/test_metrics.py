"""Prometheus metrics: the text `render` produces, `seatgate metrics`, and `GET /metrics`.

Database tests run on SQLite and PostgreSQL (conftest's `app` and
web_support's `make_web`).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import insert

from seatgate.app import Core
from seatgate.cli.context import CliState
from seatgate.cli.usage_cmd import metrics_command
from seatgate.config import config_from_mapping
from seatgate.errors import ConfigError
from seatgate.gate.decision import Reason
from seatgate.reports import metrics
from seatgate.storage.schema import audit_counts
from tests.conftest import add_users
from tests.web_support import Web

Minter = Callable[..., str]
TOKEN_ENV = "SEATGATE_TEST_METRICS_TOKEN"
_SAMPLE = re.compile(r"\A([a-z_]+)(\{.*\})? (\S+)\Z")
_FAMILIES = {
    "seatgate_seats_total": "gauge",
    "seatgate_seats_used": "gauge",
    "seatgate_seats_free": "gauge",
    "seatgate_seats_overage_allowed": "gauge",
    "seatgate_seats_overage_used": "gauge",
    "seatgate_license_valid": "gauge",
    "seatgate_license_unlimited": "gauge",
    "seatgate_license_trial": "gauge",
    "seatgate_licensed_sites": "gauge",
    "seatgate_notifications_undelivered": "gauge",
    "seatgate_login_decisions_total": "counter",
    "seatgate_seat_requests_pending": "gauge",
    "seatgate_seats_reclaimed_total": "counter",
}


def parse(text: str) -> dict[str, str]:
    """Sample name (with labels) -> value, checking the exposition format line by line."""
    assert text.endswith("\n")
    samples: dict[str, str] = {}
    declared: dict[str, str] = {}
    helped: set[str] = set()
    for line in text.splitlines():
        if line.startswith("# HELP "):
            name = line.split(" ")[2]
            assert name not in helped
            helped.add(name)
        elif line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            assert name in helped and name not in declared
            declared[name] = kind
        else:
            match = _SAMPLE.match(line)
            assert match is not None, line
            name, labels, value = match.groups()
            assert name in declared, f"{name} has no TYPE line before it"
            assert value == "+Inf" or re.fullmatch(r"\d+", value), line
            key = name + (labels or "")
            assert key not in samples
            samples[key] = value
    assert declared == _FAMILIES
    return samples


def rendered(app: Core) -> dict[str, str]:
    return parse(metrics.render(app.db, app.clock.now()))


def decisions(samples: dict[str, str]) -> dict[str, int]:
    prefix = 'seatgate_login_decisions_total{reason="'
    return {
        key[len(prefix) : -2]: int(value)
        for key, value in samples.items()
        if key.startswith(prefix)
    }


# -- render ---------------------------------------------------------------------------------


def test_without_a_licence_nothing_is_entitled(app: Core) -> None:
    samples = rendered(app)
    assert samples["seatgate_seats_total"] == "0"
    assert samples["seatgate_seats_used"] == "0"
    assert samples["seatgate_seats_free"] == "0"
    assert samples["seatgate_license_valid"] == "0"
    assert samples["seatgate_license_unlimited"] == "0"
    assert samples["seatgate_license_trial"] == "0"
    assert samples["seatgate_licensed_sites"] == "0"
    # Every reason is there from the start, at 0: series never appear from nowhere.
    assert decisions(samples) == {"allowed": 0, **{reason.value: 0 for reason in Reason}}


def test_seats_and_login_decisions_by_reason(app: Core, mint: Minter) -> None:
    app.licensing.install(mint("license", seats=25), actor="test")
    users = add_users(app, 26)
    for login in users[:24]:
        app.ledger.assign(app.accounts.get(login).id, actor="admin")
    app.accounts.set_status(users[25], "disabled", actor="admin")
    outcomes = [
        app.gate.decide(users[24], f"{users[24]}-pw"),  # claims the last seat
        app.gate.decide(users[0], f"{users[0]}-pw"),  # a held seat
        app.gate.decide(users[1], f"{users[1]}-pw"),
        app.gate.decide(users[1], "wrong"),
        app.gate.decide("nobody", "whatever"),
        app.gate.decide(users[25], f"{users[25]}-pw"),
    ]
    assert [d.reason for d in outcomes] == [
        None,
        None,
        None,
        *[Reason.INVALID_CREDENTIALS] * 2,
        Reason.ACCOUNT_DISABLED,
    ]
    app.accounts.add("late", password="late-pw", actor="test")
    assert app.gate.decide("late", "late-pw").reason is Reason.NO_SEAT_AVAILABLE

    samples = rendered(app)
    assert samples["seatgate_seats_total"] == "25"
    assert samples["seatgate_seats_used"] == "25"
    assert samples["seatgate_seats_free"] == "0"
    assert samples["seatgate_license_valid"] == "1"
    assert samples["seatgate_license_unlimited"] == "0"
    assert decisions(samples) == {
        "allowed": 3,
        "invalid_credentials": 2,
        "account_disabled": 1,
        "license_invalid": 0,
        "no_seat_available": 1,
        "rate_limited": 0,
        "directory_unavailable": 0,
    }


def test_unlimited_is_plus_inf(app: Core, mint: Minter) -> None:
    app.licensing.install(mint("license", seats=25, unlimited=True), actor="test")
    for login in add_users(app, 3):
        app.ledger.assign(app.accounts.get(login).id, actor="admin")
    samples = rendered(app)
    assert samples["seatgate_seats_total"] == "+Inf"
    assert samples["seatgate_seats_free"] == "+Inf"
    assert samples["seatgate_seats_used"] == "3"
    assert samples["seatgate_license_unlimited"] == "1"


def test_a_trial_is_flagged(app: Core, mint: Minter) -> None:
    app.licensing.install(mint("trial"), actor="test")
    samples = rendered(app)
    assert samples["seatgate_license_trial"] == "1"
    assert samples["seatgate_license_valid"] == "1"
    assert samples["seatgate_seats_free"] == samples["seatgate_seats_total"]


def test_other_outcomes_are_kept_and_label_values_escaped(app: Core) -> None:
    # An outcome this version does not know (say, from a newer node) still counts.
    odd = 'we"ird\\one\nline'
    app.db.write(
        lambda conn: conn.execute(
            insert(audit_counts),
            [
                {"action": "login", "outcome": odd, "count": 4},
                {"action": "login", "outcome": "", "count": 9},
                {"action": "seat.claimed", "outcome": "", "count": 7},
            ],
        )
    )
    text = metrics.render(app.db, app.clock.now())
    assert 'seatgate_login_decisions_total{reason="we\\"ird\\\\one\\nline"} 4\n' in text
    assert 'reason=""' not in text
    assert 9 not in decisions(parse(text)).values()
    assert "seat.claimed" not in text


def test_metrics_command_prints_the_same_text(app: Core, mint: Minter) -> None:
    app.licensing.install(mint("license", seats=25), actor="test")
    result = CliRunner().invoke(metrics_command, [], obj=CliState(Path("-"), _app=app))
    assert result.exit_code == 0, result.output
    assert result.stdout == metrics.render(app.db, app.clock.now())
    assert parse(result.stdout)["seatgate_seats_total"] == "25"


# -- configuration ----------------------------------------------------------------------------


def test_web_metrics_keys_parse_and_default_off(tmp_path: Path) -> None:
    base = {"installation_id": "x"}
    defaults = config_from_mapping(base, tmp_path).web
    assert (defaults.metrics, defaults.metrics_token_env) == (False, None)
    web = config_from_mapping(
        {**base, "web": {"metrics": True, "metrics_token_env": TOKEN_ENV}}, tmp_path
    ).web
    assert (web.metrics, web.metrics_token_env) == (True, TOKEN_ENV)
    with pytest.raises(ConfigError, match=r"web\.metrics\b"):
        config_from_mapping({**base, "web": {"metrics": "yes"}}, tmp_path)
    with pytest.raises(ConfigError, match=r"web\.metrics_token_env"):
        config_from_mapping({**base, "web": {"metrics_token_env": ""}}, tmp_path)


# -- GET /metrics -----------------------------------------------------------------------------


def test_endpoint_is_absent_when_disabled(make_web: Callable[..., Web]) -> None:
    assert make_web().client().get("/metrics").status_code == 404


def test_endpoint_serves_the_text_without_a_session(make_web: Callable[..., Web]) -> None:
    web = make_web(metrics=True)
    client = web.client()
    assert web.api_login(client, web.users[0]).status_code == 200
    assert web.api_login(web.client(), web.users[1], "wrong").status_code == 401
    response = web.client().get("/metrics")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    assert "Set-Cookie" not in response.headers
    samples = parse(response.get_data(as_text=True))
    assert samples["seatgate_seats_total"] == "25"
    assert samples["seatgate_seats_used"] == "1"
    counts = decisions(samples)
    assert (counts["allowed"], counts["invalid_credentials"]) == (1, 1)


def test_endpoint_with_a_token_needs_the_bearer(
    make_web: Callable[..., Web], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(TOKEN_ENV, "s3cret-metrics")
    client = make_web(metrics=True, metrics_token_env=TOKEN_ENV).client()
    missing = client.get("/metrics")
    assert missing.status_code == 401
    assert missing.headers["WWW-Authenticate"].startswith("Bearer")
    assert "seatgate_seats" not in missing.get_data(as_text=True)
    for wrong in ("Bearer s3cret", "Bearer s3cret-metrics-x", "Basic s3cret-metrics", "s3cret"):
        assert client.get("/metrics", headers={"Authorization": wrong}).status_code == 401
    good = client.get("/metrics", headers={"Authorization": "Bearer s3cret-metrics"})
    assert good.status_code == 200
    assert "seatgate_seats_total 25" in good.get_data(as_text=True)


@pytest.mark.parametrize("value", [None, "", "  "])
def test_a_token_variable_unset_or_empty_stops_the_gate(
    make_web: Callable[..., Web], monkeypatch: pytest.MonkeyPatch, value: str | None
) -> None:
    if value is None:
        monkeypatch.delenv(TOKEN_ENV, raising=False)
    else:
        monkeypatch.setenv(TOKEN_ENV, value)
    with pytest.raises(ConfigError, match=rf"web\.metrics_token_env.*{TOKEN_ENV}"):
        make_web(metrics=True, metrics_token_env=TOKEN_ENV)


def test_the_licensed_sites_are_counted(app: Core, mint: Minter) -> None:
    app.licensing.install(mint("license", jti="L", sites=("a.example.com",)), actor="test")
    app.licensing.install(mint("site", lic="L", host="b.example.com"), actor="test")
    assert rendered(app)["seatgate_licensed_sites"] == "2"
