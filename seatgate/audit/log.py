"""The audit log: every login decision and every seat, account and licence change.

Events are written inside the same transaction as the change they describe,
so the log and the ledger cannot disagree, and each is chained to the one
before it (:mod:`seatgate.audit.chain`). Passwords and token texts are never
recorded; tokens appear by ``jti`` only.
"""

from __future__ import annotations

import json
import marshal
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from itertools import islice
from typing import IO, Any

from sqlalchemy import Connection, select

from seatgate.audit import chain as audit_chain
from seatgate.audit.chain import EventTuple, as_event_tuple
from seatgate.clock import to_utc
from seatgate.errors import shorten
from seatgate.records import AuditEvent
from seatgate.storage.commit_hooks import HookSlot, transaction_hook
from seatgate.storage.schema import audit_events

# Events an EventBuffer keeps in memory before it moves them to its file.
_IN_MEMORY = 1000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


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


def record_many(conn: Connection, rows: Sequence[Mapping[str, Any] | EventTuple]) -> None:
    """Append many events made with :func:`event_row` (or their :data:`EventTuple`), in order.

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


def nothing_pending(conn: Connection) -> bool:
    """Whether the write transaction ``conn`` is in has no audit events waiting to be chained
    (False outside one: there every event is chained at once)."""
    pending = transaction_hook(conn, PENDING)
    return pending is not None and not pending


class EventBuffer:
    """The audit events of one write transaction, in order, waiting to be chained.

    The before-commit hook of :data:`PENDING`: the transaction chains them
    after its work, as the last thing before it commits.

    Holds at most ``_IN_MEMORY`` of them in memory and moves the older ones
    to an unnamed temporary file, so that a transaction writing 200,000
    events (an import) stays as small as one writing 2,000.
    """

    def __init__(self) -> None:
        # Tuples rather than dictionaries: an import keeps a million of them.
        self._rows: list[EventTuple] = []
        self._spilled: IO[bytes] | None = None
        self._count = 0
        self._batches = 0

    def __len__(self) -> int:
        return self._count

    def extend(self, rows: Iterable[Mapping[str, Any] | EventTuple]) -> None:
        """Add events made with :func:`event_row` (or their :data:`EventTuple`)."""
        events = map(as_event_tuple, rows)
        while True:
            before = len(self._rows)
            self._rows.extend(islice(events, _IN_MEMORY - before))
            self._count += len(self._rows) - before
            if len(self._rows) < _IN_MEMORY:
                return
            self._spill()

    def __iter__(self) -> Iterator[EventTuple]:
        if self._spilled is not None:
            self._spilled.seek(0)
            for _ in range(self._batches):
                size = int.from_bytes(self._spilled.read(8), "little")
                # Safe to load: an unnamed temporary file only this process wrote.
                micros, *rest = marshal.loads(self._spilled.read(size))  # noqa: S302
                stamps = {at: _EPOCH + timedelta(microseconds=at) for at in set(micros)}
                yield from zip(map(stamps.__getitem__, micros), *rest, strict=True)
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
            self._spilled = tempfile.TemporaryFile("w+b")  # noqa: SIM115
        # One marshal record per batch (this process writes and reads it back:
        # several times faster than JSON for a million events), column by column
        # (transposed in C, not a tuple built per event); `at` as whole
        # microseconds, so it reads back exactly; each distinct time converted once.
        columns = list(zip(*self._rows, strict=True))
        micros = {at: (to_utc(at) - _EPOCH) // _MICROSECOND for at in set(columns[0])}
        columns[0] = tuple(map(micros.__getitem__, columns[0]))
        # Length first: one read per batch (marshal.load reads a file in small pieces).
        blob = marshal.dumps(columns)
        self._spilled.write(len(blob).to_bytes(8, "little"))
        self._spilled.write(blob)
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
