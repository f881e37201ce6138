"""The seats-held count against the seat rows, and its repair (``seatgate doctor seats``).

The count is kept by triggers on ``seats`` (:mod:`seatgate.storage.seat_counter`);
it can only drift if someone removes them or edits ``license_state`` by hand.
"""

from __future__ import annotations

from sqlalchemy import Connection

from seatgate.audit import log as audit
from seatgate.clock import Clock
from seatgate.seats.lock import take_seat_lock
from seatgate.storage import seat_counter
from seatgate.storage.db import Database

RECOUNTED = "seats.recounted"


def check(db: Database) -> tuple[int, int]:
    """The seats-held count on the licence-state row and the seat rows (a plain read)."""
    return db.read(seat_counter.check)


def repair(db: Database, clock: Clock, *, actor: str) -> tuple[int, int]:
    """Set the count to the seat rows under the seat lock, audited as ``seats.recounted``
    when it was wrong; returns the count before and the seat rows."""

    def work(conn: Connection) -> tuple[int, int]:
        take_seat_lock(conn)
        before, rows = seat_counter.check(conn)
        if before != rows:
            seat_counter.recount(conn)
            audit.record(
                conn,
                at=clock.now(),
                actor=actor,
                action=RECOUNTED,
                details={"count": before, "seats": rows},
            )
        return before, rows

    return db.write(work)
