"""What ``seatgate license status`` reports: entitlement, seat use, and per token
its updates period and renewal quote (see :mod:`seatgate.licensing.lifecycle`)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from seatgate.licensing import lifecycle
from seatgate.licensing.clock_guard import ClockCheck
from seatgate.licensing.entitlement import Entitlement
from seatgate.licensing.lifecycle import UpdatesPeriod
from seatgate.licensing.tokens import LicenseToken
from seatgate.seats.overage import overage_used


@dataclass(frozen=True)
class InstalledToken:
    """A stored token, verified again today (``problem`` says why it does not count)."""

    jti: str
    kind: str
    lic: str | None
    installed_at: datetime
    activated_at: datetime | None
    token: LicenseToken | None
    problem: str | None = None


@dataclass(frozen=True)
class LicenseStatus:
    """Everything ``seatgate license status`` shows."""

    entitlement: Entitlement
    valid: bool
    reason: str | None
    seats_used: int
    reserved_for_admins: int
    tokens: list[InstalledToken]
    periods: Mapping[str, UpdatesPeriod]
    clock: ClockCheck

    @property
    def seats_total(self) -> int | None:
        """Entitled seats; None when unlimited."""
        return self.entitlement.capacity

    @property
    def seats_free(self) -> int | None:
        """Seats nobody holds; None when unlimited."""
        total = self.seats_total
        return None if total is None else max(0, total - self.seats_used)

    @property
    def overage_allowed(self) -> int | None:
        """Seats the licence's overage claim allows beyond the entitled ones; None unlimited."""
        if self.seats_total is None:
            return None
        return self.entitlement.overage_seats if self.valid else 0

    @property
    def overage_used(self) -> int | None:
        """Seats held beyond the entitled ones; None when unlimited."""
        total = self.seats_total
        return None if total is None else overage_used(self.seats_used, total)

    @property
    def trial_days_left(self) -> int | None:
        """Whole or started days left of a running trial; None when not on a trial."""
        ent = self.entitlement
        end = ent.base.expires_at if ent.base is not None else None
        if not ent.valid or not ent.trial or end is None:
            return None
        # The token's own `exp`, not the entitlement's end (which adds the leeway).
        left = end - self.clock.trusted_now
        return max(0, math.ceil(left / timedelta(days=1)))


def periods_of(tokens: Sequence[InstalledToken], now: datetime) -> dict[str, UpdatesPeriod]:
    """The updates period of every installed licence and add-on, renewals applied."""
    renewals: dict[str, list[tuple[str, datetime]]] = {}
    for t in tokens:
        if t.kind == "renewal" and t.token is not None and t.lic is not None:
            renewals.setdefault(t.lic, []).append((t.jti, t.installed_at))
    periods = {}
    for t in tokens:
        if t.kind in ("license", "addon") and t.token is not None and t.activated_at:
            periods[t.jti] = lifecycle.period(t.token, t.activated_at, renewals.get(t.jti, []), now)
    return periods
