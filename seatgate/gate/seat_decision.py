"""The part of the login decision every door shares: from "account disabled" onward.

A door -- the password form, a directory bind, a Kerberos ticket, an
identity a trusted proxy asserts -- first establishes who the user is, its
own way. From then on every door goes through :class:`SeatDecision`: the
account's status, the licence, the seat it holds or claims, the reason
codes of a refusal and one audit event per decision, which names the
``method`` the user was authenticated by. So a user without a seat is
refused the same way whichever door they came through.
"""

from __future__ import annotations

from dataclasses import replace
from typing import assert_never

from seatgate.audit import log as audit
from seatgate.clock import Clock
from seatgate.gate.admission import STALE, Admission, Admitter, Refused, refused_as
from seatgate.gate.outcome import Decision, Method
from seatgate.gate.ratelimit import RateLimiter, Reservation
from seatgate.gate.refusals import Reason, Refusal, RefusalKind
from seatgate.licensing.service import Licensing
from seatgate.seats.ledger import Claim, SeatLedger
from seatgate.seats.requests import SeatRequests
from seatgate.storage.db import Database


class SeatDecision:
    """Admits an authenticated account, or refuses it saying why; audits either way."""

    def __init__(
        self,
        *,
        db: Database,
        clock: Clock,
        ledger: SeatLedger,
        licensing: Licensing,
        admitter: Admitter,
        rate_limiter: RateLimiter,
    ) -> None:
        self.db = db
        self.clock = clock
        self.ledger = ledger
        self.licensing = licensing
        self.admitter = admitter
        self.rate_limiter = rate_limiter
        self.requests = SeatRequests(db, clock, ledger)

    def admit(self, admission: Admission, *, typed: str) -> Decision:
        """Account status, licence, then the seat: allowed, or refused saying why.

        ``typed`` is the login as the user gave it (for the audit event of a refusal).
        """
        account = admission.account
        if account.status != "active":
            disabled = refused_as(RefusalKind.ACCOUNT_DISABLED, account)
            return self._refused(admission, typed, disabled)
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
        if isinstance(outcome, Refused):
            return self._refused(admission, typed, outcome)
        assert isinstance(outcome, Claim)  # noqa: S101 - STALE is handled above
        return self._refused(admission, typed, self._claim_refusal(admission, outcome))

    def _refused(self, admission: Admission, typed: str, refused: Refused) -> Decision:
        # The password was right: the attempt is no failure of the rate limiter's.
        self.release(admission.reservation)
        return self.refuse(typed, admission.address, admission.method, refused)

    def release(self, reservation: Reservation | None) -> None:
        """Give a rate-limiter reservation back (doors without one have nothing to give)."""
        if reservation is not None:
            self.rate_limiter.release(reservation)

    def _claim_refusal(self, admission: Admission, outcome: Claim) -> Refused:
        """The refusal a claim outcome comes to (every outcome handled, or mypy fails)."""
        account = admission.account
        match outcome:
            case Claim.GRANTED | Claim.HELD:
                raise AssertionError("an admitted claim is no refusal")
            case Claim.LICENSE_INVALID:
                detail = self.ledger.state().invalid_reason(self.clock.now())
                return refused_as(RefusalKind.LICENSE_INVALID, account, detail)
            case Claim.NOT_ACTIVE:
                return refused_as(RefusalKind.ACCOUNT_DISABLED, account)
            case Claim.NOT_ALLOWED:
                return Refused(
                    self._requested(admission, Refusal.not_assigned()), account, "manual assignment"
                )
            case Claim.NO_SEAT:
                seats = Refusal.seats_taken(
                    self.ledger.state().seats_total, self.ledger.config.reserved_for_admins
                )
                return Refused(self._requested(admission, seats), account)
            case _:
                assert_never(outcome)

    def _requested(self, admission: Admission, refusal: Refusal) -> Refusal:
        """Record the account's seat request (the password, if any, verified): the
        refusal then says so."""
        account = admission.account
        self.requests.record(account.id, account.login)
        return replace(refusal, requested=True)

    def refuse(self, typed: str, address: str | None, method: Method, refused: Refused) -> Decision:
        """Audit the refusal (with the door's ``method``), then answer it."""
        account = refused.account
        reason = refused.refusal.reason
        subject = account.login if account is not None else str(typed)[:256]
        details: dict[str, object] = {
            "address": address,
            "known": account is not None,
            "method": method.value,
        }
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
