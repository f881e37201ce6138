"""Uploaded import files kept between their preview and their confirmation.

The web console checks an uploaded CSV file and shows what importing it
would do; the confirmation must then import exactly those bytes. They are
kept in the database (table ``import_uploads``, so every node of a cluster
sees them) keyed by uploader and SHA-256, for :data:`KEEP_FOR`; the
confirmation names only the hash. Each uploader has at most
:data:`MAX_PER_OWNER` kept files (the oldest are dropped), each at most the
size the caller allows (the web body limit).

A kept file moves through states: ``checking`` (its preview is running),
``ready`` (no bad row: it may be imported) or ``rejected`` (bad rows), then
``applying`` (claimed by one confirmation: a second one finds it taken) and
``applied`` or ``failed``, when its bytes are deleted and only the outcome
stays until it expires.
"""

from __future__ import annotations

import contextlib
import hashlib
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import islice
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import Connection, and_, delete, insert, or_, select, update

from seatgate.clock import Clock, to_utc
from seatgate.errors import ImportRejected, StorageConflict
from seatgate.imports.apply import AccountImporter
from seatgate.imports.outcome import PROBLEMS_KEPT, CappedJournal, ImportOutcome, OutcomeKind
from seatgate.imports.records import AccountSource, RowProblem
from seatgate.storage.db import Database
from seatgate.storage.schema import import_uploads as uploads

KEEP_FOR = timedelta(minutes=30)
MAX_PER_OWNER = 5
# A preview or import still marked running this long after the file expired
# was lost with its process: the row is deleted like any other.
LOST_AFTER = timedelta(days=1)
CHECKING, READY, REJECTED, APPLYING, APPLIED, FAILED = (
    "checking",
    "ready",
    "rejected",
    "applying",
    "applied",
    "failed",
)
RUNNING = (CHECKING, APPLYING)

Progress = Callable[[str, int, int], None]
"""Told (stage, done, total): ``reading`` bytes of the file, then ``writing`` rows."""


class SourceOpener(Protocol):
    """Opens a file as an import source (:meth:`seatgate.app.Core.csv_file`)."""

    def __call__(
        self, path: Path, *, on_progress: Callable[[int], None] | None = None
    ) -> AccountSource: ...


@dataclass(frozen=True)
class PendingUpload:
    """A kept upload, without its bytes."""

    digest: str
    size: int
    created_at: datetime
    expires_at: datetime
    state: str
    outcome: ImportOutcome | None

    @property
    def running(self) -> bool:
        """Whether its preview or its import is under way."""
        return self.state in RUNNING


