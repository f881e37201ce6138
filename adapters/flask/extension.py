"""``SeatGate``: the Flask extension that puts the seat gate in front of an app.

A host app adds the gate in three lines::

    app.config["SEATGATE_CONFIG"] = "/etc/seatgate/seatgate.yaml"
    gate = SeatGate()
    gate.init_app(app)

and protects its views with :func:`seat_required` (or :func:`admin_required`).

Configuration keys (defaults in :data:`DEFAULTS`):

- ``SEATGATE_CONFIG``: the path of a seatgate YAML file, or a loaded
  :class:`~seatgate.config.Config`;
- ``SEATGATE_CORE``: an already built :class:`~seatgate.app.Core`
  (takes precedence; for hosts that build their own, and tests);
- ``SEATGATE_HOME``: where a successful login goes without ``next``;
- ``SEATGATE_PAGE_SIZE``: accounts per page on the admin page.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from flask import Flask, Response, render_template, request
from flask_login import LoginManager
from werkzeug.exceptions import RequestEntityTooLarge

from seatgate.app import Core
from seatgate.config import Config, load_config
from seatgate.errors import ConfigError, StorageError

from . import (  # noqa: F401 - each registers its pages on the `pages` blueprint
    console_accounts,
    console_audit,
    console_charts,
    console_imports,
    console_licence,
    console_sync,
)
from .api import api
from .context import (
    EXTENSION_KEY,
    GateState,
    admin_required,
    load_user,
    refusal,
    seat_required,
    storage_unavailable,
    t,
    template_globals,
    unauthorized,
    wants_json,
)
from .forward_auth import forward_auth
from .metrics import init_metrics
from .negotiate import NegotiateDoor
from .security import add_hsts, add_security_headers
from .sites import init_sites
from .upstream import UpstreamDoor
from .views import pages

DEFAULTS: dict[str, Any] = {"SEATGATE_HOME": "/", "SEATGATE_PAGE_SIZE": 25}

__all__ = ["DEFAULTS", "SeatGate", "admin_required", "seat_required"]


class SeatGate:
    """The seat gate as a Flask extension (unbound; call :meth:`init_app`)."""

    def __init__(self, app: Flask | None = None, *, core: Core | None = None) -> None:
        self._core = core
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask, *, core: Core | None = None) -> None:
        """Wire flask-login, the pages, the JSON API, forward-auth and metrics into ``app``.

        Raises :class:`~seatgate.errors.ConfigError` at start-up when no
        configuration is given or it is unusable.
        """
        for key, value in DEFAULTS.items():
            app.config.setdefault(key, value)
        core = core or self._core or app.config.get("SEATGATE_CORE") or _build_core(app)
        web = core.config.web
        state = GateState(
            core=core,
            web=web,
            home=str(app.config["SEATGATE_HOME"]),
            page_size=int(app.config["SEATGATE_PAGE_SIZE"]),
            # Its secret is read now: a door without one refuses to start.
            upstream=(UpstreamDoor.start(web.trusted_identity) if web.trusted_identity else None),
            # Its keytab is read now: a door without a usable key refuses to start.
            kerberos=NegotiateDoor.start(web.kerberos) if web.kerberos else None,
        )
        app.extensions[EXTENSION_KEY] = state
        # The first unknown login must cost what every other one does.
        core.hasher.prepare()
        app.register_error_handler(StorageError, storage_unavailable)
        if not app.secret_key:
            app.secret_key = core.session_secret()
        app.config.update(
            SESSION_COOKIE_HTTPONLY=True,
            SESSION_COOKIE_SAMESITE="Lax",
            SESSION_COOKIE_SECURE=web.secure_cookies,
            REMEMBER_COOKIE_HTTPONLY=True,
            REMEMBER_COOKIE_SAMESITE="Lax",
            REMEMBER_COOKIE_SECURE=web.secure_cookies,
            PERMANENT_SESSION_LIFETIME=state.lifetime,
        )
        manager = LoginManager()
        # "strong" would end sessions of phones moving between networks, and
        # flask-login 0.6 derives its identifier from X-Forwarded-For without
        # asking; the server-side session record is the protection instead.
        manager.session_protection = None
        manager.user_loader(load_user)
        manager.unauthorized_handler(unauthorized)
        manager.init_app(app)
        # First of the app's own hooks: a host the licence does not cover gets nothing else.
        init_sites(app)

        app.register_blueprint(pages)
        app.register_blueprint(api)
        app.register_blueprint(forward_auth)
        init_metrics(app, web)
        app.context_processor(template_globals)
        _limit_bodies(app, web.max_body_bytes)
        if web.secure_cookies and web.hsts_max_age > 0:
            max_age = web.hsts_max_age
            app.after_request(lambda response: add_hsts(response, max_age))


# The gate's own blueprints: their requests get the body limit and its 413 page.
_GATE_BLUEPRINTS = frozenset({pages.name, api.name, forward_auth.name})


def _limit_bodies(app: Flask, max_bytes: int) -> None:
    """Refuse request bodies over ``max_bytes`` to the gate's routes (413) before reading them.

    Werkzeug checks Content-Length before reading and stops a chunked body
    (no Content-Length) as soon as it passes the limit, so neither is ever
    held whole. The host app's own routes keep its MAX_CONTENT_LENGTH.
    """

    def limit() -> None:
        if request.blueprint not in _GATE_BLUEPRINTS:
            return
        request.max_content_length = max_bytes
        # A chunked body: werkzeug stops reading at the limit but would hand
        # the views the first max_bytes as if that were all of it. Read it
        # here (at most max_bytes, kept for the views); refuse one that filled the limit.
        chunked = request.content_length is None and "wsgi.input_terminated" in request.environ
        if chunked and len(request.get_data(cache=True, parse_form_data=False)) >= max_bytes:
            raise RequestEntityTooLarge()

    def too_large(exc: RequestEntityTooLarge) -> Any:
        if request.blueprint not in _GATE_BLUEPRINTS:
            return exc
        if wants_json():
            response = refusal("request_too_large", 413)
        else:
            page = render_template("seatgate/error.html", message=t("request_too_large"))
            response = Response(page, status=413)
        # What is left of the body stays unread here; the WSGI server drains
        # or closes the connection (an application may not set Connection).
        return add_security_headers(response)

    app.before_request(limit)
    app.register_error_handler(RequestEntityTooLarge, too_large)


def _build_core(app: Flask) -> Core:
    source = app.config.get("SEATGATE_CONFIG") or os.environ.get("SEATGATE_CONFIG")
    if not source:
        raise ConfigError(
            "SEATGATE_CONFIG", "set it to the path of the seatgate configuration file"
        )
    config = source if isinstance(source, Config) else load_config(Path(str(source)))
    return Core.build(config, rate_limited=True)
