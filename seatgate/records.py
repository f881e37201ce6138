"""The records the core works with: plain frozen dataclasses.

Only :meth:`Account.from_row` knows about storage: it reads a row of the
``accounts`` table (a SQLAlchemy ``Row``), so this module imports SQLAlchemy.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import Row

from seatgate.clock import to_utc

Status = Literal["active", "disabled", "deleted"]
Source = Literal["local", "csv", "ldap"]
SYSTEM_ACTOR = "system"


@dataclass(frozen=True)
class Account:
    """A portal account; any number may exist, only seat holders may log in."""

    id: int
    login: str
    login_key: str
    display_name: str | None
    email: str | None
    source: Source
    status: Status
    is_admin: bool
    created_at: datetime
    updated_at: datetime
    last_login_at: datetime | None = None
    external_id: str | None = None
    dn: str | None = None
    groups: tuple[str, ...] = ()
    password_hash: str | None = None

    @classmethod
    def from_row(cls, row: Row[Any]) -> Account:
        return cls.from_mapping(row._mapping)

    @classmethod
    def from_mapping(cls, m: Mapping[Any, Any]) -> Account:
        """The account in ``m`` (columns of ``accounts`` by name); without ``password_hash``
        among them (a read that has no use for it) the account carries none."""
        return cls(
            id=m["id"],
            login=m["login"],
            login_key=m["login_key"],
            display_name=m["display_name"],
            email=m["email"],
            source=m["source"],
            status=m["status"],
            is_admin=bool(m["is_admin"]),
            created_at=to_utc(m["created_at"]),
            updated_at=to_utc(m["updated_at"]),
            last_login_at=_maybe_utc(m["last_login_at"]),
            external_id=m["external_id"],
            dn=m["dn"],
            groups=tuple(json.loads(m["groups"])) if m["groups"] else (),
            password_hash=m.get("password_hash"),
        )


@dataclass(frozen=True)
class SeatHolder:
    """A held seat and who holds it."""

    account_id: int
    login: str
    display_name: str | None
    is_admin: bool
    pinned: bool
    assigned_at: datetime
    last_used_at: datetime
    assigned_by: str
    last_login_at: datetime | None


@dataclass(frozen=True)
class AuditEvent:
    """One line of the audit log."""

    id: int
    at: datetime
    actor: str
    action: str
    subject: str | None
    outcome: str | None
    details: dict[str, Any]


def _maybe_utc(value: datetime | None) -> datetime | None:
    return to_utc(value) if value is not None else None
