"""The console's directory page: the last sync runs, and "sync now" with a preview first.

``GET /admin/directory`` shows whether an ``ldap:`` section is configured and
the last runs of the sync, read from their ``directory.synced`` audit events
a page at a time in SQL (keyed on the event id, as the audit page is).

"Sync now" is two POSTs, each CSRF-checked and for admins only. The first is
the core's preview: the same dry run as ``seatgate sync ldap --dry-run``,
changing nothing, which shows the changes and, when a safety limit would
stop the real run, the counts to confirm. The second runs the real sync
through the same core call as the CLI: all or nothing, under the same job
lock as the scheduled job, audited as the admin, and carrying the counts the
admin saw as its ``--confirm-disables`` / ``--confirm-seat-revocations``: a
directory that changed since the preview makes the run stop, changing nothing.

Both run inside the request. The directory read is bounded: past
:data:`READ_SECONDS` it is abandoned (nothing changed) and the page says to
use the scheduled job or the command line for a directory that large.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from flask import Response, flash, redirect, request, url_for

from seatgate.app import DirectoryClient
from seatgate.audit.search import AuditPage, AuditSearch, search_page
from seatgate.directory.model import DISABLES, SEAT_REVOCATIONS, SyncReport
from seatgate.directory.sync import SYNCED, DirectorySync
from seatgate.errors import (
    ConfigError,
    DirectorySearchIncomplete,
    DirectoryUnavailable,
    LastAdminStop,
    SeatRevocationSafetyStop,
    SyncAlreadyRunning,
    SyncSafetyStop,
)
from seatgate.texts import N_

from .context import admin_required, gate_state, require_user, t
from .security import csrf_valid
from .views import console_page, pages

READ_SECONDS = 120
"""The longest a console sync reads the directory before it gives up (changing nothing)."""
RUNS_PER_PAGE = 20
SHOWN_PER_LIST = 50
"""Logins listed per kind of change in a preview; the totals are always shown."""
MAX_CONFIRM = 10_000_000

TEXTS = {
    "not_configured": N_(
        "No directory is configured: this installation has no `ldap:` section, so there is "
        'nothing to sync. The operator guide\'s "Accounts from Active Directory / LDAP" '
        "says how to add one."
    ),
    "config": N_("The directory sync cannot run: {reason}"),
    "running": N_(
        "A sync is already running (the scheduled job or another admin). Nothing was "
        "changed; try again when it has finished."
    ),
    "unreachable": N_("The directory could not be reached; nothing was changed. ({reason})"),
    "incomplete": N_(
        "The directory's answer was incomplete, so nothing can be concluded from it; "
        "nothing was changed. ({reason})"
    ),
    "last_admin": N_(
        "This sync would leave no active admin (it would take admin rights from or "
        "disable: {logins}); nothing was changed."
    ),
    "too_slow": N_(
        "Reading the directory took longer than {seconds} seconds ({entries} entries read), "
        "so the sync was abandoned and nothing was changed. Let the scheduled job or "
        "`seatgate sync ldap` sync a directory this large."
    ),
    "stale": N_(
        "The directory changed since the preview: this sync would now {what} ({count} of "
        "{total}, more than {limit}), not what was confirmed. Nothing was changed; preview "
        "again."
    ),
    "stale_disables": N_("disable or delete accounts"),
    "stale_revocations": N_("revoke seats"),
    "bad_number": N_("The field {field} is not a whole number."),
    "bad_choice": N_("`{field}` has a value this page does not know: {value}"),
    "tick": N_("Tick the confirmation box to go past the safety limits; nothing was changed."),
    "done": N_(
        "Sync done: {created} created, {updated} updated, {renamed} renamed, {disabled} "
        "disabled, {enabled} enabled, {deleted} deleted; seats granted {granted}, revoked "
        "{revoked}, freed {freed}."
    ),
    "not_a_number": N_("The field {field} is not a number."),
}


class ReadTooLong(Exception):
    """The console's directory read passed :data:`READ_SECONDS`; raised between pages."""

    def __init__(self, entries: int) -> None:
        super().__init__(f"the directory read passed {READ_SECONDS} s after {entries} entries")
        self.entries = entries


class BadField(Exception):
    """A form or query field that cannot be read; the message names it (translated)."""


# -- the page -------------------------------------------------------------------------------


@pages.route("/admin/directory")
@admin_required
def directory_page() -> Response:
    """Whether a directory is configured, the "sync now" form and the last runs."""
    try:
        before = _whole(request.args.get("before"), "before", TEXTS["not_a_number"])
    except BadField as bad:
        return _directory_page(None, error=str(bad), code=400)
    return _directory_page(before)


def _directory_page(before: int | None, *, error: str | None = None, code: int = 200) -> Response:
    core = gate_state().core
    ldap = core.config.ldap
    runs: AuditPage = core.db.read(
        lambda conn: search_page(
            conn, AuditSearch(action=SYNCED), before=before, size=RUNS_PER_PAGE
        )
    )
    return console_page(
        "seatgate/console_directory.html",
        code,
        servers=ldap.server_urls if ldap is not None else (),
        base_dn=ldap.base_dn if ldap is not None else None,
        not_configured=t(TEXTS["not_configured"]) if ldap is None else None,
        runs=runs,
        first_page=before is None,
        error=error,
    )


