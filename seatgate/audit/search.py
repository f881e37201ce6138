"""Searching the audit log: by actor, action, subject and time, newest first, a page at a time.

Pages are keyed on the event id (``id < before``), never on an offset, so
the thousandth page costs what the first does however large the log is.
Actor, action and subject match exactly; the time range uses the index on
``at`` (``ix_audit_events_at``) and the order uses the primary key. A search
with no time range over a rare actor walks the id index until a page is
full, so the admin console asks for a range when the log is large.

Exports read the same search in chunks of :data:`EXPORT_CHUNK` rows (each a
short read of its own, never one long transaction) and stop at
:data:`EXPORT_LIMIT` events: :func:`too_many_to_export` says beforehand
whether the search matches more, so an export is whole or refused.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Select, select

from seatgate.clock import to_utc
from seatgate.records import AuditEvent
from seatgate.storage.schema import audit_events

# Events per page of the console, and the most a page may ask for.
PAGE_SIZE = 50
MAX_PAGE_SIZE = 500
# The most events one export holds; a search matching more is refused.
EXPORT_LIMIT = 100_000
EXPORT_CHUNK = 1000
CSV_COLUMNS = ("id", "at", "actor", "action", "subject", "outcome", "details")
# Cells a spreadsheet would run as a formula get a leading quote.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")

Reader = Callable[[Callable[[Connection], Any]], Any]


@dataclass(frozen=True)
class AuditSearch:
    """What to look for; None matches anything. ``since`` inclusive, ``until`` exclusive."""

    actor: str | None = None
    action: str | None = None
    subject: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    def statement(self) -> Select[Any]:
        """The search as a SELECT, newest first (no limit, no keyset bound)."""
        query = select(audit_events).order_by(audit_events.c.id.desc())
        if self.actor is not None:
            query = query.where(audit_events.c.actor == self.actor)
        if self.action is not None:
            query = query.where(audit_events.c.action == self.action)
        if self.subject is not None:
            query = query.where(audit_events.c.subject == self.subject)
        if self.since is not None:
            query = query.where(audit_events.c.at >= self.since)
        if self.until is not None:
            query = query.where(audit_events.c.at < self.until)
        return query


@dataclass(frozen=True)
class AuditPage:
    """One page of a search; ``next_before`` is the keyset of the next page (None: last page)."""

    events: list[AuditEvent]
    next_before: int | None


def search_page(
    conn: Connection, search: AuditSearch, *, before: int | None = None, size: int = PAGE_SIZE
) -> AuditPage:
    """The ``size`` newest events matching ``search`` with ids below ``before``."""
    size = max(1, min(size, MAX_PAGE_SIZE))
    rows = _events(conn, search, before, size + 1)
    more = len(rows) > size
    shown = rows[:size]
    return AuditPage(shown, shown[-1].id if more and shown else None)


def too_many_to_export(conn: Connection, search: AuditSearch) -> bool:
    """Whether ``search`` matches more than :data:`EXPORT_LIMIT` events.

    Looks for the one event past the limit: at most that many index entries
    read, never a count of the whole log.
    """
    beyond = search.statement().with_only_columns(audit_events.c.id).offset(EXPORT_LIMIT).limit(1)
    return conn.execute(beyond).first() is not None


def export_events(read: Reader, search: AuditSearch) -> Iterator[AuditEvent]:
    """The events of ``search``, newest first, at most :data:`EXPORT_LIMIT`, read in chunks.

    ``read`` runs one read transaction (:meth:`seatgate.storage.Database.read`).
    Events appended while the export runs have higher ids than its first
    chunk's and are left out, so the export is the log as it was when it began.
    """
    before: int | None = None
    left = EXPORT_LIMIT
    while left > 0:
        size = min(EXPORT_CHUNK, left)
        chunk: list[AuditEvent] = read(_chunk_reader(search, before, size))
        yield from chunk
        if len(chunk) < size:
            return
        left -= len(chunk)
        before = chunk[-1].id


def _chunk_reader(
    search: AuditSearch, before: int | None, size: int
) -> Callable[[Connection], list[AuditEvent]]:
    return lambda conn: _events(conn, search, before, size)


def csv_lines(events: Iterator[AuditEvent]) -> Iterator[str]:
    """The events as CSV text (a header, then one line per event), a chunk at a time."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for count, document in enumerate(audit_json_each(events), start=1):
        details = document["details"]
        document["details"] = json.dumps(details, sort_keys=True) if details else ""
        writer.writerow([_cell(document[column]) for column in CSV_COLUMNS])
        if count % EXPORT_CHUNK == 0:
            yield _drain(buffer)
    yield _drain(buffer)


def json_lines(events: Iterator[AuditEvent]) -> Iterator[str]:
    """The events as one JSON array (the documents of ``audit --json``), an event at a time."""
    yield "["
    for count, document in enumerate(audit_json_each(events)):
        yield ("," if count else "") + "\n" + json.dumps(document, sort_keys=True)
    yield "\n]\n"


def audit_json_each(events: Iterator[AuditEvent]) -> Iterator[dict[str, Any]]:
    """Each event as the document ``seatgate audit --json`` writes for it."""
    for e in events:
        yield {
            "id": e.id,
            "at": to_utc(e.at).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "actor": e.actor,
            "action": e.action,
            "subject": e.subject,
            "outcome": e.outcome,
            "details": e.details,
        }


def _events(
    conn: Connection, search: AuditSearch, before: int | None, limit: int
) -> list[AuditEvent]:
    query = search.statement().limit(limit)
    if before is not None:
        query = query.where(audit_events.c.id < before)
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


def _cell(value: object) -> str:
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


def _drain(buffer: io.StringIO) -> str:
    text = buffer.getvalue()
    buffer.seek(0)
    buffer.truncate()
    return text
