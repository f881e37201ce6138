"""Login rate limiting shared by every web node: the state lives in the database.

Only failed attempts count, never successful ones, so a whole office behind
one NAT address logging in at 9:00 is never throttled. Within a sliding
window (15 minutes by default) an attempt is refused when

* the (login, address) pair has ``per_login_and_address`` failures, or
* the address has ``per_address`` failures (whatever the logins), or
* the login has ``per_login`` failures (whatever the addresses) **and** the
  address is not one this login logged in from successfully in the last
  ``KNOWN_ADDRESS_DAYS`` days -- so a guesser spreading attempts over many
  addresses cannot lock the real user out of their own machine.

A browser presenting a valid device cookie for the login
(:mod:`seatgate.gate.devices`) is judged by its own failures alone
(``per_device``), so an attacker sharing the user's NAT address or guessing
the login from everywhere does not lock that browser out.

An attempt without a client address is never throttled and never recorded:
there is nothing to count it by. The web gate always passes the address it
saw; the CLI does not use this limiter at all (see
:class:`NoRateLimit`).

The limit **reserves before the password is verified**: :meth:`reserve`
counts and, when the attempt may proceed, records it as a failure in the same
write transaction, serialised per login and per address (on PostgreSQL two
transaction-level advisory locks, on SQLite ``BEGIN IMMEDIATE``). So
simultaneous attempts from any number of processes and hosts cannot all read
the same count and all pass: with a limit of five, at most five passwords are
ever verified. An attempt that turns out not to be a wrong password (the right
one, an unreachable directory) gives its reservation back.

Refused attempts are not recorded, so the rows counted for any login or
address stay bounded by the limits themselves and :meth:`reserve` -- one
indexed query and one insert -- stays cheap even under attack.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from sqlalchemy import (
    Connection,
    delete,
)

from seatgate.clock import Clock
from seatgate.gate import ratelimit_rows as rows
from seatgate.gate.throttles import settle_in, settle_params, throttled_in
from seatgate.storage.db import Database
from seatgate.storage.schema import login_successes

log = logging.getLogger(__name__)

DEFAULT_WINDOW = timedelta(minutes=15)
# Failures a browser with a valid device cookie may make per window: fewer
# than anyone else, so that a stolen cookie is no licence to guess.
DEFAULT_PER_DEVICE = 3
# How long a successful login keeps its address exempt from the per-login limit.
KNOWN_ADDRESS_DAYS = 30
# How stale a known address's time may grow before a login records it again:
# far below KNOWN_ADDRESS_DAYS, so no address ever ages out early.
KNOWN_REFRESH = timedelta(hours=1)
PRUNE_EVERY = timedelta(seconds=1)
MAX_ADDRESS_LENGTH = 128


# What a throttled client is told to wait: failures leave the window one by
# one, so the limit usually lifts well before the whole window has passed.
RETRY_AFTER_SECONDS = 60


@dataclass(frozen=True)
class Reservation:
    """What :meth:`RateLimiter.reserve` decided for one attempt.

    ``row`` is the failure recorded in advance (``None``: nothing recorded);
    ``retry_after`` the seconds a refused client should wait; ``device`` the
    device cookie the attempt was judged by. ``routine``: the address is a
    recently recorded known one and the pair had no failures when reserved,
    so a success only gives the reservation back (a failure recorded in
    parallel meanwhile stays counted: the safe side).
    """

    allowed: bool
    row: int | None = None
    retry_after: int | None = None
    device: str | None = None
    routine: bool = False


class RateLimiter(Protocol):
    """Throttles repeated failed attempts (per login, per client address).

    The gate runs :meth:`reserve_in` and :meth:`succeeded_in` inside its own
    transactions (with the account lookup, and with the admission), so a
    login pays for no transaction of the limiter's own.
    """

    def writes(self, address: str | None) -> bool:
        """Whether :meth:`reserve_in` writes for this address (needs a write transaction)."""
        ...

    def reserve_in(
        self, conn: Connection, key: str, address: str | None, device: str | None = None
    ) -> Reservation:
        """Whether an attempt may proceed; if so it is already counted as a failure.

        ``device``: a valid device cookie's id for ``key``; its attempts are
        limited per device instead of per login and per address.
        """
        ...

    def release(self, reservation: Reservation) -> None:
        """Give back a reservation whose attempt was not a wrong password."""
        ...

    def succeeded_in(
        self, conn: Connection, key: str, address: str | None, reservation: Reservation
    ) -> None:
        """Record a successful attempt (its reservation given back), in ``conn``'s transaction."""
        ...

    def routine_row(self, address: str | None, reservation: Reservation) -> int | None:
        """The reservation row whose deletion is all a success of it needs, or None.

        None: :meth:`succeeded_in` has more to do (or nothing). With a row,
        the caller may delete it within a statement of its own instead of
        calling :meth:`succeeded_in` (the admission does, on PostgreSQL).
        """
        ...


