"""Request security of the web gate: CSRF tokens, security headers, the client address.

Every form POST carries the session's CSRF token (compared in constant time).
The JSON API takes ``application/json`` bodies only, which a cross-site form
cannot send, and the session cookie is SameSite=Lax; together they keep
cross-site requests out of the API without a token.
"""

from __future__ import annotations

import hmac
import secrets

from flask import Request, Response, session

CSRF_SESSION_KEY = "seatgate_csrf"
CSRF_FIELD = "csrf_token"

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'none'; style-src 'self'; img-src 'self' data:; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
)


def csrf_token() -> str:
    """The CSRF token of the current session, created on first use."""
    token = session.get(CSRF_SESSION_KEY)
    if not isinstance(token, str) or not token:
        token = secrets.token_urlsafe(32)
        session[CSRF_SESSION_KEY] = token
    return token


def csrf_valid(request: Request) -> bool:
    """Whether the form's ``csrf_token`` equals the session's (constant-time)."""
    expected = session.get(CSRF_SESSION_KEY)
    given = request.form.get(CSRF_FIELD, "")
    if not isinstance(expected, str) or not expected or not given:
        return False
    return hmac.compare_digest(expected.encode(), given.encode())


def add_security_headers(response: Response) -> Response:
    """CSP (no scripts, no framing), no-sniff, no referrer leaks, no caching of pages."""
    response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    response.headers.setdefault("Cache-Control", "no-store")
    return response


def add_hsts(response: Response, max_age: int) -> Response:
    """Strict-Transport-Security for ``max_age`` seconds (none when 0).

    Sent only while the session cookies are secure: the site is then served
    over HTTPS, and a browser that saw the header never asks it over plain
    HTTP again, so the cookie cannot be stripped off by a downgrade.
    """
    if max_age > 0:
        response.headers.setdefault("Strict-Transport-Security", f"max-age={max_age}")
    return response


def client_address(request: Request, trusted_proxies: int) -> str | None:
    """The client's address for rate limiting and the audit log.

    ``X-Forwarded-For`` is read only when the operator declared
    ``trusted_proxies`` hops; then the address that many hops from the
    right is the client (entries further left are whatever the client
    claimed). Otherwise the socket's peer is the client.
    """
    if trusted_proxies > 0:
        hops = [
            part.strip()
            for part in request.headers.get("X-Forwarded-For", "").split(",")
            if part.strip()
        ]
        if len(hops) >= trusted_proxies:
            return hops[-trusted_proxies][:128]
    return request.remote_addr


def safe_next(target: str | None) -> str | None:
    """``target`` if it is a path on this site, else None (no open redirects)."""
    if not target or not target.startswith("/") or target.startswith("//"):
        return None
    if "\\" in target or any(ord(ch) < 32 for ch in target):
        return None
    return target
