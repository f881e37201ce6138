"""``seatgate doctor``: is a part of the set-up right, and if not, what to fix.

``kerberos``: the Kerberos sign-on. ``seats``: the seats-held count the
database keeps for the seat lock against the seat rows.
"""

from __future__ import annotations

import sys

import click

from seatgate.app import kerberos_checks
from seatgate.cli.context import CliState, pass_state
from seatgate.cli.output import emit_json, say
from seatgate.errors import ConfigError
from seatgate.seats import recount

MARKS = {"ok": "ok  ", "warn": "WARN", "fail": "FAIL", "skip": "skip"}


@click.group("doctor")
def doctor_group() -> None:
    """Check a part of the set-up and say what to fix."""


@doctor_group.command("kerberos")
@click.option(
    "--kdc",
    metavar="HOST[:PORT]",
    help="The KDC to read the time of (default: krb5.conf's, else the realm's name).",
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable findings.")
@pass_state
def doctor_kerberos(state: CliState, kdc: str | None, as_json: bool) -> None:
    """Keytab, principal, realms, DNS, clock skew and a real ticket; exit 1 on a failure."""
    config = state.config.web.kerberos
    if config is None:
        raise ConfigError("web.kerberos", "is not set: there is no Kerberos sign-on to check")
    try:
        # The adapter loads gssapi, which the `kerberos` extra installs.
        found = kerberos_checks(config, kdc)
    except ImportError as exc:
        raise ConfigError(
            "web.kerberos",
            f"python-gssapi is not installed ({exc}): pip install 'seatgate[kerberos]'",
        ) from None
    failed = any(check["status"] == "fail" for check in found)
    if as_json:
        emit_json({"ok": not failed, "checks": found})
    else:
        for check in found:
            say(
                f"{MARKS.get(check['status'], check['status'])}  {check['name']}: {check['detail']}"
            )
            if check["fix"] and check["status"] != "ok":
                say(f"      fix: {check['fix']}")
        say("Kerberos sign-on: " + ("problems found (FAIL above)" if failed else "no failures"))
    if failed:
        sys.exit(1)


@doctor_group.command("seats")
@click.option("--repair", is_flag=True, help="Set the count to the seat rows (audited).")
@pass_state
def doctor_seats(state: CliState, repair: bool) -> None:
    """The seats-held count kept for claims against the seat rows; exit 1 when they differ."""
    app = state.app()
    if repair:
        counted, rows = recount.repair(app.db, app.clock, actor=state.actor)
    else:
        counted, rows = recount.check(app.db)
    if counted == rows:
        say(f"ok    seats held: {rows}; the count kept with the seat lock agrees")
        return
    say(f"FAIL  seats held: {rows}; the count kept with the seat lock says {counted}")
    if repair:
        say(f"      repaired: the count is now {rows} (audited as seats.recounted)")
        return
    say("      fix: seatgate doctor seats --repair (were the triggers on `seats` removed?)")
    sys.exit(1)
