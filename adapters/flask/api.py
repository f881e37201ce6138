"""The JSON API: sign in and out, who am I, and the admin's seat and licence calls.

Bodies are JSON only (``application/json``); anything else is refused with
415 before it is read, which -- with SameSite cookies -- keeps cross-site
forms out. Refusals answer ``{"error": code, "message": ...}``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from flask import Blueprint, Response, jsonify, request

from seatgate.reports.documents import (
    deliveries_json,
    iso,
    requests_json,
    seats_json,
    status_json,
)

from .actions import STATUS_OF_REASON, ActionRefused, AdminActions, decision_message, text_field
from .api_access import api_access, api_actor
from .context import (
    gate_state,
    refusal,
    require_user,
    seat_required,
    sign_in,
    sign_out,
)
from .devices import device_of, remember_device
from .security import add_security_headers, client_address
from .sessions import PortalUser

api = Blueprint("seatgate_api", __name__, url_prefix="/api")
api.after_request(add_security_headers)


def _json_body() -> Mapping[str, Any]:
    """The request's JSON object; 415, 400 (unreadable JSON) or 413 (``web.max_body_bytes``).

    The body is read through the request's size limit (a larger one is
    refused before it is read, a chunked one when it passes the limit).
    Nesting too deep for the parser, bad UTF-8, numbers too long to convert
    and lone surrogates (which no database can store) are all a 400.
    """
    if request.mimetype != "application/json":
        raise ActionRefused("unsupported_media_type", 415, "")
    data = request.get_data(cache=True)
    try:
        body = json.loads(data)
        # A lone surrogate ("\ud800") parses, but cannot be stored or audited.
        json.dumps(body, ensure_ascii=False).encode("utf-8")
    except (ValueError, RecursionError):
        raise ActionRefused("bad_json", 400, "") from None
    if not isinstance(body, dict):
        raise ActionRefused("bad_request", 400, "the body must be a JSON object")
    return body


@api.errorhandler(ActionRefused)
def _refused(refused: ActionRefused) -> Response:
    return refusal(refused.code, refused.status, refused.message or None)


@api.post("/login")
def login() -> Response:
    """``{"login", "password"}`` -> 200 and a new session, or a refusal (401/403/429/503)."""
    body = _json_body()
    state = gate_state()
    login_text = body.get("login")
    password = body.get("password")
    decision = state.core.gate.decide(
        login_text if isinstance(login_text, str) else "",
        password if isinstance(password, str) else "",
        address=client_address(request, state.web.trusted_proxies),
        device=device_of(login_text) if isinstance(login_text, str) else None,
    )
    if not decision.allowed or decision.account is None:
        reason = decision.reason
        requested = decision.refusal is not None and decision.refusal.requested
        response = refusal(
            reason.value if reason else "invalid_credentials",
            STATUS_OF_REASON[reason] if reason else 401,
            decision_message(decision),
            # A seat request was recorded for the account (seatgate seats requests).
            **({"seat_request": "recorded"} if requested else {}),
        )
        if decision.retry_after is not None:
            response.headers["Retry-After"] = str(decision.retry_after)
        return response
    user = sign_in(decision.account)
    return remember_device(jsonify(_me(user)), decision.account)


@api.post("/logout")
def logout() -> Response:
    """End the current session server-side (``{}`` body)."""
    _json_body()
    sign_out()
    return jsonify(ok=True)


@api.get("/me")
@seat_required
def me() -> Response:
    """The signed-in account and its seat."""
    user = require_user()
    return jsonify(_me(user))


def _me(user: PortalUser) -> dict[str, Any]:
    account = user.account
    return {
        "login": account.login,
        "name": account.display_name,
        "email": account.email,
        "admin": account.is_admin,
        "groups": list(account.groups),
        "seat": {"pinned": user.seat.pinned, "assigned_at": iso(user.seat.assigned_at)},
    }


@api.get("/seats")
@api_access("seats:read")
def seats() -> Response:
    """Seat use and every holder (the fields of ``seatgate seats list --json``)."""
    core = gate_state().core
    status = core.licensing.status()
    return jsonify(
        seats_total=status.seats_total,
        seats_used=status.seats_used,
        seats_free=status.seats_free,
        overage_allowed=status.overage_allowed,
        overage_used=status.overage_used,
        reserved_for_admins=status.reserved_for_admins,
        holders=seats_json(core.ledger.holders()),
    )


def _actions() -> AdminActions:
    return AdminActions(gate_state().core, api_actor())


@api.post("/seats/assign")
@api_access("seats:write")
def assign() -> Response:
    """``{"login"}``: give the account a seat."""
    return jsonify(ok=True, message=_actions().assign(text_field(_json_body(), "login")))


@api.post("/seats/revoke")
@api_access("seats:write")
def revoke() -> Response:
    """``{"login"}``: take the account's seat; its sessions end at their next request."""
    return jsonify(ok=True, message=_actions().revoke(text_field(_json_body(), "login")))


@api.post("/seats/reassign")
@api_access("seats:write")
def reassign() -> Response:
    """``{"from", "to"}``: move a seat in one transaction."""
    body = _json_body()
    message = _actions().reassign(text_field(body, "from"), text_field(body, "to"))
    return jsonify(ok=True, message=message)


@api.get("/seats/requests")
@api_access("seats:read")
def seat_requests() -> Response:
    """The pending seat requests (the fields of ``seatgate seats requests --json``)."""
    return jsonify(requests=requests_json(gate_state().core.seat_requests.pending()))


@api.post("/seats/approve")
@api_access("seats:write")
def approve() -> Response:
    """``{"login", "replace"?}``: approve a seat request into a free seat or ``replace``'s."""
    body = _json_body()
    replace = text_field(body, "replace") if body.get("replace") is not None else None
    return jsonify(ok=True, message=_actions().approve(text_field(body, "login"), replace))


@api.post("/seats/deny")
@api_access("seats:write")
def deny() -> Response:
    """``{"login"}``: deny the account's seat request."""
    return jsonify(ok=True, message=_actions().deny(text_field(_json_body(), "login")))


@api.get("/license")
@api_access("license:read")
def license_status() -> Response:
    """The fields of ``seatgate license status --json``."""
    core = gate_state().core
    pending = core.seat_requests.pending_count()
    return jsonify(status_json(core.licensing.status(), requests_pending=pending))


@api.post("/license")
@api_access("license:write")
def license_install() -> Response:
    """``{"token"}``: verify and install a licence token."""
    token = text_field(_json_body(), "token", limit=64 * 1024)
    message = _actions().install_license(token)
    return jsonify(
        ok=True, message=message, license=status_json(gate_state().core.licensing.status())
    )


@api.get("/accounts/<path:login>")
@api_access("accounts:read")
def account(login: str) -> Response:
    """One account, with the fields of ``seatgate accounts list --json``."""
    return jsonify(_actions().describe(login))


@api.post("/accounts/disable")
@api_access("accounts:write")
def account_disable() -> Response:
    """``{"login"}``: disable the account; its seat is freed and its sessions end."""
    return jsonify(ok=True, message=_actions().set_status(text_field(_json_body(), "login"), False))


@api.post("/accounts/enable")
@api_access("accounts:write")
def account_enable() -> Response:
    """``{"login"}``: enable the account again (it claims a seat at its next login)."""
    return jsonify(ok=True, message=_actions().set_status(text_field(_json_body(), "login"), True))


@api.get("/notifications")
@api_access("license:read")
def notifications() -> Response:
    """Notifications not delivered yet (the fields of ``seatgate notify list --json``)."""
    return jsonify(notifications=deliveries_json(gate_state().core.notifier.pending()))
