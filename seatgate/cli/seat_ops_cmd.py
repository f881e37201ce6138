"""``seats reclaim``, ``seats requests``, ``seats approve`` and ``seats deny``.

Registered on the ``seats`` group of :mod:`seatgate.cli.admin`.
"""

from __future__ import annotations

import click

from seatgate.cli.admin import json_option, seats_group
from seatgate.cli.context import CliState, pass_state
from seatgate.cli.output import emit_json, say, table
from seatgate.reports.documents import iso, reclaim_json, requests_json


@seats_group.command("reclaim")
@click.option(
    "--idle-days",
    type=click.IntRange(min=1, max=3650),
    help="Idle after this many days without a login (default: seats.reclaim_idle_days).",
)
@click.option(
    "--dry-run", is_flag=True, help="List the seats that would be reclaimed; change nothing."
)
@json_option
@pass_state
def seats_reclaim(state: CliState, idle_days: int | None, dry_run: bool, as_json: bool) -> None:
    """Release unpinned, non-admin seats whose holder has not logged in for N days.

    Least recently used first, in one transaction; each is audited
    `seat.reclaimed` and its holder's sessions end.
    """
    reclaimer = state.app().reclaimer
    days = reclaimer.idle_days(idle_days)
    found = reclaimer.idle(days) if dry_run else reclaimer.reclaim(days, actor=state.actor)
    if as_json:
        emit_json(reclaim_json(found, idle_days=days, dry_run=dry_run))
        return
    for seat in found:
        say(f"{seat.login}\tlast used {iso(seat.last_used_at)}")
    verb = "would be reclaimed" if dry_run else "reclaimed"
    say(f"{len(found)} seat(s) idle for more than {days} day(s) {verb}")


@seats_group.command("requests")
@json_option
@pass_state
def seats_requests(state: CliState, as_json: bool) -> None:
    """List the pending seat requests of refused logins, oldest first."""
    found = state.app().seat_requests.pending()
    if as_json:
        emit_json(requests_json(found))
        return
    table(
        ["LOGIN", "NAME", "FIRST", "LAST", "ATTEMPTS", "EXPIRES"],
        [
            [
                r.login,
                r.display_name,
                iso(r.first_at),
                iso(r.last_at),
                r.attempts,
                iso(r.expires_at),
            ]
            for r in found
        ],
    )


@seats_group.command("approve")
@click.argument("login")
@click.option("--replace", "other", metavar="OTHER", help="Move OTHER's seat to LOGIN instead.")
@pass_state
def seats_approve(state: CliState, login: str, other: str | None) -> None:
    """Approve LOGIN's seat request: a free seat, or OTHER's seat (one transaction)."""
    app = state.app()
    account = app.accounts.get(login)
    replaced = app.accounts.get(other) if other is not None else None
    app.seat_requests.approve(
        account.id, actor=state.actor, replace=replaced.id if replaced else None
    )
    if replaced is not None:
        say(f"approved the seat request of {account.login}: moved the seat of {replaced.login}")
    else:
        say(f"approved the seat request of {account.login}: assigned a seat")


@seats_group.command("deny")
@click.argument("login")
@pass_state
def seats_deny(state: CliState, login: str) -> None:
    """Deny LOGIN's seat request (a later refused login asks again)."""
    app = state.app()
    account = app.accounts.get(login)
    app.seat_requests.deny(account.id, actor=state.actor)
    say(f"denied the seat request of {account.login}")