# -- sync now: the preview, then the confirmed run -----------------------------------------


@pages.route("/admin/directory/preview", methods=["POST"])
@admin_required
def directory_preview() -> Response:
    """The dry run: what a sync would change now, and any safety limit it would stop at."""
    if not csrf_valid(request):
        return console_page("seatgate/error.html", 400, message=t("csrf_failed"))
    try:
        full = _flag("full")
    except BadField as bad:
        return _directory_page(None, error=str(bad), code=400)
    actor = require_user().login

    def preview(sync: DirectorySync, reader: DirectoryClient) -> SyncReport:
        return sync.preview(reader, full=full, actor=actor)

    outcome = _sync(preview)
    if isinstance(outcome, Response):
        return outcome
    held = {hold.kind: hold for hold in outcome.held}
    return console_page(
        "seatgate/console_directory_preview.html",
        report=outcome,
        full=full,
        held_disables=held.get(DISABLES),
        held_revocations=held.get(SEAT_REVOCATIONS),
        shown=SHOWN_PER_LIST,
    )


@pages.route("/admin/directory/sync", methods=["POST"])
@admin_required
def directory_sync() -> Response:
    """The real sync, as confirmed on the preview; back to the page with what it did."""
    if not csrf_valid(request):
        return console_page("seatgate/error.html", 400, message=t("csrf_failed"))
    try:
        full = _flag("full")
        disables = _whole(request.form.get("confirm_disables"), "confirm_disables")
        revocations = _whole(
            request.form.get("confirm_seat_revocations"), "confirm_seat_revocations"
        )
    except BadField as bad:
        return _directory_page(None, error=str(bad), code=400)
    if (disables or revocations) and request.form.get("confirm_held") != "1":
        return _directory_page(None, error=t(TEXTS["tick"]), code=400)
    actor = require_user().login

    def run(sync: DirectorySync, reader: DirectoryClient) -> SyncReport:
        return sync.run(
            reader,
            full=full,
            confirm_disables=disables,
            confirm_seat_revocations=revocations,
            actor=actor,
        )

    outcome = _sync(run)
    if isinstance(outcome, Response):
        return outcome
    flash(_done(outcome), "ok")
    return redirect(url_for("seatgate.directory_page"), 303)  # type: ignore[return-value]


def _sync(step: Callable[[DirectorySync, DirectoryClient], SyncReport]) -> SyncReport | Response:
    """Run ``step(sync, reader)`` with a bounded read; a refusal is the page with its reason."""
    core = gate_state().core
    if core.config.ldap is None:
        return _directory_page(None, error=t(TEXTS["not_configured"]), code=409)
    deadline = time.monotonic() + READ_SECONDS

    def on_page(entries: int) -> None:
        if time.monotonic() > deadline:
            raise ReadTooLong(entries)

    try:
        report = step(core.directory_sync(), core.directory_reader(on_page))
    except ConfigError as exc:
        return _directory_page(None, error=t(TEXTS["config"], reason=str(exc)), code=409)
    except SyncAlreadyRunning:
        return _directory_page(None, error=t(TEXTS["running"]), code=409)
    except DirectoryUnavailable as exc:
        return _directory_page(None, error=t(TEXTS["unreachable"], reason=str(exc)), code=503)
    except DirectorySearchIncomplete as exc:
        return _directory_page(None, error=t(TEXTS["incomplete"], reason=str(exc)), code=502)
    except LastAdminStop as exc:
        logins = ", ".join(exc.lost)
        return _directory_page(None, error=t(TEXTS["last_admin"], logins=logins), code=409)
    except ReadTooLong as exc:
        message = t(TEXTS["too_slow"], seconds=READ_SECONDS, entries=exc.entries)
        return _directory_page(None, error=message, code=504)
    except SyncSafetyStop as stop:
        return _directory_page(None, error=_stale(stop), code=409)
    return report


def _stale(stop: SyncSafetyStop) -> str:
    revocations = isinstance(stop, SeatRevocationSafetyStop)
    what = t(TEXTS["stale_revocations"] if revocations else TEXTS["stale_disables"])
    return t(TEXTS["stale"], what=what, count=stop.count, total=stop.total, limit=stop.limit)


def _done(report: SyncReport) -> str:
    return t(
        TEXTS["done"],
        created=len(report.created),
        updated=len(report.updated),
        renamed=len(report.renamed),
        disabled=len(report.disabled),
        enabled=len(report.enabled),
        deleted=len(report.deleted),
        granted=len(report.seats_granted),
        revoked=len(report.seats_revoked),
        freed=len(report.seats_freed),
    )


# -- reading the fields ----------------------------------------------------------------------


def _flag(name: str) -> bool:
    """A yes/no field: "1" or absent/"0"; anything else is refused, naming the field."""
    value = str(request.form.get(name, "")).strip()
    if value not in ("", "0", "1"):
        raise BadField(t(TEXTS["bad_choice"], field=name, value=value[:40]))
    return value == "1"


def _whole(value: str | None, name: str, text: str = TEXTS["bad_number"]) -> int | None:
    """A positive whole number, or None when empty; anything else is refused, naming the field."""
    value = (value or "").strip()
    if not value:
        return None
    if not (value.isascii() and value.isdigit()) or not 0 < int(value) <= MAX_CONFIRM:
        raise BadField(t(text, field=name))
    return int(value)
