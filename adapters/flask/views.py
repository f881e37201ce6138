"""The pages: sign in, sign out, the language switch and the admin page.

Every form POST carries the session's CSRF token; every admin change
redirects back to the admin page (post/redirect/get) with its outcome.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import (
    Blueprint,
    Response,
    flash,
    make_response,
    redirect,
    render_template,
    request,
    url_for,
)
from sqlalchemy import Connection

from seatgate.accounts.browse import MAX_SEARCH_LENGTH, AccountQuery, browse
from seatgate.audit import log as audit
from seatgate.gate.decision import Decision
from seatgate.records import AuditEvent

from .actions import (
    STATUS_OF_REASON,
    ActionRefused,
    AdminActions,
    decision_message,
    text_field,
)
from .context import (
    admin_required,
    gate_state,
    language,
    require_user,
    sign_in,
    sign_out,
    t,
)
from .devices import device_of, remember_device
from .i18n import (
    LANGUAGE_COOKIE,
    LANGUAGES,
    format_money,
    format_number,
    format_rate,
    format_when,
)
from .negotiate import NO_SSO_PARAM, NO_SSO_VALUE
from .security import add_security_headers, client_address, csrf_valid, safe_next

pages = Blueprint(
    "seatgate",
    __name__,
    template_folder="templates",
    static_folder="static",
    static_url_path="/seatgate-static",
)
pages.after_request(add_security_headers)

AUDIT_EVENTS_SHOWN = 20


def _page(template: str, code: int = 200, **context: Any) -> Response:
    return make_response(render_template(template, **context), code)


def console_page(template: str, code: int = 200, *, unknown: str = "—", **context: Any) -> Response:
    """A console page, given the visitor's language's formatting of dates, numbers and money.

    ``unknown`` stands for a date that is not there (a login never made, say).
    """
    lang = language()

    def when(value: datetime | None) -> str:
        return format_when(value, lang) if value is not None else unknown

    return _page(
        template,
        code,
        when=when,
        number=lambda value: format_number(value, lang),
        rate=lambda value: format_rate(value, lang),
        money=lambda amount, currency: format_money(amount, currency, lang),
        **context,
    )


def _csrf_refused() -> Response:
    return _page("seatgate/error.html", 400, message=t("csrf_failed"))


@pages.route("/login", methods=["GET", "POST"])
def login() -> Response:
    """The sign-in form; a refused login says why in plain words."""
    state = gate_state()
    target = safe_next(request.values.get("next")) or state.home
    address = client_address(request, state.web.trusted_proxies)
    if request.method == "GET":
        upstream = state.upstream.admit(state.core, request, address) if state.upstream else None
        if upstream is None and state.kerberos and state.kerberos.automatic(request, address):
            # Kerberos first; its 401 page is this form, for browsers without a ticket.
            return redirect(url_for("seatgate.login_negotiate", next=target), 303)  # type: ignore[return-value]
        if upstream is None:
            return _page(
                "seatgate/login.html",
                next=target,
                message=None,
                login="",
                remember_me=state.web.remember_me,
            )
        if upstream.allowed and upstream.account is not None:
            sign_in(upstream.account)
            return redirect(target, 303)  # type: ignore[return-value]
        return _refused_page(upstream, target, "")
    if not csrf_valid(request):
        return _csrf_refused()
    login_text = request.form.get("login", "")
    decision = state.core.gate.decide(
        login_text,
        request.form.get("password", ""),
        address=address,
        device=device_of(login_text),
    )
    if decision.allowed and decision.account is not None:
        sign_in(decision.account, keep=request.form.get("remember") == "1")
        signed_in: Response = redirect(target, 303)  # type: ignore[assignment]
        return remember_device(signed_in, decision.account)
    return _refused_page(decision, target, login_text)


@pages.route("/login/negotiate")
def login_negotiate() -> Response:
    """Sign in with a Kerberos ticket (SPNEGO); 404 unless web.kerberos is set."""
    state = gate_state()
    if state.kerberos is None:
        return _page("seatgate/error.html", 404, message="404")
    target = safe_next(request.args.get("next")) or state.home

    def challenge(notice: str | None) -> Response:
        return _page(
            "seatgate/login.html",
            next=target,
            message=t(notice) if notice else None,
            reason=notice,
            login="",
            remember_me=state.web.remember_me,
        )

    def signed_in(decision: Decision) -> Response:
        assert decision.account is not None  # noqa: S101 - only allowed decisions come here
        sign_in(decision.account)
        return redirect(target, 303)  # type: ignore[return-value]

    return state.kerberos.answer(
        state.core,
        request,
        client_address(request, state.web.trusted_proxies),
        challenge=challenge,
        refusal_page=lambda decision: _refused_page(decision, target, ""),
        signed_in=signed_in,
    )


def _refused_page(decision: Decision, target: str, login_text: str) -> Response:
    """The sign-in form again, saying why the login was refused."""
    state = gate_state()
    status = STATUS_OF_REASON[decision.reason] if decision.reason else 403
    message = decision_message(decision)
    response = _page(
        "seatgate/login.html",
        status,
        next=target,
        message=message,
        reason=decision.reason.value if decision.reason else None,
        kind=decision.refusal.kind.value if decision.refusal else None,
        login=login_text[:256],
        remember_me=state.web.remember_me,
    )
    if decision.retry_after is not None:
        response.headers["Retry-After"] = str(decision.retry_after)
    return response


@pages.route("/logout", methods=["POST"])
def logout() -> Response:
    """End the session on the server and in the browser."""
    if not csrf_valid(request):
        return _csrf_refused()
    sign_out()
    flash(t("signed_out"), "ok")
    # With Kerberos, the form itself: not a new session from the same ticket.
    no_sso: dict[str, Any] = {NO_SSO_PARAM: NO_SSO_VALUE} if gate_state().kerberos else {}
    return redirect(url_for("seatgate.login", **no_sso), 303)  # type: ignore[return-value]


@pages.route("/language/<code>")
def switch_language(code: str) -> Response:
    """Remember the visitor's language choice in a cookie and go back."""
    response = redirect(safe_next(request.args.get("next")) or url_for("seatgate.login"), 303)
    if code in LANGUAGES:
        response.set_cookie(
            LANGUAGE_COOKIE,
            code,
            max_age=365 * 24 * 3600,
            httponly=True,
            samesite="Lax",
            secure=gate_state().web.secure_cookies,
        )
    return response  # type: ignore[return-value]


