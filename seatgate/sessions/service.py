"""Web sessions: open, end, list and expire them; every end is audited.

A session is a row of the ``sessions`` table whose id is the SHA-256 of a
random token; :meth:`Sessions.open` hands the token out once (the web gate
puts it in its signed cookie) and keeps only the hash. Whether a session
may be used on a request is :mod:`seatgate.sessions.check`: one read.

Nothing grows without bound: opening a session ends the account's expired
ones and, beyond :data:`MAX_SESSIONS_PER_ACCOUNT` open ones, its oldest, and
keeps at most :data:`ENDED_KEPT_PER_ACCOUNT` ended rows of the account;
:meth:`Sessions.expire` ends every expired session and removes rows ended
more than :data:`ENDED_KEPT_FOR` ago.

Every end is audited (``session.ended``: who ended it, why, when the session
began and from which address) -- never the token or its hash.

A change that takes an account's right to its sessions away (a new
password, a disabled or deleted account, a seat lost) ends them with
:func:`end_all_in` in the transaction of the change: permanently, so an
account enabled again or a seat granted again never revives them.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import Connection, Row, bindparam, delete, insert, select, update

from seatgate.audit import log as audit
from seatgate.clock import Clock, to_utc
from seatgate.errors import shorten
from seatgate.records import SYSTEM_ACTOR
from seatgate.sessions.check import (
    CHECK_COLUMNS,
    SESSION_JOINS,
    SessionAnswer,
    SessionCheck,
    judge,
    new_token,
    session_id,
)
from seatgate.storage.db import Database
from seatgate.storage.schema import accounts, sessions

# Open sessions one account may have; opening one more ends the oldest.
MAX_SESSIONS_PER_ACCOUNT = 20
# Ended sessions kept per account (for `seatgate sessions list`), newest first.
ENDED_KEPT_PER_ACCOUNT = 20
# How long :meth:`Sessions.expire` keeps a session's row after it ended.
ENDED_KEPT_FOR = timedelta(days=30)
# The user agent is kept short: enough to tell a phone from a laptop.
USER_AGENT_LENGTH = 160
# Sessions ended per UPDATE statement (bounded IN lists).
_CHUNK = 500


class EndReason(StrEnum):
    """Why a session ended (the ``outcome`` of its ``session.ended`` audit event)."""

    LOGOUT = "logout"
    REPLACED = "replaced"
    """The same browser signed in again."""
    ENDED_BY_ADMIN = "ended_by_admin"
    EXPIRED = "expired"
    TOO_MANY = "too_many_sessions"
    """The account opened more than :data:`MAX_SESSIONS_PER_ACCOUNT`."""
    PASSWORD_CHANGED = "password_changed"  # noqa: S105 (a reason code, not a password)
    ACCOUNT_DISABLED = "account_disabled"
    ACCOUNT_DELETED = "account_deleted"
    SEAT_LOST = "seat_lost"
    """Its seat was revoked, moved to another account, or released by a smaller licence."""


class SessionState(StrEnum):
    """Where a session stands, from its own row."""

    OPEN = "open"
    EXPIRED = "expired"
    """Past its expiry, not yet recorded as ended."""
    ENDED = "ended"


@dataclass(frozen=True)
class SessionInfo:
    """One session as ``seatgate sessions list`` shows it (no token, no hash)."""

    login: str
    state: SessionState
    check: str
    """``allowed``, or the refusal code the per-request check gives now."""
    opened_at: datetime
    last_seen_at: datetime
    expires_at: datetime
    ended_at: datetime | None
    ended_reason: str | None
    client_address: str | None
    user_agent: str | None


@dataclass(frozen=True)
class ExpireResult:
    """What :meth:`Sessions.expire` did."""

    ended: int
    pruned: int


# What ending a session needs to know: the row and whom to name in the audit.
_ENDABLE = (
    select(
        sessions.c.id,
        sessions.c.created_at,
        sessions.c.client_address,
        accounts.c.login,
    )
    .select_from(sessions.join(accounts, accounts.c.id == sessions.c.account_id))
    .where(sessions.c.ended_at.is_(None))
    .order_by(sessions.c.created_at, sessions.c.id)
)
_ENDABLE_BY_ID = _ENDABLE.where(sessions.c.id == bindparam("id"))
_ENDABLE_BY_ACCOUNT = _ENDABLE.where(sessions.c.account_id == bindparam("account_id"))
_ACCOUNT_OPEN = _ENDABLE_BY_ACCOUNT.add_columns(sessions.c.expires_at)
_EXPIRED = _ENDABLE.where(sessions.c.expires_at <= bindparam("now"))
_LIST = (
    select(
        *CHECK_COLUMNS,
        sessions.c.last_seen_at.label("session_last_seen_at"),
        sessions.c.client_address.label("session_client_address"),
        sessions.c.user_agent.label("session_user_agent"),
    )
    .select_from(SESSION_JOINS)
    .order_by(accounts.c.login_key, sessions.c.created_at.desc())
)


class Sessions:
    """The installation's web sessions."""

    def __init__(
        self,
        db: Database,
        clock: Clock,
        lifetime: timedelta,
        *,
        max_per_account: int = MAX_SESSIONS_PER_ACCOUNT,
    ) -> None:
        self.db = db
        self.clock = clock
        self.lifetime = lifetime
        self.max_per_account = max_per_account
        self._check = SessionCheck(db)

    def open(
        self, account_id: int, *, address: str | None = None, user_agent: str | None = None
    ) -> str:
        """Open a session for ``account_id`` and return its token (the only time it is seen).

        The caller has decided that the account may sign in (see
        :class:`~seatgate.gate.decision.LoginGate`); the session lasts
        ``lifetime``. The account's expired sessions are ended and, past the
        per-account cap, its oldest open ones.
        """
        token = new_token()
        now = self.clock.now()
        row = {
            "id": session_id(token),
            "account_id": account_id,
            "created_at": now,
            "last_seen_at": now,
            "expires_at": now + self.lifetime,
            "client_address": shorten(address, 128) if address else None,
            "user_agent": shorten(user_agent, USER_AGENT_LENGTH) if user_agent else None,
        }

        def work(conn: Connection) -> None:
            _tidy_account(conn, account_id, now, keep_open=self.max_per_account - 1)
            conn.execute(insert(sessions).values(row))

        self.db.write(work)
        return token

    def check(self, token: str, now: datetime | None = None) -> SessionAnswer:
        """May the session with ``token`` be used (at ``now``)? One read, no write."""
        return self._check(token, now or self.clock.now())

    def check_connection(self) -> Any:
        """The PostgreSQL connection this thread's next check reads on (tests); None on SQLite."""
        return self._check.connection()

    def end(self, token: str, *, actor: str, reason: EndReason = EndReason.LOGOUT) -> bool:
        """End the session with ``token``; False when it was not open."""
        now = self.clock.now()

        def work(conn: Connection) -> int:
            rows = conn.execute(_ENDABLE_BY_ID, {"id": session_id(token)}).all()
            return _end(conn, rows, now=now, actor=actor, reason=reason)

        return self.db.write(work) > 0

    def end_all_for_account(
        self, account_id: int, *, actor: str, reason: EndReason = EndReason.ENDED_BY_ADMIN
    ) -> int:
        """End every open session of ``account_id``; return how many were open."""
        now = self.clock.now()

        def work(conn: Connection) -> int:
            rows = conn.execute(_ENDABLE_BY_ACCOUNT, {"account_id": account_id}).all()
            return _end(conn, rows, now=now, actor=actor, reason=reason)

        return self.db.write(work)

    def end_opened_at(self, account_id: int, opened_at: datetime, *, actor: str) -> bool:
        """End ``account_id``'s open session opened at ``opened_at`` (the console names it so,
        never by token or hash); False when there is none."""
        now = self.clock.now()
        query = _ENDABLE_BY_ACCOUNT.where(sessions.c.created_at == opened_at)

        def work(conn: Connection) -> int:
            rows = conn.execute(query, {"account_id": account_id}).all()
            return _end(conn, rows, now=now, actor=actor, reason=EndReason.ENDED_BY_ADMIN)

        return self.db.write(work) > 0

    def end_all(self, *, actor: str, reason: EndReason = EndReason.ENDED_BY_ADMIN) -> int:
        """End every open session of every account; return how many were open."""
        now = self.clock.now()

        def work(conn: Connection) -> int:
            return _end(conn, conn.execute(_ENDABLE).all(), now=now, actor=actor, reason=reason)

        return self.db.write(work)

    def list(self, *, account_id: int | None = None) -> list[SessionInfo]:
        """The kept sessions (of one account, or all), by login, newest first."""
        query = _LIST if account_id is None else _LIST.where(sessions.c.account_id == account_id)
        now = self.clock.now()
        return self.db.read(lambda conn: [_info(row, now) for row in conn.execute(query)])

    def expire(self) -> ExpireResult:
        """End every session past its expiry; remove rows ended over ``ENDED_KEPT_FOR`` ago."""
        now = self.clock.now()

        def work(conn: Connection) -> ExpireResult:
            rows = conn.execute(_EXPIRED, {"now": now}).all()
            ended = _end(
                conn, rows, now=now, actor=SYSTEM_ACTOR, reason=EndReason.EXPIRED, at_expiry=True
            )
            old = delete(sessions).where(sessions.c.ended_at < now - ENDED_KEPT_FOR)
            return ExpireResult(ended, conn.execute(old).rowcount)

        return self.db.write(work)


