"""Device cookies: a browser that logged in successfully is not locked out by others' guesses.

A successful web login gives the browser a cookie naming the login key and
the time it was issued, signed with HMAC-SHA256 under the installation's
session secret. When that browser later presents it for the same login,
the rate limiter lets it past the per-login and per-address limits that
other clients tripped, and counts its failures against the device alone
(``web.max_failures_per_device``), so a stolen cookie buys only a few
guesses. A cookie for another login, expired, or not signed with this
installation's secret gives nothing.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from datetime import datetime, timedelta

# How long a device cookie stays valid after the login that issued it.
DEVICE_COOKIE_DAYS = 180
_CONTEXT = b"seatgate device cookie\x00"
# Device ids stored with a failure: a prefix of the signature (column size 64).
_ID_LENGTH = 32


def issue(secret: str, key: str, now: datetime) -> str:
    """A device cookie value for login key ``key``, issued at ``now``."""
    payload = f"{_b64(key)}.{int(now.timestamp())}"
    return f"{payload}.{_sign(secret, payload)}"


def device_for(secret: str, cookie: str | None, key: str, now: datetime) -> str | None:
    """The device id of ``cookie`` if it is a valid, unexpired cookie for ``key``, else ``None``."""
    if not cookie or len(cookie) > 2048:
        return None
    parts = cookie.split(".")
    if len(parts) != 3:
        return None
    named, issued, signature = parts
    payload = f"{named}.{issued}"
    if not hmac.compare_digest(_sign(secret, payload), signature):
        return None
    try:
        issued_at = int(issued)
        signed_key = base64.urlsafe_b64decode(named + "=" * (-len(named) % 4)).decode("utf-8")
    except (ValueError, binascii.Error, UnicodeDecodeError):
        return None
    age = now.timestamp() - issued_at
    if signed_key != key or not 0 <= age <= timedelta(days=DEVICE_COOKIE_DAYS).total_seconds():
        return None
    return signature[:_ID_LENGTH]


def _sign(secret: str, payload: str) -> str:
    return hmac.new(secret.encode(), _CONTEXT + payload.encode(), hashlib.sha256).hexdigest()


def _b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode("utf-8")).decode("ascii").rstrip("=")


__all__ = ["DEVICE_COOKIE_DAYS", "device_for", "issue"]
