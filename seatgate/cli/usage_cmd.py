"""``seatgate license usage`` (peak seats per month) and ``seatgate metrics``."""

from __future__ import annotations

from typing import Any

import click

from seatgate.cli.context import CliState, pass_state
from seatgate.cli.output import emit_json, table
from seatgate.reports import metrics
from seatgate.reports.documents import iso
from seatgate.seats import usage

json_option = click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")


@click.command("usage")
@json_option
@pass_state
def license_usage(state: CliState, as_json: bool) -> None:
    """Show the peak seats held, and beyond the entitled ones, per month (UTC), for a true-up."""
    app = state.app()
    now = app.clock.now()
    months = app.db.read(lambda conn: usage.monthly_peaks(conn, now))
    if as_json:
        emit_json(usage_json(months))
        return
    table(
        ["MONTH", "PEAK SEATS", "REACHED AT", "ENTITLED SEATS", "OVERAGE PEAK"],
        [
            [
                m.month,
                m.peak_seats,
                iso(m.peak_at),
                "unlimited" if m.seats_total is None else m.seats_total,
                m.overage_peak,
            ]
            for m in months
        ],
    )


def usage_json(months: list[usage.MonthUsage]) -> list[dict[str, Any]]:
    """The JSON form of the monthly peaks (``seats_total`` null: unlimited; ``overage_peak``:
    the most seats held beyond the entitled ones at once)."""
    return [
        {
            "month": m.month,
            "peak_seats": m.peak_seats,
            "peak_at": iso(m.peak_at),
            "seats_total": m.seats_total,
            "overage_peak": m.overage_peak,
        }
        for m in months
    ]


@click.command("metrics")
@pass_state
def metrics_command(state: CliState) -> None:
    """Print seat and login metrics in the Prometheus text format."""
    app = state.app()
    days = app.config.seats.request_days
    click.echo(metrics.render(app.db, app.clock.now(), request_days=days), nl=False)
