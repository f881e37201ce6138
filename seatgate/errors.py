"""The exceptions seatgate raises.

Every error derives from :class:`SeatgateError` and carries its evidence as
attributes (which claim, which key, how many seats) so that the edges can
translate it into a response without parsing the message.
"""

from __future__ import annotations


def shorten(value: object, limit: int = 60) -> str:
    """Render ``value`` for an error message, cut so hostile input cannot flood a log."""
    text = repr(value) if not isinstance(value, str) else value
    # Lone surrogates (undecodable bytes from a command line) cannot be stored as UTF-8.
    text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    text = text.replace("\n", "\\n").replace("\r", "\\r").replace("\x00", "\\x00")
    return text if len(text) <= limit else text[: limit - 1] + "…"


class SeatgateError(Exception):
    """Base class of every error seatgate raises on purpose."""


# -- configuration -----------------------------------------------------------


class ConfigError(SeatgateError):
    """The configuration is unusable; ``key`` names the offending key."""

    def __init__(self, key: str, reason: str) -> None:
        self.key = key
        self.reason = reason
        super().__init__(f"configuration key `{key}`: {reason}")


# -- licence tokens ----------------------------------------------------------


class TokenRejected(SeatgateError):
    """A licence token failed verification; nothing was installed."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(f"licence token rejected: {reason}")


class MalformedToken(TokenRejected):
    """The text is not a JWS compact token at all."""


class UnsupportedAlgorithm(TokenRejected):
    """The header names an algorithm other than EdDSA."""

    def __init__(self, alg: object) -> None:
        self.alg = alg
        super().__init__(
            f"header `alg` is `{shorten(alg)}`; only EdDSA (Ed25519) licence tokens are accepted"
        )


class UnknownKey(TokenRejected):
    """The header's ``kid`` names no trusted vendor key."""

    def __init__(self, kid: object) -> None:
        self.kid = kid
        super().__init__(
            f"header `kid` is `{shorten(kid)}`, which is not among the trusted vendor keys "
            "(license.public_keys)"
        )


class BadSignature(TokenRejected):
    """The signature does not verify with the key the token names."""


class MissingClaim(TokenRejected):
    """A required claim is absent."""

    def __init__(self, claim: str, kind: str | None = None) -> None:
        self.claim = claim
        where = f" (required for `{kind}` tokens)" if kind else ""
        super().__init__(f"claim `{claim}` is missing{where}")


class InvalidClaim(TokenRejected):
    """A claim is present but has the wrong type or value."""

    def __init__(self, claim: str, value: object, expected: str) -> None:
        self.claim = claim
        self.value = value
        super().__init__(f"claim `{claim}` is `{shorten(value)}`; {expected}")


class TokenExpired(TokenRejected):
    """The token's ``exp`` has passed (beyond the configured leeway)."""


class TokenNotYetValid(TokenRejected):
    """The token's ``nbf`` or ``iat`` lies in the future (beyond the leeway)."""


class TokenConflict(TokenRejected):
    """The token is valid but cannot be installed here (already installed, names no licence)."""


# -- accounts ----------------------------------------------------------------


class AccountError(SeatgateError):
    """An account operation could not be carried out."""


class InvalidLogin(AccountError):
    """A login name is empty, too long or contains control characters."""

    def __init__(self, login: str, reason: str) -> None:
        self.login = login
        super().__init__(f"login `{shorten(login)}` is not usable: {reason}")


class UnknownAccount(AccountError):
    """No account has this login."""

    def __init__(self, login: str) -> None:
        self.login = login
        super().__init__(f"no account with login `{shorten(login)}`")


class AccountExists(AccountError):
    """An account with the same normalised login already exists."""

    def __init__(self, login: str, existing: str) -> None:
        self.login = login
        self.existing = existing
        super().__init__(
            f"login `{shorten(login)}` collides with existing account `{shorten(existing)}` "
            "(logins are compared case- and width-insensitively)"
        )


class InvalidPassword(AccountError):
    """A password cannot be set (for example, it is empty)."""


# -- seats -------------------------------------------------------------------


class SeatError(SeatgateError):
    """A seat operation could not be carried out."""


class NoSeatAvailable(SeatError):
    """Every entitled seat is held (or the free ones are reserved for admins)."""

    def __init__(self, seats_total: int, reserved: int = 0) -> None:
        self.seats_total = seats_total
        self.reserved = reserved
        extra = f"; {reserved} kept free for administrators" if reserved else ""
        super().__init__(f"all {seats_total} seats are in use{extra}")


class SeatNotHeld(SeatError):
    """The account holds no seat."""

    def __init__(self, login: str) -> None:
        self.login = login
        super().__init__(f"`{shorten(login)}` holds no seat")


class SeatAlreadyHeld(SeatError):
    """The account already holds a seat."""

    def __init__(self, login: str) -> None:
        self.login = login
        super().__init__(f"`{shorten(login)}` already holds a seat")


class NoSeatRequest(SeatError):
    """The account has no pending seat request (none, or it expired)."""

    def __init__(self, login: str) -> None:
        self.login = login
        super().__init__(f"`{shorten(login)}` has no pending seat request")


