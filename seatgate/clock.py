"""One injectable clock: every rule that depends on time asks a :class:`Clock`.

All datetimes are timezone-aware UTC. Tests move a :class:`FakeClock`
explicitly instead of sleeping.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    """Something that tells the current time."""

    def now(self) -> datetime:
        """Return the current time, timezone-aware, in UTC."""
        ...


class SystemClock:
    """The wall clock."""

    def now(self) -> datetime:
        return datetime.now(UTC)


class FakeClock:
    """A clock that only moves when told to (for tests and the demo)."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
        if self._now.tzinfo is None:
            raise ValueError("FakeClock needs a timezone-aware datetime")

    def now(self) -> datetime:
        return self._now

    def advance(self, delta: timedelta) -> None:
        """Move the clock by ``delta`` (may be negative)."""
        self._now += delta

    def set(self, when: datetime) -> None:
        """Jump to ``when``."""
        self._now = when


def to_utc(value: datetime) -> datetime:
    """Return ``value`` as an aware UTC datetime (naive values are taken as UTC).

    SQLite hands timestamps back without a zone; they were written in UTC.
    """
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def from_timestamp(seconds: int | float) -> datetime:
    """Convert a JWT NumericDate to an aware UTC datetime."""
    return datetime.fromtimestamp(seconds, UTC)


def add_months(when: datetime, months: int) -> datetime:
    """Add calendar months, clamping the day (31 Aug + 6 months = 28/29 Feb)."""
    month_index = when.month - 1 + months
    year = when.year + month_index // 12
    month = month_index % 12 + 1
    day = min(when.day, _days_in_month(year, month))
    return when.replace(year=year, month=month, day=day)


def _days_in_month(year: int, month: int) -> int:
    first_next = datetime(year + month // 12, month % 12 + 1, 1)
    return (first_next - timedelta(days=1)).day
