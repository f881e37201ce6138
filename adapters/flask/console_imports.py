"""The console's CSV import: upload, preview (the CLI's check and dry run), confirm.

An administrator uploads a file (``POST /admin/imports``); the core keeps its
bytes in the database by SHA-256 (:mod:`seatgate.imports.pending`) and checks
them with a dry run, as ``seatgate accounts import-csv --dry-run`` does. The
preview page (``/admin/imports/<sha256>``) shows the counts, the changes, every
bad row and who would lose a seat; its confirm form carries only the hash, and
``POST /admin/imports/confirm`` imports the kept bytes, all or nothing,
audited as that administrator.

A file of more than :data:`INLINE_LINES` lines is checked and imported in a
background thread of the process that received it, so no request waits for
it: the page refreshes itself (``<meta http-equiv=refresh>``, no JavaScript)
until the outcome is in the database, which any node can read. Only the live
row count is node-local, in this process's memory; a refresh that lands on
another node shows the job as running without it.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass

from flask import Response, redirect, request, url_for

from seatgate.errors import ImportRejected
from seatgate.imports.pending import (
    APPLIED,
    CHECKING,
    FAILED,
    READY,
    REJECTED,
    PendingImports,
    Progress,
)
from seatgate.texts import N_

from .context import admin_required, gate_state, require_user, t
from .security import csrf_valid
from .views import _csrf_refused, _page, console_page, pages

log = logging.getLogger(__name__)

# Files with more lines are checked and imported in a background thread.
INLINE_LINES = 2000
PROBLEMS_PER_PAGE = 100
REFRESH_SECONDS = 2
_DIGEST = re.compile(r"[0-9a-f]{64}")
TEXTS = {
    "no_file": N_("Choose a CSV file to upload."),
    "refused": N_("The file was not kept: {reason}"),
    "unknown": N_(
        "No uploaded file has this hash, or it expired (files are kept for {minutes} minutes). "
        "Upload it again."
    ),
    "not_ready": N_("This file cannot be imported: it has bad rows. Fix them and upload it again."),
    "checking": N_("This file is still being checked; wait for its preview."),
    "taken": N_("This file is already being imported, or was imported; it is not imported twice."),
    "crashed": N_(
        "the check stopped with an internal error (see the server log); nothing was written"
    ),
}


@dataclass
class _Job:
    """The live progress of one background check or import (this process only)."""

    stage: str = "reading"
    done: int = 0
    total: int = 0

    def update(self, stage: str, done: int, total: int) -> None:
        self.stage, self.done, self.total = stage, done, total


_jobs: dict[tuple[str, str], _Job] = {}
_jobs_lock = threading.Lock()


def _start(
    pending: PendingImports, owner: str, digest: str, lines: int, work: Callable[[Progress], bool]
) -> None:
    """Run ``work`` now for a small file, else in a background thread with its progress noted."""
    job = _Job()
    key = (owner, digest)

    def run() -> None:
        try:
            work(job.update)
        except Exception:
            # The import's transaction was rolled back; the row must not stay "running".
            log.exception("the console's check or import of %s stopped", digest)
            pending.abandon(owner, digest, TEXTS["crashed"])
            if lines <= INLINE_LINES:
                raise
        finally:
            with _jobs_lock:
                if _jobs.get(key) is job:
                    del _jobs[key]

    with _jobs_lock:
        _jobs[key] = job
    if lines <= INLINE_LINES:
        run()
    else:
        threading.Thread(target=run, name=f"seatgate-import-{digest[:8]}", daemon=True).start()


def _to(digest: str) -> Response:
    return redirect(url_for("seatgate.import_page", digest=digest), 303)  # type: ignore[return-value]


def _minutes() -> int:
    return int(gate_state().core.pending_imports.keep_for.total_seconds() // 60)


@pages.route("/admin/imports", methods=["GET", "POST"])
@admin_required
def imports_page() -> Response:
    """The upload form; a POST keeps the file and starts its preview."""
    state = gate_state()
    limit = state.web.max_body_bytes
    if request.method == "GET":
        return console_page("seatgate/console_imports.html", limit=limit, minutes=_minutes())
    if not csrf_valid(request):
        return _csrf_refused()
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        return console_page(
            "seatgate/console_imports.html",
            400,
            limit=limit,
            minutes=_minutes(),
            error=t(TEXTS["no_file"]),
        )
    data = upload.read(limit + 1)
    pending = state.core.pending_imports
    owner = require_user().login
    try:
        digest = pending.store(owner, data, max_bytes=limit)
    except ImportRejected as exc:
        return console_page(
            "seatgate/console_imports.html",
            400,
            limit=limit,
            minutes=_minutes(),
            error=t(TEXTS["refused"], reason=exc.reason),
        )
    # Lines end in \n, \r\n or (old spreadsheets) a lone \r.
    lines = max(data.count(b"\n"), data.count(b"\r"))
    _start(pending, owner, digest, lines, lambda told: pending.preview(owner, digest, told))
    return _to(digest)


@pages.route("/admin/imports/<digest>")
@admin_required
def import_page(digest: str) -> Response:
    """The preview of a kept file, its progress while it runs, or the import's outcome."""
    if not _DIGEST.fullmatch(digest):
        return _page("seatgate/error.html", 404, message=t(TEXTS["unknown"], minutes=_minutes()))
    owner = require_user().login
    found = gate_state().core.pending_imports.find(owner, digest)
    if found is None:
        return _page("seatgate/error.html", 404, message=t(TEXTS["unknown"], minutes=_minutes()))
    with _jobs_lock:
        job = _jobs.get((owner, digest))
    outcome = found.outcome
    pages_of_problems = 1
    page = 1
    if outcome is not None and outcome.problems:
        pages_of_problems = -(-len(outcome.problems) // PROBLEMS_PER_PAGE)
        page = min(max(_int(request.args.get("page")), 1), pages_of_problems)
    start = (page - 1) * PROBLEMS_PER_PAGE
    return console_page(
        "seatgate/console_import.html",
        upload=found,
        outcome=outcome,
        job=job,
        refresh=REFRESH_SECONDS if found.running else None,
        problems=outcome.problems[start : start + PROBLEMS_PER_PAGE] if outcome else [],
        page=page,
        pages=pages_of_problems,
        states={"ready": READY, "rejected": REJECTED, "applied": APPLIED, "failed": FAILED},
        unknown=t("never"),
    )


@pages.route("/admin/imports/confirm", methods=["POST"])
@admin_required
def import_confirm() -> Response:
    """Import the kept file named by the form's hash, if it is checked, clean and unexpired."""
    if not csrf_valid(request):
        return _csrf_refused()
    digest = str(request.form.get("digest", "")).strip().lower()
    pending = gate_state().core.pending_imports
    owner = require_user().login
    found = pending.find(owner, digest) if _DIGEST.fullmatch(digest) else None
    if found is None:
        return _page("seatgate/error.html", 404, message=t(TEXTS["unknown"], minutes=_minutes()))
    if not pending.claim(owner, digest):
        message = {REJECTED: "not_ready", CHECKING: "checking"}.get(found.state, "taken")
        return _page("seatgate/error.html", 409, message=t(TEXTS[message]))
    lines = found.outcome.rows if found.outcome else 0
    _start(pending, owner, digest, lines, lambda told: pending.apply(owner, digest, told))
    return _to(digest)


def _int(text: str | None) -> int:
    try:
        return int(text or "1")
    except ValueError:
        return 1
