"""``seatgate sessions``: list the web sessions and end them.

An ended session is refused at its next request, by the web gate's pages
and API and by ``/auth/verify`` alike; each one ended is audited with the
command line's actor.
"""

from __future__ import annotations

import click

from seatgate.cli.context import CliState, pass_state
from seatgate.cli.output import emit_json, say, table
from seatgate.reports.documents import iso, sessions_json

json_option = click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")


def _sessions(count: int) -> str:
    return f"{count} session" + ("" if count == 1 else "s")


@click.group("sessions")
def sessions_group() -> None:
    """List and end web sessions."""


@sessions_group.command("list")
@click.option("--login", help="Only the sessions of this account.")
@json_option
@pass_state
def sessions_list(state: CliState, login: str | None, as_json: bool) -> None:
    """List the kept sessions with their state: open, expired or ended.

    CHECK is what the next request of the session would be answered:
    `allowed`, or why not (`session_ended`, `seat_revoked`, ...).
    """
    app = state.app()
    account_id = app.accounts.get(login).id if login is not None else None
    found = app.sessions.list(account_id=account_id)
    if as_json:
        emit_json(sessions_json(found))
        return
    table(
        ["LOGIN", "STATE", "CHECK", "OPENED", "EXPIRES", "ENDED", "WHY", "ADDRESS", "CLIENT"],
        [
            [
                s.login,
                s.state.value,
                s.check,
                iso(s.opened_at),
                iso(s.expires_at),
                iso(s.ended_at),
                s.ended_reason,
                s.client_address,
                (s.user_agent or "")[:40],
            ]
            for s in found
        ],
    )


@sessions_group.command("end")
@click.argument("login", required=False)
@click.option("--all", "end_all", is_flag=True, help="End every session of every account.")
@pass_state
def sessions_end(state: CliState, login: str | None, end_all: bool) -> None:
    """End every open session of LOGIN (or of everyone, with --all).

    Their next request is refused; signing in again opens a new session.
    """
    if login is not None and end_all:
        raise click.UsageError("give LOGIN or --all, not both")
    if login is None and not end_all:
        raise click.UsageError("give the LOGIN whose sessions to end, or --all")
    app = state.app()
    if login is None:
        count = app.sessions.end_all(actor=state.actor)
        say(f"ended {_sessions(count)}")
        return
    account = app.accounts.get(login)
    count = app.sessions.end_all_for_account(account.id, actor=state.actor)
    if count:
        say(f"ended {_sessions(count)} of {account.login}")
    else:
        say(f"{account.login} had no open session")


@sessions_group.command("expire")
@pass_state
def sessions_expire(state: CliState) -> None:
    """Record expired sessions as ended and remove long-ended ones (for cron)."""
    result = state.app().sessions.expire()
    say(f"ended {_sessions(result.ended)} past expiry; removed {result.pruned} old records")
