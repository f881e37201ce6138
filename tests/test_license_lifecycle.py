"""The licence lifecycle on a real database, with the injected clock.

Activation, the updates period and its renewal quotes, renewal coupons, the
trial clock, licence changes and `license remove` -- on SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from sqlalchemy import select

from seatgate.app import Core
from seatgate.clock import FakeClock, add_months
from seatgate.errors import PinnedSeatsExceed, TokenConflict, TokenNotInstalled
from seatgate.gate.decision import Reason
from seatgate.licensing.vendor import VendorKey, issue_token
from seatgate.storage.schema import audit_events, license_tokens
from tests.conftest import (
    INSTALLATION,
    ISSUER,
    START,
    add_users,
    create_pg_database,
    drop_pg_database,
    make_config,
)

DAY = timedelta(days=1)
PRICE = (Decimal("1990.00"), "USD")

Mint = Callable[..., str]


def status_doc(app: Core) -> dict[str, Any]:
    from seatgate.reports.documents import status_json

    return status_json(app.licensing.status())


def token_doc(app: Core, jti: str) -> dict[str, Any]:
    return next(t for t in status_doc(app)["tokens"] if t["jti"] == jti)


def log_in(app: Core, login: str) -> Reason | None:
    return app.gate.decide(login, f"{login}-pw").reason


def holders(app: Core) -> set[str]:
    return {h.login for h in app.ledger.holders()}


# -- activation and the updates period --------------------------------------


def test_installed_within_six_months_activates_at_install(
    app: Core, mint: Mint, clock: FakeClock
) -> None:
    purchased = add_months(START, -6) + DAY
    app.licensing.install(mint("license", jti="L", purchased_at=purchased), actor="t")
    doc = token_doc(app, "L")
    assert doc["activated_at"] == "2026-03-02T09:00:00Z"
    assert doc["updates_until"] == "2027-03-02T09:00:00Z"
    assert doc["updates_days_left"] == 365


def test_installed_later_than_six_months_counts_from_six_months_after_purchase(
    app: Core, mint: Mint
) -> None:
    purchased = add_months(START, -6) - DAY  # 2025-09-01 09:00
    app.licensing.install(mint("license", jti="L", purchased_at=purchased), actor="t")
    doc = token_doc(app, "L")
    assert doc["activated_at"] == "2026-03-01T09:00:00Z"
    assert doc["updates_until"] == "2027-03-01T09:00:00Z"


def test_each_addon_has_its_own_updates_period(app: Core, mint: Mint, clock: FakeClock) -> None:
    app.licensing.install(mint("license", jti="L"), actor="t")
    clock.advance(40 * DAY)
    app.licensing.install(
        mint("addon", jti="A", lic="L", seats=5, price=(Decimal("80.00"), "USD")), actor="t"
    )
    doc = status_doc(app)
    periods = {t["jti"]: t["updates_until"] for t in doc["tokens"]}
    assert periods == {"L": "2027-03-02T09:00:00Z", "A": "2027-04-11T09:00:00Z"}
    addon = token_doc(app, "A")
    assert addon["renewal"] == {
        "rate": 0.22,
        "amount": "17.60",
        "currency": "USD",
        "rate_changes_at": "2027-05-11T09:00:00Z",
    }


def test_an_ended_updates_period_never_blocks_a_login(
    app: Core, mint: Mint, clock: FakeClock
) -> None:
    app.licensing.install(mint("license", jti="L"), actor="t")
    add_users(app, 2)
    assert log_in(app, "user000") is None
    clock.advance(3 * 365 * DAY)
    assert token_doc(app, "L")["updates_days_since_end"] > 700
    assert log_in(app, "user000") is None
    assert log_in(app, "user001") is None  # a first login claims a seat too


@pytest.mark.parametrize(
    ("day", "rate", "amount", "changes_at"),
    [
        (29, 0.22, "437.80", "2027-04-01T09:00:00Z"),
        (30, 0.22, "437.80", "2027-04-01T09:00:00Z"),
        (31, 0.6, "1194.00", None),
    ],
)
def test_renewal_quote_on_day_29_30_31_after_the_updates_period(
    app: Core,
    mint: Mint,
    clock: FakeClock,
    day: int,
    rate: float,
    amount: str,
    changes_at: str | None,
) -> None:
    app.licensing.install(mint("license", jti="L", price=PRICE), actor="t")
    clock.set(datetime(2027, 3, 2, 9, 0, tzinfo=UTC) + day * DAY)
    doc = token_doc(app, "L")
    assert doc["updates_days_since_end"] == day
    assert doc["renewal"] == {
        "rate": rate,
        "amount": amount,
        "currency": "USD",
        "rate_changes_at": changes_at,
    }


# -- renewal coupons ---------------------------------------------------------


@pytest.mark.parametrize(
    ("applied", "until"),
    [
        # early: from the old end
        (datetime(2027, 1, 10, tzinfo=UTC), "2028-03-02T09:00:00Z"),
        # within the 30-day window after the end: from the old end
        (datetime(2027, 3, 31, 9, 0, tzinfo=UTC), "2028-03-02T09:00:00Z"),
        # late: from the day it is applied
        (datetime(2027, 4, 2, 9, 0, tzinfo=UTC), "2028-04-02T09:00:00Z"),
    ],
    ids=["early", "within-window", "late"],
)
def test_a_coupon_extends_the_updates_period_by_twelve_months(
    app: Core, mint: Mint, clock: FakeClock, applied: datetime, until: str
) -> None:
    app.licensing.install(mint("license", jti="L", price=PRICE), actor="t")
    clock.set(applied)
    result = app.licensing.install(mint("renewal", jti="R1", lic="L"), actor="t")
    assert result.renewed is not None
    doc = token_doc(app, "L")
    assert doc["updates_until"] == until
    assert doc["renewals"] == ["R1"]
    assert doc["renewal"]["rate"] == 0.22


def test_a_coupon_applies_once(app: Core, mint: Mint, clock: FakeClock) -> None:
    app.licensing.install(mint("license", jti="L"), actor="t")
    coupon = mint("renewal", jti="R1", lic="L")
    app.licensing.install(coupon, actor="t")
    clock.advance(DAY)
    with pytest.raises(TokenConflict, match="already applied on 2026-03-02"):
        app.licensing.install(coupon, actor="t")
    assert token_doc(app, "L")["updates_until"] == "2028-03-02T09:00:00Z"


def test_a_coupon_applies_only_to_the_token_it_names(
    app: Core, mint: Mint, clock: FakeClock
) -> None:
    app.licensing.install(mint("license", jti="L"), actor="t")
    app.licensing.install(mint("addon", jti="A", lic="L", seats=3), actor="t")
    app.licensing.install(mint("renewal", jti="R-A", lic="A"), actor="t")
    assert token_doc(app, "L")["updates_until"] == "2027-03-02T09:00:00Z"
    assert token_doc(app, "A")["updates_until"] == "2028-03-02T09:00:00Z"
    with pytest.raises(TokenConflict, match="not an installed licence or add-on"):
        app.licensing.install(mint("renewal", jti="R-X", lic="other-licence"), actor="t")


# -- the trial clock ---------------------------------------------------------


def test_trial_works_through_day_30_and_not_on_day_31(
    app: Core, mint: Mint, clock: FakeClock
) -> None:
    app.licensing.install(mint("trial", jti="T"), actor="t")
    add_users(app, 2)
    clock.advance(29 * DAY + timedelta(hours=23))  # the last hour of day 30
    assert log_in(app, "user000") is None
    assert status_doc(app)["trial_days_left"] == 1
    clock.advance(2 * timedelta(hours=1) + timedelta(seconds=61))  # day 31, past the leeway
    assert log_in(app, "user000") is Reason.LICENSE_INVALID
    assert log_in(app, "user001") is Reason.LICENSE_INVALID
    doc = status_doc(app)
    assert doc["valid"] is False and "trial ended" in doc["reason"]
    assert holders(app) == set()


def test_after_the_trial_a_licence_can_still_be_installed(
    app: Core, mint: Mint, clock: FakeClock
) -> None:
    app.licensing.install(mint("trial", jti="T"), actor="t")
    add_users(app, 1)
    clock.advance(31 * DAY)
    assert log_in(app, "user000") is Reason.LICENSE_INVALID
    app.licensing.install(mint("license", jti="L"), actor="t")
    assert log_in(app, "user000") is None


def test_a_clock_set_back_two_days_does_not_extend_the_trial(
    app: Core, mint: Mint, clock: FakeClock
) -> None:
    app.licensing.install(mint("trial", jti="T"), actor="t")
    add_users(app, 1)
    clock.advance(20 * DAY)
    assert log_in(app, "user000") is None
    clock.advance(-2 * DAY)  # someone sets the clock back
    assert log_in(app, "user000") is None  # still inside the trial either way
    doc = status_doc(app)
    assert "2 day(s) behind" in doc["clock_warning"]
    assert doc["trial_days_left"] == 10  # judged by the latest time seen, not 12
    clock.advance(11 * DAY)  # the clock shows day 29; 31 days have really passed
    assert log_in(app, "user000") is Reason.LICENSE_INVALID
    events = app.db.read(
        lambda c: c.execute(
            select(audit_events.c.action).where(audit_events.c.action == "clock.set_back")
        ).all()
    )
    assert len(events) == 1


def test_a_clock_a_few_hours_back_is_not_reported(app: Core, mint: Mint, clock: FakeClock) -> None:
    app.licensing.install(mint("trial", jti="T"), actor="t")
    clock.advance(DAY)
    status_doc(app)
    clock.advance(-timedelta(hours=5))
    assert status_doc(app)["clock_warning"] is None


@pytest.mark.postgres
def test_the_database_server_clock_catches_a_host_clock_set_back(vendor_key: VendorKey) -> None:
    real_now = datetime.now(UTC)
    host = FakeClock(real_now - 3 * DAY)  # the host clock is three days behind
    url = create_pg_database()
    app = Core.build(
        make_config(url, vendor_key), clock=host, check_schema=False, database_clock=True
    )
    try:
        app.init_schema()
        # Ended a day ago by the server's clock; two days left by the host's.
        trial = issue_token(
            vendor_key,
            kind="trial",
            installation_id=INSTALLATION,
            customer="acme",
            edition="bizspace",
            now=real_now - 31 * DAY,
        )
        app.licensing.install(trial, actor="t")
        doc = status_doc(app)
        assert doc["valid"] is False
        assert "3 day(s) behind" in doc["clock_warning"]
    finally:
        app.close()
        drop_pg_database(url)


# -- licence changes ---------------------------------------------------------


def seated(app: Core, clock: FakeClock, count: int) -> list[str]:
    """`count` users log in one after another (user000 is the least recently used)."""
    logins = add_users(app, count)
    for login in logins:
        clock.advance(timedelta(minutes=1))
        assert log_in(app, login) is None
    return logins


def test_a_newer_licence_with_more_seats_takes_effect_at_once(
    app: Core, mint: Mint, clock: FakeClock
) -> None:
    app.licensing.install(mint("license", jti="L25", seats=25), actor="t")
    seated(app, clock, 25)
    add_users(app, 1, prefix="late")
    assert log_in(app, "late000") is Reason.NO_SEAT_AVAILABLE
    clock.advance(DAY)
    app.licensing.install(mint("license", jti="L40", seats=40, edition="enterprise"), actor="t")
    assert status_doc(app)["edition"] == "enterprise"
    assert log_in(app, "late000") is None


def test_a_smaller_licence_releases_least_recently_used_unpinned_seats_dry_run_first(
    app: Core, mint: Mint, clock: FakeClock
) -> None:
    app.licensing.install(mint("license", jti="L30", seats=30), actor="t")
    logins = seated(app, clock, 30)
    app.ledger.set_pinned(app.accounts.find("user000").id, True, actor="t")  # type: ignore[union-attr]
    clock.advance(DAY)
    smaller = mint("license", jti="L25", seats=25)
    preview = app.licensing.install(smaller, actor="t", dry_run=True)
    assert preview.released == ["user001", "user002", "user003", "user004", "user005"]
    assert holders(app) == set(logins)  # nothing changed
    result = app.licensing.install(smaller, actor="t")
    assert result.released == preview.released
    assert holders(app) == set(logins) - set(preview.released)
    assert "user000" in holders(app)  # pinned, and the least recently used of all


def test_a_smaller_licence_than_the_pinned_seats_is_refused_and_changes_nothing(
    app: Core, mint: Mint, clock: FakeClock
) -> None:
    app.licensing.install(mint("license", jti="L30", seats=25), actor="t")
    app.licensing.install(mint("addon", jti="A", lic="L30", seats=5), actor="t")
    logins = seated(app, clock, 30)
    for login in logins[:27]:
        app.ledger.set_pinned(app.accounts.find(login).id, True, actor="t")  # type: ignore[union-attr]
    with pytest.raises(PinnedSeatsExceed, match="unpin at least 2"):
        app.licensing.remove("A", actor="t")
    assert holders(app) == set(logins)
    assert status_doc(app)["seats_total"] == 30


def test_dropping_the_unlimited_flag_reapplies_the_cap(
    app: Core, mint: Mint, clock: FakeClock
) -> None:
    app.licensing.install(mint("license", jti="U", seats=25, unlimited=True), actor="t")
    logins = seated(app, clock, 28)
    assert status_doc(app)["seats_total"] is None
    clock.advance(DAY)
    result = app.licensing.install(mint("license", jti="L25", seats=25), actor="t")
    assert result.released == logins[:3]
    assert len(holders(app)) == 25


# -- license remove ----------------------------------------------------------


def test_removing_an_addon_shrinks_the_seats_and_is_remembered(
    app: Core, mint: Mint, clock: FakeClock
) -> None:
    app.licensing.install(mint("license", jti="L"), actor="t")
    addon = mint("addon", jti="A", lic="L", seats=2)
    app.licensing.install(addon, actor="t")
    logins = seated(app, clock, 27)
    preview = app.licensing.remove("A", actor="admin", dry_run=True)
    assert preview.released == logins[:2] and status_doc(app)["seats_total"] == 27
    result = app.licensing.remove("A", actor="admin")
    assert result.released == logins[:2]
    assert status_doc(app)["seats_total"] == 25
    row = app.db.read(
        lambda c: c.execute(select(license_tokens).where(license_tokens.c.jti == "A")).one()
    )
    assert row.removed_by == "admin" and row.removed_at is not None
    with pytest.raises(TokenNotInstalled, match="no installed token"):
        app.licensing.remove("A", actor="admin")
    # Put back: its updates period still counts from the first activation.
    clock.advance(10 * DAY)
    app.licensing.install(addon, actor="t")
    assert token_doc(app, "A")["activated_at"] == "2026-03-02T09:00:00Z"
    assert status_doc(app)["seats_total"] == 27


def test_removing_a_coupon_takes_back_its_year(app: Core, mint: Mint) -> None:
    app.licensing.install(mint("license", jti="L"), actor="t")
    app.licensing.install(mint("renewal", jti="R1", lic="L"), actor="t")
    assert token_doc(app, "L")["updates_until"] == "2028-03-02T09:00:00Z"
    app.licensing.remove("R1", actor="t")
    assert token_doc(app, "L")["updates_until"] == "2027-03-02T09:00:00Z"
    assert token_doc(app, "L")["renewals"] == []


def test_a_licence_cannot_be_removed(app: Core, mint: Mint) -> None:
    app.licensing.install(mint("license", jti="L"), actor="t")
    with pytest.raises(TokenNotInstalled, match="replaced by installing a newer one"):
        app.licensing.remove("L", actor="t")
    with pytest.raises(TokenNotInstalled, match="no installed token"):
        app.licensing.remove("nope", actor="t")
    assert status_doc(app)["valid"] is True


# -- the command line, with the same clock -----------------------------------


def write_config(tmp_path: Path, db_url: str, vendor_key: VendorKey) -> Path:
    pub = tmp_path / "vendor.pub.pem"
    pub.write_text(vendor_key.public_pem(), encoding="ascii")
    path = tmp_path / "seatgate.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "installation_id": INSTALLATION,
                "database_url": db_url,
                "license": {"issuer": ISSUER, "public_keys": {vendor_key.kid: str(pub)}},
            }
        ),
        encoding="utf-8",
    )
    return path


def test_cli_status_remove_and_install_dry_run(
    tmp_path: Path, db_url: str, vendor_key: VendorKey, mint: Mint, clock: FakeClock
) -> None:
    config = write_config(tmp_path, db_url, vendor_key)
    runner = CliRunner()

    def run(*args: str) -> Any:
        return runner.invoke(
            __import__("seatgate.cli.main", fromlist=["cli"]).cli,
            ["--config", str(config), *args],
            obj={"clock": clock},
        )

    assert run("init").exit_code == 0
    (tmp_path / "l.jwt").write_text(mint("license", jti="L", price=PRICE), encoding="ascii")
    (tmp_path / "a.jwt").write_text(mint("addon", jti="A", lic="L", seats=5), encoding="ascii")
    assert run("license", "install", str(tmp_path / "l.jwt")).exit_code == 0
    dry = run("license", "install", "--dry-run", str(tmp_path / "a.jwt"))
    assert dry.exit_code == 0 and "would install addon `A`" in dry.output
    assert "30 seats" in dry.output
    clock.advance(400 * DAY)
    result = run("license", "status", "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    licence = next(t for t in doc["tokens"] if t["jti"] == "L")
    assert licence["updates_days_since_end"] == 35
    assert licence["renewal"]["rate"] == 0.6 and licence["renewal"]["amount"] == "1194.00"
    assert [t["jti"] for t in doc["tokens"]] == ["L"]  # the dry run installed nothing
    text = run("license", "status")
    assert "ended 35 days ago" in text.output and "60% = 1194.00 USD" in text.output
    assert run("license", "install", str(tmp_path / "a.jwt")).exit_code == 0
    removed = run("license", "remove", "A")
    assert removed.exit_code == 0 and "removed addon `A`" in removed.output
    refused = run("license", "remove", "L")
    assert refused.exit_code == 1
    assert "only add-ons, site tokens and renewal coupons" in refused.output
