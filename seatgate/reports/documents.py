"""The JSON documents of the command line and the web API.

Both front doors answer with the same field names, so a script can read
``seatgate license status --json`` and ``GET /api/license`` alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from seatgate.accounts.service import AccountListing
from seatgate.licensing.claims import Price
from seatgate.licensing.lifecycle import UpdatesPeriod
from seatgate.licensing.report import InstalledToken, LicenseStatus
from seatgate.records import AuditEvent, SeatHolder
from seatgate.seats.reclaim import IdleSeat
from seatgate.seats.requests import SeatRequest
from seatgate.sessions.service import SessionInfo
from seatgate.storage.outbox import Delivery


def iso(value: datetime | None) -> str | None:
    """ISO 8601 UTC with a trailing Z, or None."""
    if value is None:
        return None
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def status_json(status: LicenseStatus, *, requests_pending: int | None = None) -> dict[str, Any]:
    """``license status --json`` and ``GET /api/license``: the licence, its seats and tokens.

    ``requests_pending``: the seat requests waiting for an answer, when the caller counted them.
    """
    ent = status.entitlement
    document: dict[str, Any] = {"valid": status.valid}
    if not status.valid:
        document["reason"] = status.reason
    document.update(
        {
            "edition": ent.edition,
            "unlimited": ent.unlimited,
            "seats_total": status.seats_total,
            "seats_used": status.seats_used,
            "seats_free": status.seats_free,
            "overage_allowed": status.overage_allowed,
            "overage_used": status.overage_used,
            "reserved_for_admins": status.reserved_for_admins,
            "seat_requests_pending": requests_pending,
            "trial": ent.trial,
            "trial_days_left": status.trial_days_left,
            "expires_at": iso(ent.expires_at),
            # The hosts the web gate serves; [] when the licence names none (any host).
            "sites": list(ent.sites),
            "clock_warning": status.clock.explain(),
            "tokens": [token_json(t, status) for t in status.tokens],
        }
    )
    return document


def token_json(t: InstalledToken, status: LicenseStatus) -> dict[str, Any]:
    """One installed token, with its updates period and renewal quote when it has one."""
    document: dict[str, Any] = {
        "jti": t.jti,
        "kind": t.kind,
        "seats": t.token.seats if t.token else None,
        "edition": t.token.edition if t.token else None,
        "unlimited": t.token.unlimited if t.token else False,
        "overage": float(t.token.overage) if t.token and t.token.overage is not None else None,
        "lic": t.lic,
        "installed_at": iso(t.installed_at),
        "expires_at": iso(t.token.expires_at) if t.token else None,
        "counted": t.jti in status.entitlement.source_jtis,
        "problem": t.problem,
        "sites": list(t.token.sites) if t.token else [],
        "host": t.token.host if t.token else None,
        "price": price_json(t.token.price) if t.token and t.token.price else None,
    }
    document.update(period_json(status.periods.get(t.jti)))
    return document


def price_json(price: Price) -> dict[str, str]:
    """A token's list price, as its ``price`` claim carries it."""
    return {"amount": str(price.amount), "currency": price.currency}


def period_json(period: UpdatesPeriod | None) -> dict[str, Any]:
    """The updates-period fields of a licence or add-on (all null for other tokens)."""
    if period is None:
        return {
            "activated_at": None,
            "updates_until": None,
            "updates_days_left": None,
            "updates_days_since_end": None,
            "renewals": [],
            "renewal": None,
        }
    quote = period.quote
    return {
        "activated_at": iso(period.activated_at),
        "updates_until": iso(period.updates_until),
        "updates_days_left": period.days_left,
        "updates_days_since_end": period.days_since_end,
        "renewals": list(period.renewals),
        "renewal": {
            "rate": float(quote.rate),
            "amount": str(quote.amount) if quote.amount is not None else None,
            "currency": quote.currency,
            "rate_changes_at": iso(quote.rate_changes_at),
        },
    }


def accounts_json(listings: Sequence[AccountListing]) -> list[dict[str, Any]]:
    """``accounts list --json``: one document per account."""
    return [
        {
            "login": item.account.login,
            "name": item.account.display_name,
            "email": item.account.email,
            "source": item.account.source,
            "status": item.account.status,
            "admin": item.account.is_admin,
            "groups": list(item.account.groups),
            "has_seat": item.has_seat,
            "last_login_at": iso(item.account.last_login_at),
        }
        for item in listings
    ]


def seats_json(holders: Sequence[SeatHolder]) -> list[dict[str, Any]]:
    """``seats list --json`` and ``GET /api/seats``: one document per seat holder."""
    return [
        {
            "login": h.login,
            "name": h.display_name,
            "pinned": h.pinned,
            "assigned_at": iso(h.assigned_at),
            "assigned_by": h.assigned_by,
            "last_used_at": iso(h.last_used_at),
            "last_login_at": iso(h.last_login_at),
        }
        for h in holders
    ]


def requests_json(found: Sequence[SeatRequest]) -> list[dict[str, Any]]:
    """``seats requests --json`` and ``GET /api/seats/requests``: one document per request."""
    return [
        {
            "login": r.login,
            "name": r.display_name,
            "first_at": iso(r.first_at),
            "last_at": iso(r.last_at),
            "attempts": r.attempts,
            "expires_at": iso(r.expires_at),
        }
        for r in found
    ]


def reclaim_json(found: Sequence[IdleSeat], *, idle_days: int, dry_run: bool) -> dict[str, Any]:
    """``seats reclaim --json``: the seats reclaimed (or, dry run, that would be)."""
    return {
        "idle_days": idle_days,
        "dry_run": dry_run,
        "reclaimed": [{"login": s.login, "last_used_at": iso(s.last_used_at)} for s in found],
    }


def audit_json(events: Sequence[AuditEvent]) -> list[dict[str, Any]]:
    """``audit --json``: one document per event."""
    return [
        {
            "id": e.id,
            "at": iso(e.at),
            "actor": e.actor,
            "action": e.action,
            "subject": e.subject,
            "outcome": e.outcome,
            "details": e.details,
        }
        for e in events
    ]


def sessions_json(found: Sequence[SessionInfo]) -> list[dict[str, Any]]:
    """``seatgate sessions list --json``: no token and no hash, ever."""
    return [
        {
            "login": s.login,
            "state": s.state.value,
            "check": s.check,
            "opened_at": iso(s.opened_at),
            "last_seen_at": iso(s.last_seen_at),
            "expires_at": iso(s.expires_at),
            "ended_at": iso(s.ended_at),
            "ended_reason": s.ended_reason,
            "client_address": s.client_address,
            "user_agent": s.user_agent,
        }
        for s in found
    ]


def delivery_state(delivery: Delivery) -> str:
    """``failed`` once a delivery was tried and failed (to be retried), else ``pending``."""
    return "failed" if delivery.attempts else "pending"


def deliveries_json(waiting: Sequence[Delivery]) -> list[dict[str, Any]]:
    """``seatgate notify list --json`` and ``GET /api/notifications``."""
    return [
        {
            "event_id": d.event.event_id,
            "kind": d.event.kind,
            "created_at": iso(d.event.created_at),
            "data": dict(d.event.data),
            "channel": d.channel,
            "state": delivery_state(d),
            "attempts": d.attempts,
            "next_at": iso(d.next_at),
            "last_error": d.last_error,
        }
        for d in waiting
    ]
