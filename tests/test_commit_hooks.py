"""Before-commit hooks of a write transaction, and the audit log's use of them.

Every test runs on SQLite and on PostgreSQL (conftest's ``app``).
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import Connection, select
from sqlalchemy.exc import OperationalError

from seatgate.app import Core
from seatgate.audit import chain as audit_chain
from seatgate.audit import log as audit
from seatgate.storage import settings
from seatgate.storage.commit_hooks import HookSlot, transaction_hook
from seatgate.storage.schema import audit_events

Log = list[str]


class Recorder:
    """A hook that writes a setting when it runs and notes what happens to it."""

    def __init__(self, name: str, log: Log) -> None:
        self.name = name
        self.log = log
        self.log.append(f"{name} made")

    def before_commit(self, conn: Connection) -> None:
        self.log.append(f"{self.name} ran")
        settings.put(conn, f"hook.{self.name}", "written")

    def close(self) -> None:
        self.log.append(f"{self.name} closed")


def slot(name: str, log: Log, *, last: bool = False) -> HookSlot[Recorder]:
    return HookSlot(name, lambda: Recorder(name, log), last=last)


def setting(app: Core, key: str) -> str | None:
    return app.db.read(lambda conn: settings.get(conn, key))


def test_a_hook_runs_after_the_work_inside_the_transaction_then_closes(app: Core) -> None:
    log: Log = []
    first = slot("first", log)

    def work(conn: Connection) -> str:
        hook = transaction_hook(conn, first)
        assert hook is not None
        assert transaction_hook(conn, first) is hook  # one per transaction
        log.append("work done")
        return "result"

    assert app.db.write(work) == "result"
    assert log == ["first made", "work done", "first ran", "first closed"]
    assert setting(app, "hook.first") == "written"


def test_a_dry_run_runs_its_hooks_and_rolls_their_writes_back(app: Core) -> None:
    log: Log = []
    first = slot("first", log)
    app.db.write(lambda conn: transaction_hook(conn, first), rollback=True)
    assert log == ["first made", "first ran", "first closed"]
    assert setting(app, "hook.first") is None


def test_hooks_run_in_order_of_first_use_and_last_slots_after_the_others(app: Core) -> None:
    log: Log = []
    final, one, two = slot("final", log, last=True), slot("one", log), slot("two", log)

    def work(conn: Connection) -> None:
        for each in (final, two, one, two):
            transaction_hook(conn, each)

    app.db.write(work)
    assert [line for line in log if line.endswith("ran")] == ["two ran", "one ran", "final ran"]
    assert sorted(line for line in log if line.endswith("closed")) == [
        "final closed",
        "one closed",
        "two closed",
    ]


def test_failed_work_closes_its_hooks_without_running_them(app: Core) -> None:
    log: Log = []
    first = slot("first", log)

    def work(conn: Connection) -> None:
        transaction_hook(conn, first)
        raise ValueError("work failed")

    with pytest.raises(ValueError, match="work failed"):
        app.db.write(work)
    assert log == ["first made", "first closed"]
    assert setting(app, "hook.first") is None


def test_a_retried_attempt_starts_with_new_hooks(app: Core) -> None:
    log: Log = []
    first = slot("first", log)
    made: list[Any] = []

    def flaky(conn: Connection) -> None:
        made.append(transaction_hook(conn, first))
        if len(made) == 1:
            raise OperationalError("INSERT", None, Exception("database is locked"))

    app.db.write(flaky)
    assert made[0] is not made[1]
    assert log == ["first made", "first closed", "first made", "first ran", "first closed"]


def test_there_are_no_hooks_outside_a_write_transaction(app: Core) -> None:
    log: Log = []
    first = slot("first", log)
    assert app.db.read(lambda conn: transaction_hook(conn, first)) is None
    with app.db.engine.begin() as conn:
        assert transaction_hook(conn, first) is None
    assert log == []


class Asks(Recorder):
    """A hook that, when it runs, asks for the hook in another slot."""

    def __init__(self, name: str, log: Log, other: HookSlot[Recorder]) -> None:
        super().__init__(name, log)
        self.other = other

    def before_commit(self, conn: Connection) -> None:
        super().before_commit(conn)
        transaction_hook(conn, self.other)


def test_a_hook_may_ask_for_another_while_it_runs(app: Core) -> None:
    log: Log = []
    late = slot("late", log, last=True)
    early: HookSlot[Recorder] = HookSlot("early", lambda: Asks("early", log, late))
    app.db.write(lambda conn: transaction_hook(conn, early))
    assert [line for line in log if line.endswith("ran")] == ["early ran", "late ran"]
    assert setting(app, "hook.late") == "written"


def test_a_hook_asked_for_after_it_ran_is_refused(app: Core) -> None:
    # What it would be handed then could never be written.
    log: Log = []
    late = slot("late", log, last=True)
    later: HookSlot[Recorder] = HookSlot("later", lambda: Asks("later", log, late), last=True)

    def work(conn: Connection) -> None:
        transaction_hook(conn, late)
        transaction_hook(conn, later)

    with pytest.raises(RuntimeError, match="'late' was asked for after it ran"):
        app.db.write(work)
    assert sorted(line for line in log if line.endswith("closed")) == [
        "late closed",
        "later closed",
    ]
    assert setting(app, "hook.late") is None


def test_audit_events_a_hook_records_are_chained_after_it(app: Core) -> None:
    """The audit slot is `last`: events recorded by another hook still reach the chain."""

    class Audits:
        def before_commit(self, conn: Connection) -> None:
            audit.record(conn, at=app.clock.now(), actor="test", action="from-hook")

        def close(self) -> None:
            pass

    audits: HookSlot[Audits] = HookSlot("audits", Audits)

    def work(conn: Connection) -> None:
        audit.record(conn, at=app.clock.now(), actor="test", action="from-work")
        transaction_hook(conn, audits)

    app.db.write(work)
    actions = app.db.read(
        lambda conn: list(
            conn.execute(select(audit_events.c.action).order_by(audit_events.c.id)).scalars()
        )
    )
    assert actions[-2:] == ["from-work", "from-hook"]
    assert app.db.read(audit_chain.verify).intact
