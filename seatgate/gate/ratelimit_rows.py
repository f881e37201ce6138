"""The rate limiter's rows: its statements, built once, and its locks.

See :mod:`seatgate.gate.ratelimit` for the rules they serve.
"""

from __future__ import annotations

import hashlib
from datetime import datetime

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

from seatgate.gate.throttles import unsettled
from seatgate.storage.driver_statement import DriverStatement
from seatgate.storage.schema import login_failures, login_successes

# At most this many expired failure rows are deleted at a time: enough to
# keep up with any insert rate, small enough to keep each write short.
PRUNE_BATCH = 200

# Built once: these run on every login, and building a SQLAlchemy statement
# costs more than running it.
_F, _S = login_failures.c, login_successes.c
_PAIR = and_(_F.login_key == bindparam("key"), _F.address == bindparam("address"))
COUNTS = select(
    func.coalesce(func.sum(case((_PAIR, 1), else_=0)), 0).label("by_pair"),
    func.coalesce(func.sum(case((_F.address == bindparam("address"), 1), else_=0)), 0).label(
        "by_address"
    ),
    func.coalesce(func.sum(case((_F.login_key == bindparam("key"), 1), else_=0)), 0).label(
        "by_login"
    ),
    exists()
    .where(
        _S.login_key == bindparam("key"),
        _S.address == bindparam("address"),
        _S.last_at > bindparam("known_since"),
    )
    .label("known"),
    # The keys of an attempt without a device: pair, address, login (see ratelimit._scopes).
    unsettled(3).label("unsettled"),
    exists()
    .where(
        _S.login_key == bindparam("key"),
        _S.address == bindparam("address"),
        _S.last_at > bindparam("fresh_since"),
    )
    .label("fresh"),
).where(
    _F.at > bindparam("since"),
    or_(_F.login_key == bindparam("key"), _F.address == bindparam("address")),
)
# PostgreSQL: the counts and, when they trip no rule and no throttle awaits
# settling, the reservation recorded -- one statement (one round trip) instead
# of two. The rules are DatabaseRateLimiter._tripped's, on the same counts:
# params ``per_pair``, ``per_address``, ``per_login`` and the new row's ``r_*``.
_COUNTED = COUNTS.cte("counted")
_TRIPPED = or_(
    _COUNTED.c.by_pair >= bindparam("per_pair"),
    _COUNTED.c.by_address >= bindparam("per_address"),
    and_(_COUNTED.c.by_login >= bindparam("per_login"), ~_COUNTED.c.known),
)
_RECORDED = (
    insert(login_failures)
    .from_select(
        ["at", "login_key", "address", "device"],
        select(
            bindparam("r_at", type_=_F.at.type),
            bindparam("r_key", type_=_F.login_key.type),
            bindparam("r_address", type_=_F.address.type),
            bindparam("r_device", type_=_F.device.type),
        ).where(~_TRIPPED, ~_COUNTED.c.unsettled),
    )
    .returning(_F.id)
    .cte("recorded")
)
COUNTS_AND_RECORD = select(
    *_COUNTED.c, select(_RECORDED.c.id).scalar_subquery().label("recorded")
).select_from(_COUNTED)
DEVICE_COUNT = select(
    select(func.count())
    .where(_F.device == bindparam("device"), _F.at > bindparam("since"))
    .scalar_subquery(),
    unsettled(1),  # the device's one key
)
# The three on the driver's cursor (seatgate.storage.driver_statement): every login attempt
# runs one of them, and SQLAlchemy's execution would cost more Python than the read itself.
RUN_COUNTS = DriverStatement(COUNTS)
RUN_COUNTS_AND_RECORD = DriverStatement(COUNTS_AND_RECORD)
RUN_DEVICE_COUNT = DriverStatement(DEVICE_COUNT)
_LOCK = DriverStatement(
    text(
        "SELECT pg_advisory_xact_lock(:first), pg_advisory_xact_lock(:second), "
        "set_config('synchronous_commit', 'off', true)"
    )
)
# Back to what the server, database or role configures (what RESET would give).
_DURABLE = text(
    "SELECT set_config('synchronous_commit', "
    "(SELECT reset_val FROM pg_settings WHERE name = 'synchronous_commit'), true)"
)
RECORD = DriverStatement(
    insert(login_failures)
    .values({name: bindparam(name) for name in ("at", "login_key", "address", "device")})
    .returning(login_failures.c.id)
)
FORGET = delete(login_failures).where(_F.id == bindparam("row"))
FORGET_ONE = DriverStatement(FORGET)
# The same, as a clause of another statement (see seatgate.gate.admission).
FORGOTTEN = FORGET.returning(_F.id).cte("forgotten")
PRUNE = delete(login_failures).where(
    _F.id.in_(select(_F.id).where(_F.at <= bindparam("before")).order_by(_F.at).limit(PRUNE_BATCH))
)


def serialise(conn: Connection, key: str, address: str) -> None:
    """Make concurrent reservations for this login or this address wait for each other.

    SQLite: the write transaction began ``BEGIN IMMEDIATE``, which already
    serialises every writer. PostgreSQL (READ COMMITTED): transaction-level
    advisory locks on the login and on the address, taken in one fixed order
    so that two attempts never wait for each other's second lock; each
    statement after them sees every reservation committed before.

    On PostgreSQL the same statement lets the transaction commit without
    waiting for its WAL to reach the disk (``synchronous_commit`` off, for
    this transaction only): see :func:`durable` and docs/operator.md. What
    it commits is visible to every other transaction at once all the same.
    """
    if conn.dialect.name != "postgresql":
        return
    # One statement; its locks are taken left to right, in sorted order.
    first, second = sorted((_lock_key("login", key), _lock_key("address", address)))
    _LOCK.run(conn, {"first": first, "second": second})


def durable(conn: Connection) -> None:
    """Make the reservation's transaction commit as configured again (PostgreSQL).

    :func:`serialise` lets a reservation commit without waiting for the
    disk: the row it adds is bookkeeping, visible to every other attempt at
    once; a password attempt then ends in a transaction that does wait (the
    admission, or the audit event of its refusal), whose flush covers the
    reservation's WAL too, and the server's WAL writer flushes it within
    moments anyway (docs/security.md, "Failed-login limits"). A reservation
    transaction that writes anything else -- an audit event of a throttle --
    calls this first, so that what it writes is on disk when it commits, as
    every other audited change is.
    """
    if conn.dialect.name == "postgresql":
        conn.execute(_DURABLE)


def _lock_key(kind: str, value: str) -> int:
    digest = hashlib.sha256(f"seatgate:ratelimit:{kind}:{value}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def upsert_success(conn: Connection, key: str, address: str, now: datetime) -> None:
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


def forget_failures(
    conn: Connection, key: str, address: str, device: str | None, reserved: int
) -> None:
    """After a success: delete the attempt's reservation and the failures it forgives.

    A success through a device cookie forgets that device's failures only:
    the pair's may be a guesser's at the same NAT address, and the user's
    login must not give them a fresh allowance.
    """
    forgotten = (
        _F.device == device
        if device is not None
        else and_(_F.login_key == key, _F.address == address)
    )
    conn.execute(delete(login_failures).where(or_(forgotten, _F.id == reserved)))
