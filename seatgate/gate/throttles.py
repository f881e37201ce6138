"""Throttled login attempts, audited in aggregate instead of one event each.

A throttled attempt costs no password verification, so a client can send
them as fast as the network allows; one audit event each would let it grow
the audit log (and queue on the audit chain's lock) at request rate. Instead
each rule that throttles keeps one row per key -- its ``scope`` (``pair``,
``address``, ``login``, ``device``) and ``subject`` -- with a count:

* the first throttled attempt of a key writes one ``login`` event, outcome
  ``rate_limited``, ``details.throttled = "started"``;
* later ones only add to the row's count (no audit event);
* the next allowed attempt for the key, or the first throttled one after the
  window has passed, or the pruning of rows idle for a window writes one
  summary event (``details.throttled = "ended"`` with the ``count``) and
  clears the row.

So a key costs at most two audit events per window, whatever the request
rate, and the table holds at most one row per throttled key.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, bindparam, delete, exists, insert, or_, select, tuple_, update
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.selectable import Exists

from seatgate.audit import log as audit
from seatgate.storage.db import Database
from seatgate.storage.schema import login_throttles

THROTTLED = "rate_limited"
# How long one process's refusals for want of a verification slot are tallied.
BUSY_WINDOW = timedelta(minutes=15)
# Idle rows summarised and cleared per allowed attempt: bounded work per request.
PRUNE_BATCH = 20
_T = login_throttles.c


def _settling(wanted: Any) -> ColumnElement[bool]:
    """The throttle rows an allowed attempt settles: its own keys (``wanted``, an ``IN``
    operand) and every row idle since ``idle_before``."""
    return or_(tuple_(_T.scope, _T.subject).in_(wanted), _T.last_at <= bindparam("idle_before"))


# Built once: they run on every allowed login.
_SETTLING = _settling(bindparam("wanted", expanding=True))


def unsettled(keys: int) -> Exists:
    """Whether :func:`settle_in` has anything to do for an attempt with ``keys`` throttle
    keys (params of :func:`settle_params`): read together with the limiter's counts, so
    the common case costs no statement. One parameter per value, no ``IN`` list: the
    statement runs on the driver's cursor (:mod:`seatgate.storage.driver_statement`)."""
    wanted = [tuple_(bindparam(f"w{i}_scope"), bindparam(f"w{i}_subject")) for i in range(keys)]
    return exists().where(_settling(wanted))


_TO_SETTLE = (
    select(_T.scope, _T.subject, _T.started_at, _T.last_at, _T.count.label("attempts"))
    .where(_SETTLING)
    .order_by(_T.last_at)
    .limit(bindparam("batch"))
)


def throttled_in(
    conn: Connection, scope: str, subject: str, now: datetime, window: timedelta
) -> None:
    """Count one throttled attempt of ``(scope, subject)``; audit only the first of a window.

    The caller holds the lock that serialises attempts for this key.
    """
    row = conn.execute(
        select(
            _T.started_at,
            _T.last_at,
            _T.count.label("attempts"),
            (_T.started_at > now - window).label("current"),
        ).where(_T.scope == scope, _T.subject == subject)
    ).one_or_none()
    if row is not None and row.current:
        conn.execute(
            update(login_throttles)
            .where(_T.scope == scope, _T.subject == subject)
            .values(count=_T.count + 1, last_at=now)
        )
        return
    if row is not None:
        _summarise(conn, scope, subject, row.started_at, row.last_at, row.attempts, now)
        conn.execute(delete(login_throttles).where(_T.scope == scope, _T.subject == subject))
    conn.execute(
        insert(login_throttles).values(
            scope=scope, subject=subject, started_at=now, last_at=now, count=1
        )
    )
    audit.record(
        conn,
        at=now,
        actor=subject[:256],
        action="login",
        subject=subject[:256],
        outcome=THROTTLED,
        details={"throttled": "started", "scope": scope},
    )


def settle_params(
    keys: Iterable[tuple[str, str]], now: datetime, window: timedelta
) -> dict[str, object]:
    """The parameters of :func:`unsettled` for an allowed attempt's throttle keys."""
    params: dict[str, object] = {"idle_before": now - window}
    for i, (scope, subject) in enumerate(keys):
        params[f"w{i}_scope"], params[f"w{i}_subject"] = scope, subject
    return params


def settle_in(
    conn: Connection, keys: Iterable[tuple[str, str]], now: datetime, window: timedelta
) -> None:
    """An attempt was allowed: summarise and clear the throttles of its keys and idle ones."""
    wanted = list(keys)
    params = {"wanted": wanted, "idle_before": now - window, "batch": PRUNE_BATCH + len(wanted)}
    for row in conn.execute(_TO_SETTLE, params).all():
        _summarise(conn, row.scope, row.subject, row.started_at, row.last_at, row.attempts, now)
        conn.execute(
            delete(login_throttles).where(_T.scope == row.scope, _T.subject == row.subject)
        )


def _summarise(
    conn: Connection,
    scope: str,
    subject: str,
    started: datetime,
    last: datetime,
    count: int,
    now: datetime,
) -> None:
    audit.record(
        conn,
        at=now,
        actor=subject[:256],
        action="login",
        subject=subject[:256],
        outcome=THROTTLED,
        details={
            "throttled": "ended",
            "scope": scope,
            "count": count,
            "from": _utc(started).isoformat(),
            "until": _utc(last).isoformat(),
        },
    )


def _utc(moment: datetime) -> datetime:
    # SQLite gives the stored UTC times back without their zone.
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


class WindowTally:
    """Events that come at request rate, audited per window rather than one each.

    No database work is needed to see one, so the tally is kept in memory:
    the first of a window is audited (with ``first``'s details), the others
    counted, and the first after the window audits the count.
    """

    def __init__(
        self, *, action: str, outcome: str | None, scope: str, window: timedelta = BUSY_WINDOW
    ) -> None:
        self.action = action
        self.outcome = outcome
        self.scope = scope
        self.window = window
        self._lock = threading.Lock()
        self._started: datetime | None = None
        self._count = 0

    def seen(self, db: Database, now: datetime, first: dict[str, object] | None = None) -> None:
        """Count one; audit the first of a window, or the count of the window before."""
        with self._lock:
            if self._started is not None and now - self._started < self.window:
                self._count += 1
                return
            ended, self._started, self._count = self._count, now, 1
        details: dict[str, object] = {"throttled": "started", "scope": self.scope, **(first or {})}
        if ended:
            details = {"throttled": "ended", "scope": self.scope, "count": ended}
        db.write(
            lambda conn: audit.record(
                conn,
                at=now,
                actor="system",
                action=self.action,
                outcome=self.outcome,
                details=details,
            )
        )


class BusyTally(WindowTally):
    """Refusals for want of a verification slot in this process, audited per window."""

    def __init__(self, window: timedelta = BUSY_WINDOW) -> None:
        super().__init__(action="login", outcome=THROTTLED, scope="busy", window=window)

    def refused(self, db: Database, now: datetime) -> None:
        """Count one refusal; audit the first of a window, or the count of the window before."""
        self.seen(db, now)


__all__ = ["BusyTally", "WindowTally", "settle_in", "throttled_in"]