class PendingImports:
    """Keeps uploaded files, previews them (a dry run) and imports the one confirmed."""

    def __init__(
        self,
        db: Database,
        clock: Clock,
        importer: AccountImporter,
        open_source: SourceOpener,
        *,
        keep_for: timedelta = KEEP_FOR,
        per_owner: int = MAX_PER_OWNER,
    ) -> None:
        self.db = db
        self.clock = clock
        self.importer = importer
        self.open_source = open_source
        self.keep_for = keep_for
        self.per_owner = per_owner

    def store(self, owner: str, data: bytes, *, max_bytes: int) -> str:
        """Keep ``data`` uploaded by ``owner`` for its preview; return its SHA-256 (hex).

        The same file uploaded again by the same owner starts afresh. Raises
        :class:`ImportRejected` for an empty file, one over ``max_bytes``, or
        one whose import is running now.
        """
        if not data:
            raise ImportRejected(None, "the file is empty")
        if len(data) > max_bytes:
            raise ImportRejected(None, f"the file is larger than {max_bytes} bytes")
        digest = hashlib.sha256(data).hexdigest()
        now = self.clock.now()

        def work(conn: Connection) -> None:
            self._purge(conn, now)
            found = conn.execute(
                select(uploads.c.id, uploads.c.state).where(_mine(owner, digest))
            ).first()
            if found is not None and found.state == APPLYING:
                raise ImportRejected(None, "this file is being imported now")
            if found is not None:
                conn.execute(delete(uploads).where(uploads.c.id == found.id))
            older = conn.execute(
                select(uploads.c.id)
                .where(uploads.c.owner == owner, uploads.c.state != APPLYING)
                .order_by(uploads.c.created_at.desc(), uploads.c.id.desc())
                .offset(self.per_owner - 1)
            ).scalars()
            if dropped := list(older):
                conn.execute(delete(uploads).where(uploads.c.id.in_(dropped)))
            values: dict[str, Any] = {"owner": owner, "digest": digest, "size": len(data)}
            values.update(created_at=now, expires_at=now + self.keep_for, state=CHECKING)
            conn.execute(insert(uploads).values(**values, data=data))

        # The same owner sending the same file twice at once: the other request kept it.
        with contextlib.suppress(StorageConflict):
            self.db.write(work)
        return digest

    def find(self, owner: str, digest: str) -> PendingUpload | None:
        """The upload ``owner`` kept as ``digest``; None when unknown or expired."""
        now = self.clock.now()
        columns = [uploads.c[name] for name in ("digest", "size", "created_at", "expires_at")]
        alive = or_(uploads.c.expires_at > now, uploads.c.state.in_(RUNNING))
        query = select(*columns, uploads.c.state, uploads.c.outcome).where(
            _mine(owner, digest), alive
        )
        row = self.db.read(lambda conn: conn.execute(query).first())
        if row is None:
            return None
        outcome = ImportOutcome.load(row.outcome) if row.outcome is not None else None
        return PendingUpload(
            row.digest, row.size, to_utc(row.created_at), to_utc(row.expires_at), row.state, outcome
        )

    def preview(self, owner: str, digest: str, progress: Progress | None = None) -> bool:
        """Check the kept file and try it (a dry run); keep the outcome. False if not waiting."""
        found = self._data(owner, digest, CHECKING)
        if found is None:
            return False
        row_id, data = found
        outcome = self._run(data, "preview", owner, progress)
        state = READY if outcome.ok else REJECTED
        # A rejected file can never be confirmed: its bytes are not kept.
        self._finish(row_id, CHECKING, state, outcome, keep_data=state == READY)
        return True

    def claim(self, owner: str, digest: str) -> bool:
        """Take the kept file for its import; False unless it is checked, clean and unexpired.

        One statement: of two confirmations at once, only one claims it.
        """
        now = self.clock.now()
        statement = (
            update(uploads)
            .where(_mine(owner, digest), uploads.c.state == READY, uploads.c.expires_at > now)
            .values(state=APPLYING)
        )

        def work(conn: Connection) -> int:
            self._purge(conn, now)  # expired files go at every upload and confirmation
            return int(conn.execute(statement).rowcount)

        return self.db.write(work) == 1

    def apply(self, owner: str, digest: str, progress: Progress | None = None) -> bool:
        """Import the claimed file as ``owner``, all or nothing; delete its bytes.

        The bytes are checked again first: if they no longer hash to
        ``digest``, or the accounts changed so that the file now has bad rows
        or would change other counts or free other seats than its preview
        showed, nothing is written and the outcome lists why. False if not
        claimed.
        """
        found = self._data(owner, digest, APPLYING)
        if found is None:
            return False
        row_id, data = found
        if hashlib.sha256(data).hexdigest() != digest:
            reason = "the kept file does not match its SHA-256 any more; upload it again"
            outcome = ImportOutcome.refused("apply", 0, [RowProblem(0, reason)], 1)
        else:
            shown = self._shown(row_id)
            outcome = self._run(data, "apply", owner, progress, as_shown=shown)
        self._finish(row_id, APPLYING, APPLIED if outcome.ok else FAILED, outcome, keep_data=False)
        return True

    def abandon(self, owner: str, digest: str, reason: str) -> None:
        """Mark the file's running preview or import as stopped by an error: nothing was written."""

        def work(conn: Connection) -> None:
            for was, state, kind in ((CHECKING, REJECTED, "preview"), (APPLYING, FAILED, "apply")):
                outcome = ImportOutcome.refused(kind, 0, [RowProblem(0, reason)], 1)  # type: ignore[arg-type]
                values: dict[str, Any] = {"state": state, "outcome": outcome.dump()}
                if was == APPLYING:
                    values["data"] = None
                where = and_(_mine(owner, digest), uploads.c.state == was)
                conn.execute(update(uploads).where(where).values(values))

        self.db.write(work)

    def _run(
        self,
        data: bytes,
        kind: OutcomeKind,
        actor: str,
        progress: Progress | None,
        *,
        as_shown: ImportOutcome | None = None,
    ) -> ImportOutcome:
        def told(stage: str, total: int) -> Callable[[int], None] | None:
            return None if progress is None else (lambda done: progress(stage, done, total))

        with tempfile.TemporaryDirectory(prefix="seatgate-upload-") as folder:
            path = Path(folder, "upload.csv")
            path.write_bytes(data)
            try:
                source = self.open_source(path, on_progress=told("reading", len(data)))
                with self.importer.check(source) as checked:
                    if checked.problem_count:
                        problems = list(islice(checked.problems(), PROBLEMS_KEPT))
                        return ImportOutcome.refused(
                            kind, checked.row_count, problems, checked.problem_count
                        )
                    journal = CappedJournal()
                    report = self.importer.apply(
                        checked,
                        actor=actor,
                        dry_run=kind == "preview",
                        journal=journal,
                        on_progress=told("writing", checked.row_count),
                        before_commit=None if as_shown is None else as_shown.require_same,
                    )
                    return ImportOutcome.of_report(kind, checked.row_count, report, journal)
            except ImportRejected as exc:
                return ImportOutcome.refused(kind, 0, [RowProblem(exc.line or 0, exc.reason)], 1)

    def _data(self, owner: str, digest: str, state: str) -> tuple[int, bytes] | None:
        query = select(uploads.c.id, uploads.c.data).where(
            _mine(owner, digest), uploads.c.state == state, uploads.c.data.is_not(None)
        )
        row = self.db.read(lambda conn: conn.execute(query).first())
        return None if row is None else (int(row.id), bytes(row.data))

    def _finish(
        self, row_id: int, was: str, state: str, outcome: ImportOutcome, *, keep_data: bool
    ) -> None:
        values: dict[str, Any] = {"state": state, "outcome": outcome.dump()}
        if not keep_data:
            values["data"] = None
        # Only if still as it was: a new upload of the same file replaced the row.
        statement = update(uploads).where(uploads.c.id == row_id, uploads.c.state == was)
        self.db.write(lambda conn: conn.execute(statement.values(values)))

    def _shown(self, row_id: int) -> ImportOutcome | None:
        """The preview the confirmation was given on (kept with the file)."""
        query = select(uploads.c.outcome).where(uploads.c.id == row_id)
        kept = self.db.read(lambda conn: conn.execute(query).scalar_one_or_none())
        return None if kept is None else ImportOutcome.load(kept)

    def _purge(self, conn: Connection, now: datetime) -> None:
        conn.execute(
            delete(uploads).where(
                or_(
                    and_(uploads.c.expires_at <= now, uploads.c.state.not_in(RUNNING)),
                    uploads.c.expires_at <= now - LOST_AFTER,
                )
            )
        )


def _mine(owner: str, digest: str) -> Any:
    return and_(uploads.c.owner == owner, uploads.c.digest == digest)