@pages.route("/admin")
@admin_required
def admin() -> Response:
    """Seat use, the licence, one page of accounts (searched in SQL) and the latest events."""
    state = gate_state()
    core = state.core
    status = core.licensing.status()
    query = request.args.get("q", "").strip()[:MAX_SEARCH_LENGTH]
    try:
        page = int(request.args.get("page", "1"))
    except ValueError:
        page = 1
    # One page from the database (a prefix search, as on /admin/accounts): the
    # page never loads every account, so it costs the same at 100,000 accounts.
    listing = browse(
        core.db,
        AccountQuery(text=query),
        page=page,
        page_size=state.page_size,
        now=core.clock.now(),
    )

    def events(conn: Connection) -> list[AuditEvent]:
        return audit.recent(conn, limit=AUDIT_EVENTS_SHOWN)

    return console_page(
        "seatgate/admin.html",
        licence=status,
        listing=listing,
        query=query,
        events=core.db.read(events),
        unknown=t("never"),
    )


@pages.route("/admin/<action>", methods=["POST"])
@admin_required
def admin_action(action: str) -> Response:
    """Assign, revoke, reassign, pin/unpin or install a licence; audited as the admin."""
    if not csrf_valid(request):
        return _csrf_refused()
    user = require_user()
    actions = AdminActions(gate_state().core, user.login)
    form = request.form
    try:
        if action == "assign":
            message = actions.assign(text_field(form, "login"))
        elif action == "revoke":
            message = actions.revoke(text_field(form, "login"))
        elif action == "reassign":
            message = actions.reassign(text_field(form, "from"), text_field(form, "to"))
        elif action == "pin":
            message = actions.pin(text_field(form, "login"), form.get("pinned", "1") == "1")
        elif action == "license":
            message = actions.install_license(_token_text())
        else:
            return _page("seatgate/error.html", 404, message="404")
        flash(message, "ok")
    except ActionRefused as refused:
        flash(refused.message, "error")
    return redirect(url_for("seatgate.admin"), 303)  # type: ignore[return-value]


def _token_text() -> str:
    upload = request.files.get("token_file")
    if upload is not None and upload.filename:
        raw: bytes = upload.read(64 * 1024 + 1)
        text = raw.decode("utf-8", "replace").strip()
        if text:
            return text
    return text_field(request.form, "token", limit=64 * 1024)
