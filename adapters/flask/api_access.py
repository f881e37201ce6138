"""Who may call an admin endpoint of the JSON API: an admin's session, or a scoped token.

``Authorization: Bearer TOKEN`` is checked first when present (a revoked,
expired or unknown token is 401, a token without the endpoint's scope 403,
too many bad tokens from one address 429); what the call does is then
audited as ``token:NAME``. A token opens no portal session and takes no
seat. Without the header, the caller must be a signed-in administrator, as
for every admin page.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar, cast

from flask import Response, g, request

from .context import admin_required, gate_state, refusal, require_user, t
from .security import client_address

F = TypeVar("F", bound=Callable[..., Any])
_ACTOR = "seatgate_api_actor"


def api_access(scope: str) -> Callable[[F], F]:
    """Let ``view`` be called by an admin's session or by a token with ``scope``."""

    def decorate(view: F) -> F:
        as_admin = admin_required(view)

        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            header = request.headers.get("Authorization", "")
            if header[:7].lower() != "bearer ":
                return as_admin(*args, **kwargs)
            refused = _token_refusal(header[7:].strip(), scope)
            return refused if refused is not None else view(*args, **kwargs)

        return cast(F, wrapper)

    return decorate


def _token_refusal(text: str, scope: str) -> Response | None:
    """None when the token may call with ``scope`` (its actor kept for the call), else why not."""
    state = gate_state()
    address = client_address(request, state.web.trusted_proxies)
    check = state.core.api_tokens.check(text, address=address)
    if check.retry_after is not None:
        response = refusal("rate_limited", 429)
        response.headers["Retry-After"] = str(check.retry_after)
        return response
    if check.refusal is not None or check.token is None:
        code = check.refusal.value if check.refusal is not None else "invalid_token"
        response = refusal(code, 401)
        response.headers["WWW-Authenticate"] = 'Bearer error="invalid_token"'
        return response
    if scope not in check.token.scopes:
        return refusal("missing_scope", 403, t("missing_scope", scope=scope))
    setattr(g, _ACTOR, check.token.actor)
    return None


def api_actor() -> str:
    """The audit actor of the current API call: ``token:NAME``, or the admin's login."""
    actor = getattr(g, _ACTOR, None)
    return str(actor) if actor is not None else require_user().login
