"""``seatgate sync ldap``: the directory sync job (run it from cron or a systemd timer)."""

from __future__ import annotations

import sys

import click

from seatgate.cli.context import CliState, pass_state
from seatgate.cli.output import emit_json, say
from seatgate.directory.model import SyncReport


@click.group("sync")
def sync_group() -> None:
    """Synchronise accounts from a directory."""


@sync_group.command("ldap")
@click.option("--dry-run", is_flag=True, help="Show what would change; change nothing.")
@click.option("--full", is_flag=True, help="Re-read every entry (finds deletions everywhere).")
@click.option(
    "--confirm-disables",
    type=click.IntRange(min=1),
    metavar="N",
    help="Allow a run that disables or deletes exactly N accounts beyond the safety limits.",
)
@click.option(
    "--confirm-seat-revocations",
    type=click.IntRange(min=1),
    metavar="N",
    help="Allow a run that revokes exactly N seats (exclusive seat groups) beyond the limits.",
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable summary.")
@pass_state
def sync_ldap(
    state: CliState,
    dry_run: bool,
    full: bool,
    confirm_disables: int | None,
    confirm_seat_revocations: int | None,
    as_json: bool,
) -> None:
    """Bring the directory's users into seatgate, all or nothing."""
    app = state.app()
    sync = app.directory_sync()
    directory = app.directory()
    progress = sys.stderr.isatty() and not as_json
    if progress:

        def on_page(count: int) -> None:
            click.echo(f"\rread {count} entries", nl=False, err=True)

        directory.on_page = on_page
    report = sync.run(
        directory,
        full=full,
        dry_run=dry_run,
        confirm_disables=confirm_disables,
        confirm_seat_revocations=confirm_seat_revocations,
    )
    if progress:
        click.echo("", err=True)
    if as_json:
        emit_json(report.as_dict())
    else:
        _print(report)


def _print(report: SyncReport) -> None:
    kind = "full" if report.full else "incremental"
    prefix = "dry run, nothing changed: would have " if report.dry_run else ""
    source = f" from {report.server}" if report.server else ""
    say(f"{kind} sync: {report.entries_seen} directory entries read{source}")
    counts = report.as_dict()
    say(
        prefix
        + ", ".join(
            f"{name} {counts[name]}"
            for name in ("created", "updated", "renamed", "disabled", "enabled", "deleted")
        )
    )
    for title, logins in (
        ("seats freed", report.seats_freed),
        ("seats granted", report.seats_granted),
        ("seats revoked (in no seat group)", report.seats_revoked),
        ("pinned seats kept (in no seat group)", report.seats_kept_pinned),
        ("admins granted", report.admins_granted),
        ("admins revoked", report.admins_revoked),
    ):
        if logins:
            say(f"{title} ({len(logins)}): " + ", ".join(logins))
    for conflict in report.conflicts:
        say(f"skipped: {conflict}", err=True)
    for flagged in report.flagged:
        say(f"flagged: {flagged['login']} ({flagged['dn']}): {flagged['reason']}")
