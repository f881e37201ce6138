"""``seatgate notify``: deliver the notification outbox (``run``, from cron or a systemd
timer next to the sync job), check the channels (``test``), show what waits (``list``)."""

from __future__ import annotations

import click

from seatgate.cli.context import CliState, pass_state
from seatgate.cli.output import emit_json, say, table
from seatgate.reports.documents import deliveries_json, delivery_state, iso

json_option = click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")


@click.group("notify")
def notify_group() -> None:
    """Deliver, test and list notifications (webhooks and email)."""


@notify_group.command("run")
@json_option
@pass_state
def notify_run(state: CliState, as_json: bool) -> None:
    """Add the date-based reminders and deliver every notification due.

    Exit 0 when every due delivery was made, 1 when some failed (they are
    retried by later runs, waiting longer after each failure).
    """
    report = state.app().notifier.run()
    if as_json:
        emit_json(report.as_dict())
    else:
        say(
            f"reminders added {report.reminders_added}, delivered {report.delivered}, "
            f"failed {len(report.failed)}"
        )
        for failure in report.failed:
            say(f"failed: {failure['channel']} {failure['event_id']}: {failure['error']}", err=True)
    if report.failed:
        click.get_current_context().exit(1)


@notify_group.command("test")
@json_option
@pass_state
def notify_test(state: CliState, as_json: bool) -> None:
    """Send one test message on every configured channel now (nothing is stored).

    Exit 1 when any channel failed.
    """
    results = state.app().notifier.test()
    if as_json:
        emit_json([{"channel": c, "ok": e is None, "error": e} for c, e in results.items()])
    else:
        for channel, error in results.items():
            say(f"{channel}: {'sent' if error is None else 'FAILED: ' + error}")
    if any(error is not None for error in results.values()):
        click.get_current_context().exit(1)


@notify_group.command("list")
@json_option
@pass_state
def notify_list(state: CliState, as_json: bool) -> None:
    """Notifications not delivered yet: pending (never tried) or failed (to be retried)."""
    waiting = state.app().notifier.pending()
    if as_json:
        emit_json(deliveries_json(waiting))
        return
    table(
        ["EVENT", "KIND", "CREATED", "CHANNEL", "STATE", "ATTEMPTS", "NEXT", "LAST ERROR"],
        [
            [
                d.event.event_id,
                d.event.kind,
                iso(d.event.created_at),
                d.channel,
                delivery_state(d),
                d.attempts,
                iso(d.next_at),
                d.last_error or "",
            ]
            for d in waiting
        ],
    )
