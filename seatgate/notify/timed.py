"""Reminders that depend on the date, computed by ``seatgate notify run``.

Each has a dedupe key naming the token, the milestone and the date it
refers to, so it is stored once however often the job runs; a renewal that
moves the end of an updates period gives new keys, so the next year's
reminders fire again. When the job first runs late (a trial already at 3
days), only the nearest milestone is sent, not every one already passed.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from seatgate.licensing.lifecycle import LATE_RATE
from seatgate.licensing.report import LicenseStatus

UPDATES_MILESTONES = (7, 30)
TRIAL_MILESTONES = (1, 7)
RATE_WARNING = timedelta(days=7)


@dataclass(frozen=True)
class Reminder:
    """One time-based event: its kind, dedupe key and template data."""

    kind: str
    key: str
    data: dict[str, Any]


def reminders(status: LicenseStatus, now: datetime) -> list[Reminder]:
    """Every reminder due at ``now`` for the installed tokens."""
    return [*_updates(status, now), *_trial(status, now)]


def _updates(status: LicenseStatus, now: datetime) -> Iterator[Reminder]:
    for jti, period in status.periods.items():
        until = period.updates_until
        base = {"jti": jti, "until": f"{until:%Y-%m-%d}", "rate": _percent(period.quote.rate)}
        left = until - now
        if left <= timedelta(0):
            yield Reminder("updates.ended", f"updates.ended:{jti}:{until:%Y-%m-%d}", base)
        else:
            milestone = _nearest(left, UPDATES_MILESTONES)
            if milestone is not None:
                key = f"updates.ending:{milestone}:{jti}:{until:%Y-%m-%d}"
                yield Reminder("updates.ending", key, {**base, "days": milestone})
        changes_at = period.quote.rate_changes_at
        if changes_at is not None and timedelta(0) < changes_at - now <= RATE_WARNING:
            data = {
                "jti": jti,
                "changes_at": f"{changes_at:%Y-%m-%d}",
                "rate": _percent(LATE_RATE),
            }
            key = f"renewal.rate_rising:{jti}:{changes_at:%Y-%m-%d}"
            yield Reminder("renewal.rate_rising", key, data)


def _trial(status: LicenseStatus, now: datetime) -> Iterator[Reminder]:
    if any(t.kind == "license" and t.token is not None for t in status.tokens):
        return
    trials = [t.token for t in status.tokens if t.kind == "trial" and t.token is not None]
    for trial in trials:
        end = trial.expires_at
        if end is None:
            continue
        data = {"jti": trial.jti, "until": f"{end:%Y-%m-%d}"}
        left = end - max(now, status.clock.trusted_now)
        if left <= timedelta(0):
            yield Reminder("trial.ended", f"trial.ended:{trial.jti}", data)
            continue
        milestone = _nearest(left, TRIAL_MILESTONES)
        if milestone is not None:
            key = f"trial.ending:{milestone}:{trial.jti}"
            yield Reminder("trial.ending", key, {**data, "days": milestone})


def _nearest(left: timedelta, milestones: tuple[int, ...]) -> int | None:
    """The smallest milestone (in days) that ``left`` is within, if any."""
    return next((days for days in milestones if left <= timedelta(days=days)), None)


def _percent(rate: Any) -> str:
    return f"{rate * 100:.0f}"
