"""The console's seat-use page: SVG charts drawn on the server, each with its CSV.

The figures come from the core (:mod:`seatgate.reports.seat_charts`), the
drawing from :mod:`seatgate.reports.charts`; the template supplies every
text in the reader's language. Read-only: nothing here changes anything.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from flask import Response, make_response, render_template
from markupsafe import Markup

from seatgate.reports import charts
from seatgate.reports import seat_charts as figures

from .context import admin_required, gate_state, language
from .i18n import format_number
from .views import pages

_CSV: dict[str, Callable[[figures.SeatFigures], str]] = {
    "seats-daily": lambda f: figures.days_csv(f.days),
    "seats-monthly": lambda f: figures.months_csv(f.months),
    "logins-daily": lambda f: figures.logins_csv(f.logins),
}


def _read() -> figures.SeatFigures:
    core = gate_state().core
    now = core.clock.now()
    return core.db.read(lambda conn: figures.read_figures(conn, now))


def _drawer(
    draw: Callable[[charts.Chart], str],
) -> Callable[..., Markup]:
    def drawn(
        chart_id: str,
        title: str,
        description: str,
        labels: Sequence[str],
        series: Sequence[tuple[str, Sequence[int | None]]],
    ) -> Markup:
        chart = charts.Chart(
            chart_id, title, description, labels, [charts.Series(n, v) for n, v in series]
        )
        # The drawing escapes every text it was given.
        return Markup(draw(chart))  # noqa: S704

    return drawn


def _series(read: figures.SeatFigures) -> dict[str, object]:
    """The charts' labels and values, ready for the template to name."""
    logins = read.logins
    return {
        "days": read.days,
        "day_labels": [f"{d.day:%m-%d}" for d in read.days],
        "held": [d.held for d in read.days],
        "entitled": [d.entitled for d in read.days],
        "months": read.months,
        "month_labels": [m.month for m in read.months],
        "within": [m.peak_seats - m.overage_peak for m in read.months],
        "overage": [m.overage_peak for m in read.months],
        "login_labels": [f"{d.day:%m-%d}" for d in logins],
        "logins": {o: [d.counts.get(o, 0) for d in logins] for o in figures.OUTCOMES},
        "login_totals": {o: sum(d.counts.get(o, 0) for d in logins) for o in figures.OUTCOMES},
    }


@pages.route("/admin/charts")
@admin_required
def seat_charts() -> Response:
    """Seats held against entitled per day, the monthly peaks and login decisions per day."""
    return make_response(
        render_template(
            "seatgate/console_charts.html",
            data=_series(_read()),
            outcomes=figures.OUTCOMES,
            line_chart=_drawer(charts.line_chart),
            bar_chart=_drawer(charts.bar_chart),
            number=lambda value: format_number(value, language()),
        )
    )


@pages.route("/admin/charts/<name>.csv")
@admin_required
def seat_chart_csv(name: str) -> Response:
    """The data of one chart as CSV (UTF-8, a header row, one row per day or month)."""
    render = _CSV.get(name)
    if render is None:
        return make_response(render_template("seatgate/error.html", message="404"), 404)
    response = make_response(render(_read()))
    response.headers["Content-Type"] = "text/csv; charset=utf-8"
    response.headers["Content-Disposition"] = f'attachment; filename="seatgate-{name}.csv"'
    return response
