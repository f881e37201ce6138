"""The ``seats:`` section: how seats are handed out, reclaimed and requested."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from seatgate.config.parse import Section
from seatgate.errors import ConfigError

Assignment = Literal["auto", "manual"]


@dataclass(frozen=True)
class SeatsConfig:
    """How seats are handed out."""

    assignment: Assignment = "auto"
    reserved_for_admins: int = 0
    # Seats whose holder has not logged in for more than this many days are
    # idle (``seatgate seats reclaim``); None: no seat is ever idle.
    reclaim_idle_days: int | None = None
    # A first login finding no free seat takes the longest-idle seat instead.
    reclaim_on_demand: bool = False
    # A refused login's seat request is pending this long after its last attempt.
    request_days: int = 30


def parse_seats(seats: Section) -> SeatsConfig:
    """Validate the ``seats:`` section. Raises :class:`ConfigError`."""
    assignment = seats.choice("assignment", "auto", ("auto", "manual"))
    absent = seats.data.get("reclaim_idle_days") is None
    idle = seats.integer("reclaim_idle_days", 0, minimum=1, maximum=3650)
    on_demand = seats.boolean("reclaim_on_demand", False)
    if on_demand and absent:
        raise ConfigError(
            "seats.reclaim_on_demand",
            "needs seats.reclaim_idle_days: the number of days after which a seat is idle",
        )
    config = SeatsConfig(
        assignment="manual" if assignment == "manual" else "auto",
        reserved_for_admins=seats.integer("reserved_for_admins", 0, minimum=0, maximum=1000),
        reclaim_idle_days=None if absent else idle,
        reclaim_on_demand=on_demand,
        request_days=seats.integer("request_days", 30, minimum=1, maximum=3650),
    )
    seats.reject_unknown()
    return config
