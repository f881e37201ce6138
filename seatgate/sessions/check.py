"""The per-request check: may this session still be used now?

One read statement, compiled once, joins the session, its account, the
account's seat and the stored entitlement; the answer is decided from that
row alone and nothing is written. A change committed before the request
starts (a session ended from the command line, a seat revoked, an account
disabled, a licence gone) is seen by it, on every web node. The read runs
alone in autocommit (:class:`~seatgate.storage.quick_read.QuickRead`): one
round trip to PostgreSQL, no BEGIN and ROLLBACK around it, nothing cached
(prepared once, on connections kept for it outside the pool).
On SQLite the row is kept per pooled connection and used again only while
``PRAGMA data_version``, read on every check, shows no commit by any other
connection and no one else has used the connection since (see
:mod:`seatgate.storage.quick_read`); the answer is judged afresh at every
request's time either way, so expiries need no change to be seen.

The licence is judged from the stored entitlement (``license_state``: valid,
expiry, the clock's high-water mark) read with the session; no token
signature is verified per request.

The session's token is never stored: a session's id is the SHA-256 of its
token (:func:`session_id`), so the database alone opens no session.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import bindparam, select

from seatgate.clock import to_utc
from seatgate.records import Account
from seatgate.seats.state import SeatState, state_columns, state_from_mapping
from seatgate.storage.db import Database
from seatgate.storage.quick_read import QuickRead
from seatgate.storage.schema import accounts, license_state, seats, sessions, settings
from seatgate.storage.sites import LICENSED_SITES_KEY, parse_sites

# A token is 43 characters (32 random bytes, URL-safe base64); anything much
# longer is not one of ours and is refused without hashing or reading.
MAX_TOKEN_LENGTH = 128


class SessionRefusal(StrEnum):
    """Why a session may not be used (the codes the web gate answers with)."""

    SESSION_ENDED = "session_ended"
    """Ended (logout, by an admin, replaced), expired, or unknown."""
    ACCOUNT_DISABLED = "account_disabled"
    SEAT_REVOKED = "seat_revoked"
    """No seat now, or the seat was granted again after the session began."""
    LICENSE_INVALID = "license_invalid"


@dataclass(frozen=True)
class SessionSeat:
    """The seat a usable session's account holds."""

    pinned: bool
    assigned_at: datetime


@dataclass(frozen=True)
class SessionAnswer:
    """The answer of :func:`check`: allowed with the account, or a refusal code."""

    refusal: SessionRefusal | None
    account: Account | None = None
    seat: SessionSeat | None = None
    opened_at: datetime | None = None
    expires_at: datetime | None = None
    sites: frozenset[str] = frozenset()
    """With an allowed answer: the licensed site host names, read with the session."""

    @property
    def allowed(self) -> bool:
        """Whether the session may be used."""
        return self.refusal is None


ENDED = SessionAnswer(SessionRefusal.SESSION_ENDED)

# Sessions ended because the account or its seat went keep telling why
# (the reasons of seatgate.sessions.service.EndReason).
_ENDED_BECAUSE = {
    "account_disabled": SessionRefusal.ACCOUNT_DISABLED,
    "account_deleted": SessionRefusal.ACCOUNT_DISABLED,
    "seat_lost": SessionRefusal.SEAT_REVOKED,
}


def new_token() -> str:
    """A fresh session token (handed to the visitor once, never stored)."""
    return secrets.token_urlsafe(32)


