"""The updates-and-support period of licences and add-ons, and renewal quotes.

Pure date rules (docs/licensing.md, "Updates period"); every function takes the
time it works with, so each rule is tested at its boundaries with a fake clock:

- A licence or add-on is activated when it is first installed, but never
  later than ``purchased_at`` + 6 months: one installed after that counts as
  activated automatically on that date.
- Its updates period ends ``activated_at`` + 12 months.
- A renewal coupon adds 12 months: from the old end when it is applied
  before that end or within the 30-day grace window after it, from the day
  it is applied after that (the period does not run on while lapsed).
- Renewing costs 22 % of the token's price until 30 days after the end of
  the period (any time before it included), 60 % after that.

Use never depends on any of this: an ended updates period blocks nothing.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

from jwt.utils import base64url_decode
from sqlalchemy import Connection, select, update

from seatgate.clock import add_months, from_timestamp, to_utc
from seatgate.licensing.tokens import LicenseToken, Price
from seatgate.storage.schema import license_tokens

log = logging.getLogger(__name__)

ACTIVATION_WINDOW_MONTHS = 6
UPDATES_MONTHS = 12
GRACE = timedelta(days=30)
EARLY_RATE = Decimal("0.22")
LATE_RATE = Decimal("0.60")
_CENT = Decimal("0.01")


def activation_time(installed_at: datetime, purchased_at: datetime) -> datetime:
    """When the updates period of a token first installed at ``installed_at`` starts."""
    return min(installed_at, add_months(purchased_at, ACTIVATION_WINDOW_MONTHS))


def extend(period_end: datetime, applied_at: datetime) -> datetime:
    """The end of an updates period after a renewal coupon applied at ``applied_at``."""
    if applied_at <= period_end + GRACE:
        return add_months(period_end, UPDATES_MONTHS)
    return add_months(applied_at, UPDATES_MONTHS)


def updates_until(activated_at: datetime, renewals_applied: Iterable[datetime]) -> datetime:
    """The end of the updates period: a year from activation plus every renewal, in order."""
    end = add_months(activated_at, UPDATES_MONTHS)
    for applied_at in sorted(renewals_applied):
        end = extend(end, applied_at)
    return end


@dataclass(frozen=True)
class RenewalQuote:
    """What renewing the updates period costs at one moment."""

    rate: Decimal
    amount: Decimal | None
    currency: str | None
    # When the 22 % rate turns into 60 %; None once the late rate applies.
    rate_changes_at: datetime | None


def renewal_quote(period_end: datetime, price: Price | None, now: datetime) -> RenewalQuote:
    """The renewal rate (and amount, when the token carries a price) at ``now``."""
    window_end = period_end + GRACE
    early = now <= window_end
    rate = EARLY_RATE if early else LATE_RATE
    amount = (price.amount * rate).quantize(_CENT, ROUND_HALF_UP) if price else None
    return RenewalQuote(
        rate=rate,
        amount=amount,
        currency=price.currency if price else None,
        rate_changes_at=window_end if early else None,
    )


@dataclass(frozen=True)
class UpdatesPeriod:
    """The updates-and-support period of one licence or add-on at one moment."""

    activated_at: datetime
    updates_until: datetime
    renewals: tuple[str, ...]
    days_left: int | None
    days_since_end: int | None
    quote: RenewalQuote

    @property
    def active(self) -> bool:
        """Whether updates and support still run."""
        return self.days_left is not None


def period(
    token: LicenseToken,
    activated_at: datetime,
    renewals: Iterable[tuple[str, datetime]],
    now: datetime,
) -> UpdatesPeriod:
    """The period of ``token`` given its renewals as ``(jti, applied_at)`` pairs."""
    applied = sorted(renewals, key=lambda r: (r[1], r[0]))
    end = updates_until(activated_at, (at for _, at in applied))
    if now < end:
        days_left: int | None = (end - now).days
        days_since: int | None = None
    else:
        days_left, days_since = None, (now - end).days
    return UpdatesPeriod(
        activated_at=activated_at,
        updates_until=end,
        renewals=tuple(jti for jti, _ in applied),
        days_left=days_left,
        days_since_end=days_since,
        quote=renewal_quote(end, token.price, now),
    )


def backfill_activation(conn: Connection) -> None:
    """Record ``activated_at`` for licences and add-ons installed before it existed.

    A schema upgrade step: the tokens were verified when they were
    installed; only their ``purchased_at`` claim is read here. A token whose
    claim cannot be read keeps its install time as activation.
    """
    rows = conn.execute(
        select(license_tokens.c.jti, license_tokens.c.token, license_tokens.c.installed_at).where(
            license_tokens.c.kind.in_(("license", "addon"))
        )
    ).all()
    for row in rows:
        installed_at = to_utc(row.installed_at)
        purchased = _purchased_at(row.token)
        activated = activation_time(installed_at, purchased) if purchased else installed_at
        conn.execute(
            update(license_tokens)
            .where(license_tokens.c.jti == row.jti)
            .values(activated_at=activated)
        )


def _purchased_at(token: str) -> datetime | None:
    try:
        payload = json.loads(base64url_decode(token.split(".")[1]))
        value = payload["purchased_at"]
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None
        return from_timestamp(value)
    except (ValueError, KeyError, IndexError, TypeError, OverflowError, OSError):
        log.warning("could not read purchased_at of an installed token; using its install time")
        return None
