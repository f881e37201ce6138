"""``seatgate api-tokens``: scoped bearer tokens for scripts that hold no admin password.

A token is printed once, when it is made; only its hash is kept. Scripts
send it as ``Authorization: Bearer TOKEN`` to the JSON API; what they do is
audited as ``token:NAME``.
"""

from __future__ import annotations

import click

from seatgate.cli.context import CliState, pass_state
from seatgate.cli.output import emit_json, say, table
from seatgate.gate.api_tokens import SCOPES, ApiToken, parse_expiry
from seatgate.reports.documents import iso

json_option = click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")


@click.group("api-tokens")
def api_tokens_group() -> None:
    """Make, list and revoke API tokens for scripts."""


@api_tokens_group.command("create")
@click.argument("name")
@click.option(
    "--scope",
    "scopes",
    multiple=True,
    required=True,
    type=click.Choice(SCOPES),
    help="What the token may do; repeat for several.",
)
@click.option("--expires", help="Lifetime, e.g. 90d, 12h or 30m (default: until revoked).")
@pass_state
def api_tokens_create(
    state: CliState, name: str, scopes: tuple[str, ...], expires: str | None
) -> None:
    """Make the token NAME and print it (the only time it is shown)."""
    lifetime = parse_expiry(expires) if expires is not None else None
    text = state.app().api_tokens.create(name, scopes, expires_in=lifetime, actor=state.actor)
    click.echo(text)
    click.echo(
        f"token {name.strip().lower()} made with {', '.join(scopes)}; "
        "keep it now, it is not shown again",
        err=True,
    )


@api_tokens_group.command("list")
@json_option
@pass_state
def api_tokens_list(state: CliState, as_json: bool) -> None:
    """Every token: its scopes, state (active, expired, revoked) and last use. Never the token."""
    app = state.app()
    now = app.clock.now()
    tokens = app.api_tokens.list()
    if as_json:
        emit_json([_as_json(t, t.state(now)) for t in tokens])
        return
    table(
        ["NAME", "STATE", "SCOPES", "CREATED", "BY", "EXPIRES", "LAST USED"],
        [
            [
                t.name,
                t.state(now),
                " ".join(sorted(t.scopes)),
                iso(t.created_at),
                t.created_by,
                iso(t.expires_at),
                iso(t.last_used_at),
            ]
            for t in tokens
        ],
    )


@api_tokens_group.command("revoke")
@click.argument("name")
@pass_state
def api_tokens_revoke(state: CliState, name: str) -> None:
    """Revoke the token NAME for good: its next request is refused (401)."""
    state.app().api_tokens.revoke(name, actor=state.actor)
    say(f"revoked token {name.strip().lower()}")


def _as_json(token: ApiToken, token_state: str) -> dict[str, object]:
    return {
        "name": token.name,
        "state": token_state,
        "scopes": sorted(token.scopes),
        "created_at": iso(token.created_at),
        "created_by": token.created_by,
        "expires_at": iso(token.expires_at),
        "revoked_at": iso(token.revoked_at),
        "last_used_at": iso(token.last_used_at),
    }
