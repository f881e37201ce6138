"""Commands for the installation's admin: schema, accounts, seats, logins, audit."""

from __future__ import annotations

import sys

import click

from seatgate.cli.context import CliState, pass_state
from seatgate.cli.output import emit_json, say, table
from seatgate.errors import InvalidPassword
from seatgate.reports.documents import accounts_json, iso, seats_json

json_option = click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")


def read_password(use_stdin: bool, *, confirm: bool) -> str:
    """The password from one line of stdin, or a hidden prompt on a terminal.

    Never an argument: command lines end up in shell history and `ps`.
    """
    if use_stdin:
        line = sys.stdin.readline()
        return line.removesuffix("\n").removesuffix("\r")
    if not sys.stdin.isatty():
        raise click.UsageError("no terminal to ask for the password: pass --password-stdin")
    entered: str = click.prompt("Password", hide_input=True, confirmation_prompt=confirm)
    return entered


@click.command()
@pass_state
def init(state: CliState) -> None:
    """Create the database schema, or upgrade it to this version."""
    app = state.app(check_schema=False)
    before, after = app.init_schema()
    if before == 0:
        say(f"created the seatgate schema (version {after})")
    elif before == after:
        say(f"schema is up to date (version {after})")
    else:
        say(f"upgraded the schema from version {before} to {after}")


# -- accounts ----------------------------------------------------------------


@click.group("accounts")
def accounts_group() -> None:
    """Create, list, enable and disable accounts."""


@accounts_group.command("add")
@click.argument("login")
@click.option("--admin", is_flag=True, help="The account administers seatgate.")
@click.option("--name", help="Display name.")
@click.option("--email", help="Email address.")
@click.option("--password-stdin", is_flag=True, help="Read the password from one line of stdin.")
@pass_state
def accounts_add(
    state: CliState,
    login: str,
    admin: bool,
    name: str | None,
    email: str | None,
    password_stdin: bool,
) -> None:
    """Create a local account (it gets a seat at its first login, or by `seats assign`)."""
    app = state.app()
    password = read_password(password_stdin, confirm=True)
    try:
        account = app.accounts.add(
            login,
            password=password,
            actor=state.actor,
            display_name=name,
            email=email,
            is_admin=admin,
        )
    except InvalidPassword as exc:
        raise click.BadParameter(str(exc), param_hint="password") from None
    say(f"created {'admin ' if admin else ''}account {account.login}")


@accounts_group.command("list")
@json_option
@pass_state
def accounts_list(state: CliState, as_json: bool) -> None:
    """List every account and whether it holds a seat."""
    listings = state.app().accounts.list()
    if as_json:
        emit_json(accounts_json(listings))
        return
    table(
        ["LOGIN", "NAME", "SOURCE", "STATUS", "ADMIN", "SEAT", "LAST LOGIN"],
        [
            [
                a.account.login,
                a.account.display_name,
                a.account.source,
                a.account.status,
                "yes" if a.account.is_admin else "",
                "yes" if a.has_seat else "",
                iso(a.account.last_login_at),
            ]
            for a in listings
        ],
    )


@accounts_group.command("disable")
@click.argument("login")
@pass_state
def accounts_disable(state: CliState, login: str) -> None:
    """Disable an account; its seat is released at once."""
    had_seat = state.app().ledger.holds_seat(state.app().accounts.get(login).id)
    changed = state.app().accounts.set_status(login, "disabled", actor=state.actor)
    if not changed:
        say(f"{login} was already disabled")
    else:
        say(f"disabled {login}" + ("; its seat is free again" if had_seat else ""))


@accounts_group.command("enable")
@click.argument("login")
@pass_state
def accounts_enable(state: CliState, login: str) -> None:
    """Enable a disabled account (it needs a seat again to log in)."""
    changed = state.app().accounts.set_status(login, "active", actor=state.actor)
    say(f"enabled {login}" if changed else f"{login} was already active")


