"""The ``license_tokens`` rows an install writes: whether a token may go in, and storing it.

Both run inside the install transaction, which holds the seat lock, so two
installs of one token cannot both find it absent.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, insert, select, update

from seatgate.clock import to_utc
from seatgate.errors import TokenConflict
from seatgate.licensing import lifecycle
from seatgate.licensing.tokens import LicenseToken
from seatgate.storage.schema import license_tokens


def check_installable(conn: Connection, token: LicenseToken) -> Row[Any] | None:
    """Refuse what cannot be installed; return the row of a removed token put back."""
    rows = {row.jti: row for row in conn.execute(select(license_tokens))}
    present = {jti: row.kind for jti, row in rows.items() if row.removed_at is None}
    previous = rows.get(token.jti)
    if token.jti in present:
        if token.kind == "renewal":
            raise TokenConflict(
                f"renewal coupon `{token.jti}` was already applied on "
                f"{to_utc(previous.installed_at):%Y-%m-%d} (a coupon applies once)"  # type: ignore[union-attr]
            )
        raise TokenConflict(f"token `{token.jti}` is already installed")
    if previous is not None and previous.kind != token.kind:
        raise TokenConflict(f"token id `{token.jti}` was used before by a {previous.kind}")
    if token.kind == "addon" and present.get(token.lic or "") != "license":
        raise TokenConflict(
            f"add-on `{token.jti}` extends licence `{token.lic}`, which is not installed here; "
            "install that licence first"
        )
    if token.kind == "site" and present.get(token.lic or "") != "license":
        raise TokenConflict(
            f"site `{token.jti}` ({token.host}) extends licence `{token.lic}`, which is not "
            "installed here; install that licence first"
        )
    if token.kind == "renewal" and present.get(token.lic or "") not in ("license", "addon"):
        raise TokenConflict(
            f"renewal `{token.jti}` names `{token.lic}`, "
            "which is not an installed licence or add-on"
        )
    return previous


def store_token(
    conn: Connection,
    token: LicenseToken,
    text: str,
    *,
    now: datetime,
    actor: str,
    previous: Row[Any] | None,
) -> None:
    """Write the token's row: a new one, or ``previous`` (a removed token) put back.

    Licences and add-ons record when their updates period starts
    (:func:`seatgate.licensing.lifecycle.activation_time`).
    """
    values = {
        "kind": token.kind,
        "lic": token.lic,
        "token": text.strip(),
        "installed_at": now,
        "installed_by": actor,
        "removed_at": None,
        "removed_by": None,
    }
    if previous is None:
        activated = (
            lifecycle.activation_time(now, token.purchased_at)
            if token.purchased_at is not None
            else None
        )
        conn.execute(insert(license_tokens).values(jti=token.jti, activated_at=activated, **values))
    else:
        # Put back after `license remove`: the activation stays the first one.
        conn.execute(update(license_tokens).where(license_tokens.c.jti == token.jti).values(values))
