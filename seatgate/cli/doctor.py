"""``seatgate doctor kerberos``: is the Kerberos sign-on set up right, and if not, what to fix."""

from __future__ import annotations

import sys

import click

from seatgate.app import kerberos_checks
from seatgate.cli.context import CliState, pass_state
from seatgate.cli.output import emit_json, say
from seatgate.errors import ConfigError

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
