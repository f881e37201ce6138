"""Console pages: the audit log (search, export, chain check), open sessions, seat requests.

Routes on the pages blueprint, admins only. Reads go through the core's
query modules; every change is a CSRF-checked POST with a ticked
confirmation, carried out (and audited) by the core's own operations.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

from flask import (
    Response,
    flash,
    redirect,
    request,
    stream_with_context,
    url_for,
)

from seatgate.audit import chain as audit_chain
from seatgate.audit.search import (
    EXPORT_LIMIT,
    AuditSearch,
    csv_lines,
    export_events,
    json_lines,
    search_page,
    too_many_to_export,
)
from seatgate.errors import InvalidLogin, UnknownAccount
from seatgate.records import Account
from seatgate.sessions.listing import MAX_SHOWN, open_sessions
from seatgate.texts import N_, NP_

from .actions import ActionRefused, AdminActions, text_field
from .context import admin_required, gate_state, require_user, t, tn
from .security import csrf_valid
from .views import console_page, pages

_SESSIONS_ENDED = NP_(
    "{sessions} session of {login} ended.", "{sessions} sessions of {login} ended.", "sessions"
)
# Longest free-text filter: the audit columns' own width.
_FILTER_LENGTH = 256


class BadSearch(Exception):
    """A search field that cannot be read; the message names it."""


def _search_from(args: Any) -> AuditSearch:
    """The search of the query string; :class:`BadSearch` names a field that cannot be read."""
    texts: dict[str, str | None] = {}
    for name in ("actor", "action", "subject"):
        value = str(args.get(name, "")).strip()
        if len(value) > _FILTER_LENGTH:
            raise BadSearch(t(N_("The field {field} is too long."), field=name))
        texts[name] = value or None
    since, until = _day(args, "since"), _day(args, "until")
    if since is not None and until is not None and until < since:
        raise BadSearch(t(N_("The date range ends before it starts.")))
    return AuditSearch(
        actor=texts["actor"],
        action=texts["action"],
        subject=texts["subject"],
        since=datetime.combine(since, datetime.min.time(), UTC) if since else None,
        # "until" is the last day shown, whole.
        until=datetime.combine(until + timedelta(days=1), datetime.min.time(), UTC)
        if until
        else None,
    )


def _day(args: Any, name: str) -> date | None:
    value = str(args.get(name, "")).strip()
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise BadSearch(
            t(N_("The field {field} is not a date (YYYY-MM-DD)."), field=name)
        ) from None


def _filters() -> dict[str, str]:
    """The search fields as given, to keep them in links and forms."""
    names = ("actor", "action", "subject", "since", "until")
    return {name: str(request.args.get(name, ""))[:_FILTER_LENGTH] for name in names}


@pages.route("/admin/audit", methods=["GET"])
@admin_required
def audit_page() -> Response:
    """The audit log, searched and paged newest first, with the chain's head."""
    return _audit_page(verified=None)


@pages.route("/admin/audit/verify", methods=["POST"])
@admin_required
def audit_verify() -> Response:
    """Check the whole chain now (as ``seatgate audit verify``) and show the result."""
    if not csrf_valid(request):
        return console_page("seatgate/error.html", 400, message=t("csrf_failed"))
    core = gate_state().core
    key = core.audit_key
    report = core.db.read(lambda conn: audit_chain.verify(conn, key))
    if report.problem is not None:
        # As the CLI does: an alert once per break, through the outbox.
        core.notifier.audit_broken(report.problem.message, report.problem.event_id)
    return _audit_page(verified=report)


def _audit_page(verified: audit_chain.ChainReport | None) -> Response:
    core = gate_state().core
    filters = _filters()
    try:
        search = _search_from(request.args)
        before = _before(request.args.get("before"))
    except BadSearch as bad:
        return console_page(
            "seatgate/console_audit.html",
            400,
            error=str(bad),
            filters=filters,
            found=None,
            head=core.db.read(audit_chain.head_of),
            verified=verified,
        )
    found = core.db.read(lambda conn: search_page(conn, search, before=before))
    return console_page(
        "seatgate/console_audit.html",
        error=None,
        filters=filters,
        found=found,
        first_page=before is None,
        head=core.db.read(audit_chain.head_of),
        verified=verified,
    )


def _before(value: str | None) -> int | None:
    if not value:
        return None
    try:
        return max(0, int(value))
    except ValueError:
        raise BadSearch(t(N_("The field {field} is not a number."), field="before")) from None