def end_all_in(
    conn: Connection,
    account_ids: Collection[int],
    *,
    now: datetime,
    actor: str,
    reason: EndReason,
    cause: str | None = None,
) -> int:
    """End every open session of ``account_ids`` inside the caller's transaction.

    For the changes that take an account's sessions away (see the module
    docstring): the ending commits or rolls back with the change itself.
    ``cause`` (for example how a seat was lost) goes into each audit event.
    Returns how many sessions were ended.
    """
    ids = list(account_ids)
    rows: list[Row[*tuple[Any, ...]]] = []
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start : start + _CHUNK]
        rows.extend(conn.execute(_ENDABLE.where(sessions.c.account_id.in_(chunk))).all())
    return _end(conn, rows, now=now, actor=actor, reason=reason, cause=cause)


# A seat released with its account keeps the account's reason.
_SEAT_CAUSES = {
    "account_disabled": EndReason.ACCOUNT_DISABLED,
    "account_deleted": EndReason.ACCOUNT_DELETED,
}


def end_on_seat_loss_in(
    conn: Connection, account_id: int, *, actor: str, cause: str, now: datetime
) -> int:
    """End the sessions of an account that just lost its seat (``cause``: how), in its transaction.

    The seat ledger calls it for every seat it takes away (see
    :class:`~seatgate.seats.ledger.SeatLedger`), so a seat granted again --
    at any time, even the same instant -- never revives a session.
    """
    reason = _SEAT_CAUSES.get(cause, EndReason.SEAT_LOST)
    return end_all_in(conn, [account_id], now=now, actor=actor, reason=reason, cause=cause)


