"""The login decision: one function that every front door calls.

Order (the first failure is the answer):

1. normalise the login and apply the rate limit (every form of a login --
   ``alice``, ``alice@corp.example``, ``CORP\\alice``, see
   :mod:`seatgate.accounts.login_forms` -- counts as that login);
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
from typing import Protocol

from sqlalchemy import Connection

from seatgate.accounts.login_forms import LoginForms
from seatgate.accounts.logins import login_key
from seatgate.accounts.passwords import MAX_PASSWORD_LENGTH, PasswordHasher
from seatgate.accounts.service import Accounts
from seatgate.clock import Clock
from seatgate.errors import DirectoryAccountBlocked, DirectoryUnavailable, InvalidLogin
from seatgate.gate.admission import Admission, Admitter, Refused, refused_as
from seatgate.gate.equal_cost import EqualCost
from seatgate.gate.outcome import WELCOME, Decision, Method
from seatgate.gate.ratelimit import NoRateLimit, RateLimiter, Reservation
from seatgate.gate.refusals import MESSAGES, Reason, Refusal, RefusalKind
from seatgate.gate.seat_decision import SeatDecision
from seatgate.gate.slots import BUSY_RETRY_AFTER_SECONDS, VerificationSlots
from seatgate.gate.throttles import BusyTally
from seatgate.licensing.service import Licensing
from seatgate.records import Account
from seatgate.seats.ledger import SeatLedger
from seatgate.storage.db import Database

log = logging.getLogger(__name__)


# login_key() refuses control characters, so no real login has this key.
INVALID_LOGIN_KEY = "\x1finvalid-login"


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
        forms: LoginForms | None = None,
    ) -> None:
        self.db = db
        self.clock = clock
        self.accounts = accounts
        self.ledger = ledger
        self.licensing = licensing
        self.hasher = hasher
        self.verifiers = dict(verifiers)
        # The forms a login may be typed in (UPN, down-level); default: as stored.
        self.forms = forms or LoginForms()
        self.costs = EqualCost(hasher, self.verifiers)
        self.rate_limiter = rate_limiter or NoRateLimit()
        # Unbounded unless given: the CLI verifies one password at a time.
        self.slots = slots
        self.busy = BusyTally()
        self.admitter = Admitter(
            clock=clock, accounts=accounts, ledger=ledger, rate_limiter=self.rate_limiter
        )
        self.seats = SeatDecision(
            db=db,
            clock=clock,
            ledger=ledger,
            licensing=licensing,
            admitter=self.admitter,
            rate_limiter=self.rate_limiter,
        )

    def decide(
        self, login: str, password: str, *, address: str | None = None, device: str | None = None
    ) -> Decision:
        """Decide one login attempt; never raises for a refusal, always audits (throttled
        attempts in aggregate). ``device``: the id of a valid device cookie for this login
        (:mod:`seatgate.gate.devices`), which the rate limiter counts on its own."""
        try:
            key: str | None = self.forms.limit_key(login)
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
            return reservation, self.accounts.find_signing_in(conn, attempt.login, self.forms)

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
        """The password verified: the decision every door shares (status, licence, seat)."""
        # Hashed here, before any transaction: argon2 is slow on purpose and
        # must not run while a lock is held.
        new_hash = (
            self.hasher.hash(password)
            if account.status == "active"
            and account.source != "ldap"
            and self.hasher.needs_rehash(account.password_hash or "")
            else None
        )
        method = _method_of(account)
        admission = Admission(
            attempt.limit_key, attempt.address, account, new_hash, reservation, method
        )
        return self.seats.admit(admission, typed=attempt.login)

    def _refuse(self, attempt: _Attempt, refused: Refused) -> Decision:
        method = _method_of(refused.account)
        return self.seats.refuse(attempt.login, attempt.address, method, refused)

    # -- other doors: the user is already authenticated ----------------------

    def admit_authenticated(
        self, login: str, *, method: Method, address: str | None = None
    ) -> Decision:
        """Admit a user another mechanism authenticated (a Kerberos ticket, a trusted
        proxy's assertion) through the same seat decision as a password login.

        ``login`` names the account (the door maps its principal or header to
        it). No password is verified and the failed-login rate limiter is not
        involved: the door's own mechanism authenticated the user. The
        decision is audited with ``method``. A login with no account is
        refused ``invalid_credentials``; a disabled one ``account_disabled``.
        """
        if method in (Method.PASSWORD, Method.DIRECTORY):
            raise ValueError(f"{method.value} logins go through decide(), with their password")
        try:
            key = login_key(login)
        except InvalidLogin:
            key = None
        account = (
            None if key is None else self.db.read(lambda conn: self._named(conn, login, method))
        )
        if account is None:
            unknown = refused_as(RefusalKind.INVALID_CREDENTIALS, None, "no account")
            return self.seats.refuse(login, address, method, unknown)
        admission = Admission(key or "", address, account, None, None, method)
        return self.seats.admit(admission, typed=login)

    def _named(self, conn: Connection, login: str, method: Method) -> Account | None:
        # A proxy asserts what its own mechanism saw: mod_auth_gssapi a
        # principal (alice@CORP.EXAMPLE), others a down-level name. Those are
        # the forms a user may type, so they name the same account; a
        # Kerberos door maps its principals itself and passes the login.
        if method is Method.UPSTREAM:
            try:
                return self.accounts.find_signing_in(conn, login, self.forms)
            except InvalidLogin:
                return None
        return self.accounts.find_in(conn, login)


def _method_of(account: Account | None) -> Method:
    """The method of a password attempt: a directory bind for directory accounts."""
    return Method.DIRECTORY if account is not None and account.source == "ldap" else Method.PASSWORD


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
    "WELCOME",
    "Decision",
    "LoginGate",
    "Method",
    "NoRateLimit",
    "PasswordVerifier",
    "RateLimiter",
    "Reason",
    "Refusal",
    "RefusalKind",
    "Reservation",
]
