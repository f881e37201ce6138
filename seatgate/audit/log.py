"""The audit log: every login decision and every seat, account and licence change.

Events are written inside the same transaction as the change they describe,
so the log and the ledger cannot disagree, and each is chained to the one
before it (:mod:`seatgate.audit.chain`). Passwords and token texts are never
recorded; tokens appear by ``jti`` only.
"""

from __future__ import annotations

import json
import pickle
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import IO, Any

from sqlalchemy import Connection, select

from seatgate.audit import chain as audit_chain
from seatgate.clock import to_utc
from seatgate.errors import shorten
from seatgate.records import AuditEvent
from seatgate.storage.commit_hooks import HookSlot, transaction_hook
from seatgate.storage.schema import audit_events

# Events an EventBuffer keeps in memory before it moves them to its file.
_IN_MEMORY = 1000
# One encoder for every event: json.dumps with options builds a new one per call.
_DETAILS = json.JSONEncoder(sort_keys=True, default=str)


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
        "details": _DETAILS.encode(dict(details)) if details else None,
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
    record_many(
        conn,
        [
            event_row(
                at=at,
                actor=actor,
                action=action,
                subject=subject,
                outcome=outcome,
                details=details,
            )
        ],
    )


def record_many(conn: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
    """Append many events made with :func:`event_row`, in order.

    Inside :meth:`seatgate.storage.Database.write` the events wait in the
    transaction's :class:`EventBuffer` (:data:`PENDING`) and are chained
    just before the commit: chaining locks the chain head, and taking that
    lock last means it never waits while holding it. Elsewhere they are
    chained and written at once.
    """
    if not rows:
        return
    pending = transaction_hook(conn, PENDING)
    if pending is None:
        audit_chain.append(conn, rows)
    else:
        pending.extend(rows)


class EventBuffer:
    """The audit events of one write transaction, in order, waiting to be chained.

    The before-commit hook of :data:`PENDING`: the transaction chains them
    after its work, as the last thing before it commits.

    Holds at most ``_IN_MEMORY`` of them in memory and moves the older ones
    to an unnamed temporary file, so that a transaction writing 200,000
    events (an import) stays as small as one writing 2,000.
    """

    def __init__(self) -> None:
        self._rows: list[Mapping[str, Any]] = []
        self._spilled: IO[bytes] | None = None
        self._batches = 0
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def extend(self, rows: Iterable[Mapping[str, Any]]) -> None:
        """Add events made with :func:`event_row`."""
        for row in rows:
            self._rows.append(row)
            self._count += 1
            if len(self._rows) >= _IN_MEMORY:
                self._spill()

    def __iter__(self) -> Iterator[Mapping[str, Any]]:
        if self._spilled is not None:
            self._spilled.seek(0)
            for _ in range(self._batches):
                # Written by _spill() of this buffer to its own unnamed file.
                yield from pickle.load(self._spilled)  # noqa: S301
        yield from self._rows

    def before_commit(self, conn: Connection) -> None:
        """Append the events to the audit chain (nothing, and no lock, when there are none)."""
        if self._count:
            audit_chain.append(conn, self)

    def close(self) -> None:
        """Remove the temporary file, if any."""
        if self._spilled is not None:
            self._spilled.close()
            self._spilled = None

    def __enter__(self) -> EventBuffer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _spill(self) -> None:
        if self._spilled is None:
            # Closed by close(): the transaction closes its hooks when it is over.
            self._spilled = tempfile.TemporaryFile()  # noqa: SIM115
        # Pickled: the rows read back exactly as they were (aware `at` included),
        # at a tenth of the cost of a JSON line per batch; only this buffer reads it.
        pickle.dump(
            [dict(row) for row in self._rows],
            self._spilled,
            pickle.HIGHEST_PROTOCOL,
        )
        self._batches += 1
        self._rows = []


PENDING: HookSlot[EventBuffer] = HookSlot("audit events", EventBuffer, last=True)
"""Where a write transaction keeps its audit events: chained after every other hook."""


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
