"""The device cookie of the login pages and API (see :mod:`seatgate.gate.devices`).

A successful login sets it; a later login for the same account from this
browser presents it, and the rate limiter judges that browser by its own
failures only, so others' guesses (from the same NAT address or anywhere)
do not lock it out.
"""

from __future__ import annotations

from flask import Response, request

from seatgate.accounts.logins import login_key
from seatgate.errors import InvalidLogin
from seatgate.gate import devices
from seatgate.records import Account

from .context import gate_state

DEVICE_COOKIE = "seatgate_device"


def device_of(login_text: str) -> str | None:
    """The id of this request's device cookie if it is valid for ``login_text``, else ``None``."""
    cookie = request.cookies.get(DEVICE_COOKIE)
    if not cookie:
        return None
    core = gate_state().core
    try:
        # Counted as the account the text names (CORP\alice is alice), as the limiter does.
        key = core.gate.forms.limit_key(login_text)
    except InvalidLogin:
        return None
    return devices.device_for(core.session_secret(), cookie, key, core.clock.now())


def remember_device(response: Response, account: Account) -> Response:
    """Give this browser a device cookie for ``account`` (after a successful login)."""
    state = gate_state()
    core = state.core
    value = devices.issue(core.session_secret(), login_key(account.login), core.clock.now())
    response.set_cookie(
        DEVICE_COOKIE,
        value,
        max_age=devices.DEVICE_COOKIE_DAYS * 24 * 3600,
        httponly=True,
        samesite="Lax",
        secure=state.web.secure_cookies,
    )
    return response
