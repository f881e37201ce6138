"""The audit hash chain: `seatgate audit verify` finds an edited, inserted or deleted event.

The attacker here has write access to the database and knows the hash
algorithm; every change is made with plain SQL, never through seatgate.
What the chain cannot show is said where it matters: someone who rewrites
every event from some point on *and* the chain head leaves a valid chain.
Every test runs on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from sqlalchemy import (
    Connection,
    delete,
    func,
    insert,
    inspect,
    literal_column,
    select,
    update,
)
from sqlalchemy.exc import OperationalError

from seatgate.app import Core
from seatgate.audit import chain as audit_chain
from seatgate.audit import log as audit
from seatgate.audit import single_statement
from seatgate.audit.chain import GENESIS, ChainReport
from seatgate.cli.audit_cmd import audit_group
from seatgate.cli.context import CliState
from seatgate.clock import FakeClock
from seatgate.licensing.vendor import VendorKey
from seatgate.storage import migrations
from seatgate.storage.commit_hooks import transaction_hook
from seatgate.storage.schema import audit_chain as chain_head
from seatgate.storage.schema import audit_counts, audit_events
from seatgate.upgrades import upgrade
from tests.conftest import INSTALLATION, add_users
from tests.schema_history import back_to_version_2


def verify(app: Core) -> ChainReport:
    return app.db.read(audit_chain.verify)


def by_hand(app: Core, work: Callable[[Connection], Any]) -> Any:
    """Change the database directly, as someone with its password would."""
    with app.db.engine.begin() as conn:
        return work(conn)


def rows(app: Core) -> list[Any]:
    return app.db.read(
        lambda conn: conn.execute(select(audit_events).order_by(audit_events.c.id)).all()
    )


def head(app: Core) -> Any:
    return app.db.read(lambda conn: conn.execute(select(chain_head)).one())


def counts(app: Core) -> dict[tuple[str, str], int]:
    return app.db.read(
        lambda conn: {(r.action, r.outcome): r.count for r in conn.execute(select(audit_counts))}
    )


def grouped(app: Core) -> dict[tuple[str, str], int]:
    """The totals `audit_counts` must equal, counted from the events themselves."""
    outcome = func.coalesce(audit_events.c.outcome, literal_column("''"))
    query = select(audit_events.c.action, outcome, func.count()).group_by(
        audit_events.c.action, outcome
    )
    return app.db.read(lambda conn: {(a, o): n for a, o, n in conn.execute(query)})


@pytest.fixture
def busy(app: Core, mint: Callable[..., str], clock: FakeClock) -> Core:
    """Accounts, a full 25-seat licence and a mix of logins, at times with microseconds."""
    logins = add_users(app, 28)
    app.licensing.install(mint("license", seats=25), actor="test")
    for login in logins[6:]:  # 22 seats taken, three left for the logins below
        app.ledger.assign(app.accounts.get(login).id, actor="test")
    attempts = [
        ("user000", "user000-pw"),
        ("user001", "wrong-pw"),
        ("user001", "user001-pw"),
        ("nobody", "whatever"),
        ("user002", "user002-pw"),
        ("user003", "user003-pw"),  # no seat left
        ("user000", "user000-pw"),
    ]
    for login, password in attempts:
        clock.advance(timedelta(seconds=7, microseconds=123_457))
        app.gate.decide(login, password, address="10.0.0.7")
    app.ledger.revoke(app.accounts.get("user002").id, actor="test")
    return app


def test_the_chain_is_intact_after_accounts_a_licence_and_logins(busy: Core) -> None:
    events = rows(busy)
    assert len(events) >= 15
    assert {e.outcome for e in events if e.action == "login"} >= {
        "allowed",
        "invalid_credentials",
        "no_seat_available",
    }
    assert events[0].prev_hash == GENESIS
    assert all(e.prev_hash == before.hash for before, e in pairwise(events))
    report = verify(busy)
    assert report.intact, report.problem
    assert report.problem is None
    assert (report.events, report.head) == (len(events), events[-1].hash)
    chain = head(busy)
    assert (chain.head_id, chain.head_hash, chain.events) == (
        events[-1].id,
        events[-1].hash,
        len(events),
    )


def test_audit_counts_equal_a_group_by_over_the_events(busy: Core) -> None:
    assert counts(busy) == grouped(busy)
    assert counts(busy)[("login", "allowed")] == 4
    assert counts(busy)[("account.created", "")] == 28


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("details", json.dumps({"address": "192.0.2.1", "known": True})),
        ("actor", "someone-else"),
        ("outcome", "allowed"),
        ("subject", None),
    ],
)
def test_an_edited_event_is_named(busy: Core, column: str, value: Any) -> None:
    events = rows(busy)
    victim = next(e for e in events if e.outcome == "invalid_credentials")
    by_hand(
        busy,
        lambda c: c.execute(
            update(audit_events).where(audit_events.c.id == victim.id).values({column: value})
        ),
    )
    report = verify(busy)
    assert report.problem is not None
    assert (report.problem.event_id, report.problem.kind) == (victim.id, "edited")
    assert f"#{victim.id} was edited" in report.problem.message
    assert report.events == events.index(victim)  # every event before it checked out


def test_an_edited_timestamp_is_named(busy: Core) -> None:
    victim = rows(busy)[4]
    by_hand(
        busy,
        lambda c: c.execute(
            update(audit_events)
            .where(audit_events.c.id == victim.id)
            .values(at=victim.at - timedelta(microseconds=1))
        ),
    )
    problem = verify(busy).problem
    assert problem is not None
    assert (problem.event_id, problem.kind) == (victim.id, "edited")


def test_an_edited_event_given_a_new_hash_shows_at_the_next_event(busy: Core) -> None:
    # The attacker recomputes the edited event's own hash; the next event
    # still names the old one. This looks the same as deleting the event
    # and inserting a forged one in its place, and is reported so.
    events = rows(busy)
    victim, after = events[5], events[6]
    forged = {**victim._mapping, "actor": "someone-else"}
    by_hand(
        busy,
        lambda c: c.execute(
            update(audit_events)
            .where(audit_events.c.id == victim.id)
            .values(actor="someone-else", hash=audit_chain.event_hash(victim.prev_hash, forged))
        ),
    )
    problem = verify(busy).problem
    assert problem is not None
    assert (problem.event_id, problem.kind) == (after.id, "deleted")
    assert f"between #{victim.id} and #{after.id}" in problem.message
    assert "replaced" in problem.message


def test_a_deleted_event_is_named(busy: Core) -> None:
    events = rows(busy)
    gone, after = events[3], events[4]
    by_hand(busy, lambda c: c.execute(delete(audit_events).where(audit_events.c.id == gone.id)))
    report = verify(busy)
    assert report.problem is not None
    assert (report.problem.event_id, report.problem.kind) == (after.id, "deleted")
    assert f"deleted between #{events[2].id} and #{after.id}" in report.problem.message
    assert report.events == 3


def test_deleting_the_first_events_is_named(busy: Core) -> None:
    events = rows(busy)
    by_hand(
        busy, lambda c: c.execute(delete(audit_events).where(audit_events.c.id <= events[1].id))
    )
    problem = verify(busy).problem
    assert problem is not None
    assert (problem.event_id, problem.kind) == (events[2].id, "deleted")
    assert f"before #{events[2].id}" in problem.message


def test_the_newest_event_deleted_is_found_through_the_chain_head(busy: Core) -> None:
    events = rows(busy)
    by_hand(
        busy, lambda c: c.execute(delete(audit_events).where(audit_events.c.id == events[-1].id))
    )
    report = verify(busy)
    assert report.problem is not None
    assert (report.problem.event_id, report.problem.kind) == (events[-2].id, "deleted")
    assert f"after #{events[-2].id} were deleted" in report.problem.message
    assert report.events == len(events) - 1


def test_a_forged_event_between_two_events_is_named_inserted(busy: Core) -> None:
    # Ids are dense, so the attacker first moves the later events up to make
    # room (and moves the chain head's id with them), then inserts a forged
    # event whose hash is right and which links to the event before it.
    events = rows(busy)
    before = events[4]
    shift = 10_000

    def forge(conn: Connection) -> None:
        conn.execute(
            update(audit_events)
            .where(audit_events.c.id > before.id)
            .values(id=audit_events.c.id + shift)
        )
        conn.execute(update(chain_head).values(head_id=chain_head.c.head_id + shift))
        fake = {
            "at": before.at + timedelta(seconds=1),
            "actor": "mallory",
            "action": "seat.assigned",
            "subject": "mallory",
            "outcome": None,
            "details": None,
        }
        conn.execute(
            insert(audit_events).values(
                id=before.id + 1,
                prev_hash=before.hash,
                hash=audit_chain.event_hash(before.hash, fake),
                **fake,
            )
        )

    by_hand(busy, forge)
    report = verify(busy)
    assert report.problem is not None
    assert (report.problem.event_id, report.problem.kind) == (before.id + 1, "inserted")
    assert f"#{events[5].id + shift} follows #{before.id}" in report.problem.message
    assert report.events == 6  # the forged event links correctly; the next one does not


def test_a_forged_event_after_the_newest_is_named_inserted(busy: Core) -> None:
    last = rows(busy)[-1]
    fake = {
        "at": last.at + timedelta(seconds=1),
        "actor": "mallory",
        "action": "seat.assigned",
        "subject": "mallory",
        "outcome": None,
        "details": None,
    }
    forged_hash = audit_chain.event_hash(last.hash, fake)
    by_hand(
        busy,
        lambda c: c.execute(
            insert(audit_events).values(
                id=last.id + 1, prev_hash=last.hash, hash=forged_hash, **fake
            )
        ),
    )
    problem = verify(busy).problem
    assert problem is not None
    assert (problem.event_id, problem.kind) == (last.id + 1, "inserted")


def test_an_event_without_a_hash_is_named_inserted(busy: Core) -> None:
    events = rows(busy)
    by_hand(
        busy,
        lambda c: c.execute(
            update(audit_events).where(audit_events.c.id == events[2].id).values(hash=None)
        ),
    )
    problem = verify(busy).problem
    assert problem is not None
    assert (problem.event_id, problem.kind) == (events[2].id, "inserted")


def test_an_edited_chain_head_is_named(busy: Core) -> None:
    by_hand(busy, lambda c: c.execute(update(chain_head).values(events=chain_head.c.events + 1)))
    problem = verify(busy).problem
    assert problem is not None
    assert (problem.event_id, problem.kind) == (None, "edited")
    assert "chain head was edited" in problem.message


def test_a_dry_run_and_a_failed_transaction_leave_the_chain_intact(
    busy: Core, clock: FakeClock
) -> None:
    before = rows(busy)

    def record(conn: Connection) -> None:
        audit.record(conn, at=clock.now(), actor="test", action="dry.run", subject="x")

    busy.db.write(record, rollback=True)

    def fail(conn: Connection) -> None:
        record(conn)
        raise RuntimeError("work failed")

    with pytest.raises(RuntimeError):
        busy.db.write(fail)
    assert rows(busy) == before
    assert verify(busy).intact

    # Writing goes on from the same head (a PostgreSQL id may have been skipped).
    busy.ledger.revoke(busy.accounts.get("user010").id, actor="test")
    after = rows(busy)
    assert [e.action for e in after[len(before) :]] == ["seat.released"]
    report = verify(busy)
    assert report.intact, report.problem
    assert report.events == len(after)


def test_a_retried_transaction_chains_only_the_events_of_its_last_attempt(
    app: Core, clock: FakeClock
) -> None:
    tries: list[int] = []

    def flaky(conn: Connection) -> None:
        tries.append(1)
        audit.record(conn, at=clock.now(), actor="test", action="try", subject=str(len(tries)))
        if len(tries) == 1:
            raise OperationalError("INSERT", None, Exception("database is locked"))

    app.db.write(flaky)
    assert [(e.action, e.subject) for e in rows(app)] == [("try", "2")]
    assert verify(app).intact
    # The buffer is gone from the pooled connection once the write is over.
    assert app.db.read(lambda conn: transaction_hook(conn, audit.PENDING)) is None


def test_a_transaction_of_thousands_of_events_keeps_their_order(
    app: Core, clock: FakeClock
) -> None:
    # More than an EventBuffer holds in memory: most go through its file.
    def many(conn: Connection) -> None:
        for i in range(2_500):
            audit.record(
                conn,
                at=clock.now() + timedelta(microseconds=i),
                actor="test",
                action="bulk",
                subject=f"e{i}",
                details={"i": i, "text": "naïve ☃"} if i % 2 else None,
            )
        audit.record_many(
            conn, [audit.event_row(at=clock.now(), actor="test", action="bulk", subject="last")]
        )

    app.db.write(many)
    events = rows(app)
    assert [e.subject for e in events] == [*(f"e{i}" for i in range(2_500)), "last"]
    assert json.loads(events[1].details) == {"i": 1, "text": "naïve ☃"}
    report = verify(app)
    assert report.intact, report.problem
    assert report.events == 2_501
    assert counts(app) == {("bulk", ""): 2_501}


def test_an_event_recorded_outside_a_write_transaction_is_chained_at_once(
    busy: Core, clock: FakeClock
) -> None:
    with busy.db.engine.begin() as conn:
        assert transaction_hook(conn, audit.PENDING) is None
        audit.record(conn, at=clock.now(), actor="test", action="direct", outcome="ok")
    assert rows(busy)[-1].action == "direct"
    assert verify(busy).intact
    assert counts(busy)[("direct", "ok")] == 1


def test_audit_recent_still_lists_the_newest_first(busy: Core) -> None:
    newest = busy.db.read(lambda conn: audit.recent(conn, limit=3))
    assert [e.id for e in newest] == [e.id for e in reversed(rows(busy)[-3:])]


# -- the command line ---------------------------------------------------------------------


@pytest.fixture
def config_file(tmp_path: Path, vendor_key: VendorKey, db_url: str) -> Path:
    path = tmp_path / "cli" / "seatgate.yaml"
    path.parent.mkdir()
    document = {
        "installation_id": INSTALLATION,
        "database_url": db_url,
        "license": {"public_keys": {"k1": vendor_key.public_pem()}},
    }
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    return path


@pytest.fixture
def run(config_file: Path) -> Iterator[Callable[..., Any]]:
    """run(*args) -> the result of `seatgate audit ARGS` (the group on its own)."""
    states: list[CliState] = []

    def _run(*args: str) -> Any:
        state = CliState(config_file)
        states.append(state)
        return CliRunner().invoke(audit_group, list(args), obj=state)

    yield _run
    for state in states:
        if state._app is not None:
            state._app.close()


def test_cli_verify_exits_0_when_intact_and_1_with_the_problem(
    busy: Core, run: Callable[..., Any]
) -> None:
    events = rows(busy)
    ok = run("verify")
    assert ok.exit_code == 0, ok.output
    assert ok.stdout == f"audit log intact: {len(events)} events, head {events[-1].hash}\n"
    document = json.loads(run("verify", "--json").stdout)
    assert document == {
        "intact": True,
        "events": len(events),
        "head": events[-1].hash,
        "keyed_from": None,
        "unchecked": False,
        "problem": None,
    }

    victim = events[3]
    by_hand(
        busy,
        lambda c: c.execute(
            update(audit_events).where(audit_events.c.id == victim.id).values(actor="x")
        ),
    )
    broken = run("verify")
    assert broken.exit_code == 1
    assert f"audit log NOT intact: event #{victim.id} was edited" in broken.stdout
    as_json = run("verify", "--json")
    assert as_json.exit_code == 1
    document = json.loads(as_json.stdout)
    assert document["intact"] is False
    assert document["events"] == 3
    assert document["head"] == events[2].hash
    assert document["problem"]["event_id"] == victim.id
    assert document["problem"]["kind"] == "edited"
    assert f"#{victim.id}" in document["problem"]["message"]


def test_cli_audit_without_a_subcommand_still_lists_events(
    busy: Core, run: Callable[..., Any]
) -> None:
    listed = run("--limit", "2", "--action", "login", "--json")
    assert listed.exit_code == 0, listed.output
    logins = [e for e in rows(busy) if e.action == "login"]
    assert [e["id"] for e in json.loads(listed.stdout)] == [logins[-1].id, logins[-2].id]
    shown = run()
    assert shown.exit_code == 0
    assert shown.stdout.splitlines()[0].split() == ["AT", "ACTOR", "ACTION", "SUBJECT", "OUTCOME"]


# -- a log written before the chain ---------------------------------------------------------


def test_a_version_2_log_is_chained_by_the_upgrade(busy: Core, clock: FakeClock) -> None:
    kept = [(e.id, e.at, e.actor, e.action, e.subject, e.outcome, e.details) for e in rows(busy)]
    by_hand(busy, back_to_version_2)
    assert busy.db.read(migrations.current_version) == 2
    assert "hash" not in {
        c["name"] for c in busy.db.read(lambda c: inspect(c).get_columns("audit_events"))
    }

    assert upgrade(busy.db, clock.now()) == (2, migrations.SCHEMA_VERSION)

    events = rows(busy)
    assert [
        (e.id, e.at, e.actor, e.action, e.subject, e.outcome, e.details) for e in events
    ] == kept
    report = verify(busy)
    assert report.intact, report.problem
    assert report.events == len(kept)
    assert (head(busy).head_id, head(busy).events) == (events[-1].id, len(kept))
    assert counts(busy) == grouped(busy)

    # The upgraded log goes on growing, and tampering with an adopted event shows.
    clock.advance(timedelta(minutes=1))
    assert busy.gate.decide("user000", "user000-pw").allowed
    assert verify(busy).intact
    assert counts(busy) == grouped(busy)
    by_hand(
        busy,
        lambda c: c.execute(
            update(audit_events).where(audit_events.c.id == events[1].id).values(actor="x")
        ),
    )
    problem = verify(busy).problem
    assert problem is not None
    assert (problem.event_id, problem.kind) == (events[1].id, "edited")


def test_an_empty_version_2_log_gets_an_empty_chain(app: Core, clock: FakeClock) -> None:
    by_hand(app, back_to_version_2)
    upgrade(app.db, clock.now())
    assert verify(app) == ChainReport(0, GENESIS, None)
    assert (head(app).head_id, head(app).head_hash, head(app).events) == (None, GENESIS, 0)


# -- concurrent writers -------------------------------------------------------------------


@pytest.mark.slow
def test_logins_from_six_processes_leave_one_intact_chain(
    tmp_path: Path, db_url: str, vendor_key: VendorKey
) -> None:
    from tests.test_concurrency import _installation, _run_children

    app, config_path = _installation(tmp_path, db_url, vendor_key)
    try:
        logins = add_users(app, 60)
        # 25 seats for 60 accounts, and a wrong password now and then: allowed,
        # no_seat_available and invalid_credentials events interleave.
        work = [
            [
                (login, f"{login}-pw" if n % 4 else "wrong-pw")
                for n, login in enumerate(logins[i::6])
            ]
            for i in range(6)
        ]
        outcomes = _run_children(config_path, work)
        assert [error for outcome in outcomes for error in outcome.errors] == []

        report = verify(app)
        assert report.intact, report.problem
        events = rows(app)
        assert report.events == len(events) == head(app).events
        assert report.head == events[-1].hash == head(app).head_hash
        assert sum(1 for e in events if e.action == "login") == 60
        assert counts(app) == grouped(app)
        assert counts(app)[("login", "allowed")] == 25
    finally:
        app.close()


def test_a_short_append_adds_a_new_count_and_bumps_an_old_one(busy: Core) -> None:
    """One write with an action never seen and one seen before (on PostgreSQL one statement
    after the head lock): counts, head and chain stay exact."""

    def work(conn: Connection) -> None:
        now = busy.clock.now()
        audit.record(conn, at=now, actor="t", action="test.new", subject="s")
        audit.record(conn, at=now, actor="t", action="login", subject="s", outcome="allowed")

    busy.db.write(work)
    assert counts(busy) == grouped(busy)
    assert counts(busy)[("test.new", "")] == 1
    events = rows(busy)
    assert (head(busy).head_id, head(busy).events) == (events[-1].id, len(events))
    assert verify(busy).intact


def test_short_appends_of_one_shape_reuse_one_compiled_statement(busy: Core) -> None:
    """Compiling the one-statement append cost more than a login; it is compiled once per
    shape, and each append still writes its own events (PostgreSQL, where the head lock is
    part of that statement on a plain chain; portable elsewhere)."""
    single_statement._chained.cache_clear()
    for subject in ("first", "second", "third"):
        busy.db.write(
            lambda conn, s=subject: audit.record(
                conn, at=busy.clock.now(), actor="t", action="test.shape", subject=s
            )
        )
    if busy.db.is_sqlite:
        assert single_statement._chained.cache_info().currsize == 0
    else:
        info = single_statement._chained.cache_info()
        assert (info.misses, info.hits) == (1, 2)
    assert [e.subject for e in rows(busy)[-3:]] == ["first", "second", "third"]
    assert counts(busy)[("test.shape", "")] == 3
    assert verify(busy).intact
