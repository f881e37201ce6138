"""Per-request helpers of the web gate: the app's gate state, language, session, refusals.

Shared by the pages, the JSON API and forward-auth; the extension wires them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from functools import wraps
from typing import Any, TypeVar, cast

from flask import (
    Response,
    current_app,
    g,
    jsonify,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_login import current_user, login_user, logout_user

from seatgate.app import Core
from seatgate.config import WebConfig
from seatgate.errors import StorageError
from seatgate.records import Account
from seatgate.sessions.check import SessionRefusal
from seatgate.sessions.service import EndReason

from .i18n import choose_language, ngettext, translate
from .negotiate import NegotiateDoor
from .security import add_security_headers, client_address, csrf_token
from .sessions import PortalUser
from .upstream import UpstreamDoor

log = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])
EXTENSION_KEY = "seatgate"
# Paths answered with JSON instead of pages when a request is refused.
JSON_PREFIXES = ("/api/", "/auth/")


@dataclass
class GateState:
    """What the extension keeps per Flask app."""

    core: Core
    web: WebConfig
    home: str
    page_size: int
    # The trusted-upstream door, when web.trusted_identity is set.
    upstream: UpstreamDoor | None = None
    # The Kerberos door, when web.kerberos is set.
    kerberos: NegotiateDoor | None = None

    @property
    def lifetime(self) -> timedelta:
        return timedelta(hours=self.web.session_hours)


def gate_state() -> GateState:
    """The extension's state for the current app."""
    return cast(GateState, current_app.extensions[EXTENSION_KEY])


def language() -> str:
    """The language of the current request."""
    if "seatgate_language" not in g:
        g.seatgate_language = choose_language(request, gate_state().web.language)
    return str(g.seatgate_language)


def t(key: str, **values: object) -> str:
    """A message (by key, or its English text) in the current request's language."""
    return translate(key, language(), **values)


def tn(singular: str, plural: str, count: int, **values: object) -> str:
    """The form of a plural message for ``count`` in the current request's language."""
    return ngettext(singular, plural, count, language(), **values)


def current_portal_user() -> PortalUser | None:
    """The signed-in user whose seat was checked on this request, or None."""
    user = current_user._get_current_object()
    return user if isinstance(user, PortalUser) else None


def load_user(user_id: str) -> PortalUser | None:
    """flask-login's user loader: the core's per-request check of the cookie's session."""
    answer = gate_state().core.sessions.check(user_id)
    user = PortalUser.from_answer(user_id, answer)
    if user is None:
        # The session is over (ended, expired, seat revoked, account disabled,
        # licence gone): forget it in the cookie too.
        session.pop("_user_id", None)
        session.pop("_fresh", None)
        g.seatgate_session_refusal = answer.refusal
    return user


def session_refusal() -> SessionRefusal | None:
    """Why this request's session cookie was refused; None when it carried none or passed."""
    refusal: SessionRefusal | None = g.get("seatgate_session_refusal")
    return refusal


def sign_in(account: Account, *, keep: bool = False) -> PortalUser:
    """Start a new session for ``account`` (the old one's contents are dropped: no fixation)."""
    state = gate_state()
    sessions = state.core.sessions
    previous = current_portal_user()
    if previous is not None:
        # Signing in again (perhaps as someone else) ends the session it
        # replaces; whoever signs in at this browser is the one who ended it.
        sessions.end(previous.token, actor=account.login, reason=EndReason.REPLACED)
    session.clear()
    token = sessions.open(
        account.id,
        address=client_address(request, state.web.trusted_proxies),
        user_agent=request.headers.get("User-Agent"),
    )
    user = PortalUser.from_answer(token, sessions.check(token))
    if user is None:  # pragma: no cover - the seat went away within the login itself
        raise RuntimeError("the session could not be opened")
    # Remember-me off: the cookie dies with the browser; the server-side
    # record ends it after web.session_hours either way.
    session.permanent = keep and state.web.remember_me
    login_user(user, remember=False)
    csrf_token()
    return user


def sign_out() -> None:
    """End the current session on the server (audited) and in the cookie."""
    user = current_portal_user()
    if user is not None:
        gate_state().core.sessions.end(user.token, actor=user.login, reason=EndReason.LOGOUT)
    logout_user()
    session.clear()


def wants_json() -> bool:
    """Whether refusals of this request are answered with JSON."""
    return request.path.startswith(JSON_PREFIXES)


def refusal(code: str, status: int, message: str | None = None, **extra: str) -> Response:
    """A JSON refusal ``{"error": code, "message": ...}`` (plus ``extra`` fields)."""
    response = jsonify(error=code, message=message or t(code), **extra)
    response.status_code = status
    return response


def storage_unavailable(exc: StorageError) -> Response:
    """503 while the database cannot be used (read-only, disk full, down).

    One log line, never a traceback page; the next request tries again, so
    the gate recovers by itself once the database does.
    """
    log.error("database unavailable: %s", exc)
    if wants_json():
        response = refusal("storage_unavailable", 503)
    else:
        page = render_template("seatgate/error.html", message=t("storage_unavailable"))
        response = Response(page, status=503)
    response.headers["Retry-After"] = "30"
    return add_security_headers(response)


def unauthorized() -> Any:
    if wants_json():
        refused = session_refusal()
        # A session cookie that was refused: say why, for the portal's script.
        extra = {"reason": refused.value} if refused is not None else {}
        return refusal("unauthenticated", 401, **extra)
    return redirect(url_for("seatgate.login", next=request.full_path.rstrip("?")))


def seat_required(view: F) -> F:
    """Only a signed-in account that holds a seat may use ``view``."""

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if current_portal_user() is None:
            return unauthorized()
        return view(*args, **kwargs)

    return cast(F, wrapper)


def admin_required(view: F) -> F:
    """Only a signed-in administrator (holding a seat) may use ``view``; others get 403."""

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        user = current_portal_user()
        if user is None:
            return unauthorized()
        if not user.is_admin:
            if wants_json():
                return refusal("forbidden", 403)
            page = render_template("seatgate/forbidden.html")
            return add_security_headers(Response(page, status=403))
        return view(*args, **kwargs)

    return cast(F, wrapper)


def template_globals() -> dict[str, Any]:
    return {
        "t": t,
        "tn": tn,
        "csrf_token": csrf_token,
        "seatgate_language": language,
        "seatgate_user": current_portal_user,
    }


def require_user() -> PortalUser:
    """The signed-in user of a view behind :func:`seat_required` or :func:`admin_required`."""
    user = current_portal_user()
    if user is None:  # pragma: no cover - the decorators let no anonymous request through
        raise RuntimeError("no signed-in user on a protected view")
    return user
