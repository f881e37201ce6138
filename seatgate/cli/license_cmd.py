"""``seatgate license``: install and remove tokens, show the entitlement and updates periods."""

from __future__ import annotations

import sys
from datetime import datetime
from typing import TextIO

import click

from seatgate.cli.context import CliState, pass_state
from seatgate.cli.output import emit_json, say, table
from seatgate.licensing.entitlement import Entitlement
from seatgate.licensing.lifecycle import UpdatesPeriod
from seatgate.licensing.report import InstalledToken, LicenseStatus
from seatgate.licensing.tokens import describe
from seatgate.reports.documents import iso, status_json

json_option = click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
dry_run_option = click.option(
    "--dry-run", is_flag=True, help="Show who would lose a seat; change nothing."
)


@click.group("license")
def license_group() -> None:
    """Install and remove licence tokens; show the entitlement, updates and usage."""


@license_group.command("install")
@click.argument("file", type=click.File("r", encoding="utf-8", errors="strict"))
@dry_run_option
@pass_state
def license_install(state: CliState, file: TextIO, dry_run: bool) -> None:
    """Install a licence, add-on, trial, renewal or site token from FILE (`-` = stdin)."""
    try:
        text = file.read(1 << 20)
    except UnicodeDecodeError:
        raise click.BadParameter("the file is not UTF-8 text", param_hint="FILE") from None
    result = state.app().licensing.install(text, actor=state.actor, dry_run=dry_run)
    prefix = "would install" if dry_run else "installed"
    say(f"{prefix} {describe(result.token)}")
    if result.renewed is not None:
        until = iso(result.renewed.updates_until)
        verb = "would run" if dry_run else "now run"
        say(f"updates and support for `{result.token.lic}` {verb} until {until}")
    _entitlement_lines(result.entitlement, result.released, dry_run)


@license_group.command("remove")
@click.argument("jti")
@dry_run_option
@pass_state
def license_remove(state: CliState, jti: str, dry_run: bool) -> None:
    """Take out an add-on, site or renewal coupon installed by mistake (by its JTI)."""
    result = state.app().licensing.remove(jti, actor=state.actor, dry_run=dry_run)
    prefix = "would remove" if dry_run else "removed"
    say(f"{prefix} {result.kind} `{result.jti}`")
    _entitlement_lines(result.entitlement, result.released, dry_run)


def _entitlement_lines(ent: Entitlement, released: list[str], dry_run: bool) -> None:
    if ent.valid:
        seats = "unlimited seats" if ent.unlimited else f"{ent.seats} seats"
        if ent.overage_seats:
            seats += f" (+{ent.overage_seats} overage, billed at true-up)"
        kind = "trial" if ent.trial else "licence"
        say(f"entitlement: {ent.edition} {kind}, {seats}")
    else:
        say(f"entitlement: none ({ent.reason})")
    if released:
        verb = "would lose" if dry_run else "lost"
        say(f"{len(released)} seat holder(s) {verb} their seat: " + ", ".join(released))


@license_group.command("status")
@json_option
@pass_state
def license_status(state: CliState, as_json: bool) -> None:
    """Show the entitlement, seat use, updates periods and renewal quotes.

    Exits 1 when there is no valid entitlement.
    """
    app = state.app()
    status = app.licensing.status()
    pending = app.seat_requests.pending_count()
    if as_json:
        emit_json(status_json(status, requests_pending=pending))
        sys.exit(0 if status.valid else 1)
    _status_lines(status)
    if pending:
        say(f"requests:  {pending} seat request(s) pending (seatgate seats requests)")
    if status.tokens:
        say("")
        table(
            ["JTI", "KIND", "SEATS", "ACTIVATED", "UPDATES UNTIL", "RENEWAL", "COUNTED"],
            [
                [
                    t.jti,
                    t.kind,
                    ("unlimited" if t.token.unlimited else t.token.seats) if t.token else "",
                    _date(period.activated_at) if period else "",
                    _updates(period) if period else "",
                    _renewal(period) if period else _other(t),
                    "yes" if t.jti in status.entitlement.source_jtis else (t.problem or "no"),
                ]
                for t in status.tokens
                for period in [status.periods.get(t.jti)]
            ],
        )
    if not status.valid:
        sys.exit(1)


def _status_lines(status: LicenseStatus) -> None:
    ent = status.entitlement
    if status.valid:
        kind = "trial" if ent.trial else "licence"
        say(f"licence:   valid — {ent.edition} {kind}")
    else:
        say(f"licence:   NOT VALID — {status.reason}")
    total = "unlimited" if status.seats_total is None else str(status.seats_total)
    free = "unlimited" if status.seats_free is None else str(status.seats_free)
    say(f"seats:     {status.seats_used} used of {total}, {free} free")
    if status.overage_allowed or status.overage_used:
        say(
            f"overage:   {status.overage_used} used of {status.overage_allowed} allowed "
            "beyond the licence (billed at true-up)"
        )
    if status.reserved_for_admins:
        say(f"reserved:  {status.reserved_for_admins} kept free for administrators")
    if status.trial_days_left is not None:
        say(f"trial:     {status.trial_days_left} day(s) left, ends {iso(ent.expires_at)}")
    elif ent.expires_at:
        say(f"expires:   {iso(ent.expires_at)}")
    if ent.sites:
        say(f"sites:     {', '.join(ent.sites)} (the web gate serves only these hosts)")
    warning = status.clock.explain()
    if warning:
        say(f"clock:     WARNING — {warning}")


def _other(t: InstalledToken) -> str:
    """The RENEWAL cell of a token without an updates period: a coupon, or a site."""
    if t.kind == "site" and t.token is not None:
        price = t.token.price
        cost = f", price {price.amount} {price.currency}, not renewed" if price else ""
        return f"site {t.token.host}{cost}"
    return f"renews {t.lic}" if t.lic else ""


def _date(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d") if value is not None else ""


def _updates(period: UpdatesPeriod) -> str:
    if period.days_left is not None:
        return f"{_date(period.updates_until)} ({period.days_left} days left)"
    return f"{_date(period.updates_until)} (ended {period.days_since_end} days ago)"


def _renewal(period: UpdatesPeriod) -> str:
    quote = period.quote
    rate = f"{quote.rate * 100:.0f}%"
    price = f" = {quote.amount} {quote.currency}" if quote.amount is not None else ""
    until = f" until {_date(quote.rate_changes_at)}" if quote.rate_changes_at else ""
    return f"{rate}{price}{until}"
