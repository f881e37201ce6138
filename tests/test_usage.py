"""Seat use: threshold events at 80/90/100 % and the peak seats held per month.

Every test runs on SQLite and PostgreSQL through conftest's `app` fixture.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from click.testing import CliRunner
from sqlalchemy import delete, select

from seatgate.adapters.csv import CsvAccountFile
from seatgate.app import Core
from seatgate.audit import log as audit
from seatgate.cli.context import CliState
from seatgate.cli.usage_cmd import license_usage
from seatgate.clock import FakeClock
from seatgate.imports import AccountImporter
from seatgate.seats import usage
from seatgate.storage.schema import license_state, seat_usage
from tests.conftest import START, add_users
from tests.statements_support import counting
from tests.test_directory_sync import FakeDirectory, make_sync, person

Minter = Callable[..., str]


def crossings(app: Core) -> list[str]:
    """The thresholds reported so far, oldest first."""
    events = app.db.read(lambda conn: audit.recent(conn, limit=500, action=usage.USAGE_ACTION))
    assert all(e.outcome == "crossed" for e in events)
    return [str(e.subject) for e in reversed(events)]


def stored_level(app: Core) -> int:
    return int(
        app.db.read(lambda conn: conn.execute(select(license_state.c.usage_level)).scalar_one())
    )


def peaks(app: Core) -> list[usage.MonthUsage]:
    now = app.clock.now()
    return app.db.read(lambda conn: usage.monthly_peaks(conn, now))


def assign(app: Core, logins: list[str]) -> None:
    for login in logins:
        app.ledger.assign(app.accounts.get(login).id, actor="admin")


def revoke(app: Core, logins: list[str]) -> None:
    for login in logins:
        app.ledger.revoke(app.accounts.get(login).id, actor="admin")


# -- thresholds -------------------------------------------------------------------------


def test_usage_level_rounds_up_to_the_seat() -> None:
    assert usage.usage_level(19, 25) == 0
    assert usage.usage_level(20, 25) == 80
    assert usage.usage_level(22, 25) == 80  # 88 %
    assert usage.usage_level(23, 25) == 90
    assert usage.usage_level(25, 25) == 100
    assert usage.usage_level(30, 25) == 100
    assert usage.usage_level(500, None) == 0  # unlimited
    assert usage.usage_level(0, 0) == 0  # no valid licence


def test_each_threshold_is_reported_once_on_the_way_up(app: Core, mint: Minter) -> None:
    app.licensing.install(mint("license", seats=25), actor="test")
    users = add_users(app, 25)
    assign(app, users[:19])
    assert crossings(app) == []
    assign(app, users[19:20])
    assert crossings(app) == ["80%"]
    assign(app, users[20:22])
    assert crossings(app) == ["80%"]
    assign(app, users[22:23])
    assert crossings(app) == ["80%", "90%"]
    assign(app, users[23:25])
    assert crossings(app) == ["80%", "90%", "100%"]
    assert stored_level(app) == 100

    event = app.db.read(lambda conn: audit.recent(conn, limit=1, action="seats.usage"))[0]
    assert event.actor == "admin"
    assert event.details == {"used": 25, "total": 25, "threshold": 100}


def test_staying_above_reports_nothing_and_a_drop_then_a_new_crossing_reports_again(
    app: Core, mint: Minter
) -> None:
    app.licensing.install(mint("license", seats=30), actor="test")
    users = add_users(app, 30)
    assign(app, users[:25])  # 83 %
    assert crossings(app) == ["80%"]
    # Moving and churning seats above the threshold: nothing new.
    app.ledger.reassign(
        app.accounts.get(users[0]).id, app.accounts.get(users[29]).id, actor="admin"
    )
    revoke(app, users[1:2])
    assign(app, users[1:2])
    assert crossings(app) == ["80%"]
    # Below 80 % (23 of 30, silently), then over it again: reported again.
    revoke(app, users[1:3])
    assert stored_level(app) == 0
    assert crossings(app) == ["80%"]
    assign(app, users[1:3])
    assert crossings(app) == ["80%", "80%"]


def test_logins_claiming_seats_report_crossings(app: Core, mint: Minter) -> None:
    app.licensing.install(mint("license", seats=25), actor="test")
    users = add_users(app, 23)
    assign(app, users[:19])
    assert app.gate.decide(users[19], f"{users[19]}-pw").allowed
    assert crossings(app) == ["80%"]
    event = app.db.read(lambda conn: audit.recent(conn, limit=1, action="seats.usage"))[0]
    assert event.actor == users[19]
    # Logins on held seats change no count and report nothing.
    for login in users[:20]:
        assert app.gate.decide(login, f"{login}-pw").allowed
    assert crossings(app) == ["80%"]
    for login in users[20:23]:
        assert app.gate.decide(login, f"{login}-pw").allowed
    assert crossings(app) == ["80%", "90%"]


def test_a_bulk_grant_crossing_three_thresholds_reports_each_once(app: Core, mint: Minter) -> None:
    app.licensing.install(mint("license", seats=25), actor="test")
    group = "CN=Everyone,DC=seatgate,DC=test"
    directory = FakeDirectory([person(i, groups=(group,)) for i in range(30)])
    report = make_sync(app, seat_groups=[group]).run(directory, full=True)
    assert len(report.seats_granted) == 25
    assert crossings(app) == ["80%", "90%", "100%"]
    events = app.db.read(lambda conn: audit.recent(conn, limit=3, action="seats.usage"))
    assert {e.actor for e in events} == {"sync:ldap"}
    assert {e.details["used"] for e in events} == {25}  # one count, after the whole run


def test_a_csv_import_freeing_seats_drops_the_level_silently(
    app: Core, mint: Minter, tmp_path: Path
) -> None:
    app.licensing.install(mint("license", seats=25), actor="test")
    users = add_users(app, 30)
    assign(app, users[:25])
    assert crossings(app) == ["80%", "90%", "100%"]
    path = tmp_path / "off.csv"
    rows = "".join(f"{login},,,no,no\n" for login in users[:10])
    path.write_text("login,name,email,admin,active\n" + rows, encoding="utf-8")
    importer = AccountImporter(app.db, app.clock, app.ledger)
    with importer.check(CsvAccountFile(path)) as checked:
        report = importer.apply(checked, actor="cli:test")
    assert len(report.seats_freed) == 10
    assert stored_level(app) == 0  # 15 of 25
    assert crossings(app) == ["80%", "90%", "100%"]
    assert peaks(app)[-1].peak_seats == 25
    assign(app, users[25:30])  # 20 of 25 again
    assert crossings(app) == ["80%", "90%", "100%", "80%"]


def test_an_unlimited_licence_never_reports(app: Core, mint: Minter) -> None:
    app.licensing.install(mint("license", seats=25, unlimited=True), actor="test")
    users = add_users(app, 30)
    assign(app, users)
    assert crossings(app) == []
    assert stored_level(app) == 0
    (month,) = peaks(app)
    assert (month.peak_seats, month.seats_total) == (30, None)


def test_a_dry_run_records_nothing(app: Core, mint: Minter, tmp_path: Path) -> None:
    app.licensing.install(mint("license", seats=25), actor="test")
    users = add_users(app, 25)
    assign(app, users)
    path = tmp_path / "off.csv"
    path.write_text(f"login,active\n{users[0]},no\n", encoding="utf-8")
    importer = AccountImporter(app.db, app.clock, app.ledger)
    with importer.check(CsvAccountFile(path)) as checked:
        importer.apply(checked, actor="cli:test", dry_run=True)
    assert stored_level(app) == 100
    assert app.db.read(lambda conn: conn.execute(select(seat_usage.c.last)).scalar_one()) == 25


def test_a_shrink_that_releases_seats_records_the_use_once(app: Core, mint: Minter) -> None:
    """Releasing seats beyond a smaller entitlement, then recording the use, is one observation:
    one conditional update of the month's row, one read of the reported level."""
    app.licensing.install(mint("license", seats=25, jti="lic-a"), actor="test")
    app.licensing.install(mint("addon", seats=5, lic="lic-a", jti="addon-a"), actor="test")
    users = add_users(app, 30)
    assign(app, users)
    assert crossings(app) == ["80%", "90%", "100%"]

    with counting(app) as statements:
        result = app.licensing.remove("addon-a", actor="admin")

    assert len(result.released) == 5
    month_rows = [s.split()[0] for s in statements if "seat_usage" in s]
    assert month_rows == ["UPDATE"]
    level_reads = [s for s in statements if s.startswith("SELECT license_state.usage_level")]
    assert len(level_reads) == 1
    # Still 100 % (25 of 25): nothing new reported; the month ends with 25, peak 30.
    assert crossings(app) == ["80%", "90%", "100%"]
    assert (peaks(app)[-1].peak_seats, stored_level(app)) == (30, 100)
    assert app.db.read(lambda conn: conn.execute(select(seat_usage.c.last)).scalar_one()) == 25


