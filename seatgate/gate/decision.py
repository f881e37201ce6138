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

from sqlalchemy import Connection

from seatgate.accounts.logins import login_key
from seatgate.accounts.passwords import MAX_PASSWORD_LENGTH, PasswordHasher
from seatgate.accounts.service import Accounts
from seatgate.audit import log as audit
from seatgate.clock import Clock
from seatgate.errors import DirectoryAccountBlocked, DirectoryUnavailable, InvalidLogin
from seatgate.gate.admission import STALE, Admission, Admitter, Refused, refused_as
from seatgate.gate.equal_cost import EqualCost
from seatgate.gate.ratelimit import NoRateLimit, RateLimiter, Reservation
from seatgate.gate.refusals import MESSAGES, Reason, Refusal, RefusalKind
from seatgate.gate.slots import BUSY_RETRY_AFTER_SECONDS, VerificationSlots
from seatgate.gate.throttles import BusyTally
from seatgate.licensing.service import Licensing
from seatgate.records import Account
from seatgate.seats.ledger import Claim, SeatLedger
from seatgate.storage.db import Database

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
        self.admitter = Admitter(
            clock=clock, accounts=accounts, ledger=ledger, rate_limiter=self.rate_limiter
        )

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
            reservation, account = self._reserve_and_find(attempt)
            if not reservation.allowed:
                throttled = Refusal(RefusalKind.RATE_LIMITED)
                return Decision(throttled, retry_after=reservation.retry_after)
            authenticated = self._authenticate(attempt, account, password)
        if isinstance(authenticated, Refused):
            if authenticated.refusal.kind is not RefusalKind.INVALID_CREDENTIALS:
                self.rate_limiter.release(reservation)
            return self._refuse(attempt, authenticated)
        return self._admit(attempt, authenticated, password, reservation)

    def _reserve_and_find(self, attempt: _Attempt) -> tuple[Reservation, Account | None]:
        """Reserve the attempt with the rate limiter and look its account up: one transaction,
        committed before the password is verified (parallel guesses see the reservation)."""

        def work(conn: Connection) -> tuple[Reservation, Account | None]:
            reservation = self.rate_limiter.reserve_in(
                conn, attempt.limit_key, attempt.address, attempt.device
            )
            if not reservation.allowed or attempt.key is None:
                return reservation, None
            return reservation, self.accounts.find_in(conn, attempt.login)

        if self.rate_limiter.writes(attempt.address):
            return self.db.write(work)
        return self.db.read(work)

    # -- authenticate: account, password (the attempt is reserved) -----------

    def _authenticate(
        self, attempt: _Attempt, account: Account | None, password: str
    ) -> Account | Refused:
        """The account whose password this is, or why not (nothing but the password told)."""
        if account is None or not _password_acceptable(password):
            # Same cost and answer as a real verification (seatgate.gate.equal_cost).
            outage = self.costs.without_account(_encodable(password), account)
            if outage is not None:
                return refused_as(RefusalKind.DIRECTORY_UNAVAILABLE, None, outage)
            return self._wrong_password(attempt, account)
        return self._verify(attempt, account, password)

    def _verify(self, attempt: _Attempt, account: Account, password: str) -> Account | Refused:
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
            return refused_as(RefusalKind.DIRECTORY_UNAVAILABLE, None, str(exc))
        except DirectoryAccountBlocked as exc:
            # The directory only says this after the password matched.
            return refused_as(RefusalKind.ACCOUNT_DISABLED, account, exc.meaning)
        return account if verified else self._wrong_password(attempt, account)

    def _wrong_password(self, attempt: _Attempt, account: Account | None) -> Refused:
        # The attempt's reservation stays: it is the recorded failure.
        return refused_as(RefusalKind.INVALID_CREDENTIALS, account)

    # -- admit: the password is right, so from here on the reason may be told --

    def _admit(
        self, attempt: _Attempt, account: Account, password: str, reservation: Reservation
    ) -> Decision:
        """Account status, licence, then the seat: allowed, or refused saying why."""
        if account.status != "active":
            self.rate_limiter.release(reservation)
            return self._refuse(attempt, refused_as(RefusalKind.ACCOUNT_DISABLED, account))
        # Hashed here, before any transaction: argon2 is slow on purpose and
        # must not run while a lock is held.
        new_hash = (
            self.hasher.hash(password)
            if account.source != "ldap" and self.hasher.needs_rehash(account.password_hash or "")
            else None
        )
        admission = Admission(attempt.limit_key, attempt.address, account, new_hash, reservation)
        outcome = self.db.write(
            lambda conn: self.admitter.admit_in(conn, admission, fresh_only=True)
        )
        if outcome is STALE:
            # A trial (its clock high-water mark moves) or an entitlement past
            # its expiry: recompute, then decide on what that stored.
            self.licensing.refresh_if_stale(self.ledger.state())
            outcome = self.db.write(
                lambda conn: self.admitter.admit_in(conn, admission, fresh_only=False)
            )
        if outcome in (Claim.GRANTED, Claim.HELD):
            return Decision(None, account=account, seat_claimed=outcome is Claim.GRANTED)
        self.rate_limiter.release(reservation)
        if isinstance(outcome, Refused):
            return self._refuse(attempt, outcome)
        assert isinstance(outcome, Claim)  # noqa: S101 - STALE is handled above
        return self._settle(attempt, account, outcome)

    def _settle(self, attempt: _Attempt, account: Account, outcome: Claim) -> Decision:
        """The decision a claim outcome comes to (every outcome handled, or mypy fails)."""
        match outcome:
            case Claim.GRANTED | Claim.HELD:
                return Decision(None, account=account, seat_claimed=outcome is Claim.GRANTED)
            case Claim.LICENSE_INVALID:
                detail = self.ledger.state().invalid_reason(self.clock.now())
                refused = refused_as(RefusalKind.LICENSE_INVALID, account, detail)
            case Claim.NOT_ACTIVE:
                refused = refused_as(RefusalKind.ACCOUNT_DISABLED, account)
            case Claim.NOT_ALLOWED:
                refused = Refused(Refusal.not_assigned(), account, "manual assignment")
            case Claim.NO_SEAT:
                seats = Refusal.seats_taken(
                    self.ledger.state().seats_total, self.ledger.config.reserved_for_admins
                )
                refused = Refused(seats, account)
            case _:
                assert_never(outcome)
        return self._refuse(attempt, refused)

    # -- refuse: audit, then answer -------------------------------------------

    def _refuse(self, attempt: _Attempt, refused: Refused) -> Decision:
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
