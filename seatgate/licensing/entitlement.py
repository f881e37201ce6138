"""The effective entitlement: what all installed tokens together allow right now.

Pure: it takes verified tokens and a time and returns an :class:`Entitlement`.
The base is the valid licence with the latest ``iat`` (the vendor's latest
word); with no licence, an unexpired trial. Add-ons count only when they name
that base licence, and so do ``site`` tokens: the licensed sites are the
base licence's ``sites`` and the hosts of the site tokens that name it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from seatgate.licensing.tokens import LicenseToken


@dataclass(frozen=True)
class Entitlement:
    """What the installation may do at one moment."""

    valid: bool
    reason: str | None = None
    edition: str | None = None
    seats: int = 0
    unlimited: bool = False
    trial: bool = False
    expires_at: datetime | None = None
    base: LicenseToken | None = None
    addons: tuple[LicenseToken, ...] = ()
    site_tokens: tuple[LicenseToken, ...] = ()
    overage_seats: int = 0
    """Seats the licence's ``overage`` claim allows beyond ``seats`` (billed at true-up)."""

    @property
    def sites(self) -> tuple[str, ...]:
        """The licensed site host names, sorted; () when the licence names none (any host)."""
        if not self.valid or self.base is None:
            return ()
        return tuple(sorted({*self.base.sites, *(t.host for t in self.site_tokens if t.host)}))

    @property
    def capacity(self) -> int | None:
        """Entitled seats: None means no cap, 0 when nothing is valid."""
        if not self.valid:
            return 0
        return None if self.unlimited else self.seats

    @property
    def seat_limit(self) -> int | None:
        """Seats that may be held at most: entitled plus overage; None no cap, 0 when invalid."""
        capacity = self.capacity
        return capacity if not capacity else capacity + self.overage_seats

    @property
    def source_jtis(self) -> tuple[str, ...]:
        """The ids of the tokens this entitlement is made of."""
        if self.base is None:
            return ()
        return (self.base.jti, *(a.jti for a in self.addons), *(s.jti for s in self.site_tokens))


NO_LICENSE = Entitlement(valid=False, reason="no licence is installed")


def compute_entitlement(
    tokens: Iterable[LicenseToken], now: datetime, leeway: timedelta = timedelta(0)
) -> Entitlement:
    """Combine installed, verified tokens into the entitlement at ``now``."""
    tokens = list(tokens)
    live = [t for t in tokens if not t.expired(now, leeway)]
    licenses = [t for t in live if t.kind == "license"]
    trials = [t for t in live if t.kind == "trial"]

    if licenses:
        base = max(licenses, key=lambda t: (t.issued_at, t.jti))
    elif trials:
        base = max(trials, key=lambda t: (t.issued_at, t.jti))
    else:
        ended = [t for t in tokens if t.kind in ("license", "trial") and t.expires_at is not None]
        if ended:
            last = max(ended, key=lambda t: t.expires_at or now)
            what = "trial" if last.kind == "trial" else "licence"
            return Entitlement(
                valid=False, reason=f"the {what} ended on {last.expires_at:%Y-%m-%d %H:%M} UTC"
            )
        return NO_LICENSE

    addons = tuple(
        sorted((t for t in live if t.kind == "addon" and t.lic == base.jti), key=lambda t: t.jti)
    )
    # A trial names no sites, so site tokens count only with a licence.
    site_tokens = tuple(
        sorted((t for t in live if t.kind == "site" and t.lic == base.jti), key=lambda t: t.jti)
    )
    expiries = [t.expires_at for t in (base, *addons, *site_tokens) if t.expires_at]
    seats = (base.seats or 0) + sum(a.seats or 0 for a in addons)
    return Entitlement(
        valid=True,
        edition=base.edition,
        seats=seats,
        unlimited=base.unlimited,
        trial=base.kind == "trial",
        # The moment the entitlement changes by itself: the earliest hard expiry.
        expires_at=min(expiries) + leeway if expiries else None,
        base=base,
        addons=addons,
        site_tokens=site_tokens if base.kind == "license" else (),
        overage_seats=overage_seats(seats, base),
    )


def overage_seats(seats: int, base: LicenseToken) -> int:
    """floor(seats x overage): the licence's share applies to its add-ons' seats too.

    0 without the claim, so for trials and unlimited licences (it is refused on those).
    """
    if base.overage is None or base.unlimited:
        return 0
    return math.floor(seats * base.overage)
