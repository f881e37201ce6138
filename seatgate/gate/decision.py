"""The login decision: one function that every front door calls.

Order (the first failure is the answer):

1. normalise the login and apply the rate limit;
2. unknown account: verify against a dummy hash (same cost) → ``invalid_credentials``
   (with a directory, the cost and outage answer of a directory login too);
3. wrong or empty password → ``invalid_credentials``;
4. disabled or deleted account → ``account_disabled``;
5. no valid entitlement → ``license_invalid``;
6. holds a seat → allowed; else claim a free one if allowed → allowed;
   else ``no_seat_available`` (kind ``seats_taken``, or ``not_assigned``
   under manual assignment -- see :mod:`seatgate.gate.refusals`).

Steps 1-3 authenticate, steps 4-6 admit; a refusal at any step is audited
and answered by one function. Seat and licence reasons come only after the
password verified, so a guesser learns nothing from them. Every decision is
audited. Argon2 (the dummy verify, the real one, a rehash) never runs inside
a transaction or under the seat lock.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol, assert_never

from sqlalchemy import Connection, update

from seatgate.accounts.logins import login_key
from seatgate.accounts.passwords import MAX_PASSWORD_LENGTH, PasswordHasher
from seatgate.accounts.service import Accounts
from seatgate.audit import log as audit
from seatgate.clock import Clock
from seatgate.errors import DirectoryAccountBlocked, DirectoryUnavailable, InvalidLogin
from seatgate.gate.equal_cost import EqualCost
from seatgate.gate.ratelimit import NoRateLimit, RateLimiter, Reservation
from seatgate.gate.refusals import MESSAGES, Reason, Refusal, RefusalKind
from seatgate.gate.slots import BUSY_RETRY_AFTER_SECONDS, VerificationSlots
from seatgate.gate.throttles import BusyTally
from seatgate.licensing.service import Licensing
from seatgate.records import Account
from seatgate.seats.ledger import Claim, SeatLedger
from seatgate.storage.db import Database
from seatgate.storage.schema import accounts

log = logging.getLogger(__name__)


# login_key() refuses control characters, so no real login has this key.
INVALID_LOGIN_KEY = "\x1finvalid-login"
WELCOME = "Welcome."


@dataclass(frozen=True)
class Decision:
    """The answer to one login attempt: allowed, or refused with a :class:`Refusal`."""

    refusal: Refusal | None
    account: Account | None = None
    seat_claimed: bool = False
    # Seconds a throttled (429) client should wait before trying again.
    retry_after: int | None = None

    @property
    def allowed(self) -> bool:
        """Whether the login may proceed."""
        return self.refusal is None

    @property
    def reason(self) -> Reason | None:
        """The public reason code of a refusal (``None`` when allowed)."""
        return None if self.refusal is None else self.refusal.reason

    @property
    def message(self) -> str:
        """The answer in English (front doors with their own language render :attr:`refusal`)."""
        return WELCOME if self.refusal is None else self.refusal.message

    @property
    def seats_total(self) -> int | None:
        """The licence's seat count when no seat was free (``None`` otherwise)."""
        return None if self.refusal is None else self.refusal.seats_total

    def __str__(self) -> str:
        return "allowed" if self.allowed else f"refused: {self.reason}"


class PasswordVerifier(Protocol):
    """Checks an account's password: argon2 for local accounts, a bind for directory ones."""

    def verify(self, account: Account, password: str) -> bool:
        """Return whether ``password`` is the account's password.

        May raise :class:`~seatgate.errors.SeatgateError` subclasses the gate
        maps to a reason (for example, the directory is unreachable).
        """
        ...


class LocalPasswords:
    """Verifies local and CSV accounts against their argon2id hash."""

    def __init__(self, hasher: PasswordHasher) -> None:
        self.hasher = hasher

    def verify(self, account: Account, password: str) -> bool:
        return self.hasher.verify(account.password_hash, password)


@dataclass(frozen=True)
class _Attempt:
    """One login attempt as typed: the login, its key and where it came from."""

    login: str
    key: str | None  # None: no account can have this login
    address: str | None
    device: str | None = None

    @property
    def limit_key(self) -> str:
        # Unusable logins are throttled too (under one key no login can have),
        # or they would buy unlimited dummy verifications.
        return self.key if self.key is not None else INVALID_LOGIN_KEY


@dataclass(frozen=True)
class _Refused:
    """A refusal on its way to the audit log.

    ``account`` is the account the audit event names (``None``: the typed
    login); ``detail`` is for the audit log only, never shown to the user.
    """

    refusal: Refusal
    account: Account | None
    detail: str | None = None


def _refused_as(kind: RefusalKind, account: Account | None, detail: str | None = None) -> _Refused:
    return _Refused(Refusal(kind), account, detail)