def session_id(token: str) -> str:
    """The stored id of the session with ``token``: its SHA-256, hex."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


# What a session row brings to the check, labelled apart from the account's columns.
SESSION_COLUMNS = (
    sessions.c.created_at.label("session_created_at"),
    sessions.c.expires_at.label("session_expires_at"),
    sessions.c.ended_at.label("session_ended_at"),
    sessions.c.ended_reason.label("session_ended_reason"),
)
SESSION_JOINS = (
    sessions.join(accounts, accounts.c.id == sessions.c.account_id)
    .outerjoin(seats, seats.c.account_id == sessions.c.account_id)
    .join(license_state, license_state.c.id == 1)
    # The licensed sites (seatgate.storage.sites) ride along: the web gate's
    # host check of a request with a session costs no read of its own.
    .outerjoin(settings, settings.c.key == LICENSED_SITES_KEY)
)
# The account's columns but its password hash: a request has no use for it.
ACCOUNT_COLUMNS = tuple(column for column in accounts.c if column.name != "password_hash")
CHECK_COLUMNS: tuple[Any, ...] = (
    *SESSION_COLUMNS,
    *ACCOUNT_COLUMNS,
    seats.c.pinned.label("seat_pinned"),
    seats.c.assigned_at.label("seat_assigned_at"),
    *state_columns("state_"),
    settings.c.value.label("licensed_sites"),
)

# Built once and compiled once per database (SessionCheck): this runs on
# every protected request, and building a statement shows next to a read by
# primary key.
_CHECK = select(*CHECK_COLUMNS).select_from(SESSION_JOINS).where(sessions.c.id == bindparam("id"))


@dataclass(frozen=True)
class Judged:
    """What a check row says, with only the parts that depend on the time left open.

    Built once per row read (:func:`digest`); :meth:`at` answers for any time.
    """

    ended: SessionAnswer | None
    """The answer for a session ended in its row."""
    expires_at: datetime
    refused: SessionAnswer | None
    """The answer for a disabled account or a seat not held since the session began."""
    state: SeatState
    licence_invalid: SessionAnswer
    allowed: SessionAnswer

    def at(self, now: datetime) -> SessionAnswer:
        """The answer at ``now``, in the order of the rules: ended, expired, refused, licence."""
        if self.ended is not None:
            return self.ended
        if now >= self.expires_at:
            return ENDED
        if self.refused is not None:
            return self.refused
        if not self.state.is_valid(now):
            return self.licence_invalid
        return self.allowed


def digest(row: Mapping[Any, Any]) -> Judged:
    """The :class:`Judged` of a row of :data:`CHECK_COLUMNS` (by label); no database access."""
    opened_at = to_utc(row["session_created_at"])
    expires_at = to_utc(row["session_expires_at"])
    # The password hash is not among the columns: the account carries none.
    account = Account.from_mapping(row)
    ended = None
    if row["session_ended_at"] is not None:
        because = _ENDED_BECAUSE.get(row["session_ended_reason"])
        ended = ENDED if because is None else SessionAnswer(because, account)
    assigned_at = to_utc(row["seat_assigned_at"]) if row["seat_assigned_at"] is not None else None
    refused = None
    if account.status != "active":
        refused = SessionAnswer(SessionRefusal.ACCOUNT_DISABLED, account)
    # A seat revoked and granted again after the session began does not
    # revive the session: the visitor must sign in (and be counted) again.
    elif assigned_at is None or assigned_at > opened_at:
        refused = SessionAnswer(SessionRefusal.SEAT_REVOKED, account)
    seat = SessionSeat(bool(row["seat_pinned"]), assigned_at) if assigned_at is not None else None
    return Judged(
        ended=ended,
        expires_at=expires_at,
        refused=refused,
        state=state_from_mapping(row, "state_"),
        licence_invalid=SessionAnswer(SessionRefusal.LICENSE_INVALID, account),
        allowed=SessionAnswer(
            None, account, seat, opened_at, expires_at, parse_sites(row["licensed_sites"])
        ),
    )


def judge(row: Mapping[Any, Any], now: datetime) -> SessionAnswer:
    """The answer for a row of :data:`CHECK_COLUMNS` (by label) at ``now`` (no database access)."""
    return digest(row).at(now)


class SessionCheck:
    """The per-request check of one database: its statement compiled once, read in autocommit."""

    def __init__(self, db: Database) -> None:
        self._read = QuickRead(db, _CHECK, digest, cache=True)

    def connection(self) -> Any:
        """The PostgreSQL connection the next check of this thread reads on; None on SQLite."""
        return self._read.next_connection()

    def __call__(self, token: str, now: datetime) -> SessionAnswer:
        """May the session with ``token`` be used at ``now``? One read, no write."""
        if not token or len(token) > MAX_TOKEN_LENGTH:
            return ENDED
        judged = self._read.one({"id": session_id(token)})
        return ENDED if judged is None else judged.at(now)
