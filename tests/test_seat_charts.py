"""The seat-use charts: the SVG drawing (pure) and the figures behind it.

The figure tests run on SQLite and PostgreSQL through conftest's `app` fixture.
"""

from __future__ import annotations

import csv
import io
import xml.etree.ElementTree as ET
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta

from seatgate.app import Core
from seatgate.clock import FakeClock
from seatgate.reports import charts
from seatgate.reports import seat_charts as figures
from seatgate.seats.days import DayUse
from tests.conftest import add_users

Minter = Callable[..., str]
SVG = "{http://www.w3.org/2000/svg}"


def _parse(svg: str) -> ET.Element:
    # The SVG the module under test drew, not outside input.
    return ET.fromstring(svg)  # noqa: S314


def _chart(**extra: object) -> charts.Chart:
    base: dict[str, object] = {
        "chart_id": "c1",
        "title": "Seats <held>",
        "description": "A & B",
        "labels": ["03-01", "03-02", "03-03"],
        "series": [charts.Series("held", [1, 3, None]), charts.Series("entitled", [5, 5, 5])],
    }
    return charts.Chart(**{**base, **extra})  # type: ignore[arg-type]


def test_a_line_chart_is_accessible_scalable_svg() -> None:
    svg = charts.line_chart(_chart())
    root = _parse(svg)
    assert root.get("role") == "img"
    assert root.get("viewBox") == f"0 0 {charts.WIDTH} {charts.HEIGHT}"
    assert root.get("aria-labelledby") == "c1-title c1-desc"
    # Texts are escaped, so the SVG parses and says what it was given.
    assert root.find(f"{SVG}title").text == "Seats <held>"  # type: ignore[union-attr]
    assert root.find(f"{SVG}desc").text == "A & B"  # type: ignore[union-attr]
    texts = [node.text for node in root.iter(f"{SVG}text")]
    assert {"03-01", "held", "entitled", "0", "5"} <= set(texts)
    lines = root.findall(f"{SVG}polyline")
    # The gap (None) ends the held line after two points; entitled runs through.
    assert [len(p.get("points", "").split()) for p in lines] == [2, 3]


def test_a_stacked_bar_chart_stacks_and_skips_zero() -> None:
    chart = _chart(series=[charts.Series("a", [2, 0, 1]), charts.Series("b", [2, 0, None])])
    root = _parse(charts.bar_chart(chart))
    bars = root.findall(f"{SVG}rect[{SVG}title]")
    assert [bar.find(f"{SVG}title").text for bar in bars] == [  # type: ignore[union-attr]
        "03-01 · a: 2",
        "03-01 · b: 2",
        "03-03 · a: 1",
    ]
    # The highest stack (4) reaches the top of the plot; the axis says 4.
    assert "4" in [node.text for node in root.iter(f"{SVG}text")]
    first, second = bars[0], bars[1]
    assert float(second.get("y", 0)) < float(first.get("y", 0))


def test_labels_thin_out_to_fit_a_phone() -> None:
    labels = [f"d{i:02d}" for i in range(90)]
    chart = _chart(labels=labels, series=[charts.Series("held", list(range(90)))])
    texts = [node.text for node in _parse(charts.line_chart(chart)).iter(f"{SVG}text")]
    assert 5 <= len([t for t in texts if t in labels]) <= 6


def test_an_empty_chart_still_draws() -> None:
    root = _parse(charts.bar_chart(_chart(labels=[], series=[])))
    assert root.get("role") == "img"


def _read(app: Core, days: int = 90) -> figures.SeatFigures:
    now = app.clock.now()
    return app.db.read(lambda conn: figures.read_figures(conn, now, days))


def test_seats_per_day_keep_the_peak_and_carry_quiet_days(
    app: Core, mint: Minter, clock: FakeClock
) -> None:
    app.licensing.install(mint("license", seats=25), actor="test")
    users = add_users(app, 5)
    start = clock.now().date()
    for login in users[:4]:
        app.ledger.assign(app.accounts.get(login).id, actor="admin")
    app.ledger.revoke(app.accounts.get(users[0]).id, actor="admin")
    clock.advance(timedelta(days=3))
    app.ledger.revoke(app.accounts.get(users[1]).id, actor="admin")
    clock.advance(timedelta(days=1))

    days = _read(app, 6).days
    assert [d.day for d in days] == [
        start - timedelta(days=1) + timedelta(days=i) for i in range(6)
    ]
    # The day before: nothing yet; the first day peaked at 4; quiet days carry 3;
    # the day of the release peaked at 3; today holds 2.
    assert [(d.held, d.entitled) for d in days] == [
        (0, 25),
        (4, 25),
        (3, 25),
        (3, 25),
        (3, 25),
        (2, 25),
    ]
    rows = list(csv.reader(io.StringIO(figures.days_csv(days))))
    assert rows[0] == ["day", "seats_held", "seats_entitled"]
    assert rows[2] == [start.isoformat(), "4", "25"]


def test_logins_per_day_by_outcome(app: Core, mint: Minter, clock: FakeClock) -> None:
    app.licensing.install(mint("license", seats=25), actor="test")
    users = add_users(app, 2)
    app.accounts.set_status(users[1], "disabled", actor="admin")
    first_day = clock.now().date()
    assert app.gate.decide(users[0], f"{users[0]}-pw").allowed
    assert not app.gate.decide(users[1], "wrong").allowed
    clock.advance(timedelta(days=1))
    assert not app.gate.decide(users[1], f"{users[1]}-pw").allowed

    logins = _read(app, 3).logins
    assert [d.day for d in logins] == [first_day + timedelta(days=i) for i in (-1, 0, 1)]
    assert all(set(figures.OUTCOMES) <= set(d.counts) for d in logins)
    assert sum(logins[0].counts.values()) == 0
    assert (logins[1].counts["allowed"], logins[1].counts["invalid_credentials"]) == (1, 1)
    assert logins[2].counts["account_disabled"] == 1
    assert sum(logins[2].counts.values()) == 1
    rows = list(csv.reader(io.StringIO(figures.logins_csv(logins))))
    assert rows[0][:3] == ["day", "allowed", "invalid_credentials"]
    assert rows[2][:3] == [first_day.isoformat(), "1", "1"]


def test_the_monthly_csv_holds_the_true_up_figures(app: Core, mint: Minter) -> None:
    app.licensing.install(mint("license", seats=25), actor="test")
    for login in add_users(app, 2):
        app.ledger.assign(app.accounts.get(login).id, actor="admin")
    months = _read(app).months
    rows = list(csv.reader(io.StringIO(figures.months_csv(months))))
    assert rows[0] == ["month", "peak_seats", "peak_at", "seats_entitled", "overage_peak"]
    assert rows[-1][0:2] == [months[-1].month, "2"]
    assert rows[-1][3:] == ["25", "0"]


def test_no_licence_reads_as_no_entitlement() -> None:
    day = DayUse(date(2026, 3, 1), 0, None)
    assert figures.days_csv([day]).splitlines()[1] == "2026-03-01,0,"
    assert datetime(2026, 3, 1, tzinfo=UTC).date() == day.day
