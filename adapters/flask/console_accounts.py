"""The console's accounts page: list, search, filter, sort, and act on accounts.

``GET /admin/accounts`` lists one page; the query (:mod:`seatgate.accounts.browse`)
runs in the database. Every change is a POST carrying the CSRF token, made by
an administrator through the same core operations as the CLI (so it is
audited as them). Actions on one or more accounts show a confirmation page
first; adding an account and setting a password are confirmed by their form.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from flask import Response, flash, redirect, request, url_for
from werkzeug.datastructures import MultiDict

from seatgate.accounts.browse import (
    MAX_SEARCH_LENGTH,
    SEAT_FILTERS,
    SORT_KEYS,
    AccountQuery,
    browse,
)
from seatgate.errors import AccountError, InvalidLogin, UnknownAccount
from seatgate.texts import N_

from .actions import ActionRefused, AdminActions, text_field
from .context import admin_required, gate_state, require_user, t
from .security import csrf_valid
from .views import _csrf_refused, _page, console_page, pages

# Actions on a selection of accounts (checkboxes) or on one (its row's button).
SELECTION_ACTIONS = ("disable", "enable", "end_sessions", "assign", "revoke", "pin", "unpin")
LIST_KEYS = ("q", "source", "status", "seat", "admin", "idle", "sort", "order", "page")
MAX_SELECTED = 500
MAX_IDLE_DAYS = 36500
SOURCES = ("local", "csv", "ldap")
STATUSES = ("active", "disabled", "deleted")
TEXTS = {
    "bad_filter": N_("`{field}` has a value this page does not know: {value}"),
    "none_selected": N_("Select at least one account."),
    "too_many": N_("Select at most {limit} accounts at a time."),
    "created": N_("Account {login} created."),
    "password_set": N_("Password set for {login}."),
    "passwords_differ": N_("The two passwords differ; nothing was changed."),
    "sessions_ended": N_("Sessions of {login} ended: {count}."),
    "not_done": N_("{login}: not done: {reason}"),
}


class BadFilter(ValueError):
    """A listing parameter with a value the page does not know."""

    def __init__(self, field: str, value: str) -> None:
        super().__init__(field)
        self.field = field
        self.value = value


def listing_query(args: MultiDict[str, str]) -> AccountQuery:
    """The listing's parameters as a query. Raises :class:`BadFilter`."""

    def choice(name: str, allowed: tuple[str, ...]) -> str | None:
        value = args.get(name, "").strip()
        if value and value not in allowed:
            raise BadFilter(name, value[:40])
        return value or None

    idle_text = args.get("idle", "").strip()
    idle: int | None = None
    if idle_text:
        if not idle_text.isdigit() or not 0 < int(idle_text) <= MAX_IDLE_DAYS:
            raise BadFilter("idle", idle_text[:40])
        idle = int(idle_text)
    admin = choice("admin", ("yes", "no"))
    return AccountQuery(
        text=args.get("q", "").strip()[:MAX_SEARCH_LENGTH],
        source=choice("source", SOURCES),
        status=choice("status", STATUSES),
        seat=choice("seat", SEAT_FILTERS),  # type: ignore[arg-type]
        admin=None if admin is None else admin == "yes",
        idle_days=idle,
        sort=choice("sort", SORT_KEYS) or "login",  # type: ignore[arg-type]
        descending=choice("order", ("asc", "desc")) == "desc",
    )


@pages.route("/admin/accounts")
@admin_required
def console_accounts() -> Response:
    """One page of accounts, with the search, the filters and the actions."""
    state = gate_state()
    try:
        query = listing_query(request.args)
    except BadFilter as bad:
        message = t(TEXTS["bad_filter"], field=bad.field, value=bad.value)
        return _page("seatgate/error.html", 400, message=message)
    try:
        page = int(request.args.get("page", "1"))
    except ValueError:
        page = 1
    listing = browse(
        state.core.db, query, page=page, page_size=state.page_size, now=state.core.clock.now()
    )
    kept = {k: v for k in LIST_KEYS if k != "page" and (v := request.args.get(k, "").strip())}
    return console_page(
        "seatgate/console_accounts.html",
        listing=listing,
        query=query,
        kept=kept,
        back=_back_args(request.args),
        sources=SOURCES,
        statuses=STATUSES,
        seat_filters=SEAT_FILTERS,
        sort_keys=SORT_KEYS,
        unknown=t("never"),
    )


