"""The licensed sites: when the licence names any, the app answers only on those hosts.

Runs before every request of the app -- the gate's own pages, its JSON API,
forward-auth and the host app's views alike. The host name is the request's
``Host`` header (port, case and one trailing dot ignored); ``X-Forwarded-Host``
is never read, so a client cannot name a licensed site it did not reach. A
proxy in front passes the visitor's ``Host`` on (nginx: ``proxy_set_header
Host $host``).

Any other host gets 403 with ``site_not_licensed`` (a page, or JSON under
``/api/`` and ``/auth/``), except the machine's own names: a request whose
Host is ``localhost``, ``127.0.0.1`` or ``[::1]``, that comes from a loopback
socket peer and carries no ``X-Forwarded-For`` (it did not pass through a
proxy), is served to administrators: anyone may reach the sign-in and
sign-out pages there, a signed-in administrator everything, and a signed-in
non-administrator gets 403 ``site_admins_only``.

With no licensed site, nothing is checked and every host is served as before.
``/metrics`` has its own access rule (``web.metrics_token_env``) and is not
checked, so a scraper can reach it by address.
"""

from __future__ import annotations

import logging

from flask import Flask, Response, render_template, request

from seatgate.errors import StorageError
from seatgate.licensing.sites import LOOPBACK_HOSTS, is_loopback_address, request_host

from .context import current_portal_user, gate_state, refusal, t, unauthorized, wants_json
from .security import add_security_headers

# Reachable by anyone on a loopback host, so that an administrator can sign in.
_OPEN_ON_LOOPBACK = frozenset(
    {"seatgate.login", "seatgate.logout", "seatgate.switch_language", "seatgate.static"}
)
log = logging.getLogger(__name__)

_UNCHECKED = frozenset({"seatgate_metrics.serve_metrics"})
_SHOWN_HOST_LENGTH = 100


def init_sites(app: Flask) -> None:
    """Check the request's host against the licensed sites before every request of ``app``."""
    app.before_request(check_site)


def check_site() -> Response | None:
    """None to go on, or the refusal for a host the licence does not cover."""
    if request.endpoint in _UNCHECKED:
        return None
    # A session's check reads the sites with it; without one, a read of its own.
    user = current_portal_user()
    sites = user.sites if user is not None else _sites_without_session()
    if not sites:
        return None
    host = request_host(request.headers.get("Host", ""))
    if host is not None and host in sites:
        return None
    if host in LOOPBACK_HOSTS and _from_this_machine():
        return _admins_only(host)
    shown = (host or "?")[:_SHOWN_HOST_LENGTH]
    return _refused("site_not_licensed", shown)


def _sites_without_session() -> frozenset[str]:
    # A database that cannot be read refuses nothing here: whatever the request
    # goes on to do (sign in, check a session, claim a seat) needs the database
    # too and gets the gate's 503 there, while the sign-in page keeps being served.
    try:
        return gate_state().core.licensed_sites()
    except StorageError as exc:
        log.warning("cannot read the licensed sites: %s", exc)
        return frozenset()


def _from_this_machine() -> bool:
    """The socket peer is loopback and no proxy forwarded the request."""
    return is_loopback_address(request.remote_addr) and "X-Forwarded-For" not in request.headers


def _admins_only(host: str) -> Response | None:
    if request.endpoint in _OPEN_ON_LOOPBACK:
        return None
    user = current_portal_user()
    if user is not None and user.is_admin:
        return None
    if user is None:
        answer: Response = unauthorized()
        return answer
    return _refused("site_admins_only", host)


def _refused(code: str, host: str) -> Response:
    if wants_json():
        response = refusal(code, 403, t(code, host=host))
    else:
        page = render_template("seatgate/error.html", message=t(code, host=host))
        response = Response(page, status=403)
    return add_security_headers(response)
