"""Admin actions and login outcomes shared by the pages and the JSON API.

Both front doors call these, so the form and the API enforce the same
checks -- the ones of the core, which the CLI calls too. Core errors are
translated here into a code, an HTTP status and a message in the
request's language.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Literal

from seatgate.accounts.service import AccountListing
from seatgate.app import Core
from seatgate.errors import (
    AccountNotActive,
    InvalidLogin,
    LicenseInvalid,
    NoSeatAvailable,
    NoSeatRequest,
    SeatAlreadyHeld,
    SeatNotHeld,
    TokenRejected,
    UnknownAccount,
)
from seatgate.gate.decision import Decision, Reason
from seatgate.records import Account
from seatgate.reports.documents import accounts_json

from .context import t

MAX_TOKEN_LENGTH = 64 * 1024
STATUS_OF_REASON: Mapping[Reason, int] = {
    Reason.INVALID_CREDENTIALS: 401,
    Reason.ACCOUNT_DISABLED: 403,
    Reason.LICENSE_INVALID: 403,
    Reason.NO_SEAT_AVAILABLE: 403,
    Reason.RATE_LIMITED: 429,
    Reason.DIRECTORY_UNAVAILABLE: 503,
}


class ActionRefused(Exception):
    """An admin action or a request that cannot be carried out, ready for a response."""

    def __init__(self, code: str, status: int, message: str) -> None:
        self.code = code
        self.status = status
        self.message = message
        super().__init__(message)


def decision_message(decision: Decision) -> str:
    """A refused login in plain words, in the request's language ("" when allowed).

    The core says what the refusal is and which numbers it names; this only
    renders its message keys from the catalogue.
    """
    return decision.refusal.render(t) if decision.refusal is not None else ""


def text_field(data: Mapping[str, object], name: str, *, limit: int = 1024) -> str:
    """``data[name]`` as non-empty text. Raises :class:`ActionRefused` (400)."""
    value = data.get(name)
    if not isinstance(value, str) or not value.strip() or len(value) > limit:
        raise ActionRefused("bad_request", 400, t("bad_request", field=name))
    return value.strip()


class AdminActions:
    """Seat and licence changes made by a signed-in administrator (audited as them)."""

    def __init__(self, core: Core, actor: str) -> None:
        self.core = core
        self.actor = actor

    def assign(self, login: str) -> str:
        account = self._account(login)
        self._run(lambda: self.core.ledger.assign(account.id, actor=self.actor))
        return t("done_assign", login=account.login)

    def revoke(self, login: str) -> str:
        account = self._account(login)
        self._run(lambda: self.core.ledger.revoke(account.id, actor=self.actor))
        return t("done_revoke", login=account.login)

    def reassign(self, source_login: str, target_login: str) -> str:
        source = self._account(source_login)
        target = self._account(target_login)
        self._run(lambda: self.core.ledger.reassign(source.id, target.id, actor=self.actor))
        return t("done_reassign", source=source.login, target=target.login)

    def approve(self, login: str, replace: str | None) -> str:
        """Approve ``login``'s seat request: a free seat, or ``replace``'s seat."""
        account = self._account(login)
        source = self._account(replace) if replace is not None else None
        requests = self.core.seat_requests
        self._run(
            lambda: requests.approve(
                account.id, actor=self.actor, replace=source.id if source else None
            )
        )
        if source is not None:
            return t("done_approve_replace", login=account.login, source=source.login)
        return t("done_approve", login=account.login)

    def deny(self, login: str) -> str:
        """Deny ``login``'s seat request."""
        account = self._account(login)
        self._run(lambda: self.core.seat_requests.deny(account.id, actor=self.actor))
        return t("done_deny", login=account.login)

    def pin(self, login: str, pinned: bool) -> str:
        account = self._account(login)
        self._run(lambda: self.core.ledger.set_pinned(account.id, pinned, actor=self.actor))
        return t("done_pin" if pinned else "done_unpin", login=account.login)

    def describe(self, login: str) -> dict[str, object]:
        account = self._account(login)
        listing = AccountListing(account, self.core.ledger.holds_seat(account.id))
        return accounts_json([listing])[0]

    def set_status(self, login: str, active: bool) -> str:
        account = self._account(login)
        if account.status == "deleted":
            raise ActionRefused(
                "account_deleted", 409, t("account_not_active", login=account.login)
            )
        status: Literal["active", "disabled"] = "active" if active else "disabled"
        self.core.accounts.set_status(account.login, status, actor=self.actor)
        return t("done_enable" if active else "done_disable", login=account.login)

    def install_license(self, text: str) -> str:
        if len(text) > MAX_TOKEN_LENGTH:
            raise ActionRefused("token_rejected", 400, t("token_rejected", reason="too long"))
        try:
            result = self.core.licensing.install(text.strip(), actor=self.actor)
        except TokenRejected as exc:
            raise ActionRefused(
                "token_rejected", 400, t("token_rejected", reason=exc.reason)
            ) from None
        message = t("done_license", jti=result.token.jti)
        if result.released:
            message += " " + t("released", logins=", ".join(result.released))
        return message

    def _account(self, login: str) -> Account:
        try:
            return self.core.accounts.get(login)
        except (UnknownAccount, InvalidLogin):
            raise ActionRefused(
                "unknown_account", 404, t("unknown_account", login=login[:80])
            ) from None

    def _run(self, change: Callable[[], None]) -> None:
        try:
            change()
        except SeatAlreadyHeld as exc:
            raise ActionRefused(
                "seat_already_held", 409, t("seat_already_held", login=exc.login)
            ) from None
        except SeatNotHeld as exc:
            raise ActionRefused("seat_not_held", 409, t("seat_not_held", login=exc.login)) from None
        except NoSeatRequest as exc:
            raise ActionRefused(
                "no_seat_request", 404, t("no_seat_request", login=exc.login)
            ) from None
        except AccountNotActive as exc:
            raise ActionRefused(
                "account_not_active", 409, t("account_not_active", login=exc.login)
            ) from None
        except LicenseInvalid:
            raise ActionRefused("license_invalid", 409, t("license_invalid")) from None
        except NoSeatAvailable as exc:
            raise ActionRefused(
                "no_seat_available", 409, t("no_seat_free", seats=exc.seats_total)
            ) from None
