"""Seat and login metrics in the Prometheus text exposition format (version 0.0.4).

Served by the web gate at ``/metrics`` when ``web.metrics`` is on, and
printed by ``seatgate metrics`` (for a textfile collector or a cron job).
Every value is read from the database, so any node of an installation
answers for the whole installation.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import Connection, func, select

from seatgate.gate.decision import Reason
from seatgate.seats.overage import overage_used
from seatgate.seats.reclaim import RECLAIMED
from seatgate.seats.requests import pending_count_in
from seatgate.seats.state import count_seats, read_state
from seatgate.storage import settings
from seatgate.storage.db import Database
from seatgate.storage.schema import audit_counts, notify_deliveries
from seatgate.storage.sites import LICENSED_SITES_KEY, parse_sites

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
ALLOWED = "allowed"

Number = int | float


def render(source: Connection | Database, now: datetime, *, request_days: int = 30) -> str:
    """The metrics at ``now`` as Prometheus text, from a connection or a database.

    Login decisions are counted by reason (``allowed`` for admissions);
    every reason the gate knows is always present, at 0 when it never
    happened, so series do not appear out of nowhere. ``request_days``:
    ``seats.request_days``, which says which seat requests are pending.
    """
    if isinstance(source, Database):
        return source.read(lambda conn: _render(conn, now, request_days))
    return _render(source, now, request_days)


def _gauges(conn: Connection, now: datetime, request_days: int) -> list[tuple[str, str, Number]]:
    """The single-value gauges: (name, help, value)."""
    state = read_state(conn)
    valid = state.is_valid(now)
    capacity = state.capacity(now)
    used = count_seats(conn)
    total: Number = math.inf if capacity is None else capacity
    free: Number = math.inf if capacity is None else max(0, capacity - used)
    return [
        ("seatgate_seats_total", "Seats the licence entitles (+Inf when unlimited).", total),
        ("seatgate_seats_used", "Seats held now.", used),
        ("seatgate_seats_free", "Seats nobody holds (+Inf when unlimited).", free),
        (
            "seatgate_seats_overage_allowed",
            "Seats the licence's overage allows beyond the entitled ones.",
            state.overage_seats if capacity else 0,
        ),
        (
            "seatgate_seats_overage_used",
            "Seats held beyond the entitled ones (billed at true-up).",
            overage_used(used, capacity),
        ),
        (
            "seatgate_seat_requests_pending",
            "Seat requests of refused logins waiting for an answer.",
            pending_count_in(conn, now, request_days),
        ),
        ("seatgate_license_valid", "1 when a valid licence or trial is in force.", int(valid)),
        (
            "seatgate_license_unlimited",
            "1 when the valid licence has no seat limit.",
            int(valid and state.unlimited),
        ),
        (
            "seatgate_license_trial",
            "1 when the valid entitlement is a trial.",
            int(valid and state.trial),
        ),
        (
            "seatgate_licensed_sites",
            "Site host names the licence covers (0: the web gate serves any host).",
            len(parse_sites(settings.get(conn, LICENSED_SITES_KEY))),
        ),
    ]


def _render(conn: Connection, now: datetime, request_days: int) -> str:
    lines: list[str] = []
    for name, help_text, value in _gauges(conn, now, request_days):
        lines += _family(name, "gauge", help_text, [("", value)])
    pending, failing = _undelivered(conn)
    lines += _family(
        "seatgate_notifications_undelivered",
        "gauge",
        "Notification deliveries not made yet (as of the last notify run), by state.",
        [(_labels(state="pending"), pending), (_labels(state="failed"), failing)],
    )
    decisions = _login_decisions(conn)
    lines += _family(
        "seatgate_login_decisions_total",
        "counter",
        "Login decisions by reason (allowed, or why the login was refused).",
        [(_labels(reason=reason), count) for reason, count in decisions.items()],
    )
    lines += _family(
        "seatgate_seats_reclaimed_total",
        "counter",
        "Idle seats reclaimed, by how (idle: seats reclaim; on_demand: by a first login).",
        [(_labels(how=how), count) for how, count in _reclaimed(conn).items()],
    )
    return "\n".join(lines) + "\n"


def _reclaimed(conn: Connection) -> dict[str, int]:
    counts = {"idle": 0, "on_demand": 0}
    rows = conn.execute(
        select(audit_counts.c.outcome, audit_counts.c.count).where(
            audit_counts.c.action == RECLAIMED
        )
    )
    for outcome, count in rows:
        if outcome in counts:
            counts[outcome] += int(count)
    return counts


def _undelivered(conn: Connection) -> tuple[int, int]:
    """Deliveries waiting for their first try, and those that failed and wait for a retry."""
    dl = notify_deliveries.c
    failing = (dl.attempts > 0).label("failing")
    rows = conn.execute(
        select(failing, func.count()).where(dl.delivered_at.is_(None)).group_by(failing)
    )
    counts = {bool(flag): int(count) for flag, count in rows}
    return counts.get(False, 0), counts.get(True, 0)


def _login_decisions(conn: Connection) -> dict[str, int]:
    """Count per outcome of the ``login`` audit events, every known reason included."""
    counts: dict[str, int] = {ALLOWED: 0, **{reason.value: 0 for reason in Reason}}
    rows = conn.execute(
        select(audit_counts.c.outcome, audit_counts.c.count).where(audit_counts.c.action == "login")
    )
    extra: dict[str, int] = {}
    for outcome, count in rows:
        # '' stands for "no outcome"; a login decision always has one.
        if not outcome:
            continue
        if outcome in counts:
            counts[outcome] += int(count)
        else:
            extra[outcome] = extra.get(outcome, 0) + int(count)
    return {**counts, **dict(sorted(extra.items()))}


def _family(
    name: str, kind: str, help_text: str, samples: Iterable[tuple[str, Number]]
) -> list[str]:
    lines = [f"# HELP {name} {_escape_help(help_text)}", f"# TYPE {name} {kind}"]
    lines += [f"{name}{labels} {_value(value)}" for labels, value in samples]
    return lines


def _labels(**labels: str) -> str:
    inner = ",".join(f'{key}="{_escape_label(value)}"' for key, value in labels.items())
    return "{" + inner + "}"


def _escape_label(value: str) -> str:
    # The format's three escapes inside a quoted label value.
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _value(value: Number) -> str:
    if isinstance(value, float):
        if math.isinf(value):
            return "+Inf" if value > 0 else "-Inf"
        if math.isnan(value):
            return "NaN"
    return str(value)