class NoRateLimit:
    """Never throttles; for the CLI (``Core.build`` without ``rate_limited``).

    Whoever can run the CLI against an installation can read its
    configuration and database, password hashes included, so throttling
    ``seatgate login`` there would stop no guesser; and it has no client
    address to count failures by.
    """

    def writes(self, address: str | None) -> bool:
        return False

    def reserve_in(
        self, conn: Connection, key: str, address: str | None, device: str | None = None
    ) -> Reservation:
        return Reservation(allowed=True)

    def release(self, reservation: Reservation) -> None:
        pass

    def succeeded_in(
        self, conn: Connection, key: str, address: str | None, reservation: Reservation
    ) -> None:
        pass

    def routine_row(self, address: str | None, reservation: Reservation) -> int | None:
        return None


class DatabaseRateLimiter:
    """A :class:`RateLimiter` whose counters all processes share."""

    def __init__(
        self,
        db: Database,
        clock: Clock,
        *,
        per_login_and_address: int,
        per_address: int,
        per_login: int,
        per_device: int = DEFAULT_PER_DEVICE,
        window: timedelta = DEFAULT_WINDOW,
    ) -> None:
        """Raises :class:`ValueError` for a limit below 1 or a window that is not positive."""
        for name, limit in (
            ("per_login_and_address", per_login_and_address),
            ("per_address", per_address),
            ("per_login", per_login),
            ("per_device", per_device),
        ):
            if limit < 1:
                raise ValueError(f"{name} must be at least 1, not {limit}")
        if window <= timedelta(0):
            raise ValueError(f"window must be positive, not {window}")
        self.db = db
        self.clock = clock
        self.per_login_and_address = per_login_and_address
        self.per_address = per_address
        self.per_login = per_login
        self.per_device = per_device
        self.window = window
        self.known_for = timedelta(days=KNOWN_ADDRESS_DAYS)
        self._pruned_at: datetime | None = None

    def writes(self, address: str | None) -> bool:
        # An attempt without an address is neither counted nor recorded.
        return address is not None

    def reserve(self, key: str, address: str | None, device: str | None = None) -> Reservation:
        """:meth:`reserve_in`, in a write transaction of its own."""
        if address is None:
            return Reservation(allowed=True)
        return self.db.write(lambda conn: self.reserve_in(conn, key, address, device))

    def reserve_in(
        self, conn: Connection, key: str, address: str | None, device: str | None = None
    ) -> Reservation:
        """Check the limits and, if the attempt may proceed, count it as a failure -- atomically.

        ``conn`` is in a write transaction that commits before the password
        is verified. Serialised per login key and per address, so
        concurrent attempts from any process or host see each other's
        reservations. Give the reservation back with :meth:`release` (or
        :meth:`succeeded_in`) when the attempt was not a wrong password.

        With ``device`` (a valid device cookie for ``key``) only the device's
        own failures count, against ``per_device``: the per-login and
        per-address limits others tripped do not lock that browser out.
        """
        if address is None:
            return Reservation(allowed=True)
        address = _stored(address)
        now = self.clock.now()
        scopes = _scopes(key, address, device)
        params = {
            "key": key,
            "address": address,
            "device": device,
            "since": now - self.window,
            "known_since": now - self.known_for,
            "fresh_since": now - KNOWN_REFRESH,
            **settle_params(scopes.items(), now, self.window),
            **self._record_params(now, key, address, device),
        }
        rows.serialise(conn, key, address)
        rule, unsettled, routine, row_id = self._rule(conn, params, device)
        if rule is not None or unsettled:
            # Audit events are written below: this commit goes to disk as configured.
            rows.durable(conn)
        if rule is not None:
            log.info("login %s from %s throttled by the per-%s limit", key, address, rule)
            throttled_in(conn, rule, scopes[rule], now, self.window)
            return Reservation(allowed=False, retry_after=RETRY_AFTER_SECONDS)
        if unsettled:
            settle_in(conn, scopes.items(), now, self.window)
        if row_id is None:  # not recorded with the counts
            record = {"at": now, "login_key": key, "address": address, "device": device}
            row_id = rows.RECORD.run(conn, record).scalar_one()
        self._prune_now_and_then(conn, now)
        return Reservation(allowed=True, row=int(row_id), device=device, routine=routine)

    def _record_params(
        self, now: datetime, key: str, address: str, device: str | None
    ) -> dict[str, object]:
        """The limits and the new row of :data:`~seatgate.gate.ratelimit_rows.COUNTS_AND_RECORD`."""
        return {
            "per_pair": self.per_login_and_address,
            "per_address": self.per_address,
            "per_login": self.per_login,
            "r_at": now,
            "r_key": key,
            "r_address": address,
            "r_device": device,
        }

    def _rule(
        self, conn: Connection, params: Mapping[str, object], device: str | None
    ) -> tuple[str | None, bool, bool, int | None]:
        """The rule (a throttle scope) this attempt breaks, if any; whether throttles await
        settling; whether a success would be routine (all read in one statement); and on
        PostgreSQL the reservation's row when that statement recorded it already."""
        if device is not None:
            by_device, unsettled = rows.RUN_DEVICE_COUNT.run(conn, params).one()
            rule = "device" if by_device >= self.per_device else None
            return rule, bool(unsettled), False, None
        recording = conn.dialect.name == "postgresql"
        counts = rows.RUN_COUNTS_AND_RECORD if recording else rows.RUN_COUNTS
        row = counts.run(conn, params).one()
        by_pair, by_address, by_login, known, unsettled, fresh = row[:6]
        recorded: int | None = row.recorded if recording else None
        rule = self._tripped(int(by_pair), int(by_address), int(by_login), bool(known))
        if recorded is not None and (rule is not None or unsettled):  # pragma: no cover
            raise AssertionError("the statement and the rules disagree on the limits")
        return rule, bool(unsettled), bool(fresh) and int(by_pair) == 0, recorded

    def _tripped(self, by_pair: int, by_address: int, by_login: int, known: bool) -> str | None:
        """The rule (a throttle scope) this attempt breaks, if any."""
        if by_pair >= self.per_login_and_address:
            return "pair"
        if by_address >= self.per_address:
            return "address"
        if by_login >= self.per_login and not known:
            return "login"
        return None

    def _prune_now_and_then(self, conn: Connection, now: datetime) -> None:
        # At most once a second per process: rows leave the window at most a
        # second late, and a login saves a statement.
        if self._pruned_at is not None and timedelta(0) <= now - self._pruned_at < PRUNE_EVERY:
            return
        conn.execute(rows.PRUNE, {"before": now - self.window})
        self._pruned_at = now

    def release(self, reservation: Reservation) -> None:
        """Give a reservation back: the attempt it stood for was not a wrong password."""
        row = reservation.row
        if row is None:
            return
        self.db.write(lambda conn: conn.execute(rows.FORGET, {"row": row}))

    def succeeded(self, key: str, address: str | None, reservation: Reservation) -> None:
        """:meth:`succeeded_in`, in a write transaction of its own."""
        if address is None:
            return
        self.db.write(lambda conn: self.succeeded_in(conn, key, address, reservation))

    def succeeded_in(
        self, conn: Connection, key: str, address: str | None, reservation: Reservation
    ) -> None:
        """Remember ``address`` as known for ``key`` and forget this pair's failures.

        The attempt's own reservation goes with them. Failures of the same
        login from other addresses are kept: a success here says nothing
        about the guesses made elsewhere.
        """
        if address is None:
            return
        address = _stored(address)
        now = self.clock.now()
        reserved = -1 if reservation.row is None else reservation.row
        if reservation.routine and reservation.device is None:
            rows.FORGET_ONE.run(conn, {"row": reserved})
            return
        # Not known as an address of this login lately, or failures to forget.
        rows.upsert_success(conn, key, address, now)
        rows.forget_failures(conn, key, address, reservation.device, reserved)
        # Indexed and usually empty: at most the pairs that aged out since
        # the previous success anywhere.
        conn.execute(
            delete(login_successes).where(login_successes.c.last_at <= now - self.known_for)
        )

    def routine_row(self, address: str | None, reservation: Reservation) -> int | None:
        """The reservation's row when a success of it only gives the reservation back."""
        # What succeeded_in does for a routine success: forget the reservation, nothing else.
        if address is None or not reservation.routine or reservation.device is not None:
            return None
        return reservation.row


def _stored(address: str) -> str:
    # The column is bounded; the address comes from a request header at worst.
    return address[:MAX_ADDRESS_LENGTH]


def _scopes(key: str, address: str, device: str | None) -> dict[str, str]:
    # What each rule counts by: the subject of its throttle row.
    if device is not None:
        return {"device": f"{key} on device {device}"}
    return {"pair": f"{key} from {address}", "address": address, "login": key}


__all__ = [
    "DEFAULT_PER_DEVICE",
    "DEFAULT_WINDOW",
    "KNOWN_ADDRESS_DAYS",
    "RETRY_AFTER_SECONDS",
    "DatabaseRateLimiter",
    "NoRateLimit",
    "RateLimiter",
    "Reservation",
]
