"""The signed-in user of a web session, as flask-login sees it.

Sessions themselves belong to the core (:mod:`seatgate.sessions`): each
login opens one and gets its token, which flask-login keeps as the user id
in the signed session cookie; logout ends it. On every request the core's
one-read check (:func:`seatgate.sessions.check.check`) answers whether the
session may still be used; this module only wraps an allowed answer in the
object flask-login wants.
"""

from __future__ import annotations

from datetime import datetime

from flask_login import UserMixin

from seatgate.records import Account
from seatgate.sessions.check import SessionAnswer, SessionSeat

__all__ = ["PortalUser", "SessionSeat"]


class PortalUser(UserMixin):  # type: ignore[misc]
    """The signed-in account of one session (what ``flask_login.current_user`` is)."""

    def __init__(
        self,
        token: str,
        account: Account,
        seat: SessionSeat,
        expires_at: datetime,
        sites: frozenset[str] = frozenset(),
    ):
        self.token = token
        self.account = account
        self.seat = seat
        self.expires_at = expires_at
        # The licensed sites, read with the session (adapters/flask/sites.py).
        self.sites = sites

    @classmethod
    def from_answer(cls, token: str, answer: SessionAnswer) -> PortalUser | None:
        """The user of an allowed check answer, or None for a refusal."""
        if not answer.allowed or answer.account is None or answer.seat is None:
            return None
        if answer.expires_at is None:  # pragma: no cover - an allowed answer carries it
            return None
        return cls(token, answer.account, answer.seat, answer.expires_at, answer.sites)

    def get_id(self) -> str:
        """The session's token: what the signed cookie carries, opaque to the browser."""
        return self.token

    @property
    def login(self) -> str:
        return self.account.login

    @property
    def is_admin(self) -> bool:
        return self.account.is_admin
