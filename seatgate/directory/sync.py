"""Directory sync: make the accounts mirror the directory, all or nothing.

The directory is read first (outside any database transaction), then one
write transaction applies every change with its audit event, or none. A run
that would disable or delete more accounts than the configured share stops
before writing; so does a full run whose search came back empty while
directory accounts exist -- a broken search must never empty the seat ledger.
The writes themselves go in batches (:mod:`seatgate.directory.apply`).
A preview (:meth:`DirectorySync.preview`) is the same dry run, except that
it notes the limits it passes instead of stopping, so an admin sees every
change behind a stop before confirming it. An applied run ends with one
``directory.synced`` audit event holding its counts: the trail of runs.

Identity is the directory's immutable id (objectGUID / entryUUID): a renamed
user keeps account and seat; a re-created user is a new account. Nothing is
ever hard-deleted: an entry gone from the directory marks its account
``deleted`` and frees the seat.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from sqlalchemy import Connection

from seatgate.accounts.logins import login_key
from seatgate.audit import log as audit
from seatgate.clock import Clock
from seatgate.directory import groups
from seatgate.directory.apply import ACTOR, Known, Pending, SyncWriter
from seatgate.directory.known import count_live, load_known
from seatgate.directory.model import (
    DISABLES,
    SEAT_REVOCATIONS,
    DirectoryEntry,
    DirectoryReader,
    SafetyHold,
    Snapshot,
    SyncReport,
)
from seatgate.errors import (
    DirectorySearchIncomplete,
    InvalidLogin,
    LastAdminStop,
    SeatRevocationSafetyStop,
    SyncSafetyStop,
)
from seatgate.seats.ledger import SeatLedger
from seatgate.seats.lock import take_seat_lock
from seatgate.storage import outbox, settings
from seatgate.storage.batches import plan_each_batch
from seatgate.storage.db import Database
from seatgate.storage.locks import job_lock

# The notification event of a run stopped by the safety limits.
SYNC_STOPPED = "directory.sync_stopped"
# The audit event of an applied run, with its counts (the console's last runs).
SYNCED = "directory.synced"


class DirectorySync:
    """Runs syncs from a :class:`DirectoryReader` into the accounts and the seat ledger."""

    def __init__(
        self,
        db: Database,
        clock: Clock,
        ledger: SeatLedger,
        *,
        max_disable_ratio: float,
        max_disable_count: int,
        seat_groups: Sequence[str] = (),
        seat_groups_mode: str = "grant",
        admin_groups: Sequence[str] = (),
    ) -> None:
        self.db = db
        self.clock = clock
        self.ledger = ledger
        self.max_disable_ratio = max_disable_ratio
        self.max_disable_count = max_disable_count
        self.seat_groups = tuple(seat_groups)
        self.exclusive = seat_groups_mode == "exclusive"
        self.admin_groups = tuple(admin_groups)

    def run(
        self,
        reader: DirectoryReader,
        *,
        full: bool = False,
        dry_run: bool = False,
        confirm_disables: int | None = None,
        confirm_seat_revocations: int | None = None,
        progress: Callable[[int], None] | None = None,
        actor: str = ACTOR,
    ) -> SyncReport:
        """Sync once. Incremental when a mark from an earlier run exists, unless ``full``.

        Every change is audited as ``actor`` (the job, or the admin who ran
        it), and an applied run ends with one ``directory.synced`` event
        holding its counts (:meth:`SyncReport.summary`).

        Raises :class:`SyncAlreadyRunning`, :class:`DirectoryUnavailable`,
        :class:`DirectorySearchIncomplete`, :class:`SyncSafetyStop` (or its
        :class:`SeatRevocationSafetyStop`) or :class:`LastAdminStop`; in
        every one of those cases nothing was changed.
        """
        plan = _Plan(dry_run, confirm_disables, confirm_seat_revocations, actor, hold=False)
        return self._run(reader, full, plan, progress)

    def preview(
        self, reader: DirectoryReader, *, full: bool = False, actor: str = ACTOR
    ) -> SyncReport:
        """A dry run that goes past the safety limits and lists them in ``report.held``.

        The same run as ``dry_run=True``, changing nothing, except that a
        limit a real run would stop at is reported (with its count, which a
        real run then needs as its confirmation) instead of raised, so the
        preview still shows every change behind it. Raises what :meth:`run`
        raises, but never :class:`SyncSafetyStop`.
        """
        return self._run(reader, full, _Plan(True, None, None, actor, hold=True), None)

    def _run(
        self,
        reader: DirectoryReader,
        full: bool,
        plan: _Plan,
        progress: Callable[[int], None] | None,
    ) -> SyncReport:
        mark_key = f"ldap.mark:{reader.server_id}"
        with job_lock(self.db, "ldap-sync"):
            since = None if full else self.db.read(lambda conn: settings.get(conn, mark_key))
            snapshot = reader.read(since)
            if progress is not None:
                progress(len(snapshot.entries))

            def work(conn: Connection) -> SyncReport:
                report = self._apply(conn, snapshot, plan)
                report.dry_run = plan.dry_run
                report.server = snapshot.server
                if snapshot.mark is not None:
                    settings.put(conn, mark_key, snapshot.mark)
                if not plan.dry_run:
                    self._record_run(conn, report, plan)
                return report

            try:
                return self.db.write(work, rollback=plan.dry_run)
            except SyncSafetyStop as stop:
                if not plan.dry_run:
                    self._alert_stop(reader.server_id, stop)
                raise

    def _record_run(self, conn: Connection, report: SyncReport, plan: _Plan) -> None:
        """The run's own audit event: what the console lists as the last runs."""
        details = report.summary()
        if plan.confirm_disables is not None:
            details["confirmed_disables"] = plan.confirm_disables
        if plan.confirm_seat_revocations is not None:
            details["confirmed_seat_revocations"] = plan.confirm_seat_revocations
        audit.record(
            conn,
            at=self.clock.now(),
            actor=plan.actor,
            action=SYNCED,
            subject=report.server,
            details=details,
        )

    def _alert_stop(self, server_id: str, stop: SyncSafetyStop) -> None:
        """Put the stopped run in the notification outbox, in its own transaction.

        The run itself wrote nothing (its transaction rolled back); the alert
        is what the stop produces. One per directory and UTC day: a sync job
        every 15 minutes that keeps stopping alerts once, not 96 times.
        """
        now = self.clock.now()
        data = {"server": server_id, "count": stop.count, "total": stop.total, "reason": str(stop)}
        key = f"{SYNC_STOPPED}:{server_id}:{now:%Y-%m-%d}"
        self.db.write(lambda conn: outbox.enqueue(conn, SYNC_STOPPED, key, data, now))

    # -- planning and applying, inside the one transaction -------------------

    def _apply(self, conn: Connection, snapshot: Snapshot, plan: _Plan) -> SyncReport:
        lock = take_seat_lock(conn)
        admins_before = groups.active_admins(conn) if self.admin_groups else set()
        report = SyncReport(full=snapshot.full, dry_run=False, entries_seen=len(snapshot.entries))
        held = report.held if plan.hold else None
        plan_each_batch(conn)
        entries = {e.external_id: e for e in snapshot.entries}
        if snapshot.full:
            known = load_known(conn)
        else:
            # Only the accounts this run can change: its cost follows the changes.
            known = load_known(conn, entries.keys() | set(snapshot.deleted_ids or ()))
        live = [k for k in known.values() if k.status != "deleted"]
        gone, newly_disabled = _losses(snapshot, entries, live)
        total_of = (lambda: len(live)) if snapshot.full else (lambda: count_live(conn))
        count = len(gone) + len(newly_disabled)
        self._check_threshold(DISABLES, count, total_of, plan.confirm_disables, held)

        writer = SyncWriter(lock, self.ledger, self.clock, report, self.clock.now(), plan.actor)
        self._release_and_delete(writer, gone, newly_disabled)
        _write_entries(writer, report, known, entries)
        writer.flush()

        if self.exclusive:
            revoke, report.seats_kept_pinned = groups.outside_seat_groups(conn, self.seat_groups)
            # Counted after the entries are written: the groups are the new ones.
            self._check_threshold(
                SEAT_REVOCATIONS, len(revoke), total_of, plan.confirm_seat_revocations, held
            )
            groups.revoke_seats(lock, self.ledger, report, revoke, plan.actor)
        if self.seat_groups:
            groups.grant_group_seats(lock, self.ledger, report, self.seat_groups, plan.actor)
        if self.admin_groups:
            groups.follow_admin_groups(
                conn, report, self.admin_groups, self.clock.now(), plan.actor
            )
            if admins_before and not groups.active_admins(conn):
                raise LastAdminStop(sorted(admins_before))
        # Once per run, after every release and grant: one count for the
        # whole run instead of one per seat, each threshold crossed reported once.
        self.ledger.observe_usage_in(lock, actor=plan.actor)
        return report

    def _release_and_delete(
        self, writer: SyncWriter, gone: list[Known], newly_disabled: list[Known]
    ) -> None:
        # Seats first: a login locks its seat row and then its account row,
        # so the sync must never hold an account row while it waits for a seat.
        report = writer.report
        for losing, status in [(k, "deleted") for k in gone] + [
            (k, "disabled") for k in newly_disabled
        ]:
            if self.ledger.release_in(
                writer.lock,
                losing.id,
                actor=writer.actor,
                reason=f"account_{status}",
                observe=False,
            ):
                report.seats_freed.append(losing.login)
        for vanished in gone:
            writer.set_status(vanished, "deleted")
            report.deleted.append(vanished.login)

    def _check_threshold(
        self,
        kind: str,
        count: int,
        total_of: Callable[[], int],
        confirm: int | None,
        held: list[SafetyHold] | None,
    ) -> None:
        """Stop (or, in a preview, note) a run losing more than the limits allow.

        A run confirmed with exactly its count goes ahead; any other count,
        more or fewer, is checked against the limits again.
        """
        if count in (0, confirm):
            return
        total = total_of()  # counted only when something would be lost
        if count > self.max_disable_count:
            limit = f"max_disable_count ({self.max_disable_count})"
        elif count > self.max_disable_ratio * total:
            limit = f"max_disable_ratio ({self.max_disable_ratio:.0%} of {total})"
        else:
            return
        if held is not None:
            held.append(SafetyHold(kind, count, total, limit))
            return
        stop = SeatRevocationSafetyStop if kind == SEAT_REVOCATIONS else SyncSafetyStop
        raise stop(count, total, limit)


