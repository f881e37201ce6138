"""The open sessions for the admin console: who, since when, until when, from where.

A plain read, bounded: the console shows at most :data:`MAX_SHOWN` sessions
at a time (by login, newest first) and narrows by login. Ending sessions
goes through :class:`seatgate.sessions.service.Sessions`, which audits it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, select

from seatgate.clock import to_utc
from seatgate.storage.schema import accounts, sessions

MAX_SHOWN = 500


@dataclass(frozen=True)
class OpenSession:
    """One open session (no token, no hash)."""

    login: str
    opened_at: datetime
    last_seen_at: datetime
    expires_at: datetime
    client_address: str | None
    user_agent: str | None


def open_sessions(
    conn: Connection, now: datetime, *, account_id: int | None = None, limit: int = MAX_SHOWN
) -> list[OpenSession]:
    """The sessions open at ``now`` (of one account only, when given), by login.

    Uses ``ix_sessions_ended_at_expires_at`` (open: ``ended_at`` null, not yet
    expired) or, for one account, ``ix_sessions_account_id``.
    """
    query = (
        select(
            accounts.c.login,
            sessions.c.created_at,
            sessions.c.last_seen_at,
            sessions.c.expires_at,
            sessions.c.client_address,
            sessions.c.user_agent,
        )
        .select_from(sessions.join(accounts, accounts.c.id == sessions.c.account_id))
        .where(sessions.c.ended_at.is_(None), sessions.c.expires_at > now)
        .order_by(accounts.c.login_key, sessions.c.created_at.desc(), sessions.c.id)
        .limit(max(1, limit))
    )
    if account_id is not None:
        query = query.where(sessions.c.account_id == account_id)
    return [
        OpenSession(
            login=row.login,
            opened_at=to_utc(row.created_at),
            last_seen_at=to_utc(row.last_seen_at),
            expires_at=to_utc(row.expires_at),
            client_address=row.client_address,
            user_agent=row.user_agent,
        )
        for row in conn.execute(query)
    ]
