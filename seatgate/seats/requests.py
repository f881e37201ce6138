"""Seat requests: a login refused for want of a seat asks for one, and an admin answers.

A login refused ``no_seat_available`` -- after its password verified --
records a request for its account. There is one row per account
(``seat_requests``), updated in place with the number of attempts and the
last one, so refused logins at any rate never add rows; only the first
attempt of a request is audited (``seat.requested``). A request is pending
until ``seats.request_days`` days after its last attempt, while its
account is active and holds no seat; a refused login after that starts a
new one.

An admin approves a request into a free seat, or by moving another
account's seat to it (both halves in one transaction), or denies it;
either deletes the request and is audited (``seat.request_approved``,
``seat.request_denied``). A denied account that is refused again later
asks again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, Connection, and_, case, delete, exists, func, select
from sqlalchemy.dialects import postgresql, sqlite

from seatgate.audit import log as audit
from seatgate.clock import Clock, to_utc
from seatgate.errors import NoSeatRequest
from seatgate.seats import alerts
from seatgate.seats.ledger import SeatLedger
from seatgate.seats.lock import take_seat_lock
from seatgate.seats.rows import login_of
from seatgate.storage.db import Database
from seatgate.storage.schema import accounts, seat_requests, seats

_R = seat_requests


@dataclass(frozen=True)
class SeatRequest:
    """A pending seat request: who asks, since when, how often, and when it lapses."""

    login: str
    display_name: str | None
    first_at: datetime
    last_at: datetime
    attempts: int
    expires_at: datetime


def record_in(conn: Connection, account_id: int, login: str, now: datetime, days: int) -> bool:
    """Record a refused login's request in one upsert; return whether it is a new request.

    A lapsed request (last attempt more than ``days`` ago) starts over. Only
    a new request is audited, so the audit log does not grow at the rate of
    refused attempts either.
    """
    lapsed = _R.c.last_at < now - timedelta(days=days)
    values = {"account_id": account_id, "first_at": now, "last_at": now, "attempts": 1}
    changes = {
        "first_at": case((lapsed, now), else_=_R.c.first_at),
        "attempts": case((lapsed, 1), else_=_R.c.attempts + 1),
        "last_at": now,
    }
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    upsert = (
        dialect.insert(_R)
        .values(values)
        .on_conflict_do_update(index_elements=[_R.c.account_id], set_=changes)
        .returning(_R.c.attempts)
    )
    new = int(conn.execute(upsert).scalar_one()) == 1
    if new:
        audit.record(conn, at=now, actor=login, action="seat.requested", subject=login)
        alerts.seat_requested_in(conn, login, now)
    return new


def _pending_where(now: datetime, days: int) -> ColumnElement[bool]:
    held = exists().where(seats.c.account_id == _R.c.account_id)
    return and_(_R.c.last_at >= now - timedelta(days=days), accounts.c.status == "active", ~held)


def pending_count_in(conn: Connection, now: datetime, days: int) -> int:
    """How many requests are pending at ``now`` (``seats.request_days``: ``days``)."""
    query = (
        select(func.count())
        .select_from(_R.join(accounts, accounts.c.id == _R.c.account_id))
        .where(_pending_where(now, days))
    )
    return int(conn.execute(query).scalar_one())


class SeatRequests:
    """Lists, approves and denies seat requests; records them for the login gate."""

    def __init__(self, db: Database, clock: Clock, ledger: SeatLedger) -> None:
        self.db = db
        self.clock = clock
        self.ledger = ledger

    @property
    def days(self) -> int:
        """How long a request stays pending after its last attempt (``seats.request_days``)."""
        return self.ledger.config.request_days

    def record(self, account_id: int, login: str) -> bool:
        """Record a refused login's request (its own transaction); True when new."""
        now = self.clock.now()
        return self.db.write(lambda conn: record_in(conn, account_id, login, now, self.days))

    def pending(self) -> list[SeatRequest]:
        """The pending requests, oldest first (a plain read)."""
        now = self.clock.now()
        query = (
            select(_R, accounts.c.login, accounts.c.display_name)
            .join(accounts, accounts.c.id == _R.c.account_id)
            .where(_pending_where(now, self.days))
            .order_by(_R.c.first_at, _R.c.account_id)
        )
        return [
            SeatRequest(
                login=r.login,
                display_name=r.display_name,
                first_at=to_utc(r.first_at),
                last_at=to_utc(r.last_at),
                attempts=int(r.attempts),
                expires_at=to_utc(r.last_at) + timedelta(days=self.days),
            )
            for r in self.db.read(lambda conn: conn.execute(query).all())
        ]

    def pending_count(self) -> int:
        """How many requests are pending (for ``metrics`` and ``license status``)."""
        now = self.clock.now()
        return self.db.read(lambda conn: pending_count_in(conn, now, self.days))

    def approve(self, account_id: int, *, actor: str, replace: int | None = None) -> None:
        """Give the requesting account a free seat, or ``replace``'s seat; one transaction.

        Raises :class:`NoSeatRequest` without a pending request, and what
        :meth:`SeatLedger.assign` or :meth:`SeatLedger.reassign` raise; then
        nothing changes.
        """

        def work(conn: Connection) -> None:
            lock = take_seat_lock(conn)
            login = self._require_pending(conn, account_id)
            replaced = None if replace is None else login_of(conn, replace)
            if replace is None:
                self.ledger.assign_in(lock, account_id, actor)
            else:
                self.ledger.reassign_in(lock, replace, account_id, actor)
            conn.execute(delete(_R).where(_R.c.account_id == account_id))
            audit.record(
                conn,
                at=self.clock.now(),
                actor=actor,
                action="seat.request_approved",
                subject=login,
                details={"replaced": replaced},
            )

        self.db.write(work)

    def deny(self, account_id: int, *, actor: str) -> None:
        """Delete the account's pending request, audited. Raises :class:`NoSeatRequest`."""

        def work(conn: Connection) -> None:
            login = self._require_pending(conn, account_id)
            conn.execute(delete(_R).where(_R.c.account_id == account_id))
            audit.record(
                conn,
                at=self.clock.now(),
                actor=actor,
                action="seat.request_denied",
                subject=login,
            )

        self.db.write(work)

    def _require_pending(self, conn: Connection, account_id: int) -> str:
        login = login_of(conn, account_id)
        found = conn.execute(
            select(_R.c.account_id)
            .join(accounts, accounts.c.id == _R.c.account_id)
            .where(_R.c.account_id == account_id, _pending_where(self.clock.now(), self.days))
        ).first()
        if found is None:
            raise NoSeatRequest(login)
        return login