# -- monthly peaks ----------------------------------------------------------------------


def test_monthly_peaks_carry_the_count_through_quiet_months(
    app: Core, mint: Minter, clock: FakeClock
) -> None:
    app.licensing.install(mint("license", seats=25, jti="lic-25"), actor="test")
    users = add_users(app, 10)
    # March: 4 seats, then 6 the next day (the peak), then down to 4.
    assign(app, users[:4])
    clock.advance(timedelta(days=1))
    assign(app, users[4:6])
    march_peak = clock.now()
    clock.set(datetime(2026, 3, 20, 12, 0, tzinfo=UTC))
    revoke(app, users[4:6])
    # April: no change at all. May: one seat less.
    clock.set(datetime(2026, 5, 15, 8, 0, tzinfo=UTC))
    revoke(app, users[3:4])
    # June: five more seats entitled, then 6 held.
    clock.set(datetime(2026, 6, 3, 10, 30, tzinfo=UTC))
    app.licensing.install(mint("addon", seats=5, lic="lic-25"), actor="test")
    assign(app, users[3:6])
    june_peak = clock.now()

    assert peaks(app) == [
        usage.MonthUsage("2026-03", 6, march_peak, 25),
        usage.MonthUsage("2026-04", 4, datetime(2026, 4, 1, tzinfo=UTC), 25),
        # Four seats were held as May began; the release came later.
        usage.MonthUsage("2026-05", 4, datetime(2026, 5, 1, tzinfo=UTC), 25),
        usage.MonthUsage("2026-06", 6, june_peak, 30),
    ]
    # Months later with no change: every month shows the last count.
    clock.set(datetime(2026, 8, 9, tzinfo=UTC))
    assert [(m.month, m.peak_seats) for m in peaks(app)[-3:]] == [
        ("2026-06", 6),
        ("2026-07", 6),
        ("2026-08", 6),
    ]


