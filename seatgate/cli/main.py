"""The ``seatgate`` command: exit 0 ok, 1 refused or failed, 2 usage or configuration error."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

import click

# Imported for what they register: `accounts import-csv`; `seats reclaim`,
# `seats requests`, `seats approve` and `seats deny`.
import seatgate.cli.csv_import
import seatgate.cli.seat_ops_cmd  # noqa: F401
from seatgate.cli import (
    admin,
    api_tokens_cmd,
    audit_cmd,
    demo,
    doctor,
    license_cmd,
    notify_cmd,
    serve,
    sessions_cmd,
    sync,
    usage_cmd,
    vendor,
)
from seatgate.cli.context import CliState
from seatgate.cli.output import say_lines
from seatgate.config import DEFAULT_CONFIG_FILE
from seatgate.errors import ConfigError, SchemaOutdated, SeatgateError

EXIT_FAILED = 1
EXIT_USAGE = 2


class SeatgateGroup(click.Group):
    """Turns seatgate errors into a one-line message and the documented exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (ConfigError, SchemaOutdated) as exc:
            say_lines(f"seatgate: {exc}", err=True)
            ctx.exit(EXIT_USAGE)
        except SeatgateError as exc:
            say_lines(f"seatgate: {exc}", err=True)
            ctx.exit(EXIT_FAILED)


@click.group(cls=SeatgateGroup)
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=DEFAULT_CONFIG_FILE,
    envvar="SEATGATE_CONFIG",
    show_default=True,
    show_envvar=True,
    help="The installation's configuration file.",
)
@click.option("-v", "--verbose", is_flag=True, help="Log what happens to stderr.")
@click.version_option(package_name="seatgate")
@click.pass_context
def cli(ctx: click.Context, config_path: Path, verbose: bool) -> None:
    """seatgate: only as many accounts as the licence has seats may log in."""
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # A program embedding the CLI (the tests) may hand in its own clock:
    # cli.main(obj={"clock": clock}).
    embedded = ctx.obj if isinstance(ctx.obj, dict) else {}
    ctx.obj = CliState(config_path, clock=embedded.get("clock"))

    @ctx.call_on_close
    def _close() -> None:
        state: CliState = ctx.obj
        if state._app is not None:
            state._app.close()


license_cmd.license_group.add_command(usage_cmd.license_usage)

for command in (
    admin.init,
    license_cmd.license_group,
    admin.accounts_group,
    admin.seats_group,
    sessions_cmd.sessions_group,
    api_tokens_cmd.api_tokens_group,
    admin.login,
    audit_cmd.audit_group,
    vendor.vendor_group,
    usage_cmd.metrics_command,
    demo.demo,
    serve.serve,
    sync.sync_group,
    notify_cmd.notify_group,
    doctor.doctor_group,
):
    cli.add_command(command)


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="seatgate")
