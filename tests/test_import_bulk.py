"""The bulk path of an import: rows written at the driver (COPY on PostgreSQL), the
audit events of thousands of accounts chained in batches.

Run on SQLite and PostgreSQL through conftest's `app` fixture. Sizes are past the
batch (1,000 accounts), the in-memory event buffer (1,000 events) and the bulk
threshold of the chain, so every bulk step is taken.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, func, insert, literal_column, select

from seatgate.adapters.csv import CsvAccountFile
from seatgate.app import Core
from seatgate.audit import chain as audit_chain
from seatgate.audit import log as audit
from seatgate.audit.hashing import RunHasher, content_hash, event_hash
from seatgate.clock import FakeClock, to_utc
from seatgate.errors import ImportRejected, StorageConflict
from seatgate.imports import AccountImporter
from seatgate.storage.bulk import insert_rows
from seatgate.storage.schema import accounts, audit_counts, audit_events
from seatgate.storage.schema import audit_chain as chain_head

ROWS = 2_500
KEY = b"k" * 40


def generated(path: Path, rows: int) -> Path:
    """A header and `rows` rows; line n holds user n (every tenth an admin, every seventh off)."""
    with path.open("w", encoding="utf-8", newline="") as out:
        out.write("login,name,email,admin,active\r\n")
        for line in range(2, rows + 2):
            admin = "yes" if line % 10 == 0 else "no"
            active = "no" if line % 7 == 0 else "yes"
            out.write(f"user{line:05d},Núñez {line},u{line}@example.com,{admin},{active}\r\n")
    return path


def import_file(app: Core, path: Path) -> int:
    importer = AccountImporter(app.db, app.clock, app.ledger)
    with importer.check(CsvAccountFile(path)) as checked:
        assert checked.problem_count == 0
        return importer.apply(checked, actor="cli:test").created


def chain_state(app: Core) -> tuple[Any, int, int | None, dict[tuple[str, str], int]]:
    def read(conn: Connection) -> tuple[Any, int, int | None, dict[tuple[str, str], int]]:
        head = conn.execute(select(chain_head)).one()
        total = conn.execute(select(func.count()).select_from(audit_events)).scalar_one()
        newest = conn.execute(select(func.max(audit_events.c.id))).scalar_one()
        counts = {(r.action, r.outcome): r.count for r in conn.execute(select(audit_counts))}
        return head, total, newest, counts

    return app.db.read(read)


def grouped(app: Core) -> dict[tuple[str, str], int]:
    outcome = func.coalesce(audit_events.c.outcome, literal_column("''"))
    query = select(audit_events.c.action, outcome, func.count()).group_by(
        audit_events.c.action, outcome
    )
    return app.db.read(lambda conn: {(a, o): n for a, o, n in conn.execute(query)})


@pytest.mark.parametrize("key", [None, KEY])
@pytest.mark.parametrize(
    ("subject", "outcome"), [("josé ☃", None), ('"quoted" \\ \n\x01 ☃', "ok"), (None, None)]
)
def test_content_hash_is_event_hash(
    key: bytes | None, subject: str | None, outcome: str | None
) -> None:
    at = datetime(2026, 3, 1, 12, 30, 15, 123456, tzinfo=UTC)
    event = {
        "at": at,
        "actor": "cli:ana",
        "action": "account.created",
        "subject": subject,
        "outcome": outcome,
        "details": '{"source": "csv", "status": "active"}',
    }
    content = [event["actor"], event["action"], subject, outcome, event["details"]]
    text = at.isoformat(timespec="microseconds")
    assert content_hash("a" * 64, text, content, key) == event_hash("a" * 64, event, key)
    # The bulk writers' hasher: the same hashes, also for a second event of the same run.
    hasher = RunHasher(key)
    first = hasher("a" * 64, text, content)
    assert first == event_hash("a" * 64, event, key)
    again = [event["actor"], event["action"], "other", outcome, event["details"]]
    assert hasher(first, text, again) == event_hash(first, {**event, "subject": "other"}, key)
    # A run of events hashed in one loop: each chained after the one before.
    run = [(at, *content), (at, *again), (at, *content)]
    second = event_hash(first, {**event, "subject": "other"}, key)
    assert RunHasher(key).chain("a" * 64, text, run) == [
        first,
        second,
        event_hash(second, event, key),
    ]


def test_a_large_import_is_chained_event_by_event_and_verifies(
    app: Core, clock: FakeClock, tmp_path: Path
) -> None:
    before = chain_state(app)[1]
    assert import_file(app, generated(tmp_path / "a.csv", ROWS)) == ROWS
    head, total, newest, counts = chain_state(app)
    assert total == before + ROWS
    assert head.events == total and head.head_id == newest
    assert counts == grouped(app)
    assert counts[("account.created", "")] == ROWS
    report = app.db.read(audit_chain.verify)
    assert report.intact, report.problem
    assert report.events == total
    # One event per account, in file order, naming it.
    created = app.db.read(
        lambda conn: (
            conn.execute(
                select(audit_events.c.subject)
                .where(audit_events.c.action == "account.created")
                .order_by(audit_events.c.id)
            )
            .scalars()
            .all()
        )
    )
    assert created == [f"user{line:05d}" for line in range(2, ROWS + 2)]
    # The rows read back as the slow path would have written them.
    ana = app.accounts.get("user00070")
    assert (ana.display_name, ana.email, ana.source) == ("Núñez 70", "u70@example.com", "csv")
    assert (ana.is_admin, ana.status) == (True, "disabled")
    assert ana.created_at == ana.updated_at == clock.now()
    # A one-event write after the bulk append continues the same chain.
    clock.advance(timedelta(seconds=1))
    app.accounts.add("after", password="pw-after-1", actor="test")
    assert app.db.read(audit_chain.verify).intact


def test_a_large_import_on_a_keyed_chain_verifies_only_with_the_key(
    app: Core, tmp_path: Path
) -> None:
    audit_chain.use_key(app.db.engine, KEY)
    import_file(app, generated(tmp_path / "a.csv", ROWS))
    assert app.db.read(lambda conn: audit_chain.verify(conn, key=KEY)).intact
    head, total, newest, _counts = chain_state(app)
    assert head.events == total and head.head_id == newest
    first_keyed = app.db.read(
        lambda conn: conn.execute(
            select(audit_events.c.action).order_by(audit_events.c.id.desc()).offset(ROWS)
        ).first()
    )
    assert first_keyed is not None and first_keyed.action == audit_chain.KEYED_ACTION
    assert not app.db.read(lambda conn: audit_chain.verify(conn, key=b"o" * 40)).intact


def test_an_import_refused_at_a_late_row_leaves_nothing_behind(app: Core, tmp_path: Path) -> None:
    """Two batches are already written (COPY on PostgreSQL) when the third is refused."""
    path = generated(tmp_path / "a.csv", ROWS)
    importer = AccountImporter(app.db, app.clock, app.ledger)
    with importer.check(CsvAccountFile(path)) as checked:
        assert checked.problem_count == 0
        # A directory account takes a late login between the check and the write.
        app.accounts.add("user02450", password=None, actor="test", source="ldap")
        before = chain_state(app)
        with pytest.raises(ImportRejected, match="belongs to the directory") as caught:
            importer.apply(checked, actor="cli:test")
    assert caught.value.line == 2450
    assert app.accounts.count() == 1
    assert chain_state(app) == before
    assert app.db.read(audit_chain.verify).intact


def test_events_spilled_by_a_transaction_come_back_exactly(app: Core, clock: FakeClock) -> None:
    """Timestamps to the microsecond, None and non-ASCII text, past the in-memory limit."""
    start = clock.now()

    def many(conn: Connection) -> None:
        audit.record_many(
            conn,
            [
                audit.event_row(
                    at=start + timedelta(microseconds=i),
                    actor="test",
                    action="bulk",
                    subject=f"ñ{i}" if i % 3 else None,
                    outcome="ok" if i % 2 else None,
                    details={"i": i} if i % 5 else None,
                )
                for i in range(2_300)
            ],
        )

    app.db.write(many)
    events = app.db.read(lambda conn: audit.recent(conn, limit=2_300, action="bulk"))[::-1]
    assert [e.at for e in events] == [start + timedelta(microseconds=i) for i in range(2_300)]
    assert [e.subject for e in events[:4]] == [None, "ñ1", "ñ2", None]
    assert [e.outcome for e in events[:2]] == [None, "ok"]
    assert events[7].details == {"i": 7} and events[5].details == {}
    assert app.db.read(audit_chain.verify).intact


def test_a_duplicate_in_a_bulk_write_is_a_conflict_and_writes_nothing(
    app: Core, clock: FakeClock
) -> None:
    """The driver's own error (COPY on PostgreSQL) comes out as SQLAlchemy's, as for any
    statement: Database.write reports the duplicate as a conflict, not a raw driver error."""
    now = clock.now()
    row = ("ana", "ana", None, None, "csv", "active", None, False, now, now)
    columns = ("login", "login_key", "display_name", "email", "source", "status")
    columns += ("password_hash", "is_admin", "created_at", "updated_at")
    with pytest.raises(StorageConflict, match="duplicate"):
        app.db.write(lambda conn: insert_rows(conn, accounts, columns, [row] * 70))
    assert app.accounts.count() == 0
    # The connection it happened on is usable again.
    assert app.db.write(lambda conn: insert_rows(conn, accounts, columns, [row])) == 1
    assert app.accounts.get("ana").created_at == now


def test_events_read_back_from_the_buffer_file_as_they_were_added() -> None:
    """Past its in-memory limit the buffer keeps events column by column in its file;
    they come back in order, each time the same instant (naive times taken as UTC)."""
    base = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    madrid = timezone(timedelta(hours=1))
    times = [base, base.astimezone(madrid), base.replace(tzinfo=None) + timedelta(seconds=1)]
    events = [
        (times[n % 3] + timedelta(microseconds=n // 1000), "cli:t", "a", f"s{n}", None, None)
        for n in range(2_345)
    ]
    with audit.EventBuffer() as buffer:
        buffer.extend(events[:10])
        buffer.extend(events[10:])
        back = list(buffer)
    assert len(buffer) == len(events)
    assert [(to_utc(e[0]), *e[1:]) for e in back] == [(to_utc(e[0]), *e[1:]) for e in events]


def test_bulk_rows_keep_each_time_as_given(app: Core, clock: FakeClock) -> None:
    """Bind processors run once per distinct object, never merging equal times of two zones."""
    now = clock.now().astimezone(UTC)
    there = now.astimezone(timezone(timedelta(hours=-5)))
    columns = ("login", "login_key", "source", "status", "is_admin", "created_at", "updated_at")
    rows = [
        (f"u{n}", f"u{n}", "csv", "active", n % 2 == 0, now if n % 2 else there, now)
        for n in range(100)
    ]
    assert app.db.write(lambda conn: insert_rows(conn, accounts, columns, rows)) == 100
    # What SQLAlchemy itself stores for the same values (SQLite keeps the zone's wall time).
    for n in (0, 1):
        values = dict(zip(columns, rows[n], strict=True)) | {"login": f"v{n}", "login_key": f"v{n}"}
        app.db.write(lambda conn, v=values: conn.execute(insert(accounts).values(**v)))
        bulk, alone = app.accounts.get(f"u{n}"), app.accounts.get(f"v{n}")
        assert bulk.is_admin is alone.is_admin is (n == 0)
        assert bulk.created_at == alone.created_at
    if app.db.is_sqlite:  # equal instants, different texts: not merged into one
        assert app.accounts.get("u0").created_at != app.accounts.get("u1").created_at
