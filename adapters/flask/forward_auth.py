"""Forward-auth for portals that are not Python: ``GET /auth/verify``.

A web server in front of the portal (nginx ``auth_request``, Traefik
``forwardAuth``, Caddy ``forward_auth``) sends a subrequest carrying the
visitor's Cookie header. 200 means the session holds a seat, and names the
account in ``X-Seatgate-User`` (and its groups in ``X-Seatgate-Groups``);
401 means sign in first. Header values are percent-encoded UTF-8, so
non-ASCII logins and DNs with commas pass intact; groups are separated by
``;``.
"""

from __future__ import annotations

from urllib.parse import quote

from flask import Blueprint, Response

from .context import current_portal_user

forward_auth = Blueprint("seatgate_auth", __name__)


@forward_auth.get("/auth/verify")
def verify() -> Response:
    """200 with the user's headers when the session holds a seat, else 401."""
    user = current_portal_user()
    if user is None:
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