class AccountNotActive(SeatError):
    """A seat cannot go to a disabled or deleted account."""

    def __init__(self, login: str, status: str) -> None:
        self.login = login
        self.status = status
        super().__init__(f"`{shorten(login)}` is {status}; only active accounts can hold a seat")


class LicenseInvalid(SeatError):
    """There is no valid entitlement (no licence, or the trial has ended)."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(f"no valid licence: {reason}")


class PinnedSeatsExceed(SeatError):
    """A licence change would leave fewer seats than are pinned; nothing was changed."""

    def __init__(self, capacity: int, pinned: int) -> None:
        self.capacity = capacity
        self.pinned = pinned
        super().__init__(
            f"the licence would allow {capacity} seat(s) but {pinned} are pinned, and pinned "
            f"seats are never released automatically: unpin at least {pinned - capacity} "
            "(`seatgate seats unpin LOGIN`) and try again; nothing was changed"
        )


class TokenNotInstalled(SeatgateError):
    """``license remove`` named a token that is not installed (or cannot be removed)."""


# -- imports -----------------------------------------------------------------


class ImportRejected(SeatgateError):
    """The source cannot be imported; nothing was written. ``line`` is None for the whole file."""

    def __init__(self, line: int | None, reason: str) -> None:
        self.line = line
        self.reason = reason
        super().__init__(f"line {line}: {reason}" if line is not None else reason)


# -- storage -----------------------------------------------------------------


class StorageError(SeatgateError):
    """The database cannot be used."""


class SchemaOutdated(StorageError):
    """The database schema is older (or newer) than this version of seatgate."""

    def __init__(self, found: int, expected: int) -> None:
        self.found = found
        self.expected = expected
        if found < expected:
            hint = "run `seatgate init` to upgrade it"
        else:
            hint = "it was written by a newer seatgate; upgrade seatgate"
        super().__init__(
            f"database schema is version {found}, this seatgate needs {expected}: {hint}"
        )


class StorageConflict(StorageError):
    """A unique key was taken by another writer between a check and the write."""


class DatabaseBusy(StorageError):
    """The database stayed locked or kept aborting the transaction after bounded retries."""


# -- directory ---------------------------------------------------------------


class DirectoryError(SeatgateError):
    """The directory could not be used as asked."""


class DirectoryUnavailable(DirectoryError):
    """The directory did not answer (down, unreachable, too slow, TLS failure)."""


class DirectorySearchIncomplete(DirectoryError):
    """A search ended early (size limit, partial result): nothing may be concluded from it."""


class DirectoryAccountBlocked(DirectoryError):
    """The directory refused a correct password because the account cannot log in.

    ``code`` is AD's sub-code: 530 logon not permitted at this time, 531 not
    from this workstation, 532 password expired, 533 account disabled, 701
    account expired, 773 password must be changed. (775, locked out, is not
    one: AD answers it whatever the password, so it is a plain failed login.)
    """

    def __init__(self, code: str, meaning: str) -> None:
        self.code = code
        self.meaning = meaning
        super().__init__(f"the directory refused the login: {meaning} (data {code})")


class SyncSafetyStop(DirectoryError):
    """A sync would disable or delete more accounts than the configured limits allow."""

    def __init__(self, count: int, total: int, limit: str) -> None:
        self.count = count
        self.total = total
        self.limit = limit
        """The limit passed, as the configuration names it (``max_disable_count (500)``)."""
        super().__init__(
            f"this sync would disable or delete {count} of {total} directory accounts, "
            f"more than {limit}; nothing was changed. If that is really intended, run it "
            f"again with --confirm-disables {count}"
        )


class SeatRevocationSafetyStop(SyncSafetyStop):
    """An exclusive-mode sync would take more seats than the configured limits allow."""

    def __init__(self, count: int, total: int, limit: str) -> None:
        DirectoryError.__init__(
            self,
            f"this sync would revoke the seats of {count} of {total} directory accounts "
            f"(in no seat group), more than {limit}; nothing was changed. If that is "
            f"really intended, run it again with --confirm-seat-revocations {count}",
        )
        self.count = count
        self.total = total
        self.limit = limit


class LastAdminStop(DirectoryError):
    """A sync would leave the installation without any active admin."""

    def __init__(self, lost: list[str]) -> None:
        self.lost = lost
        super().__init__(
            "this sync would leave no active admin (it would take admin rights from or "
            f"disable: {', '.join(lost) or 'the last admins'}); nothing was changed. Add "
            "an admin to ldap.admin_groups in the directory, or create a local admin "
            "with `seatgate accounts add --admin`, then sync again"
        )


class SyncAlreadyRunning(DirectoryError):
    """Another directory sync holds the sync lock."""


class NotificationFailed(SeatgateError):
    """A channel did not take a notification; it stays in the outbox and is retried.

    ``unreachable``: the channel could not be reached at all (connection
    refused, timeout), so the rest of this run does not try it again.
    The message never holds a secret (no password, no signing key, no URL query).
    """

    def __init__(self, reason: str, *, unreachable: bool = False) -> None:
        self.reason = reason
        self.unreachable = unreachable
        super().__init__(reason)