@pages.route("/admin/accounts/<action>", methods=["POST"])
@admin_required
def console_accounts_action(action: str) -> Response:
    """Carry out ``action``; actions on a selection ask for confirmation first."""
    if not csrf_valid(request):
        return _csrf_refused()
    form = request.form
    back = _back_args(form)
    actions = AdminActions(gate_state().core, require_user().login)
    if action in SELECTION_ACTIONS:
        logins = [x.strip() for x in form.getlist("login") if x.strip()]
        if not logins:
            flash(t(TEXTS["none_selected"]), "error")
        elif len(logins) > MAX_SELECTED:
            flash(t(TEXTS["too_many"], limit=MAX_SELECTED), "error")
        elif form.get("confirmed") != "1":
            return _confirm(action, logins, back)
        else:
            for login in logins:
                _outcome(login, partial(_selection_action, actions, action, login))
    elif action == "reassign":
        pair = _pair(form)
        if pair and form.get("confirmed") != "1":
            return _confirm(action, pair, back)
        if pair:
            _outcome(pair[0], partial(actions.reassign, pair[0], pair[1]))
    elif action == "add":
        _outcome(form.get("login", ""), lambda: _add(actions, form))
    elif action == "password":
        _outcome(form.get("login", ""), lambda: _set_password(actions, form))
    else:
        return _page("seatgate/error.html", 404, message="404")
    listing: str = url_for("seatgate.console_accounts", **back)  # type: ignore[arg-type]
    return redirect(listing, 303)  # type: ignore[return-value]


def _pair(form: MultiDict[str, str]) -> list[str]:
    """The reassignment's two logins, or [] after saying which is missing."""
    try:
        return [text_field(form, "from", limit=256), text_field(form, "to", limit=256)]
    except ActionRefused as refused:
        flash(refused.message, "error")
        return []


def _confirm(action: str, logins: list[str], back: dict[str, str]) -> Response:
    return _page("seatgate/console_confirm.html", action=action, logins=logins, back=back)


def _outcome(login: str, act: Callable[[], str]) -> None:
    """Run one change and flash what it did, or why it was refused (changing nothing)."""
    try:
        flash(act(), "ok")
    except ActionRefused as refused:
        flash(refused.message, "error")
    except AccountError as exc:
        flash(t(TEXTS["not_done"], login=login[:80], reason=str(exc)), "error")


def _selection_action(actions: AdminActions, action: str, login: str) -> str:
    if action in ("disable", "enable"):
        return actions.set_status(login, action == "enable")
    if action == "end_sessions":
        account = _account(actions, login)
        count = actions.core.sessions.end_all_for_account(account.id, actor=actions.actor)
        return t(TEXTS["sessions_ended"], login=account.login, count=count)
    if action in ("pin", "unpin"):
        return actions.pin(login, action == "pin")
    return actions.assign(login) if action == "assign" else actions.revoke(login)


def _add(actions: AdminActions, form: MultiDict[str, str]) -> str:
    password = _new_password(form)
    account = actions.core.accounts.add(
        text_field(form, "login", limit=256),
        password=password,
        actor=actions.actor,
        display_name=form.get("name") or None,
        email=form.get("email") or None,
    )
    return t(TEXTS["created"], login=account.login)


def _set_password(actions: AdminActions, form: MultiDict[str, str]) -> str:
    account = _account(actions, text_field(form, "login", limit=256))
    password = _new_password(form)
    actions.core.accounts.set_password(account.login, password, actor=actions.actor)
    return t(TEXTS["password_set"], login=account.login)


def _new_password(form: MultiDict[str, str]) -> str:
    password = form.get("password", "")
    if password != form.get("password_again", ""):
        raise ActionRefused("passwords_differ", 400, t(TEXTS["passwords_differ"]))
    return password


def _account(actions: AdminActions, login: str) -> Any:
    try:
        return actions.core.accounts.get(login)
    except (UnknownAccount, InvalidLogin):
        raise ActionRefused(
            "unknown_account", 404, t("unknown_account", login=login[:80])
        ) from None


def _back_args(values: MultiDict[str, str]) -> dict[str, str]:
    """The listing's parameters to return to (prefixed ``back_`` in forms)."""
    prefix = "" if values is request.args else "back_"
    return {
        key: value[:MAX_SEARCH_LENGTH]
        for key in LIST_KEYS
        if (value := values.get(prefix + key, "").strip())
    }
