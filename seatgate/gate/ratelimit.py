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

import hashlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from sqlalchemy import (
    Connection,
    and_,
    bindparam,
    case,
    delete,
    exists,
    func,
    insert,
    or_,
    select,
    text,
)
from sqlalchemy.dialects import postgresql, sqlite

from seatgate.clock import Clock
from seatgate.gate.throttles import settle_in, throttled_in
from seatgate.storage.db import Database
from seatgate.storage.schema import login_failures, login_successes

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
# At most this many expired failure rows are deleted per recorded failure:
# enough to keep up with any insert rate, small enough to keep each write short.
PRUNE_BATCH = 200
MAX_ADDRESS_LENGTH = 128


# Built once: these run on every login, and building a SQLAlchemy statement
# costs more than running it.
_F, _S = login_failures.c, login_successes.c
_PAIR = and_(_F.login_key == bindparam("key"), _F.address == bindparam("address"))
_COUNTS = select(
    func.coalesce(func.sum(case((_PAIR, 1), else_=0)), 0),
    func.coalesce(func.sum(case((_F.address == bindparam("address"), 1), else_=0)), 0),
    func.coalesce(func.sum(case((_F.login_key == bindparam("key"), 1), else_=0)), 0),
    exists().where(
        _S.login_key == bindparam("key"),
        _S.address == bindparam("address"),
        _S.last_at > bindparam("known_since"),
    ),
).where(
    _F.at > bindparam("since"),
    or_(_F.login_key == bindparam("key"), _F.address == bindparam("address")),
)
_SUCCESS_CHECK = select(
    exists().where(
        _S.login_key == bindparam("key"),
        _S.address == bindparam("address"),
        _S.last_at > bindparam("fresh_since"),
    ),
    exists().where(_PAIR, _F.id != bindparam("reserved")),
)
_DEVICE_COUNT = select(func.count()).where(
    _F.device == bindparam("device"), _F.at > bindparam("since")
)
_LOCK = text("SELECT pg_advisory_xact_lock(:key)")
# What a throttled client is told to wait: failures leave the window one by
# one, so the limit usually lifts well before the whole window has passed.
RETRY_AFTER_SECONDS = 60


@dataclass(frozen=True)
class Reservation:
    """What :meth:`RateLimiter.reserve` decided for one attempt.

    ``row`` is the failure recorded in advance (``None``: nothing recorded);
    ``retry_after`` the seconds a refused client should wait; ``device`` the
    device cookie the attempt was judged by.
    """

    allowed: bool
    row: int | None = None
    retry_after: int | None = None
    device: str | None = None


class RateLimiter(Protocol):
    """Throttles repeated failed attempts (per login, per client address)."""

    def reserve(self, key: str, address: str | None, device: str | None = None) -> Reservation:
        """Whether an attempt may proceed; if so it is already counted as a failure.

        ``device``: a valid device cookie's id for ``key``; its attempts are
        limited per device instead of per login and per address.
        """
        ...

    def release(self, reservation: Reservation) -> None:
        """Give back a reservation whose attempt was not a wrong password."""
        ...

    def succeeded(self, key: str, address: str | None, reservation: Reservation) -> None:
        """Record a successful attempt (its reservation given back)."""
        ...


