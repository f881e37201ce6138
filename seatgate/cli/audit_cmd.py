"""``seatgate audit``: show the newest events, ``audit verify`` the hash chain, ``audit head``."""

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
    """Check that no audit event was edited, inserted or deleted.

    Exit 0 if intact, 1 if not, 2 if the chain is keyed and no key is
    configured (audit.key_env), so the keyed events could not be checked.
    """
    app = state.app()
    key = app.audit_key
    report = app.db.read(lambda conn: audit_chain.verify(conn, key))
    if as_json:
        emit_json(report_json(report))
    elif report.unchecked:
        say(
            f"audit log NOT checked: it is keyed (HMAC) from event #{report.keyed_from} and "
            f"no key is configured (audit.key_env); {_events(report.events)} before it intact"
        )
    elif report.problem is None:
        keyed = f", {_keyed(report.keyed_from)}" if report.keyed_from is not None else ""
        say(f"audit log intact: {_events(report.events)}, head {report.head}{keyed}")
    else:
        say(
            f"audit log NOT intact: {report.problem.message} "
            f"({_events(report.events)} checked in order before it)"
        )
    if report.problem is not None:
        # In the outbox with its own key: a daily verify from cron alerts once per break.
        app.notifier.audit_broken(report.problem.message, report.problem.event_id)
    if report.unchecked:
        click.get_current_context().exit(2)
    if not report.intact:
        click.get_current_context().exit(1)


@audit_group.command("head")
@json_option
@pass_state
def head(state: CliState, as_json: bool) -> None:
    """Print the chain head (last event id, its hash, the event count) to keep elsewhere.

    A later `audit verify` whose head differs from a copy kept off the
    database host shows events deleted or rewritten since.
    """
    app = state.app()
    found = app.db.read(audit_chain.head_of)
    if as_json:
        emit_json(
            {
                "head_id": found.head_id,
                "head_hash": found.head_hash,
                "events": found.events,
                "keyed_from": found.keyed_from,
            }
        )
        return
    last = f"#{found.head_id}" if found.head_id is not None else "none"
    say(
        f"audit head: event {last}, hash {found.head_hash}, {_events(found.events)}, "
        f"{_keyed(found.keyed_from)}"
    )


def report_json(report: audit_chain.ChainReport) -> dict[str, Any]:
    """The JSON document of ``audit verify --json``."""
    problem = report.problem
    return {
        "intact": report.intact,
        "events": report.events,
        "head": report.head,
        "keyed_from": report.keyed_from,
        "unchecked": report.unchecked,
        "problem": None
        if problem is None
        else {"event_id": problem.event_id, "kind": problem.kind, "message": problem.message},
    }


def _keyed(keyed_from: int | None) -> str:
    return f"keyed (HMAC) from event #{keyed_from}" if keyed_from is not None else "not keyed"


def _events(count: int) -> str:
    return f"{count} event" if count == 1 else f"{count} events"
