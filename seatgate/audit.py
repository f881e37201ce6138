"""The audit log: every login decision and every seat, account and licence change.

Events are written inside the same transaction as the change they describe,
so the log and the ledger cannot disagree. Passwords and token texts are
never recorded; tokens appear by ``jti`` only.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert, select

from seatgate.clock import to_utc
from seatgate.errors import shorten
from seatgate.models import AuditEvent
from seatgate.storage.schema import audit_events


def event_row(
    *,
    at: datetime,
    actor: str,
    action: str,
    subject: str | None = None,
    outcome: str | None = None,
    details: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The stored form of one event, for :func:`record_many`."""
    return {
        "at": at,
        "actor": shorten(actor, 256),
        "action": action,
        "subject": shorten(subject, 256) if subject is not None else None,
        "outcome": outcome,
        "details": json.dumps(dict(details), sort_keys=True, default=str) if details else None,
    }


def record(
    conn: Connection,
    *,
    at: datetime,
    actor: str,
    action: str,
    subject: str | None = None,
    outcome: str | None = None,
    details: Mapping[str, Any] | None = None,
) -> None:
    """Append one event to the audit log (inside the caller's transaction)."""
    conn.execute(
        insert(audit_events).values(
            **event_row(
                at=at,
                actor=actor,
                action=action,
                subject=subject,
                outcome=outcome,
                details=details,
            )
        )
    )


def record_many(conn: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
    """Append many events made with :func:`event_row` in one statement."""
    if rows:
        conn.execute(insert(audit_events), list(rows))


def recent(
    conn: Connection, *, limit: int = 100, action: str | None = None, subject: str | None = None
) -> list[AuditEvent]:
    """Return the newest events first."""
    query = select(audit_events).order_by(audit_events.c.id.desc()).limit(limit)
    if action is not None:
        query = query.where(audit_events.c.action == action)
    if subject is not None:
        query = query.where(audit_events.c.subject == subject)
    return [
        AuditEvent(
            id=row.id,
            at=to_utc(row.at),
            actor=row.actor,
            action=row.action,
            subject=row.subject,
            outcome=row.outcome,
            details=json.loads(row.details) if row.details else {},
        )
        for row in conn.execute(query)
    ]