class NoRateLimit:
    """Never throttles; for the CLI (``Core.build`` without ``rate_limited``).

    Whoever can run the CLI against an installation can read its
    configuration and database, password hashes included, so throttling
    ``seatgate login`` there would stop no guesser; and it has no client
    address to count failures by.
    """

    def reserve(self, key: str, address: str | None, device: str | None = None) -> Reservation:
        return Reservation(allowed=True)

    def release(self, reservation: Reservation) -> None:
        return None

    def succeeded(self, key: str, address: str | None, reservation: Reservation) -> None:
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

    def reserve(self, key: str, address: str | None, device: str | None = None) -> Reservation:
        """Check the limits and, if the attempt may proceed, count it as a failure -- atomically.

        One write transaction, serialised per login key and per address, so
        concurrent attempts from any process or host see each other's
        reservations. Give the reservation back with :meth:`release` (or
        :meth:`succeeded`) when the attempt was not a wrong password.

        With ``device`` (a valid device cookie for ``key``) only the device's
        own failures count, against ``per_device``: the per-login and
        per-address limits others tripped do not lock that browser out.
        """
        if address is None:
            return Reservation(allowed=True)
        address = _stored(address)
        now = self.clock.now()
        params = {
            "key": key,
            "address": address,
            "device": device,
            "since": now - self.window,
            "known_since": now - self.known_for,
        }

        def work(conn: Connection) -> Reservation:
            _serialise(conn, key, address)
            rule = self._rule(conn, params, device)
            scopes = _scopes(key, address, device)
            if rule is not None:
                log.info("login %s from %s throttled by the per-%s limit", key, address, rule)
                throttled_in(conn, rule, scopes[rule], now, self.window)
                return Reservation(allowed=False, retry_after=RETRY_AFTER_SECONDS)
            settle_in(conn, scopes.items(), now, self.window)
            row_id = conn.execute(
                insert(login_failures)
                .values(at=now, login_key=key, address=address, device=device)
                .returning(login_failures.c.id)
            ).scalar_one()
            self._prune(conn, now)
            return Reservation(allowed=True, row=int(row_id), device=device)

        return self.db.write(work)

    def _rule(
        self, conn: Connection, params: Mapping[str, object], device: str | None
    ) -> str | None:
        if device is not None:
            by_device = conn.execute(_DEVICE_COUNT, params).scalar_one()
            return "device" if by_device >= self.per_device else None
        row = conn.execute(_COUNTS, params).one()
        return self._tripped(int(row[0]), int(row[1]), int(row[2]), bool(row[3]))

    def _tripped(self, by_pair: int, by_address: int, by_login: int, known: bool) -> str | None:
        """The rule (a throttle scope) this attempt breaks, if any."""
        if by_pair >= self.per_login_and_address:
            return "pair"
        if by_address >= self.per_address:
            return "address"
        if by_login >= self.per_login and not known:
            return "login"
        return None

    def _prune(self, conn: Connection, now: datetime) -> None:
        expired = (
            select(login_failures.c.id)
            .where(login_failures.c.at <= now - self.window)
            .order_by(login_failures.c.at)
            .limit(PRUNE_BATCH)
        )
        conn.execute(delete(login_failures).where(login_failures.c.id.in_(expired)))

    def release(self, reservation: Reservation) -> None:
        """Give a reservation back: the attempt it stood for was not a wrong password."""
        row = reservation.row
        if row is None:
            return
        self.db.write(lambda conn: conn.execute(delete(login_failures).where(_F.id == row)))

    def succeeded(self, key: str, address: str | None, reservation: Reservation) -> None:
        """Remember ``address`` as known for ``key`` and forget this pair's failures.

        The attempt's own reservation goes with them. Failures of the same
        login from other addresses are kept: a success here says nothing
        about the guesses made elsewhere.
        """
        if address is None:
            return
        address = _stored(address)
        now = self.clock.now()
        # The common case -- a known address logging in again, no failures to
        # forget -- costs one read instead of a write transaction per login.
        params = {
            "key": key,
            "address": address,
            "fresh_since": now - KNOWN_REFRESH,
            "reserved": -1 if reservation.row is None else reservation.row,
        }
        fresh, failed = self.db.read(lambda conn: tuple(conn.execute(_SUCCESS_CHECK, params).one()))
        if fresh and not failed and reservation.device is None:
            self.release(reservation)
            return

        # A success through a device cookie forgets that device's failures
        # only: the pair's may be a guesser's at the same NAT address, and
        # the user's login must not give them a fresh allowance.
        forgotten = (
            _F.device == reservation.device
            if reservation.device is not None
            else and_(_F.login_key == key, _F.address == address)
        )

        def work(conn: Connection) -> None:
            _upsert_success(conn, key, address, now)
            conn.execute(delete(login_failures).where(or_(forgotten, _F.id == params["reserved"])))
            # Indexed and usually empty: at most the pairs that aged out since
            # the previous success anywhere.
            conn.execute(
                delete(login_successes).where(login_successes.c.last_at <= now - self.known_for)
            )

        self.db.write(work)


def _stored(address: str) -> str:
    # The column is bounded; the address comes from a request header at worst.
    return address[:MAX_ADDRESS_LENGTH]


def _scopes(key: str, address: str, device: str | None) -> dict[str, str]:
    # What each rule counts by: the subject of its throttle row.
    if device is not None:
        return {"device": f"{key} on device {device}"}
    return {"pair": f"{key} from {address}", "address": address, "login": key}


def _serialise(conn: Connection, key: str, address: str) -> None:
    """Make concurrent reservations for this login or this address wait for each other.

    SQLite: the write transaction began ``BEGIN IMMEDIATE``, which already
    serialises every writer. PostgreSQL (READ COMMITTED): transaction-level
    advisory locks on the login and on the address, taken in one fixed order
    so that two attempts never wait for each other's second lock; each
    statement after them sees every reservation committed before.
    """
    if conn.dialect.name != "postgresql":
        return
    for lock in sorted({_lock_key("login", key), _lock_key("address", address)}):
        conn.execute(_LOCK, {"key": lock})


def _lock_key(kind: str, value: str) -> int:
    digest = hashlib.sha256(f"seatgate:ratelimit:{kind}:{value}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def _upsert_success(conn: Connection, key: str, address: str, now: datetime) -> None:
    # An upsert, not update-then-insert: two nodes recording the first success
    # of one pair at the same moment must not turn a login into a conflict.
    values = {"login_key": key, "address": address, "last_at": now}
    keys = [login_successes.c.login_key, login_successes.c.address]
    if conn.dialect.name == "postgresql":
        pg = postgresql.insert(login_successes).values(values)
        conn.execute(pg.on_conflict_do_update(index_elements=keys, set_={"last_at": now}))
    else:
        lite = sqlite.insert(login_successes).values(values)
        conn.execute(lite.on_conflict_do_update(index_elements=keys, set_={"last_at": now}))


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