class LoginGate:
    """Makes the login decision."""

    def __init__(
        self,
        *,
        db: Database,
        clock: Clock,
        accounts: Accounts,
        ledger: SeatLedger,
        licensing: Licensing,
        hasher: PasswordHasher,
        verifiers: Mapping[str, PasswordVerifier],
        rate_limiter: RateLimiter | None = None,
        slots: VerificationSlots | None = None,
    ) -> None:
        self.db = db
        self.clock = clock
        self.accounts = accounts
        self.ledger = ledger
        self.licensing = licensing
        self.hasher = hasher
        self.verifiers = dict(verifiers)
        self.costs = EqualCost(hasher, self.verifiers)
        self.rate_limiter = rate_limiter or NoRateLimit()
        # Unbounded unless given: the CLI verifies one password at a time.
        self.slots = slots
        self.busy = BusyTally()

    def decide(
        self, login: str, password: str, *, address: str | None = None, device: str | None = None
    ) -> Decision:
        """Decide one login attempt; never raises for a refusal, always audits (throttled
        attempts in aggregate). ``device``: the id of a valid device cookie for this login
        (:mod:`seatgate.gate.devices`), which the rate limiter counts on its own."""
        try:
            key: str | None = login_key(login)
        except InvalidLogin:
            key = None
        attempt = _Attempt(login=login, key=key, address=address, device=device)
        # Throttled and busy refusals are audited in aggregate, never one
        # event each (seatgate.gate.throttles): they come at request rate.
        slot = self.slots.take() if self.slots is not None else contextlib.nullcontext()
        if slot is None:
            self.busy.refused(self.db, self.clock.now())
            return Decision(Refusal(RefusalKind.RATE_LIMITED), retry_after=BUSY_RETRY_AFTER_SECONDS)
        with slot:
            reservation = self.rate_limiter.reserve(
                attempt.limit_key, attempt.address, attempt.device
            )
            if not reservation.allowed:
                throttled = Refusal(RefusalKind.RATE_LIMITED)
                return Decision(throttled, retry_after=reservation.retry_after)
            authenticated = self._authenticate(attempt, password)
        if isinstance(authenticated, _Refused):
            if authenticated.refusal.kind is not RefusalKind.INVALID_CREDENTIALS:
                self.rate_limiter.release(reservation)
            return self._refuse(attempt, authenticated)
        return self._admit(attempt, authenticated, password, reservation)

    # -- authenticate: account, password (the attempt is reserved) -----------

    def _authenticate(self, attempt: _Attempt, password: str) -> Account | _Refused:
        """The account whose password this is, or why not (nothing but the password told)."""
        account = self.accounts.find(attempt.login) if attempt.key is not None else None
        if account is None or not _password_acceptable(password):
            # Same cost and answer as a real verification (seatgate.gate.equal_cost).
            outage = self.costs.without_account(_encodable(password), account)
            if outage is not None:
                return _refused_as(RefusalKind.DIRECTORY_UNAVAILABLE, None, outage)
            return self._wrong_password(attempt, account)
        return self._verify(attempt, account, password)

    def _verify(self, attempt: _Attempt, account: Account, password: str) -> Account | _Refused:
        verifier = self.verifiers.get(account.source)
        if verifier is None:
            log.warning(
                "no password verifier for %s accounts; refusing %s", account.source, account.login
            )
            self.hasher.verify_dummy(password)
            return self._wrong_password(attempt, account)
        try:
            verified = self.costs.verify(verifier, account, password)
        except DirectoryUnavailable as exc:
            # Never fall back to another password store: the directory decides.
            log.warning("directory login for %s failed: %s", account.login, exc)
            return _refused_as(RefusalKind.DIRECTORY_UNAVAILABLE, None, str(exc))
        except DirectoryAccountBlocked as exc:
            # The directory only says this after the password matched.
            return _refused_as(RefusalKind.ACCOUNT_DISABLED, account, exc.meaning)
        return account if verified else self._wrong_password(attempt, account)

    def _wrong_password(self, attempt: _Attempt, account: Account | None) -> _Refused:
        # The attempt's reservation stays: it is the recorded failure.
        return _refused_as(RefusalKind.INVALID_CREDENTIALS, account)

    # -- admit: the password is right, so from here on the reason may be told --

    def _admit(
        self, attempt: _Attempt, account: Account, password: str, reservation: Reservation
    ) -> Decision:
        """Account status, licence, then the seat: allowed, or refused saying why."""
        refused = self._account_or_licence_refusal(account)
        if refused is not None:
            self.rate_limiter.release(reservation)
            return self._refuse(attempt, refused)
        # Hashed here, before any transaction: argon2 is slow on purpose and
        # must not run while a lock is held.
        new_hash = (
            self.hasher.hash(password)
            if account.source != "ldap" and self.hasher.needs_rehash(account.password_hash or "")
            else None
        )
        outcome = self._seat(account, attempt.address, new_hash)
        if outcome in (Claim.GRANTED, Claim.HELD):
            self.rate_limiter.succeeded(attempt.limit_key, attempt.address, reservation)
        else:
            self.rate_limiter.release(reservation)
        return self._settle(attempt, account, outcome)

    def _account_or_licence_refusal(self, account: Account) -> _Refused | None:
        if account.status != "active":
            return _refused_as(RefusalKind.ACCOUNT_DISABLED, account)
        state = self.licensing.refresh_if_stale(self.ledger.state())
        now = self.clock.now()
        if not state.is_valid(now):
            return _refused_as(RefusalKind.LICENSE_INVALID, account, state.invalid_reason(now))
        return None

    def _seat(self, account: Account, address: str | None, new_hash: str | None) -> Claim:
        """Admit on the seat the account holds, else claim one (each one transaction)."""

        def held(conn: Connection) -> bool:
            if not self.ledger.touch_in(conn, account.id, self.clock.now()):
                return False  # released since the read: claim below
            self._admitted_in(conn, account, address, new_hash, claimed=False)
            return True

        def claim(conn: Connection) -> Claim:
            now = self.clock.now()
            outcome = self.ledger.claim_in(conn, account.id, now)
            if outcome in (Claim.GRANTED, Claim.HELD):
                self.ledger.touch_in(conn, account.id, now)
                self._admitted_in(
                    conn, account, address, new_hash, claimed=outcome is Claim.GRANTED
                )
            return outcome

        # An already-held seat is the common case: it takes no seat lock.
        if self.ledger.holds_seat(account.id) and self.db.write(held):
            return Claim.HELD
        return self.db.write(claim)

    def _settle(self, attempt: _Attempt, account: Account, outcome: Claim) -> Decision:
        """The decision a claim outcome comes to (every outcome handled, or mypy fails)."""
        match outcome:
            case Claim.GRANTED | Claim.HELD:
                return Decision(None, account=account, seat_claimed=outcome is Claim.GRANTED)
            case Claim.LICENSE_INVALID:
                detail = self.ledger.state().invalid_reason(self.clock.now())
                refused = _refused_as(RefusalKind.LICENSE_INVALID, account, detail)
            case Claim.NOT_ACTIVE:
                refused = _refused_as(RefusalKind.ACCOUNT_DISABLED, account)
            case Claim.NOT_ALLOWED:
                refused = _Refused(Refusal.not_assigned(), account, "manual assignment")
            case Claim.NO_SEAT:
                seats = Refusal.seats_taken(
                    self.ledger.state().seats_total, self.ledger.config.reserved_for_admins
                )
                refused = _Refused(seats, account)
            case _:
                assert_never(outcome)
        return self._refuse(attempt, refused)

    def _admitted_in(
        self,
        conn: Connection,
        account: Account,
        address: str | None,
        new_hash: str | None,
        *,
        claimed: bool,
    ) -> None:
        now = self.clock.now()
        conn.execute(update(accounts).where(accounts.c.id == account.id).values(last_login_at=now))
        if new_hash is not None:
            self.accounts.rehash_in(conn, account, new_hash, now)
        audit.record(
            conn,
            at=now,
            actor=account.login,
            action="login",
            subject=account.login,
            outcome="allowed",
            details={"address": address, "seat_claimed": claimed},
        )

    # -- refuse: audit, then answer -------------------------------------------

    def _refuse(self, attempt: _Attempt, refused: _Refused) -> Decision:
        account = refused.account
        reason = refused.refusal.reason
        subject = account.login if account is not None else str(attempt.login)[:256]
        details: dict[str, object] = {"address": attempt.address, "known": account is not None}
        if refused.detail:
            details["detail"] = refused.detail
        self.db.write(
            lambda conn: audit.record(
                conn,
                at=self.clock.now(),
                actor=subject,
                action="login",
                subject=subject,
                outcome=reason.value,
                details=details,
            )
        )
        # A wrong password names no account: the answer must read the same
        # as for a login that does not exist.
        shown = account if reason is not Reason.INVALID_CREDENTIALS else None
        return Decision(refused.refusal, account=shown)


def _password_acceptable(password: object) -> bool:
    # An empty password is refused before any verification: a directory
    # would treat DN + empty password as an anonymous bind that "succeeds".
    return (
        isinstance(password, str)
        and bool(password.strip())
        and len(password) <= MAX_PASSWORD_LENGTH
        and _encodable(password) == password
    )


def _encodable(password: object) -> str:
    """``password`` with anything UTF-8 cannot hold (lone surrogates) replaced."""
    if not isinstance(password, str):
        return ""
    return password.encode("utf-8", "replace").decode("utf-8")


__all__ = [
    "MESSAGES",
    "Decision",
    "LoginGate",
    "NoRateLimit",
    "PasswordVerifier",
    "RateLimiter",
    "Reason",
    "Refusal",
    "RefusalKind",
    "Reservation",
]
