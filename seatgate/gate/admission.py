"""Admitting an authenticated login: one transaction from the re-read to the audit.

In that transaction the account's status and the stored entitlement are
read again (one statement, with whether the account holds a seat), then
the login is admitted on the seat it holds -- no seat lock -- or claims one
under the lock, and its last login, the rate limiter's bookkeeping and its
audit event are written. So nothing checked before the slow password
verification is trusted after it, and a login costs two transactions: this
one and the reservation before the verification. On PostgreSQL a routine
login on a held seat writes all of that in one statement after the re-read
(:mod:`seatgate.gate.seated_login`).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, exists, select

from seatgate.accounts.service import Accounts
from seatgate.audit import log as audit
from seatgate.audit.hashing import key_for
from seatgate.clock import Clock
from seatgate.gate import seated_login as seated
from seatgate.gate.outcome import Method
from seatgate.gate.ratelimit import RateLimiter, Reservation
from seatgate.gate.refusals import Refusal, RefusalKind
from seatgate.records import Account
from seatgate.seats.ledger import Claim, SeatLedger
from seatgate.seats.state import state_columns, state_from_row
from seatgate.storage.driver_statement import DriverStatement
from seatgate.storage.schema import accounts, license_state, seats


@dataclass(frozen=True)
class Refused:
    """A refusal on its way to the audit log.

    ``account`` is the account the audit event names (``None``: the typed
    login); ``detail`` is for the audit log only, never shown to the user.
    """

    refusal: Refusal
    account: Account | None
    detail: str | None = None


def refused_as(kind: RefusalKind, account: Account | None, detail: str | None = None) -> Refused:
    return Refused(Refusal(kind), account, detail)


@dataclass(frozen=True)
class Admission:
    """What admitting an authenticated login needs: who, from where, how it was
    authenticated, and its rate-limiter reservation (``None``: a door that has none)."""

    limit_key: str
    address: str | None
    account: Account
    new_hash: str | None
    reservation: Reservation | None
    method: Method


class Stale(enum.Enum):
    STALE = "stale"


STALE = Stale.STALE
"""The stored entitlement must be recomputed before the login is admitted."""

# Built once: they run on every login.
_STATE = "state_"
_ADMISSION = DriverStatement(
    select(
        accounts.c.status,
        exists().where(seats.c.account_id == accounts.c.id).label("held"),
        *state_columns(_STATE),
    )
    .select_from(accounts.join(license_state, license_state.c.id == 1))
    .where(accounts.c.id == bindparam("id"))
)
_LAST_LOGIN_ALONE = DriverStatement(seated.LAST_LOGIN)


@dataclass(frozen=True)
class _Touched:
    """What marking the held seat used did: ``held``, the seat was there; ``written``, the
    last login; ``forgotten``, the reservation given back; ``recorded``, the audit event."""

    held: bool
    written: bool = False
    forgotten: bool = False
    recorded: bool = False


class Admitter:
    """Admits verified logins (see the module docstring)."""

    def __init__(
        self, *, clock: Clock, accounts: Accounts, ledger: SeatLedger, rate_limiter: RateLimiter
    ) -> None:
        self.clock = clock
        self.accounts = accounts
        self.ledger = ledger
        self.rate_limiter = rate_limiter

    def admit_in(
        self, conn: Connection, admission: Admission, *, fresh_only: bool
    ) -> Claim | Refused | Stale:
        """In one transaction: re-read the account and the licence, then admit on the seat the
        account holds or claim one, and record the success -- or say why not.

        The last work of its transaction: on PostgreSQL its last statement may lock the audit
        chain's head (:mod:`seatgate.gate.seated_login`).
        """
        account = admission.account
        now = self.clock.now()
        row = _ADMISSION.run(conn, {"id": account.id}).first()
        if row is None or row.status != "active":
            return refused_as(RefusalKind.ACCOUNT_DISABLED, account)
        state = state_from_row(row, _STATE)
        if fresh_only and (state.trial or state.stale(now)):
            return STALE
        if not state.is_valid(now):
            return refused_as(RefusalKind.LICENSE_INVALID, account, state.invalid_reason(now))
        # An already-held seat is the common case: it takes no seat lock.
        touched = self._touch_in(conn, admission, now) if row.held else _Touched(held=False)
        if touched.recorded:
            return Claim.HELD
        if touched.held:
            outcome = Claim.HELD
        else:
            outcome = self.ledger.claim_in(conn, account.id, now)
            if outcome not in (Claim.GRANTED, Claim.HELD):
                return outcome
            if outcome is Claim.HELD:
                # A granted seat was inserted as used now: no touch under the seat lock.
                self.ledger.touch_in(conn, account.id, now)
        self._admitted_in(
            conn,
            admission,
            claimed=outcome is Claim.GRANTED,
            written=touched.written,
            forgotten=touched.forgotten,
        )
        return outcome

    def _touch_in(self, conn: Connection, admission: Admission, now: datetime) -> _Touched:
        """Mark the seat the account holds used, if it still holds one; on PostgreSQL with
        the last login, a routine success's reservation and, when nothing follows, its
        audit event (:mod:`seatgate.gate.seated_login`)."""
        account = admission.account
        if conn.dialect.name != "postgresql":
            return _Touched(held=self.ledger.touch_in(conn, account.id, now))
        forget = self._routine_row(admission)
        if forget is not None and _nothing_follows(conn, admission):
            event = _login_event(admission, claimed=False, at=now)
            done = seated.admit_in_one(conn, who=account.id, now=now, row=forget, event=event)
            return _Touched(done.held, written=done.held, forgotten=True, recorded=done.chained)
        statement = (
            seated.TOUCH_AND_LAST_LOGIN if forget is None else seated.TOUCH_LAST_LOGIN_AND_FORGET
        )
        params = {"who": account.id, "now": now, "row": forget}
        held = conn.execute(statement, params).first() is not None
        # The reservation deleted whatever came of the touch: a refusal gives it back too.
        return _Touched(held, written=held, forgotten=forget is not None)

    def _routine_row(self, admission: Admission) -> int | None:
        """The reservation row a success only deletes (then in the touch's statement), or None."""
        if admission.reservation is None:
            return None
        return self.rate_limiter.routine_row(admission.address, admission.reservation)

    def _admitted_in(
        self,
        conn: Connection,
        admission: Admission,
        *,
        claimed: bool,
        written: bool,
        forgotten: bool,
    ) -> None:
        account = admission.account
        now = self.clock.now()
        if not written:
            _LAST_LOGIN_ALONE.run(conn, {"who": account.id, "now": now})
        if admission.new_hash is not None:
            self.accounts.rehash_in(conn, account, admission.new_hash, now)
        if admission.reservation is not None and not forgotten:
            self.rate_limiter.succeeded_in(
                conn, admission.limit_key, admission.address, admission.reservation
            )
        audit.record_many(conn, [_login_event(admission, claimed=claimed, at=now)])


def _nothing_follows(conn: Connection, admission: Admission) -> bool:
    """Whether the login's audit event may be chained with the touch: nothing else left for
    the transaction to write (no new hash, no audit event waiting) and a plain chain."""
    return (
        admission.new_hash is None and key_for(conn.engine) is None and audit.nothing_pending(conn)
    )


def _login_event(admission: Admission, *, claimed: bool, at: datetime) -> dict[str, Any]:
    """The audit event of an admitted login."""
    login = admission.account.login
    details = {
        "address": admission.address,
        "seat_claimed": claimed,
        "method": admission.method.value,
    }
    return audit.event_row(
        at=at, actor=login, action="login", subject=login, outcome="allowed", details=details
    )
