"""``seatgate audit``: show the newest events, and ``audit verify`` the hash chain."""

from __future__ import annotations

from typing import Any

import click

from seatgate.audit import chain as audit_chain
from seatgate.audit import log as audit
from seatgate.cli.context import CliState, pass_state
from seatgate.cli.output import emit_json, say, table
from seatgate.reports.documents import audit_json, iso

json_option = click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")


@click.group("audit", invoke_without_command=True)
@click.option("--limit", type=click.IntRange(1, 100_000), default=50, show_default=True)
@click.option("--action", help="Only events of this action (e.g. login, seat.released).")
@json_option
@pass_state
def audit_group(state: CliState, limit: int, action: str | None, as_json: bool) -> None:
    """Show the newest audit events, or check the log with `audit verify`."""
    if click.get_current_context().invoked_subcommand is not None:
        return
    app = state.app()
    events = app.db.read(lambda conn: audit.recent(conn, limit=limit, action=action))
    if as_json:
        emit_json(audit_json(events))
        return
    table(
        ["AT", "ACTOR", "ACTION", "SUBJECT", "OUTCOME"],
        [[iso(e.at), e.actor, e.action, e.subject, e.outcome] for e in reversed(events)],
    )


@audit_group.command("verify")
@json_option
@pass_state
def verify(state: CliState, as_json: bool) -> None:
    """Check that no audit event was edited, inserted or deleted: exit 0 if intact, else 1."""
    app = state.app()
    report = app.db.read(audit_chain.verify)
    if as_json:
        emit_json(report_json(report))
    elif report.problem is None:
        say(f"audit log intact: {_events(report.events)}, head {report.head}")
    else:
        say(
            f"audit log NOT intact: {report.problem.message} "
            f"({_events(report.events)} checked in order before it)"
        )
    if not report.intact:
        click.get_current_context().exit(1)


def report_json(report: audit_chain.ChainReport) -> dict[str, Any]:
    """The JSON document of ``audit verify --json``."""
    problem = report.problem
    return {
        "intact": report.intact,
        "events": report.events,
        "head": report.head,
        "problem": None
        if problem is None
        else {"event_id": problem.event_id, "kind": problem.kind, "message": problem.message},
    }


def _events(count: int) -> str:
    return f"{count} event" if count == 1 else f"{count} events"