def _tidy_account(conn: Connection, account_id: int, now: datetime, *, keep_open: int) -> None:
    """End the account's expired sessions and the oldest beyond ``keep_open``; prune ended rows."""
    rows = conn.execute(_ACCOUNT_OPEN, {"account_id": account_id}).all()
    expired = [r for r in rows if to_utc(r.expires_at) <= now]
    live = [r for r in rows if to_utc(r.expires_at) > now]
    _end(conn, expired, now=now, actor=SYSTEM_ACTOR, reason=EndReason.EXPIRED, at_expiry=True)
    excess = len(live) - max(0, keep_open)
    if excess > 0:
        _end(conn, live[:excess], now=now, actor=SYSTEM_ACTOR, reason=EndReason.TOO_MANY)
    # Beyond the newest ENDED_KEPT_PER_ACCOUNT ended rows of this account.
    surplus = (
        select(sessions.c.id)
        .where(sessions.c.account_id == account_id, sessions.c.ended_at.is_not(None))
        .order_by(sessions.c.ended_at.desc(), sessions.c.id)
        .offset(ENDED_KEPT_PER_ACCOUNT)
    )
    conn.execute(delete(sessions).where(sessions.c.id.in_(surplus.scalar_subquery())))


def _end(
    conn: Connection,
    rows: Sequence[Row[*tuple[Any, ...]]],
    *,
    now: datetime,
    actor: str,
    reason: EndReason,
    at_expiry: bool = False,
    cause: str | None = None,
) -> int:
    """End the sessions of ``rows`` still open and audit each; return how many were ended.

    ``at_expiry`` records an expired session as ended when it expired.
    Only the rows this transaction actually ended are audited: another one
    may have ended some in between (PostgreSQL, READ COMMITTED).
    """
    ended: set[str] = set()
    values = {"ended_at": sessions.c.expires_at if at_expiry else now, "ended_reason": reason}
    for start in range(0, len(rows), _CHUNK):
        ids = [row.id for row in rows[start : start + _CHUNK]]
        statement = (
            update(sessions)
            .where(sessions.c.id.in_(ids), sessions.c.ended_at.is_(None))
            .values(values)
            .returning(sessions.c.id)
        )
        ended.update(conn.execute(statement).scalars())
    audit.record_many(
        conn,
        [
            audit.event_row(
                at=now,
                actor=actor,
                action="session.ended",
                subject=row.login,
                outcome=reason.value,
                details={
                    "opened_at": to_utc(row.created_at).isoformat(timespec="seconds"),
                    "address": row.client_address,
                    **({"cause": cause} if cause else {}),
                },
            )
            for row in rows
            if row.id in ended
        ],
    )
    return len(ended)


def _info(row: Row[*tuple[Any, ...]], now: datetime) -> SessionInfo:
    answer = judge(row._mapping, now)
    if row.session_ended_at is not None:
        state = SessionState.ENDED
    elif now >= to_utc(row.session_expires_at):
        state = SessionState.EXPIRED
    else:
        state = SessionState.OPEN
    return SessionInfo(
        login=row.login,
        state=state,
        check=answer.refusal.value if answer.refusal else "allowed",
        opened_at=to_utc(row.session_created_at),
        last_seen_at=to_utc(row.session_last_seen_at),
        expires_at=to_utc(row.session_expires_at),
        ended_at=to_utc(row.session_ended_at) if row.session_ended_at is not None else None,
        ended_reason=row.session_ended_reason,
        client_address=row.session_client_address,
        user_agent=row.session_user_agent,
    )