def test_the_current_month_shows_at_least_the_seats_held_now(app: Core, mint: Minter) -> None:
    assert peaks(app) == [usage.MonthUsage("2026-03", 0, START, 0)]
    app.licensing.install(mint("license", seats=25), actor="test")
    assign(app, add_users(app, 3))
    # As after an upgrade: seats held, nothing recorded yet.
    app.db.write(lambda conn: conn.execute(delete(seat_usage)))
    assert peaks(app) == [usage.MonthUsage("2026-03", 3, START, 25)]


# -- the command ------------------------------------------------------------------------


def run_usage(app: Core, *args: str) -> str:
    result = CliRunner().invoke(license_usage, list(args), obj=CliState(Path("-"), _app=app))
    assert result.exit_code == 0, result.output
    return result.stdout


def test_license_usage_json_and_table(app: Core, mint: Minter, clock: FakeClock) -> None:
    app.licensing.install(mint("license", seats=25, jti="lic-25"), actor="test")
    users = add_users(app, 3)
    assign(app, users)
    clock.set(datetime(2026, 4, 2, 9, 0, tzinfo=UTC))
    assert json.loads(run_usage(app, "--json")) == [
        {
            "month": "2026-03",
            "peak_seats": 3,
            "peak_at": "2026-03-02T09:00:00Z",
            "seats_total": 25,
            "overage_peak": 0,
        },
        {
            "month": "2026-04",
            "peak_seats": 3,
            "peak_at": "2026-04-01T00:00:00Z",
            "seats_total": 25,
            "overage_peak": 0,
        },
    ]
    lines = run_usage(app).splitlines()
    assert lines[0].split() == [
        *("MONTH", "PEAK", "SEATS", "REACHED", "AT", "ENTITLED", "SEATS", "OVERAGE", "PEAK")
    ]
    assert lines[1].split() == ["2026-03", "3", "2026-03-02T09:00:00Z", "25", "0"]


def test_license_usage_shows_unlimited(app: Core, mint: Minter) -> None:
    app.licensing.install(mint("license", seats=25, unlimited=True), actor="test")
    assign(app, add_users(app, 2))
    assert json.loads(run_usage(app, "--json"))[0]["seats_total"] is None
    assert run_usage(app).splitlines()[1].split()[-2:] == ["unlimited", "0"]
