"""The login decision: one function that every front door calls.

Order (the first failure is the answer):

1. normalise the login and apply the rate limit;
2. unknown account: verify against a dummy hash (same cost) → ``invalid_credentials``;
3. wrong or empty password → ``invalid_credentials``;
4. disabled or deleted account → ``account_disabled``;
5. no valid entitlement → ``license_invalid``;
6. holds a seat → allowed; else claim a free one if allowed → allowed;
   else ``no_seat_available``.

Seat and licence reasons come only after the password verified, so a guesser
learns nothing from them. Every decision is audited.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy import Connection, update

from seatgate.accounts.logins import login_key
from seatgate.accounts.passwords import MAX_PASSWORD_LENGTH, PasswordHasher
from seatgate.accounts.service import Accounts
from seatgate.audit import log as audit
from seatgate.clock import Clock
from seatgate.errors import DirectoryAccountBlocked, DirectoryUnavailable, InvalidLogin
from seatgate.licensing.service import Licensing
from seatgate.records import Account
from seatgate.seats.ledger import Claim, SeatLedger
from seatgate.storage.db import Database
from seatgate.storage.schema import accounts

log = logging.getLogger(__name__)


# login_key() refuses control characters, so no real login has this key.
INVALID_LOGIN_KEY = "\x1finvalid-login"


class Reason(enum.StrEnum):
    """Why a login was refused (the codes every front door reports)."""

    INVALID_CREDENTIALS = "invalid_credentials"
    ACCOUNT_DISABLED = "account_disabled"
    LICENSE_INVALID = "license_invalid"
    NO_SEAT_AVAILABLE = "no_seat_available"
    RATE_LIMITED = "rate_limited"
    DIRECTORY_UNAVAILABLE = "directory_unavailable"


@dataclass(frozen=True)
class Decision:
    """The answer to one login attempt."""

    allowed: bool
    reason: Reason | None
    message: str
    account: Account | None = None
    seat_claimed: bool = False
    seats_total: int | None = None

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


class RateLimiter(Protocol):
    """Throttles repeated failed attempts (per login, per client address)."""

    def allow(self, key: str, address: str | None) -> bool:
        """Whether an attempt for ``key`` from ``address`` may proceed."""
        ...

    def failed(self, key: str, address: str | None) -> None:
        """Record a failed attempt."""
        ...

    def succeeded(self, key: str, address: str | None) -> None:
        """Record a successful attempt."""
        ...


class NoRateLimit:
    """Never throttles; for the CLI (``Core.build`` without ``rate_limited``).

    Whoever can run the CLI against an installation can read its
    configuration and database, password hashes included, so throttling
    ``seatgate login`` there would stop no guesser; and it has no client
    address to count failures by.
    """

    def allow(self, key: str, address: str | None) -> bool:
        return True

    def failed(self, key: str, address: str | None) -> None:
        return None

    def succeeded(self, key: str, address: str | None) -> None:
        return None


class LocalPasswords:
    """Verifies local and CSV accounts against their argon2id hash."""

    def __init__(self, hasher: PasswordHasher) -> None:
        self.hasher = hasher

    def verify(self, account: Account, password: str) -> bool:
        return self.hasher.verify(account.password_hash, password)


MESSAGES: Mapping[Reason, str] = {
    Reason.INVALID_CREDENTIALS: "Unknown login or wrong password.",
    Reason.ACCOUNT_DISABLED: "This account is disabled. Ask an administrator.",
    Reason.LICENSE_INVALID: "The portal has no valid licence. Ask an administrator.",
    Reason.NO_SEAT_AVAILABLE: (
        "All {seats} seats of the licence are in use. Ask an administrator for a seat."
    ),
    Reason.RATE_LIMITED: "Too many failed attempts. Wait a few minutes and try again.",
    Reason.DIRECTORY_UNAVAILABLE: "The directory cannot be reached. Try again later.",
}


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
    ) -> None:
        self.db = db
        self.clock = clock
        self.accounts = accounts
        self.ledger = ledger
        self.licensing = licensing
        self.hasher = hasher
        self.verifiers = dict(verifiers)
        self.rate_limiter = rate_limiter or NoRateLimit()

    def decide(self, login: str, password: str, *, address: str | None = None) -> Decision:
        """Decide one login attempt; never raises for a refusal, always audits."""
        try:
            key = login_key(login)
        except InvalidLogin:
            key = None
        # Unusable logins are throttled too (under one key no login can have),
        # or they would buy unlimited dummy verifications.
        limit_key = key if key is not None else INVALID_LOGIN_KEY
        if not self.rate_limiter.allow(limit_key, address):
            return self._refuse(Reason.RATE_LIMITED, None, login, address)

        account = self.accounts.find(login) if key is not None else None
        if account is None or not _password_acceptable(password):
            # Same cost as a real verification: timing must not tell whether
            # the login exists.
            self.hasher.verify_dummy(_encodable(password))
            self._failed(limit_key, address)
            return self._refuse(Reason.INVALID_CREDENTIALS, account, login, address)

        verifier = self.verifiers.get(account.source)
        if verifier is None:
            log.warning(
                "no password verifier for %s accounts; refusing %s", account.source, account.login
            )
            self.hasher.verify_dummy(password)
            self._failed(limit_key, address)
            return self._refuse(Reason.INVALID_CREDENTIALS, account, login, address)
        try:
            verified = verifier.verify(account, password)
        except DirectoryUnavailable as exc:
            # Never fall back to another password store: the directory decides.
            log.warning("directory login for %s failed: %s", account.login, exc)
            return self._refuse(Reason.DIRECTORY_UNAVAILABLE, None, login, address, detail=str(exc))
        except DirectoryAccountBlocked as exc:
            # The directory only says this after the password matched.
            return self._refuse(
                Reason.ACCOUNT_DISABLED, account, login, address, detail=exc.meaning
            )
        if not verified:
            self._failed(limit_key, address)
            return self._refuse(Reason.INVALID_CREDENTIALS, account, login, address)
        # The password is right: from here on, the reason may be told.
        if account.status != "active":
            return self._refuse(Reason.ACCOUNT_DISABLED, account, login, address)

        state = self.licensing.refresh_if_stale(self.ledger.state())
        now = self.clock.now()
        if not state.is_valid(now):
            return self._refuse(
                Reason.LICENSE_INVALID, account, login, address, detail=state.invalid_reason(now)
            )
        # Hashed here, before any transaction: argon2 is slow on purpose and
        # must not run while a lock is held.
        new_hash = (
            self.hasher.hash(password)
            if account.source != "ldap" and self.hasher.needs_rehash(account.password_hash or "")
            else None
        )

        def held(conn: Connection) -> Claim | None:
            now = self.clock.now()
            if not self.ledger.touch_in(conn, account.id, now):
                return None
            self._admit_in(conn, account, address, new_hash, claimed=False)
            return Claim.HELD

        def claim(conn: Connection) -> Claim:
            now = self.clock.now()
            outcome = self.ledger.claim_in(conn, account.id, now)
            if outcome in (Claim.GRANTED, Claim.HELD):
                self.ledger.touch_in(conn, account.id, now)
                self._admit_in(conn, account, address, new_hash, claimed=outcome is Claim.GRANTED)
            return outcome

        # An already-held seat is the common case: it takes no seat lock.
        outcome = self.ledger.holds_seat(account.id) and self.db.write(held)
        if not outcome:
            outcome = self.db.write(claim)
        if outcome in (Claim.GRANTED, Claim.HELD):
            self.rate_limiter.succeeded(limit_key, address)
            return Decision(
                allowed=True,
                reason=None,
                message="Welcome.",
                account=account,
                seat_claimed=outcome is Claim.GRANTED,
            )
        if outcome is Claim.LICENSE_INVALID:
            reason = self.ledger.state().invalid_reason(self.clock.now())
            return self._refuse(Reason.LICENSE_INVALID, account, login, address, detail=reason)
        if outcome is Claim.NOT_ACTIVE:
            return self._refuse(Reason.ACCOUNT_DISABLED, account, login, address)
        if outcome is Claim.NOT_ALLOWED:
            return self._refuse(
                Reason.NO_SEAT_AVAILABLE,
                account,
                login,
                address,
                detail="manual assignment",
                message="No seat is assigned to this account. Ask an administrator for one.",
            )
        seats_total = self.ledger.state().seats_total
        reserve = self.ledger.config.reserved_for_admins
        return self._refuse(
            Reason.NO_SEAT_AVAILABLE,
            account,
            login,
            address,
            seats_total=seats_total,
            message=MESSAGES[Reason.NO_SEAT_AVAILABLE].format(seats=seats_total)
            + (f" (Kept free for administrators: {reserve}.)" if reserve else ""),
        )

    def _admit_in(
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

    def _failed(self, key: str, address: str | None) -> None:
        self.rate_limiter.failed(key, address)

    def _refuse(
        self,
        reason: Reason,
        account: Account | None,
        login: str,
        address: str | None,
        *,
        seats_total: int | None = None,
        detail: str | None = None,
        message: str | None = None,
    ) -> Decision:
        subject = account.login if account is not None else str(login)[:256]
        details: dict[str, object] = {"address": address, "known": account is not None}
        if detail:
            details["detail"] = detail
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
        return Decision(
            allowed=False,
            reason=reason,
            message=message or MESSAGES[reason].format(seats=seats_total),
            account=account if reason is not Reason.INVALID_CREDENTIALS else None,
            seats_total=seats_total,
        )


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


__all__ = ["Decision", "LoginGate", "PasswordVerifier", "RateLimiter", "Reason"]
