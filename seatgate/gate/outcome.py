"""What a login comes to, whichever door it came through, and how it was authenticated."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from seatgate.gate.refusals import Reason, Refusal
from seatgate.records import Account

WELCOME = "Welcome."


class Method(enum.StrEnum):
    """How a login was authenticated: recorded as ``method`` in its audit event."""

    PASSWORD = "password"  # noqa: S105 - a method's name, not a password
    """A password checked against the local argon2id hash (or an unknown login's attempt)."""
    DIRECTORY = "directory"
    """A password checked by a bind to the directory as the account's DN."""
    KERBEROS = "kerberos"
    """A Kerberos ticket (SPNEGO) the web gate accepted."""
    UPSTREAM = "upstream"
    """An identity a trusted proxy asserted (with the shared secret, from a listed address)."""


@dataclass(frozen=True)
class Decision:
    """The answer to one login attempt: allowed, or refused with a :class:`Refusal`."""

    refusal: Refusal | None
    account: Account | None = None
    seat_claimed: bool = False
    # Seconds a throttled (429) client should wait before trying again.
    retry_after: int | None = None

    @property
    def allowed(self) -> bool:
        """Whether the login may proceed."""
        return self.refusal is None

    @property
    def reason(self) -> Reason | None:
        """The public reason code of a refusal (``None`` when allowed)."""
        return None if self.refusal is None else self.refusal.reason

    @property
    def message(self) -> str:
        """The answer in English (front doors with their own language render :attr:`refusal`)."""
        return WELCOME if self.refusal is None else self.refusal.message

    @property
    def seats_total(self) -> int | None:
        """The licence's seat count when no seat was free (``None`` otherwise)."""
        return None if self.refusal is None else self.refusal.seats_total

    def __str__(self) -> str:
        return "allowed" if self.allowed else f"refused: {self.reason}"
