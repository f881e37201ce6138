"""The console's licence page: every token, install with a preview, remove with a confirmation.

Installing and removing go through the core's :class:`~seatgate.licensing.service.Licensing`
(verified, audited as the signed-in admin, seats released by the usual shrink rules).
Each change is shown first as the core's dry run -- who would lose a seat --
and applied only by a second POST from that preview.
"""

from __future__ import annotations

from typing import Any

from flask import Response, flash, redirect, request, url_for

from seatgate.errors import PinnedSeatsExceed, TokenNotInstalled, TokenRejected
from seatgate.licensing.service import REMOVABLE

from .actions import MAX_TOKEN_LENGTH
from .context import admin_required, gate_state, require_user, t
from .security import csrf_valid
from .views import console_page, pages


def _page(template: str, code: int = 200, **context: Any) -> Response:
    # The licence's dates that are not there are logins and renewals never made.
    return console_page(template, code, unknown=t("never"), **context)


def _back(message: str, category: str) -> Response:
    flash(message, category)
    return redirect(url_for("seatgate.licence_page"), 303)  # type: ignore[return-value]


def _refusal(exc: Exception) -> str:
    if isinstance(exc, TokenRejected):
        return t("token_rejected", reason=exc.reason)
    if isinstance(exc, PinnedSeatsExceed):
        return t("pinned_exceed", capacity=exc.capacity, pinned=exc.pinned)
    return t("token_not_removable")


def _token_text() -> str:
    upload = request.files.get("token_file")
    if upload is not None and upload.filename:
        raw: bytes = upload.read(MAX_TOKEN_LENGTH + 1)
        text = raw.decode("utf-8", "replace").strip()
        if text:
            return text
    return str(request.form.get("token", ""))[: MAX_TOKEN_LENGTH + 1].strip()


@pages.route("/admin/licence")
@admin_required
def licence_page() -> Response:
    """Every installed token with its activation, updates period and renewal quote."""
    return _page(
        "seatgate/console_licence.html",
        licence=gate_state().core.licensing.status(),
        removable=REMOVABLE,
    )


@pages.route("/admin/licence/install", methods=["POST"])
@admin_required
def licence_install() -> Response:
    """Preview (a dry run) a token, or install it when the preview's confirm button sent it."""
    if not csrf_valid(request):
        return _page("seatgate/error.html", 400, message=t("csrf_failed"))
    text = _token_text()
    if not text or len(text) > MAX_TOKEN_LENGTH:
        return _back(t("token_missing"), "error")
    licensing = gate_state().core.licensing
    actor = require_user().login
    confirmed = request.form.get("confirm") == "1"
    try:
        result = licensing.install(text, actor=actor, dry_run=not confirmed)
    except (TokenRejected, PinnedSeatsExceed) as exc:
        return _back(_refusal(exc), "error")
    if not confirmed:
        return _page("seatgate/console_licence_preview.html", result=result, token_text=text)
    message = t("done_license", jti=result.token.jti)
    if result.released:
        message += " " + t("released", logins=", ".join(result.released))
    return _back(message, "ok")


@pages.route("/admin/licence/remove", methods=["POST"])
@admin_required
def licence_remove() -> Response:
    """Preview (a dry run) taking out an add-on, site or coupon, or do it once confirmed."""
    if not csrf_valid(request):
        return _page("seatgate/error.html", 400, message=t("csrf_failed"))
    jti = str(request.form.get("jti", "")).strip()[:256]
    licensing = gate_state().core.licensing
    confirmed = request.form.get("confirm") == "1"
    try:
        result = licensing.remove(jti, actor=require_user().login, dry_run=not confirmed)
    except (TokenNotInstalled, PinnedSeatsExceed) as exc:
        # An empty or unknown id is TokenNotInstalled too: nothing was changed.
        return _back(_refusal(exc), "error")
    if not confirmed:
        return _page("seatgate/console_licence_remove.html", result=result)
    message = t("done_license_removed", jti=result.jti)
    if result.released:
        message += " " + t("released", logins=", ".join(result.released))
    return _back(message, "ok")
