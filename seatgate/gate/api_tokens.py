"""Scoped bearer tokens for scripts (HR offboarding, monitoring) that hold no admin password.

A token is shown once, when it is made; only its SHA-256 is stored (a token
is 32 random bytes, so a fast hash is enough and a stolen database opens
nothing). Each token has a name (the audit actor is ``token:NAME``), a set
of scopes, and may expire; a revoked or expired token is refused. A token
never opens a portal session and never takes a seat: it is not an account.

Presented tokens go through the failed-login rate limiter first, per client
address, so guessing tokens is throttled like guessing passwords.
"""

from __future__ import annotations

import enum
import hashlib
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, insert, select, update

from seatgate.audit import log as audit
from seatgate.clock import Clock, to_utc
from seatgate.errors import SeatgateError, shorten
from seatgate.gate.ratelimit import NoRateLimit, RateLimiter, Reservation
from seatgate.storage.db import Database
from seatgate.storage.schema import api_tokens

SCOPES = (
    "seats:read",
    "seats:write",
    "accounts:read",
    "accounts:write",
    "license:read",
    "license:write",
)
PREFIX = "sgt_"
MAX_TOKEN_LENGTH = 128
_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
# Under one key no login can have (login keys refuse control characters):
# failed token attempts are counted per client address with the logins'.
LIMIT_KEY = "\x1fapi-token"
LAST_USED_STEP = timedelta(minutes=1)


class ApiTokenError(SeatgateError):
    """A token cannot be made or revoked as asked (the message says why)."""


class TokenRefusal(enum.StrEnum):
    """Why a presented token opens nothing (the JSON API's error codes, all 401)."""

    INVALID = "invalid_token"
    REVOKED = "token_revoked"
    EXPIRED = "token_expired"


@dataclass(frozen=True)
class ApiToken:
    """A stored token (never its text)."""

    name: str
    scopes: frozenset[str]
    created_at: datetime
    created_by: str
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None

    @property
    def actor(self) -> str:
        """The audit actor of what the token does."""
        return f"token:{self.name}"

    def state(self, now: datetime) -> str:
        """``active``, ``expired`` or ``revoked``."""
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and to_utc(self.expires_at) <= now:
            return "expired"
        return "active"


@dataclass(frozen=True)
class TokenCheck:
    """What a presented token comes to: its token, or a refusal (or a throttle)."""

    token: ApiToken | None = None
    refusal: TokenRefusal | None = None
    retry_after: int | None = None
    """Seconds to wait: too many failed attempts from this address."""