@accounts_group.command("passwd")
@click.argument("login")
@click.option("--password-stdin", is_flag=True, help="Read the password from one line of stdin.")
@pass_state
def accounts_passwd(state: CliState, login: str, password_stdin: bool) -> None:
    """Set a local account's password."""
    app = state.app()
    app.accounts.get(login)
    try:
        app.accounts.set_password(
            login, read_password(password_stdin, confirm=True), actor=state.actor
        )
    except InvalidPassword as exc:
        raise click.BadParameter(str(exc), param_hint="password") from None
    say(f"password set for {login}")


# -- seats -------------------------------------------------------------------


@click.group("seats")
def seats_group() -> None:
    """List, assign, revoke, pin, reassign and reclaim seats; answer seat requests."""


@seats_group.command("list")
@json_option
@pass_state
def seats_list(state: CliState, as_json: bool) -> None:
    """List the seat holders."""
    holders = state.app().ledger.holders()
    if as_json:
        emit_json(seats_json(holders))
        return
    table(
        ["LOGIN", "NAME", "PINNED", "ASSIGNED", "BY", "LAST LOGIN"],
        [
            [
                h.login,
                h.display_name,
                "yes" if h.pinned else "",
                iso(h.assigned_at),
                h.assigned_by,
                iso(h.last_login_at),
            ]
            for h in holders
        ],
    )


@seats_group.command("assign")
@click.argument("login")
@click.option("--pin", is_flag=True, help="Pin the seat: never released automatically.")
@pass_state
def seats_assign(state: CliState, login: str, pin: bool) -> None:
    """Give LOGIN a seat (may use seats reserved for admins)."""
    app = state.app()
    app.ledger.assign(app.accounts.get(login).id, actor=state.actor, pinned=pin)
    say(f"assigned a {'pinned ' if pin else ''}seat to {login}")


@seats_group.command("revoke")
@click.argument("login")
@pass_state
def seats_revoke(state: CliState, login: str) -> None:
    """Take LOGIN's seat away; its sessions end at their next request."""
    app = state.app()
    app.ledger.revoke(app.accounts.get(login).id, actor=state.actor)
    say(f"revoked the seat of {login}")


@seats_group.command("pin")
@click.argument("login")
@pass_state
def seats_pin(state: CliState, login: str) -> None:
    """Pin LOGIN's seat so it is never released automatically."""
    app = state.app()
    app.ledger.set_pinned(app.accounts.get(login).id, True, actor=state.actor)
    say(f"pinned the seat of {login}")


@seats_group.command("unpin")
@click.argument("login")
@pass_state
def seats_unpin(state: CliState, login: str) -> None:
    """Unpin LOGIN's seat."""
    app = state.app()
    app.ledger.set_pinned(app.accounts.get(login).id, False, actor=state.actor)
    say(f"unpinned the seat of {login}")


@seats_group.command("reassign")
@click.argument("from_login", metavar="FROM")
@click.argument("to_login", metavar="TO")
@pass_state
def seats_reassign(state: CliState, from_login: str, to_login: str) -> None:
    """Move FROM's seat to TO in one transaction (both or neither)."""
    app = state.app()
    source = app.accounts.get(from_login)
    target = app.accounts.get(to_login)
    app.ledger.reassign(source.id, target.id, actor=state.actor)
    say(f"moved the seat of {source.login} to {target.login}")


# -- login ---------------------------------------------------------


@click.command("login")
@click.argument("login")
@click.option("--password-stdin", is_flag=True, help="Read the password from one line of stdin.")
@pass_state
def login(state: CliState, login: str, password_stdin: bool) -> None:
    """Run the login decision for LOGIN: prints `allowed` or `refused: <reason>`."""
    app = state.app()
    password = read_password(password_stdin, confirm=False)
    decision = app.gate.decide(login, password, address="cli")
    say(str(decision))
    if not decision.allowed:
        say(decision.message, err=True)
        sys.exit(1)
