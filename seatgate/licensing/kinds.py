"""The kinds of licence token and the claims each one carries: one table, two readers.

The verifier (:mod:`seatgate.licensing.tokens`) checks a token against its
kind's rules; the vendor (:mod:`seatgate.licensing.vendor`) mints a token
with exactly those claims. Keeping the rules here means the two cannot drift
apart: a claim added to a kind is both required and issued.

Every token has ``iss``, ``aud``, ``sub``, ``jti``, ``iat`` and ``kind``,
and may have ``nbf`` and ``exp``; the table lists what comes on top.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Literal

from seatgate.licensing.claims import MAX_SEATS

MIN_LICENSE_SEATS = 25
TRIAL_SEATS = 25
TRIAL_DAYS = 30
EDITIONS = ("teamspace", "bizspace", "enterprise")
KINDS = ("license", "addon", "trial", "renewal", "site")
MAX_OVERAGE = Decimal("0.5")

Kind = Literal["license", "addon", "trial", "renewal", "site"]

Claim = Literal[
    "edition", "seats", "unlimited", "purchased_at", "price", "lic", "sites", "host", "overage"
]
"""A claim some kinds carry; each is also the :class:`~seatgate.licensing.tokens.LicenseToken`
field it fills.

``edition`` (one of :data:`EDITIONS`), ``seats`` (a whole number in the
kind's range), ``purchased_at`` (a NumericDate) and ``lic`` (the ``jti`` of
the token it extends) are required where listed; ``unlimited`` (a boolean,
default false), ``price`` (for renewal quotes) and ``overage`` (a licence's
tolerated share of seats beyond ``seats``, 0 to :data:`MAX_OVERAGE`) are optional. ``sites``
(a licence's list of host names, optional) and ``host`` (the one host name a
``site`` token adds, required) hold names in the canonical form of
:mod:`seatgate.licensing.sites`."""


@dataclass(frozen=True)
class KindRules:
    """What one kind of token carries beyond the claims every token has."""

    claims: tuple[Claim, ...]
    """The kind's own claims, in the order they are checked (the first bad one is reported)."""
    seats: tuple[int, int] | None = None
    """The least and the most ``seats``, for kinds that carry seats."""
    lifetime: timedelta | None = None
    """For kinds that must end: ``exp`` is required, at most this long after ``iat``."""

    def fixed_seats(self) -> int | None:
        """The seat count when the kind allows only one (a trial), else None."""
        if self.seats is None or self.seats[0] != self.seats[1]:
            return None
        return self.seats[0]


RULES: dict[Kind, KindRules] = {
    "license": KindRules(
        claims=("edition", "seats", "unlimited", "purchased_at", "price", "sites", "overage"),
        seats=(MIN_LICENSE_SEATS, MAX_SEATS),
    ),
    "addon": KindRules(claims=("seats", "lic", "purchased_at", "price"), seats=(1, MAX_SEATS)),
    "trial": KindRules(
        claims=("edition", "seats"),
        seats=(TRIAL_SEATS, TRIAL_SEATS),
        lifetime=timedelta(days=TRIAL_DAYS),
    ),
    "renewal": KindRules(claims=("lic",)),
    # One more host name for the licence `lic` names. Its price is shown, never
    # quoted for renewal: it has no updates period of its own.
    "site": KindRules(claims=("host", "lic", "price")),
}
"""Every kind of token, in the order of :data:`KINDS`."""
