"""Forward-auth for portals that are not Python: ``GET /auth/verify``.

A web server in front of the portal (nginx ``auth_request``, Traefik
``forwardAuth``, Caddy ``forward_auth``) sends a subrequest carrying the
visitor's Cookie header. 200 means the session holds a seat, and names the
account in ``X-Seatgate-User`` (and its groups in ``X-Seatgate-Groups``);
401 means sign in first. Header values are percent-encoded UTF-8, so
non-ASCII logins and DNs with commas pass intact; groups are separated by
``;``.

A visitor's request that carries any ``X-Seatgate-*`` header of its own
(the subrequest passes the visitor's headers) is refused with 403: those
names belong to the gate's answer, and a proxy that forgot to clear one of
them must not let a client speak for the gate.
"""

from __future__ import annotations

from urllib.parse import quote

from flask import Blueprint, Response, request

from .context import current_portal_user

forward_auth = Blueprint("seatgate_auth", __name__)

# The gate's answer headers: a request may not bring its own.
_OWN_PREFIX = "x-seatgate-"


@forward_auth.get("/auth/verify")
def verify() -> Response:
    """200 with the user's headers when the session holds a seat, else 401."""
    user = current_portal_user()
    if any(name.lower().startswith(_OWN_PREFIX) for name, _ in request.headers.items()):
        response = Response("", status=403)
    elif user is None:
        response = Response("", status=401)
    else:
        response = Response("", status=200)
        response.headers["X-Seatgate-User"] = quote(user.login, safe="@._-+")
        response.headers["X-Seatgate-Groups"] = ";".join(
            quote(group, safe="=,@._- ") for group in user.account.groups
        )
        response.headers["X-Seatgate-Admin"] = "true" if user.is_admin else "false"
    # The answer depends on the cookie and must never be cached by a proxy.
    response.headers["Cache-Control"] = "no-store"
    response.headers["Vary"] = "Cookie"
    return response