@pages.route("/admin/audit/export.<kind>", methods=["GET"])
@admin_required
def audit_export(kind: str) -> Response:
    """The current search as CSV or JSON, streamed; refused when it matches too many events."""
    if kind not in ("csv", "json"):
        return console_page("seatgate/error.html", 404, message="404")
    core = gate_state().core
    try:
        search = _search_from(request.args)
    except BadSearch as bad:
        return console_page("seatgate/error.html", 400, message=str(bad))
    if core.db.read(lambda conn: too_many_to_export(conn, search)):
        message = t(
            N_(
                "The search matches more than {limit} events. Narrow it (a shorter date range, "
                "an actor or an action) to export it."
            ),
            limit=EXPORT_LIMIT,
        )
        return console_page("seatgate/error.html", 400, message=message)
    events = export_events(core.db.read, search)
    lines: Iterator[str] = csv_lines(events) if kind == "csv" else json_lines(events)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    response = Response(
        stream_with_context(lines),
        mimetype="text/csv" if kind == "csv" else "application/json",
    )
    response.headers["Content-Disposition"] = f'attachment; filename="audit-{stamp}.{kind}"'
    return response


@pages.route("/admin/sessions", methods=["GET"])
@admin_required
def sessions_page() -> Response:
    """The open sessions (of one login, when searched), with the end-sessions form."""
    core = gate_state().core
    login = request.args.get("login", "").strip()[:_FILTER_LENGTH]
    now = core.clock.now()
    found = []
    if not login:
        found = core.db.read(lambda conn: open_sessions(conn, now))
    elif (account := _find(login)) is not None:
        account_id = account.id
        found = core.db.read(lambda conn: open_sessions(conn, now, account_id=account_id))
    return console_page(
        "seatgate/console_sessions.html", login=login, sessions=found, max_shown=MAX_SHOWN
    )


def _find(login: str) -> Account | None:
    try:
        return gate_state().core.accounts.find(login)
    except InvalidLogin:
        return None


@pages.route("/admin/sessions/end", methods=["POST"])
@admin_required
def sessions_end() -> Response:
    """End one open session (``opened`` given) or every one of an account; audited as the admin."""
    if not csrf_valid(request):
        return console_page("seatgate/error.html", 400, message=t("csrf_failed"))
    core = gate_state().core
    actor = require_user().login
    try:
        login = text_field(request.form, "login")
        opened = _opened(request.form.get("opened"))
        _confirmed()
        account = core.accounts.get(login)
    except ActionRefused as refused:
        flash(refused.message, "error")
        return _back_to_sessions()
    except (UnknownAccount, InvalidLogin):
        flash(t("unknown_account", login=login[:80]), "error")
        return _back_to_sessions()
    if opened is None:
        count = core.sessions.end_all_for_account(account.id, actor=actor)
    else:
        count = int(core.sessions.end_opened_at(account.id, opened, actor=actor))
    message = tn(
        _SESSIONS_ENDED.singular, _SESSIONS_ENDED.plural, count, sessions=count, login=account.login
    )
    flash(message, "ok")
    return _back_to_sessions()


def _opened(value: str | None) -> datetime | None:
    """The opening time naming one session (ISO 8601, as the page writes it), or None."""
    if not value:
        return None
    try:
        return datetime.fromisoformat(value).astimezone(UTC)
    except ValueError:
        raise ActionRefused("bad_request", 400, t("bad_request", field="opened")) from None


def _back_to_sessions() -> Response:
    return redirect(url_for("seatgate.sessions_page"), 303)  # type: ignore[return-value]


@pages.route("/admin/requests", methods=["GET"])
@admin_required
def requests_page() -> Response:
    """The pending seat requests, oldest first, each with approve and deny."""
    core = gate_state().core
    return console_page(
        "seatgate/console_requests.html",
        requests=core.seat_requests.pending(),
    )


@pages.route("/admin/requests/<decision>", methods=["POST"])
@admin_required
def requests_decide(decision: str) -> Response:
    """Approve (into a free seat or someone's seat) or deny one request; audited by the core."""
    if decision not in ("approve", "deny"):
        return console_page("seatgate/error.html", 404, message="404")
    if not csrf_valid(request):
        return console_page("seatgate/error.html", 400, message=t("csrf_failed"))
    actions = AdminActions(gate_state().core, require_user().login)
    form = request.form
    try:
        login = text_field(form, "login")
        _confirmed()
        if decision == "approve":
            replace = str(form.get("replace", "")).strip() or None
            flash(actions.approve(login, replace), "ok")
        else:
            flash(actions.deny(login), "ok")
    except ActionRefused as refused:
        flash(refused.message, "error")
    return redirect(url_for("seatgate.requests_page"), 303)  # type: ignore[return-value]


def _confirmed() -> None:
    """The form's confirmation box must be ticked; nothing changes otherwise."""
    if request.form.get("confirm") != "yes":
        raise ActionRefused(
            "not_confirmed", 400, t(N_("Tick the confirmation box to go ahead; nothing changed."))
        )