@dataclass(frozen=True)
class _Plan:
    """How one run goes: dry or real, what was confirmed, who it is audited as."""

    dry_run: bool
    confirm_disables: int | None
    confirm_seat_revocations: int | None
    actor: str
    hold: bool
    """A preview: note the safety limits instead of stopping at them."""


def _losses(
    snapshot: Snapshot, entries: Mapping[str, DirectoryEntry], live: list[Known]
) -> tuple[list[Known], list[Known]]:
    """The live accounts gone from the directory, and those it newly disabled."""
    if snapshot.full:
        if not entries and live:
            raise DirectorySearchIncomplete(
                f"the directory search returned no entries while {len(live)} directory "
                "accounts exist; nothing was changed (check ldap.base_dn, ldap.user_filter "
                "and the service account's read rights)"
            )
        gone = [k for k in live if k.external_id not in entries]
    else:
        deleted = set(snapshot.deleted_ids or ())
        gone = [k for k in live if k.external_id in deleted and k.external_id not in entries]
    newly_disabled = [
        k
        for k in live
        if k.status == "active" and k.external_id in entries and entries[k.external_id].disabled
    ]
    return gone, newly_disabled


def _write_entries(
    writer: SyncWriter,
    report: SyncReport,
    known: Mapping[str, Known],
    entries: Mapping[str, DirectoryEntry],
) -> None:
    # Renames first park the old key, so that two users swapping names
    # (or a name freed by a deletion above) never collide mid-run.
    pending: list[Pending] = []
    for entry in entries.values():
        existing = known.get(entry.external_id)
        try:
            key = login_key(entry.login)
        except InvalidLogin as exc:
            report.conflicts.append(f"{entry.dn}: {exc}")
            if existing is not None:
                writer.follow_status(existing, entry)
            continue
        if existing is not None and existing.login_key != key:
            writer.park(existing)
        pending.append((existing, entry, key))
    writer.apply(pending)
