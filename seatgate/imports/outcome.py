"""What checking or applying a kept upload found: a summary small enough to keep in a row."""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass, field
from typing import Any, Literal

from seatgate.errors import ImportRejected
from seatgate.imports.records import Change, ImportReport, RowProblem

# The changes an outcome lists (the counts cover them all).
CHANGES_KEPT = 1000
# The bad rows an outcome lists. A file within the web body limit has fewer
# rows than this unless the limit is raised far above its default.
PROBLEMS_KEPT = 100_000

OutcomeKind = Literal["preview", "apply"]


@dataclass
class ImportOutcome:
    """A preview (a dry run) or an import of one uploaded file.

    ``ok`` is false when the file has bad rows or could not be read; then
    ``problems`` lists them (the first :data:`PROBLEMS_KEPT`) and nothing
    was, or would be, written.
    """

    kind: OutcomeKind
    ok: bool
    rows: int = 0
    created: int = 0
    updated: int = 0
    disabled: int = 0
    unchanged: int = 0
    seats_freed: list[str] = field(default_factory=list)
    changes: list[Change] = field(default_factory=list)
    change_count: int = 0
    problems: list[RowProblem] = field(default_factory=list)
    problem_count: int = 0

    @classmethod
    def refused(
        cls, kind: OutcomeKind, rows: int, problems: list[RowProblem], count: int
    ) -> ImportOutcome:
        """An outcome with bad rows: nothing written."""
        return cls(kind, False, rows=rows, problems=problems, problem_count=count)

    @classmethod
    def of_report(
        cls, kind: OutcomeKind, rows: int, report: ImportReport, journal: CappedJournal
    ) -> ImportOutcome:
        """The outcome of a dry run or an import that went through."""
        return cls(
            kind,
            True,
            rows=rows,
            created=report.created,
            updated=report.updated,
            disabled=report.disabled,
            unchanged=report.unchanged,
            seats_freed=list(report.seats_freed),
            changes=list(journal.kept),
            change_count=journal.count,
        )

    def require_same(self, report: ImportReport) -> None:
        """Raise :class:`ImportRejected` unless ``report`` does what this preview showed."""
        shown = (self.created, self.updated, self.disabled, sorted(self.seats_freed))
        now = (report.created, report.updated, report.disabled, sorted(report.seats_freed))
        if shown != now:
            raise ImportRejected(
                None,
                "the accounts changed since the preview: it showed {} new, {} changed, {} "
                "disabled and {} seat(s) freed; importing now would make {} new, {} changed, "
                "{} disabled and free {} seat(s). Nothing was imported: upload the file "
                "again for a new preview".format(*shown[:3], len(shown[3]), *now[:3], len(now[3])),
            )

    def dump(self) -> bytes:
        """The outcome as compressed JSON (reasons repeat: they compress well)."""
        data: dict[str, Any] = {
            "kind": self.kind,
            "ok": self.ok,
            "counts": [self.rows, self.created, self.updated, self.disabled, self.unchanged],
            "seats_freed": self.seats_freed,
            "changes": [[c.kind, c.login, list(c.fields), c.seat_freed] for c in self.changes],
            "change_count": self.change_count,
            "problems": [[p.line, p.reason] for p in self.problems],
            "problem_count": self.problem_count,
        }
        return zlib.compress(json.dumps(data, ensure_ascii=False).encode("utf-8"))

    @classmethod
    def load(cls, blob: bytes) -> ImportOutcome:
        """Read back what :meth:`dump` wrote."""
        data = json.loads(zlib.decompress(blob).decode("utf-8"))
        rows, created, updated, disabled, unchanged = data["counts"]
        return cls(
            data["kind"],
            bool(data["ok"]),
            rows=rows,
            created=created,
            updated=updated,
            disabled=disabled,
            unchanged=unchanged,
            seats_freed=list(data["seats_freed"]),
            changes=[Change(k, login, tuple(f), bool(s)) for k, login, f, s in data["changes"]],
            change_count=data["change_count"],
            problems=[RowProblem(line, reason) for line, reason in data["problems"]],
            problem_count=data["problem_count"],
        )


class CappedJournal:
    """Keeps the first :data:`CHANGES_KEPT` changes of an import and counts them all."""

    def __init__(self, limit: int = CHANGES_KEPT) -> None:
        self.limit = limit
        self.kept: list[Change] = []
        self.count = 0

    def restart(self) -> None:
        """Forget what was added (the transaction is starting again)."""
        self.kept = []
        self.count = 0

    def add(self, change: Change) -> None:
        """Note one change; only the first ``limit`` are kept."""
        self.count += 1
        if len(self.kept) < self.limit:
            self.kept.append(change)
