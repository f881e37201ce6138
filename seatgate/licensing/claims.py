"""The claims of a licence token, read one by one: every rejection names the claim.

:class:`Claims` gives typed access to a verified payload; what each kind of
token must carry is decided by :mod:`seatgate.licensing.tokens`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from seatgate.clock import from_timestamp
from seatgate.errors import InvalidClaim, MissingClaim
from seatgate.licensing.sites import MAX_SITES, BadHost, check_canonical

MAX_SEATS = 1_000_000

_AMOUNT = re.compile(r"^\d{1,12}(\.\d{1,4})?$")
_CURRENCY = re.compile(r"^[A-Z]{3}$")
_ID = re.compile(r"^[\x21-\x7e]{1,128}$")
# NumericDate bounds: 1970 to the year 9999, so datetime conversion cannot overflow.
_MAX_NUMERIC_DATE = 253402300799


@dataclass(frozen=True)
class Price:
    """A list price, for renewal quotes."""

    amount: Decimal
    currency: str


class Claims:
    """Typed, named access to a payload; every failure names the claim."""

    def __init__(self, payload: Mapping[str, Any]) -> None:
        self.payload = payload

    def get(self, name: str) -> Any:
        return self.payload.get(name)

    def _required(self, name: str, kind: str | None) -> Any:
        if name not in self.payload or self.payload[name] is None:
            raise MissingClaim(name, kind)
        return self.payload[name]

    def string(self, name: str, kind: str | None = None) -> str:
        value = self._required(name, kind)
        if not isinstance(value, str) or not value.strip():
            raise InvalidClaim(name, value, "it must be a non-empty string")
        return value

    def identifier(self, name: str, kind: str | None = None) -> str:
        value = self.string(name, kind)
        if not _ID.match(value):
            raise InvalidClaim(name, value, "it must be 1-128 printable ASCII characters")
        return value

    def choice(self, name: str, choices: tuple[str, ...], kind: str | None = None) -> Any:
        value = self.string(name, kind)
        if value not in choices:
            raise InvalidClaim(name, value, f"it must be one of: {', '.join(choices)}")
        return value

    def seats(self, *, minimum: int, maximum: int = MAX_SEATS, kind: str) -> int:
        value = self._required("seats", kind)
        # bool is a subclass of int in Python: `true` must not count as one seat.
        if isinstance(value, bool) or not isinstance(value, int):
            raise InvalidClaim("seats", value, "it must be a whole number")
        if value < minimum:
            if kind == "license":
                reason = f"a licence includes at least {minimum} users"
            elif minimum == maximum:
                reason = f"a {kind} has exactly {minimum} seats"
            else:
                reason = f"a {kind} adds at least {minimum} seat"
            raise InvalidClaim("seats", value, reason)
        if value > maximum:
            raise InvalidClaim("seats", value, f"at most {maximum} for a {kind}")
        return value

    def fraction(self, name: str, *, maximum: Decimal) -> Decimal | None:
        """An optional share such as ``0.1``, from 0 to ``maximum``; exact (read as decimal)."""
        value = self.payload.get(name)
        if value is None:
            return None
        # bool is an int: `true` must not read as 1.
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InvalidClaim(name, value, f"it must be a number from 0 to {maximum}")
        if not math.isfinite(value) or not 0 <= value <= maximum:
            raise InvalidClaim(name, value, f"it must be a number from 0 to {maximum}")
        # repr() gives the shortest text of the float: 0.1 is read as exactly 0.1.
        return Decimal(repr(value))

    def boolean(self, name: str) -> bool:
        value = self.payload.get(name, False)
        if not isinstance(value, bool):
            raise InvalidClaim(name, value, "it must be true or false (a JSON boolean)")
        return value

    def date(self, name: str, *, required: bool = True, kind: str | None = None) -> Any:
        if not required and self.payload.get(name) is None:
            return None
        value = self._required(name, kind)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InvalidClaim(name, value, "it must be a NumericDate (seconds since 1970)")
        if not math.isfinite(value) or not 0 <= value <= _MAX_NUMERIC_DATE:
            raise InvalidClaim(name, value, "it is not a plausible NumericDate")
        return from_timestamp(value)

    def host(self, name: str, kind: str | None = None) -> str:
        """A site host name in canonical form (:mod:`seatgate.licensing.sites`)."""
        value = self.string(name, kind)
        try:
            check_canonical(value)
        except BadHost as exc:
            raise InvalidClaim(name, value, str(exc)) from None
        return value

    def hosts(self, name: str) -> tuple[str, ...]:
        """An optional list of distinct site host names; () when absent."""
        value = self.payload.get(name)
        if value is None:
            return ()
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise InvalidClaim(name, value, 'it must be a list of host names, e.g. ["a.example"]')
        if len(value) > MAX_SITES:
            raise InvalidClaim(name, len(value), f"a licence names at most {MAX_SITES} sites")
        for host in value:
            try:
                check_canonical(host)
            except BadHost as exc:
                raise InvalidClaim(name, host, str(exc)) from None
        if len(set(value)) != len(value):
            raise InvalidClaim(name, value, "a host name is listed twice")
        return tuple(value)

    def price(self) -> Price | None:
        value = self.payload.get("price")
        if value is None:
            return None
        if not isinstance(value, Mapping):
            raise InvalidClaim(
                "price", value, 'it must look like {"amount": "1990.00", "currency": "USD"}'
            )
        amount, currency = value.get("amount"), value.get("currency")
        if not isinstance(amount, str) or not _AMOUNT.match(amount):
            raise InvalidClaim(
                "price.amount", amount, 'it must be a decimal string such as "1990.00"'
            )
        if not isinstance(currency, str) or not _CURRENCY.match(currency):
            raise InvalidClaim(
                "price.currency", currency, "it must be a three-letter code such as USD"
            )
        return Price(Decimal(amount), currency)
