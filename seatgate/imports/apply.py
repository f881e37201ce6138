"""Applying an import: one transaction, every change audited."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import Connection

from seatgate.clock import Clock
from seatgate.errors import ImportRejected, StorageConflict
from seatgate.imports.check import CheckedImport, confusable_rows
from seatgate.imports.records import (
    AccountRecord,
    AccountSource,
    ChangeJournal,
    Field,
    ImportReport,
    RowProblem,
)
from seatgate.imports.steps import Step
from seatgate.seats.ledger import SeatLedger
from seatgate.seats.lock import take_seat_lock
from seatgate.storage.batches import BATCH, batched, plan_each_batch
from seatgate.storage.db import Database


class AccountImporter:
    """Creates and updates accounts from an :class:`AccountSource`, all or nothing."""

    def __init__(self, db: Database, clock: Clock, ledger: SeatLedger) -> None:
        self.db = db
        self.clock = clock
        self.ledger = ledger

    def check(self, source: AccountSource) -> CheckedImport:
        """Read the whole source once and find every bad row.

        Bad rows are those the source reports, logins that appear twice
        after normalisation, and logins of directory accounts. The result is
        a context manager; close it to delete its temporary file. Raises
        :class:`ImportRejected` when the source cannot be read at all.
        """
        checked = CheckedImport(source)
        try:
            self.db.read(checked.run)
        except BaseException:
            checked.close()
            raise
        return checked

    def apply(
        self,
        checked: CheckedImport,
        *,
        actor: str,
        dry_run: bool = False,
        journal: ChangeJournal | None = None,
        on_progress: Callable[[int], None] | None = None,
        before_commit: Callable[[ImportReport], None] | None = None,
    ) -> ImportReport:
        """Write the checked rows in one transaction (or, for a dry run, roll it back).

        New logins become ``csv`` accounts; existing accounts, matched by
        login key, get the values of the columns the source has. A row whose
        ``active`` is false disables the account and frees its seat.
        Accounts the source does not name are left alone. Each change is
        audited. ``on_progress`` hears how many rows are done. Raises
        :class:`ImportRejected` (nothing written) when the check found bad
        rows, or a directory account took one of the logins since the check.
        ``before_commit`` sees the report inside the transaction; what it
        raises rolls the whole import back.
        """
        if checked.problem_count:
            raise ImportRejected(None, f"{checked.problem_count} bad row(s); nothing was written")

        def work(conn: Connection) -> ImportReport:
            step = self._step(conn, checked.fields, actor, dry_run, journal)
            done = 0
            for batch in checked.records():
                step.apply(batch)
                done += len(batch)
                if on_progress is not None:
                    on_progress(done)
            report = self._finish(step, actor)
            if before_commit is not None:
                before_commit(report)
            return report

        return self.db.write(work, rollback=dry_run)

    def apply_new(
        self,
        source: AccountSource,
        *,
        actor: str,
        dry_run: bool = False,
        journal: ChangeJournal | None = None,
    ) -> ImportReport | None:
        """Check and write a source of new accounts in one pass and one transaction.

        The usual import -- every row a valid account the installation does
        not have yet -- read once and written as it is read, without staging
        its rows between :meth:`check` and :meth:`apply`. Returns None, with
        nothing written, at the first row that is bad, names an existing
        account, or names a login an earlier row named: such a source goes
        through :meth:`check` (which lists every bad row) and :meth:`apply`.
        Raises :class:`ImportRejected` (nothing written) when the source
        cannot be read as a whole.
        """

        def work(conn: Connection) -> ImportReport:
            step = self._step(conn, source.fields, actor, dry_run, journal)
            step.new_only = True
            for batch in batched(source.rows(), BATCH):
                step.apply(_all_new(conn, batch))
            return self._finish(step, actor)

        try:
            return self.db.write(work, rollback=dry_run)
        except (_NotAllNew, StorageConflict):
            # A bad or repeated row, or a login the database has (its unique key
            # refused the insert): nothing was written; the check sorts it out.
            return None

    def _step(
        self,
        conn: Connection,
        fields: frozenset[Field],
        actor: str,
        dry_run: bool,
        journal: ChangeJournal | None,
    ) -> Step:
        """The seat lock taken and a fresh report, for one import's transaction."""
        if journal is not None:
            journal.restart()  # a retried transaction starts its journal afresh
        lock = take_seat_lock(conn)
        plan_each_batch(conn)
        report = ImportReport(dry_run=dry_run)
        return Step(lock, self.ledger, actor, self.clock, fields, report, journal)

    def _finish(self, step: Step, actor: str) -> ImportReport:
        # Once for the whole import: each row's own count would cost a
        # query per freed seat on imports of thousands.
        self.ledger.observe_usage_in(step.lock, actor=actor)
        return step.report


class _NotAllNew(Exception):
    """A row :meth:`AccountImporter.apply_new` leaves to the check (its transaction rolls back)."""


def _all_new(conn: Connection, batch: list[AccountRecord | RowProblem]) -> list[AccountRecord]:
    """``batch`` if every row is valid and no login in it mixes scripts confusably.

    A login the database already has, or one named twice in the file, is
    refused by the unique login key when the batch is written (:attr:`Step.new_only`).
    """
    good = [r for r in batch if r.__class__ is AccountRecord]
    if len(good) < len(batch):
        raise _NotAllNew
    # Only a login with a letter outside ASCII can mix scripts.
    lines = {r.key: (r.line, r.login) for r in good if not r.login.isascii()}
    if lines and confusable_rows(conn, lines):
        raise _NotAllNew
    return good
