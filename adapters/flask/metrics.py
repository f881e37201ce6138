"""Prometheus metrics of the web gate: ``GET /metrics`` (``web.metrics: true``).

No session, login or CSRF token: a scraper is not a portal user. When
``web.metrics_token_env`` names an environment variable, its value is read
once at start-up (unset or empty stops the gate with a configuration error)
and every request must carry ``Authorization: Bearer <value>``. When
``web.metrics`` is off the route is not registered at all, so a host app's
own ``/metrics`` keeps working and the gate's answers 404.
"""

from __future__ import annotations

import hmac
import os

from flask import Blueprint, Flask, Response, current_app, request

from seatgate.config import WebConfig
from seatgate.errors import ConfigError
from seatgate.reports import metrics

from .context import gate_state

METRICS_KEY = "seatgate_metrics"

metrics_page = Blueprint("seatgate_metrics", __name__)


def init_metrics(app: Flask, web: WebConfig) -> None:
    """Register ``/metrics`` on ``app`` if ``web.metrics`` is on.

    Raises :class:`~seatgate.errors.ConfigError` when ``web.metrics_token_env``
    names a variable that is unset or empty.
    """
    if not web.metrics:
        return
    token: str | None = None
    if web.metrics_token_env:
        token = os.environ.get(web.metrics_token_env, "").strip()
        if not token:
            raise ConfigError(
                "web.metrics_token_env",
                f"the environment variable {web.metrics_token_env} is unset or empty; "
                "set it to the token /metrics requires, or remove the key",
            )
    app.extensions[METRICS_KEY] = token
    app.register_blueprint(metrics_page)


@metrics_page.get("/metrics")
def serve_metrics() -> Response:
    """The seat and login metrics as Prometheus text, or 401 without the right token."""
    token = current_app.extensions.get(METRICS_KEY)
    if token is not None and not _bearer_matches(token):
        response = Response("unauthorized\n", status=401, mimetype="text/plain")
        response.headers["WWW-Authenticate"] = 'Bearer realm="seatgate metrics"'
    else:
        core = gate_state().core
        days = core.config.seats.request_days
        response = Response(metrics.render(core.db, core.clock.now(), request_days=days))
        response.headers["Content-Type"] = metrics.CONTENT_TYPE
    response.headers["Cache-Control"] = "no-store"
    return response


def _bearer_matches(token: str) -> bool:
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        return False
    # Constant time: the comparison must not tell how much of a guess was right.
    return hmac.compare_digest(given.strip().encode(), token.encode())
