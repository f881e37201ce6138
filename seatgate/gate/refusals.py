"""Why a login was refused, and the words for it: refusal messages are built here only.

A :class:`Refusal` carries the public reason code (:class:`Reason`: what
every front door reports and the audit log records), a finer
:class:`RefusalKind` saying exactly why, and the numbers its message needs.
Its message is a short sequence of message keys with parameters
(:meth:`Refusal.parts`). The core renders them in English from
:data:`MESSAGES` (the CLI prints that); the web gate renders the same keys
from its catalogue in the request's language. Front doors only render: none
of them decides what a refusal says.

The reason ``no_seat_available`` has two kinds:

``seats_taken``
    every seat the licence entitles is held (a non-administrator also finds
    none of the ``seats.reserved_for_admins`` seats kept free for
    administrators); the message names the seat count and the reserve.
``not_assigned``
    seats are assigned by hand (``seats.assignment: manual``) and no seat is
    assigned to this account; only an administrator can give it one.

Both keep the public code ``no_seat_available``, so scripts and portals that
check the code see no change; whoever needs to tell them apart reads
:attr:`Refusal.kind`. Every other kind has the same value as its reason.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import NamedTuple

from seatgate.texts import N_, NP_, Plural


class Reason(enum.StrEnum):
    """Why a login was refused (the codes every front door reports)."""

    INVALID_CREDENTIALS = "invalid_credentials"
    ACCOUNT_DISABLED = "account_disabled"
    LICENSE_INVALID = "license_invalid"
    NO_SEAT_AVAILABLE = "no_seat_available"
    RATE_LIMITED = "rate_limited"
    DIRECTORY_UNAVAILABLE = "directory_unavailable"


class RefusalKind(enum.StrEnum):
    """Exactly why a login was refused: a :class:`Reason`, ``no_seat_available`` split in two."""

    INVALID_CREDENTIALS = "invalid_credentials"
    ACCOUNT_DISABLED = "account_disabled"
    LICENSE_INVALID = "license_invalid"
    SEATS_TAKEN = "seats_taken"
    NOT_ASSIGNED = "not_assigned"
    RATE_LIMITED = "rate_limited"
    DIRECTORY_UNAVAILABLE = "directory_unavailable"


REASON_OF_KIND: Mapping[RefusalKind, Reason] = MappingProxyType(
    {
        RefusalKind.INVALID_CREDENTIALS: Reason.INVALID_CREDENTIALS,
        RefusalKind.ACCOUNT_DISABLED: Reason.ACCOUNT_DISABLED,
        RefusalKind.LICENSE_INVALID: Reason.LICENSE_INVALID,
        RefusalKind.SEATS_TAKEN: Reason.NO_SEAT_AVAILABLE,
        RefusalKind.NOT_ASSIGNED: Reason.NO_SEAT_AVAILABLE,
        RefusalKind.RATE_LIMITED: Reason.RATE_LIMITED,
        RefusalKind.DIRECTORY_UNAVAILABLE: Reason.DIRECTORY_UNAVAILABLE,
    }
)


# The English text of every message key a refusal uses. A kind without its
# own entry here is told by the key of its reason (same value). Each is the
# msgid of the web gate's catalogs (marked for Babel's extraction); a count
# picks the singular or plural form of a Plural.
MESSAGES: Mapping[str, str | Plural] = MappingProxyType(
    {
        "invalid_credentials": N_("Unknown login or wrong password."),
        "account_disabled": N_("This account is disabled. Ask an administrator."),
        "license_invalid": N_("The portal has no valid licence. Ask an administrator."),
        "no_seat_available": NP_(
            "The licence's only seat is in use. Ask an administrator for a seat.",
            "All {seats} seats of the licence are in use. Ask an administrator for a seat.",
            "seats",
        ),
        "no_seat_reserved": N_("(Kept free for administrators: {reserved}.)"),
        "no_seat_assigned": N_(
            "No seat is assigned to this account. Ask an administrator for one."
        ),
        "seat_request_recorded": N_("Your request for a seat was recorded for the administrators."),
        "rate_limited": N_("Too many failed attempts. Wait a few minutes and try again."),
        "directory_unavailable": N_("The directory cannot be reached. Try again later."),
    }
)


class MessagePart(NamedTuple):
    """One sentence of a refusal message: a message key and its parameters."""

    key: str
    values: Mapping[str, object]


Translate = Callable[..., str]
"""Renders one message key: ``translate(key, **values) -> text``."""


def english(key: str, **values: object) -> str:
    """The English text of the message ``key`` with ``values`` filled in."""
    text = MESSAGES[key]
    if isinstance(text, Plural):
        return text.english(**values)
    return text.format(**values) if values else text


@dataclass(frozen=True)
class Refusal:
    """Why one login was refused, with what its message needs.

    ``seats_total`` and ``reserved_for_admins`` are set for ``seats_taken``
    only (``None`` and 0 otherwise). ``requested``: a seat request was
    recorded for the account (:mod:`seatgate.seats.requests`), which the
    message then says.
    """

    kind: RefusalKind
    seats_total: int | None = None
    reserved_for_admins: int = 0
    requested: bool = False

    @classmethod
    def seats_taken(cls, seats_total: int, reserved_for_admins: int) -> Refusal:
        """Every seat is held (less the reserve a non-administrator may not take)."""
        return cls(RefusalKind.SEATS_TAKEN, seats_total, reserved_for_admins)

    @classmethod
    def not_assigned(cls) -> Refusal:
        """Manual assignment, and no seat is assigned to this account."""
        return cls(RefusalKind.NOT_ASSIGNED)

    @property
    def reason(self) -> Reason:
        """The public reason code (``no_seat_available`` for both seat kinds)."""
        return REASON_OF_KIND[self.kind]

    def parts(self) -> tuple[MessagePart, ...]:
        """The sentences of the message, in order, as keys and parameters."""
        told = self._parts()
        return (*told, MessagePart("seat_request_recorded", {})) if self.requested else told

    def _parts(self) -> tuple[MessagePart, ...]:
        if self.kind is RefusalKind.SEATS_TAKEN:
            taken = MessagePart("no_seat_available", {"seats": self.seats_total})
            if not self.reserved_for_admins:
                return (taken,)
            return (taken, MessagePart("no_seat_reserved", {"reserved": self.reserved_for_admins}))
        if self.kind is RefusalKind.NOT_ASSIGNED:
            return (MessagePart("no_seat_assigned", {}),)
        return (MessagePart(self.reason.value, {}),)

    def render(self, translate: Translate) -> str:
        """The message, each sentence rendered by ``translate``."""
        return " ".join(translate(part.key, **part.values) for part in self.parts())

    @property
    def message(self) -> str:
        """The message in English."""
        return self.render(english)


__all__ = [
    "MESSAGES",
    "MessagePart",
    "Reason",
    "Refusal",
    "RefusalKind",
    "Translate",
    "english",
]
