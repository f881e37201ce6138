"""The web gate's messages by key: each key names one English text, its gettext msgid.

Python callers ask for a message by a stable key (``t("done_assign",
login=...)``); the English text here is the msgid that the catalogs in
``translations/`` translate. ``N_`` and ``NP_`` (:mod:`seatgate.texts`)
only mark texts for Babel's extraction (babel.cfg); :mod:`.i18n` looks them
up. The refusal texts are the core's (:data:`seatgate.gate.refusals.MESSAGES`),
so the CLI and the pages say the same in English.

To add a message: add the key here (or write ``t("English text")`` in a
template), then extract, update and translate as docs/contributing.md says.
"""

from __future__ import annotations

from collections.abc import Mapping

from seatgate.gate.refusals import MESSAGES as REFUSAL_TEXT
from seatgate.texts import N_, NP_, Plural

MESSAGES: Mapping[str, str | Plural] = {
    "invalid_credentials": REFUSAL_TEXT["invalid_credentials"],
    "account_disabled": REFUSAL_TEXT["account_disabled"],
    "license_invalid": REFUSAL_TEXT["license_invalid"],
    "no_seat_available": REFUSAL_TEXT["no_seat_available"],
    "no_seat_reserved": REFUSAL_TEXT["no_seat_reserved"],
    "no_seat_assigned": REFUSAL_TEXT["no_seat_assigned"],
    "seat_request_recorded": REFUSAL_TEXT["seat_request_recorded"],
    "rate_limited": REFUSAL_TEXT["rate_limited"],
    "directory_unavailable": REFUSAL_TEXT["directory_unavailable"],
    "unauthenticated": N_("Sign in first."),
    "session_ended": N_("Your session has ended. Sign in again."),
    "forbidden": N_("Only administrators may do this."),
    "invalid_token": N_("The API token is not valid."),
    "token_revoked": N_("The API token has been revoked."),
    "token_expired": N_("The API token has expired."),
    "missing_scope": N_("The API token lacks the scope {scope}."),
    "done_disable": N_("{login} is disabled."),
    "done_enable": N_("{login} is enabled."),
    "csrf_failed": N_(
        "The form has expired or did not come from this site. Reload the page and retry."
    ),
    "unsupported_media_type": N_("Send a JSON body (Content-Type: application/json)."),
    "bad_request": N_("The request is missing `{field}` or it is not text."),
    "request_too_large": N_("The request is too large."),
    "sites": N_("Sites"),
    "site_not_licensed": N_(
        "This portal is not licensed for the address {host}. "
        "Use the portal's licensed address, or ask an administrator."
    ),
    "site_admins_only": N_(
        "On this machine's own address ({host}) the portal serves administrators only."
    ),
    "bad_json": N_("The body is not a JSON object this gate can read."),
    "unknown_account": N_("No account has the login `{login}`."),
    "seat_already_held": N_("`{login}` already holds a seat."),
    "seat_not_held": N_("`{login}` holds no seat."),
    "account_not_active": N_("`{login}` is not active; only active accounts can hold a seat."),
    "no_seat_free": NP_(
        "The only seat is in use. Revoke or reassign it first.",
        "All {seats} seats are in use. Revoke or reassign one first.",
        "seats",
    ),
    "token_rejected": N_("The licence token was rejected: {reason}"),
    "done_assign": N_("Seat assigned to {login}."),
    "done_revoke": N_("Seat of {login} revoked."),
    "done_reassign": N_("Seat moved from {source} to {target}."),
    "no_seat_request": N_("`{login}` has no pending seat request."),
    "done_approve": N_("Seat request of {login} approved: seat assigned."),
    "done_approve_replace": N_("Seat request of {login} approved: seat moved from {source}."),
    "done_deny": N_("Seat request of {login} denied."),
    "done_pin": N_("Seat of {login} pinned."),
    "done_unpin": N_("Seat of {login} unpinned."),
    "done_license": N_("Licence token {jti} installed."),
    "released": N_("Seats released: {logins}."),
    "done_license_removed": N_("Licence token {jti} removed."),
    "pinned_exceed": N_(
        "The licence would allow {capacity} seats but {pinned} are pinned; unpin some first. "
        "Nothing was changed."
    ),
    "token_not_removable": N_(
        "No installed add-on, site token or renewal coupon has that id. Nothing was changed."
    ),
    "token_missing": N_("Paste a licence token or choose a file (at most 64 KiB)."),
    "sign_in": N_("Sign in"),
    "sign_out": N_("Sign out"),
    "login": N_("Login"),
    "password": N_("Password"),
    "remember_me": N_("Keep me signed in"),
    "signed_out": N_("You have signed out."),
    "kerberos_failed": N_("Windows sign-in did not work here. Sign in with your password."),
    "signed_in_as": N_("Signed in as {login}."),
    "administration": N_("Seat administration"),
    "language": N_("Language"),
    "licence": N_("Licence"),
    "seats_used": N_("Seats used"),
    "seats_total": N_("Seats in the licence"),
    "seats_free": N_("Free"),
    "seats_reserved": N_("Kept for administrators"),
    "unlimited": N_("unlimited"),
    "edition": N_("Edition"),
    "state": N_("State"),
    "valid": N_("valid"),
    "invalid": N_("not valid"),
    "trial_until": N_("trial until {date}"),
    "storage_unavailable": N_(
        "The portal cannot reach its database right now. Try again in a minute."
    ),
    "trial_days_left": NP_("{days} day left", "{days} days left", "days"),
    "clock_warning": NP_(
        "The system clock is {days} day behind the latest time seen; "
        "expiry dates are judged by that time.",
        "The system clock is {days} days behind the latest time seen; "
        "expiry dates are judged by that time.",
        "days",
    ),
    "tokens": N_("Licences and add-ons"),
    "token_id": N_("Token"),
    "kind": N_("Kind"),
    "activated": N_("Activated"),
    "updates_until": N_("Updates and support until"),
    "days_left": NP_("{days} day left", "{days} days left", "days"),
    "ended_days_ago": NP_("ended {days} day ago", "ended {days} days ago", "days"),
    "renewal": N_("Renewal"),
    "rate_until": N_("until {date}"),
    "accounts": N_("Accounts"),
    "search": N_("Search"),
    "name": N_("Name"),
    "status": N_("Status"),
    "seat": N_("Seat"),
    "pinned": N_("pinned"),
    "last_login": N_("Last login"),
    "never": N_("never"),
    "yes": N_("yes"),
    "no": N_("no"),
    "previous": N_("Previous"),
    "next": N_("Next"),
    "page_of": N_("Page {page} of {pages}"),
    "assign": N_("Assign a seat"),
    "revoke": N_("Revoke a seat"),
    "reassign": N_("Reassign a seat"),
    "from": N_("From"),
    "to": N_("To"),
    "pin": N_("Pin or unpin a seat"),
    "pin_action": N_("Pin"),
    "unpin_action": N_("Unpin"),
    "install_licence": N_("Install a licence token"),
    "token_text": N_("Token (paste)"),
    "token_file": N_("or a token file"),
    "install": N_("Install"),
    "audit": N_("Latest events"),
    "when": N_("When"),
    "actor": N_("Who"),
    "action": N_("Action"),
    "subject": N_("Subject"),
    "outcome": N_("Outcome"),
    "welcome": N_("Welcome, {name}."),
    "portal_placeholder": N_("You hold a seat of this portal."),
}