def token_hash(text: str) -> str:
    """The stored form of a token: its SHA-256, hex."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


class ApiTokens:
    """Makes, lists, revokes and checks API tokens."""

    def __init__(self, db: Database, clock: Clock, rate_limiter: RateLimiter | None) -> None:
        self.db = db
        self.clock = clock
        self.rate_limiter = rate_limiter or NoRateLimit()

    def create(
        self, name: str, scopes: Iterable[str], *, expires_in: timedelta | None, actor: str
    ) -> str:
        """Make a token and return its text (shown once). Raises :class:`ApiTokenError`."""
        name = name.strip().lower()
        if not _NAME.match(name):
            raise ApiTokenError(
                f"token name `{shorten(name)}`: use 1-64 lowercase letters, digits, `.`, `_`, `-`"
            )
        wanted = frozenset(scopes)
        unknown = sorted(wanted - set(SCOPES))
        if unknown or not wanted:
            problem = (
                f"unknown scope(s) {', '.join(map(shorten, unknown))}"
                if unknown
                else ("give at least one scope")
            )
            raise ApiTokenError(f"{problem}; the scopes are {', '.join(SCOPES)}")
        if expires_in is not None and expires_in <= timedelta(0):
            raise ApiTokenError("the expiry must be in the future")
        text = PREFIX + secrets.token_urlsafe(32)
        now = self.clock.now()

        def work(conn: Connection) -> None:
            if conn.execute(select(api_tokens.c.id).where(api_tokens.c.name == name)).first():
                raise ApiTokenError(
                    f"a token named `{name}` exists; revoke it or pick another name"
                )
            conn.execute(
                insert(api_tokens).values(
                    name=name,
                    token_hash=token_hash(text),
                    scopes=" ".join(s for s in SCOPES if s in wanted),
                    created_at=now,
                    created_by=actor,
                    expires_at=now + expires_in if expires_in is not None else None,
                )
            )
            details = {"scopes": sorted(wanted), "expires_in_days": _days(expires_in)}
            audit.record(
                conn, at=now, actor=actor, action="api_token.created", subject=name, details=details
            )

        self.db.write(work)
        return text

    def list(self) -> list[ApiToken]:
        """Every token, revoked ones included, by name."""
        query = select(api_tokens).order_by(api_tokens.c.name)
        return self.db.read(lambda conn: [_token(row) for row in conn.execute(query)])

    def revoke(self, name: str, *, actor: str) -> None:
        """Revoke a token for good. Raises :class:`ApiTokenError` (unknown or already revoked)."""
        name = name.strip().lower()

        def work(conn: Connection) -> None:
            now = self.clock.now()
            row = conn.execute(select(api_tokens).where(api_tokens.c.name == name)).first()
            if row is None:
                raise ApiTokenError(f"no token named `{shorten(name)}`")
            if row.revoked_at is not None:
                raise ApiTokenError(f"token `{name}` is revoked already")
            conn.execute(
                update(api_tokens)
                .where(api_tokens.c.id == row.id)
                .values(revoked_at=now, revoked_by=actor)
            )
            audit.record(conn, at=now, actor=actor, action="api_token.revoked", subject=name)

        self.db.write(work)

    def check(self, text: str, *, address: str | None) -> TokenCheck:
        """The token ``text`` opens, or why not; failed attempts count per ``address``."""
        reservation = self._reserve(address)
        if not reservation.allowed:
            return TokenCheck(refusal=TokenRefusal.INVALID, retry_after=reservation.retry_after)
        now = self.clock.now()
        row = None
        if text.startswith(PREFIX) and len(text) <= MAX_TOKEN_LENGTH:
            query = select(api_tokens).where(api_tokens.c.token_hash == token_hash(text))
            row = self.db.read(lambda conn: conn.execute(query).first())
        if row is None:
            return TokenCheck(refusal=TokenRefusal.INVALID)  # the reservation is the failure
        self.rate_limiter.release(reservation)
        token = _token(row)
        state = token.state(now)
        if state != "active":
            refusal = TokenRefusal.REVOKED if state == "revoked" else TokenRefusal.EXPIRED
            return TokenCheck(token=token, refusal=refusal)
        last = token.last_used_at
        if last is None or now - to_utc(last) >= LAST_USED_STEP:
            self.db.write(
                lambda conn: conn.execute(
                    update(api_tokens).where(api_tokens.c.id == row.id).values(last_used_at=now)
                )
            )
        return TokenCheck(token=token)

    def _reserve(self, address: str | None) -> Reservation:
        limiter = self.rate_limiter

        def work(conn: Connection) -> Reservation:
            return limiter.reserve_in(conn, LIMIT_KEY, address)

        return self.db.write(work) if limiter.writes(address) else self.db.read(work)


def parse_expiry(text: str) -> timedelta:
    """``90d``, ``12h`` or ``30m`` as a duration. Raises :class:`ApiTokenError`."""
    match = re.fullmatch(r"\s*(\d{1,5})\s*([dhm])\s*", text)
    if match is None:
        raise ApiTokenError(f"expiry `{shorten(text)}`: write a number and d, h or m, e.g. 90d")
    number, unit = int(match.group(1)), match.group(2)
    if number == 0:
        raise ApiTokenError("the expiry must be in the future")
    units = {"d": timedelta(days=1), "h": timedelta(hours=1), "m": timedelta(minutes=1)}
    return number * units[unit]


def _days(delta: timedelta | None) -> float | None:
    return None if delta is None else round(delta / timedelta(days=1), 3)


def _token(row: object) -> ApiToken:
    mapping = row._mapping  # type: ignore[attr-defined]
    return ApiToken(
        name=mapping["name"],
        scopes=frozenset(mapping["scopes"].split()),
        created_at=mapping["created_at"],
        created_by=mapping["created_by"],
        expires_at=mapping["expires_at"],
        revoked_at=mapping["revoked_at"],
        last_used_at=mapping["last_used_at"],
    )
