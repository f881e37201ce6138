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

An attempt without a client address is never throttled and never recorded:
there is nothing to count it by. The web gate always passes the address it
saw; the CLI does not use this limiter at all (see
:class:`~seatgate.gate.decision.NoRateLimit`).

Refused attempts are not recorded (the gate does not call :meth:`failed` for
them), so the rows counted for any login or address stay bounded by the
limits themselves and :meth:`allow` -- one indexed query -- stays cheap even
under attack.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

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
)
from sqlalchemy.dialects import postgresql, sqlite

from seatgate.clock import Clock
from seatgate.storage.db import Database
from seatgate.storage.schema import login_failures, login_successes

log = logging.getLogger(__name__)

DEFAULT_WINDOW = timedelta(minutes=15)
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
    exists().where(_PAIR),
)


class DatabaseRateLimiter:
    """A :class:`~seatgate.gate.decision.RateLimiter` whose counters all processes share."""

    def __init__(
        self,
        db: Database,
        clock: Clock,
        *,
        per_login_and_address: int,
        per_address: int,
        per_login: int,
        window: timedelta = DEFAULT_WINDOW,
    ) -> None:
        """Raises :class:`ValueError` for a limit below 1 or a window that is not positive."""
        for name, limit in (
            ("per_login_and_address", per_login_and_address),
            ("per_address", per_address),
            ("per_login", per_login),
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
        self.window = window
        self.known_for = timedelta(days=KNOWN_ADDRESS_DAYS)

    def allow(self, key: str, address: str | None) -> bool:
        """Whether an attempt for login key ``key`` from ``address`` may proceed (one read)."""
        if address is None:
            return True
        address = _stored(address)
        now = self.clock.now()
        params = {
            "key": key,
            "address": address,
            "since": now - self.window,
            "known_since": now - self.known_for,
        }
        row = self.db.read(lambda conn: conn.execute(_COUNTS, params).one())
        by_pair, by_address, by_login, is_known = int(row[0]), int(row[1]), int(row[2]), row[3]
        if by_pair >= self.per_login_and_address:
            rule = "login and address"
        elif by_address >= self.per_address:
            rule = "address"
        elif by_login >= self.per_login and not is_known:
            rule = "login from an unknown address"
        else:
            return True
        log.info("login %s from %s throttled: too many failures per %s", key, address, rule)
        return False

    def failed(self, key: str, address: str | None) -> None:
        """Record a failed attempt, and prune failures that left the window."""
        if address is None:
            return
        address = _stored(address)
        now = self.clock.now()

        def work(conn: Connection) -> None:
            conn.execute(insert(login_failures).values(at=now, login_key=key, address=address))
            expired = (
                select(login_failures.c.id)
                .where(login_failures.c.at <= now - self.window)
                .order_by(login_failures.c.at)
                .limit(PRUNE_BATCH)
            )
            conn.execute(delete(login_failures).where(login_failures.c.id.in_(expired)))

        self.db.write(work)

    def succeeded(self, key: str, address: str | None) -> None:
        """Remember ``address`` as known for ``key`` and forget this pair's failures.

        Failures of the same login from other addresses are kept: a success
        here says nothing about the guesses made elsewhere.
        """
        if address is None:
            return
        address = _stored(address)
        now = self.clock.now()
        # The common case -- a known address logging in again, no failures to
        # forget -- costs one read instead of a write transaction per login.
        params = {"key": key, "address": address, "fresh_since": now - KNOWN_REFRESH}
        fresh, failed = self.db.read(lambda conn: tuple(conn.execute(_SUCCESS_CHECK, params).one()))
        if fresh and not failed:
            return

        def work(conn: Connection) -> None:
            _upsert_success(conn, key, address, now)
            conn.execute(
                delete(login_failures).where(
                    login_failures.c.login_key == key, login_failures.c.address == address
                )
            )
            # Indexed and usually empty: at most the pairs that aged out since
            # the previous success anywhere.
            conn.execute(
                delete(login_successes).where(login_successes.c.last_at <= now - self.known_for)
            )

        self.db.write(work)


def _stored(address: str) -> str:
    # The column is bounded; the address comes from a request header at worst.
    return address[:MAX_ADDRESS_LENGTH]


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


__all__ = ["DEFAULT_WINDOW", "KNOWN_ADDRESS_DAYS", "DatabaseRateLimiter"]
