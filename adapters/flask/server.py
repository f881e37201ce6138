"""A standalone gate: the app ``seatgate serve`` runs and a WSGI server can load.

    SEATGATE_CONFIG=/etc/seatgate/seatgate.yaml \\
        gunicorn -w 4 -b 127.0.0.1:8080 'seatgate.adapters.flask.server:create_app()'

Its home page stands in for the portal: it shows who is signed in. In front
of a portal that is not Python, the web server asks ``/auth/verify``.
"""

from __future__ import annotations

from pathlib import Path

from flask import Flask, Response, make_response, render_template

from seatgate.app import Core
from seatgate.config import Config

from .context import EXTENSION_KEY, seat_required
from .extension import SeatGate
from .security import add_security_headers


def create_app(config: Config | str | Path | None = None, *, core: Core | None = None) -> Flask:
    """The gate as a Flask app, for ``config`` (default: ``$SEATGATE_CONFIG``)."""
    app = Flask("seatgate.adapters.flask")
    if config is not None:
        app.config["SEATGATE_CONFIG"] = config
    SeatGate().init_app(app, core=core)
    # The standalone gate serves nothing else: every route gets the body limit.
    app.config["MAX_CONTENT_LENGTH"] = app.extensions[EXTENSION_KEY].web.max_body_bytes

    @app.get("/")
    @seat_required
    def home() -> Response:
        return make_response(render_template("seatgate/home.html"))

    app.after_request(add_security_headers)
    return app
