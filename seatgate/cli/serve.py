"""``seatgate serve``: the web gate on a development server.

Production runs the same app under a WSGI server (see docs/operator.md)::

    SEATGATE_CONFIG=/etc/seatgate/seatgate.yaml \\
        gunicorn -w 4 -b 127.0.0.1:8080 'seatgate.adapters.flask.server:create_app()'
"""

from __future__ import annotations

import click
from werkzeug.serving import run_simple

from seatgate.app import Core
from seatgate.cli.context import CliState, pass_state
from seatgate.config import Config


def run(config: Config, host: str, port: int) -> None:
    """Serve the gate for ``config`` until interrupted."""
    core = Core.build(config, rate_limited=True)
    try:
        run_simple(host, port, core.web_app(), threaded=True)
    finally:
        core.close()


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port", default=8080, show_default=True, type=click.IntRange(1, 65535), help="Port."
)
@pass_state
def serve(state: CliState, host: str, port: int) -> None:
    """Run the web gate: login page, admin page, JSON API and /auth/verify.

    This is werkzeug's development server; run production under a WSGI
    server such as gunicorn (see docs/operator.md).
    """
    config = state.config
    click.echo(f"seatgate: serving http://{host}:{port}/login (Ctrl-C stops)")
    run(config, host, port)
