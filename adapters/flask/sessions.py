"""Server-side session records and the per-request re-check.

Flask keeps its session in a signed cookie, so ending a session on the
server needs a record there: each login opens a session (a random nonce,
stored hashed with its expiry) and logout closes it. A replayed cookie
whose nonce was closed is refused.

The per-request check is one read transaction, no write: the account is
active, its seat is held and was not granted again after the session began
(a seat revoked and later re-assigned does not revive an old session), the
entitlement is valid now, and the session is still open.

:class:`SettingsSessionRegistry` keeps the records in the core's ``settings``
table (one row per account) so that this adapter needs no schema change;
:class:`SessionRegistry` is the port a dedicated table would implement.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

from flask_login import UserMixin
from sqlalchemy import Connection, bindparam, select

from seatgate.app import Core
from seatgate.clock import to_utc
from seatgate.errors import StorageConflict
from seatgate.records import Account
from seatgate.seats.state import state_columns, state_from_row
from seatgate.storage import settings
from seatgate.storage.schema import accounts, license_state, seats
from seatgate.storage.schema import settings as settings_table

# Oldest sessions of an account are closed beyond this many open ones.
MAX_SESSIONS_PER_ACCOUNT = 20
_KEY_PREFIX = "web.sessions."


class SessionRegistry(Protocol):
    """Where open web sessions are recorded, so that the server can end them."""

    def open(self, account_id: int, now: datetime, lifetime: timedelta) -> str:
        """Record a new session and return its nonce (kept only in the session cookie)."""
        ...

    def close(self, account_id: int, nonce: str) -> None:
        """End the session with ``nonce``; a cookie that still carries it is refused."""
        ...

    def is_open_in(self, conn: Connection, account_id: int, nonce: str, now: datetime) -> bool:
        """Whether the session is open at ``now`` (a plain read in the caller's transaction)."""
        ...


def _digest(nonce: str) -> str:
    return hashlib.sha256(nonce.encode()).hexdigest()[:32]


# Built once (read on every protected request).
_RECORDS = select(settings_table.c.value).where(settings_table.c.key == bindparam("key"))
_RECORDS_FOR_UPDATE = _RECORDS.with_for_update()


class SettingsSessionRegistry:
    """Open sessions as a small JSON map per account in the ``settings`` table."""

    def __init__(self, core: Core) -> None:
        self.db = core.db

    def open(self, account_id: int, now: datetime, lifetime: timedelta) -> str:
        nonce = secrets.token_urlsafe(24)
        expires = (now + lifetime).isoformat()

        def work(conn: Connection) -> None:
            records = {
                digest: until
                for digest, until in self._records_in(conn, account_id, lock=True).items()
                if until > now.isoformat()
            }
            records[_digest(nonce)] = expires
            kept = sorted(records.items(), key=lambda item: item[1])[-MAX_SESSIONS_PER_ACCOUNT:]
            settings.put(conn, _KEY_PREFIX + str(account_id), json.dumps(dict(kept)))

        try:
            self.db.write(work)
        except StorageConflict:
            # Two first logins of one account inserted the row at once: the
            # other one's row exists now, so the second try updates it.
            self.db.write(work)
        return nonce

    def close(self, account_id: int, nonce: str) -> None:
        def work(conn: Connection) -> None:
            records = self._records_in(conn, account_id, lock=True)
            if records.pop(_digest(nonce), None) is not None:
                settings.put(conn, _KEY_PREFIX + str(account_id), json.dumps(records))

        self.db.write(work)

    def is_open_in(self, conn: Connection, account_id: int, nonce: str, now: datetime) -> bool:
        until = self._records_in(conn, account_id).get(_digest(nonce))
        return until is not None and until > now.isoformat()

    def _records_in(
        self, conn: Connection, account_id: int, *, lock: bool = False
    ) -> dict[str, str]:
        query = _RECORDS_FOR_UPDATE if lock else _RECORDS
        raw = conn.execute(query, {"key": _KEY_PREFIX + str(account_id)}).scalar()
        try:
            loaded = json.loads(raw) if raw else {}
        except ValueError:
            return {}
        return {str(k): str(v) for k, v in loaded.items()} if isinstance(loaded, dict) else {}


@dataclass(frozen=True)
class SeatHolderSession:
    """What the re-check learned about a session's seat."""

    pinned: bool
    assigned_at: datetime


class PortalUser(UserMixin):  # type: ignore[misc]
    """The signed-in account of one session (what ``flask_login.current_user`` is)."""

    def __init__(self, account: Account, nonce: str, started: datetime, seat: SeatHolderSession):
        self.account = account
        self.nonce = nonce
        self.started = started
        self.seat = seat

    def get_id(self) -> str:
        return f"{self.account.id}:{self.nonce}:{int(self.started.timestamp())}"

    @property
    def login(self) -> str:
        return self.account.login

    @property
    def is_admin(self) -> bool:
        return self.account.is_admin


@dataclass(frozen=True)
class SessionId:
    """The parts of the id flask-login keeps in the session cookie."""

    account_id: int
    nonce: str
    started: datetime

    @classmethod
    def parse(cls, text: str) -> SessionId | None:
        parts = text.split(":")
        if len(parts) != 3 or not parts[0].isdigit() or not parts[2].isdigit() or not parts[1]:
            return None
        started = datetime.fromtimestamp(int(parts[2]), tz=UTC)
        return cls(int(parts[0]), parts[1], started)


# The account, its seat and the entitlement in one statement, built once:
# this runs on every protected request, and each round trip -- and building a
# statement -- shows.
_SESSION_CHECK = (
    select(
        accounts,
        seats.c.pinned.label("seat_pinned"),
        seats.c.assigned_at.label("seat_assigned_at"),
        *state_columns("state_"),
    )
    .select_from(
        accounts.outerjoin(seats, seats.c.account_id == accounts.c.id).join(
            license_state, license_state.c.id == 1
        )
    )
    .where(accounts.c.id == bindparam("account_id"))
)


def check_session(
    core: Core, registry: SessionRegistry, sid: SessionId, lifetime: timedelta
) -> PortalUser | None:
    """The user of a session that may still be used now, or None (one read, no write)."""
    now = core.clock.now()
    if now - sid.started > lifetime or sid.started > now + timedelta(minutes=5):
        return None

    def work(conn: Connection) -> PortalUser | None:
        row = conn.execute(_SESSION_CHECK, {"account_id": sid.account_id}).first()
        if row is None:
            return None
        account = Account.from_row(row)
        if account.status != "active":
            return None
        assigned_at = row.seat_assigned_at
        # Whole seconds in the cookie: a seat granted in the login's own second counts.
        if assigned_at is None or to_utc(assigned_at) >= sid.started + timedelta(seconds=1):
            return None
        if not state_from_row(row, "state_").is_valid(now):
            return None
        if not registry.is_open_in(conn, account.id, sid.nonce, now):
            return None
        holder = SeatHolderSession(bool(row.seat_pinned), to_utc(assigned_at))
        return PortalUser(account, sid.nonce, sid.started, holder)

    return core.db.read(work)
