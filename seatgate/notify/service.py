"""Delivering the notification outbox: ``seatgate notify run``, ``test`` and ``list``.

Events are already in the outbox, written with their cause
(:mod:`seatgate.storage.outbox`). A run adds the date-based reminders
(:mod:`seatgate.notify.timed`), then sends every due delivery on each
configured channel, outside any transaction, and records the outcome. A
delivery sent but not yet recorded (a crash in between) is sent again with
the same event id, which receivers use to drop the repeat: every event
reaches every channel at least once, and once by id.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import Connection, select

from seatgate.clock import Clock
from seatgate.config.notify import NotifyConfig
from seatgate.errors import ConfigError, NotificationFailed
from seatgate.licensing.service import Licensing
from seatgate.notify import templates, timed
from seatgate.storage import outbox
from seatgate.storage.db import Database
from seatgate.storage.locks import job_lock
from seatgate.storage.schema import accounts

AUDIT_BROKEN = "audit.broken"
TEST = "notify.test"


@dataclass(frozen=True)
class Message:
    """One notification, rendered, as a channel sends it."""

    event_id: str
    kind: str
    created_at: datetime
    installation: str
    language: str
    subject: str
    body: str
    data: Mapping[str, Any]
    recipients: tuple[str, ...] = ()
    """Email addresses (the email channel's; empty for webhooks)."""


class Sender(Protocol):
    """A channel (``seatgate.adapters.notify``): raises NotificationFailed when not taken."""

    channel: str

    def send(self, message: Message) -> None:
        """Deliver ``message``."""

    def check(self) -> None:
        """Raise :class:`ConfigError` (naming the key) when the channel's secret is missing."""


@dataclass
class RunReport:
    """What one ``notify run`` did."""

    reminders_added: int = 0
    delivered: int = 0
    failed: list[dict[str, str]] = field(default_factory=list)
    skipped_channels: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """The ``--json`` document."""
        return {
            "reminders_added": self.reminders_added,
            "delivered": self.delivered,
            "failed": self.failed,
            "skipped_channels": self.skipped_channels,
        }


class Notifier:
    """Sends the outbox's events through the configured channels."""

    def __init__(
        self,
        db: Database,
        clock: Clock,
        licensing: Licensing,
        config: NotifyConfig | None,
        senders: Sequence[Sender],
        installation: str,
    ) -> None:
        self.db = db
        self.clock = clock
        self.licensing = licensing
        self.config = config
        self.senders = list(senders)
        self.installation = installation

    def add_reminders(self) -> int:
        """Store the date-based reminders due now; return how many were new."""
        status = self.licensing.status()
        now = self.clock.now()
        due = timed.reminders(status, now)

        def work(conn: Connection) -> int:
            return sum(outbox.enqueue(conn, r.kind, r.key, r.data, now) for r in due)

        return self.db.write(work)

    def run(self) -> RunReport:
        """Add the reminders, then deliver everything due, each channel on its own.

        Raises :class:`ConfigError` without a ``notify:`` section, and
        :class:`~seatgate.errors.SyncAlreadyRunning` when another run holds the lock.
        """
        self._configured()
        with job_lock(self.db, "notify-run"):
            report = RunReport(reminders_added=self.add_reminders())
            now = self.clock.now()
            channels = [sender.channel for sender in self.senders]
            self.db.write(lambda conn: outbox.open_deliveries(conn, channels, now))
            due = self.db.read(lambda conn: outbox.due(conn, channels, now))
            recipients = self._recipients()
            for sender in self.senders:
                self._deliver(sender, [d for d in due if d.channel == sender.channel],
                              recipients, report)  # fmt: skip
            return report

    def test(self) -> dict[str, str | None]:
        """Send one test message on every channel now; channel -> None or the error."""
        config = self._configured()
        results: dict[str, str | None] = {}
        recipients = self._recipients()
        for sender in self.senders:
            data = {"channel": sender.channel.split(":", 1)[0]}
            subject, body = templates.render(TEST, self._fields(data), config.language)
            message = Message(
                "test-" + self.clock.now().strftime("%Y%m%dT%H%M%S"), TEST, self.clock.now(),
                self.installation, config.language, subject, body, data,
                recipients if sender.channel == "email" else (),
            )  # fmt: skip
            try:
                sender.send(message)
                results[sender.channel] = None
            except NotificationFailed as exc:
                results[sender.channel] = exc.reason
        return results

    def pending(self) -> list[outbox.Delivery]:
        """Deliveries not yet made on the configured channels (first try or retrying).

        Events written since the last run get their delivery rows first, so
        they show too.
        """
        channels = [sender.channel for sender in self.senders]
        now = self.clock.now()
        self.db.write(lambda conn: outbox.open_deliveries(conn, channels, now))
        return self.db.read(outbox.pending)

    def audit_broken(self, problem: str, event: int | None) -> None:
        """Put a break found by ``audit verify`` in the outbox, once per break."""
        now = self.clock.now()
        key = f"{AUDIT_BROKEN}:{event}:{problem[:120]}"
        data = {"problem": problem, "event": event}
        self.db.write(lambda conn: outbox.enqueue(conn, AUDIT_BROKEN, key, data, now))

    # -- internals -----------------------------------------------------------------------

    def _configured(self) -> NotifyConfig:
        """The ``notify:`` section, its channels' secrets present; else :class:`ConfigError`."""
        if self.config is None:
            raise ConfigError("notify", "this installation has no `notify:` section")
        for sender in self.senders:
            sender.check()
        return self.config

    def _fields(self, data: Mapping[str, Any]) -> dict[str, Any]:
        return {"installation": self.installation, **data}

    def _recipients(self) -> tuple[str, ...]:
        """The listed addresses, then the active admins' own (``to_admins``), each once."""
        email = self.config.email if self.config is not None else None
        if email is None:
            return ()
        found = list(email.to)
        if email.to_admins:
            query = (
                select(accounts.c.email)
                .where(accounts.c.is_admin.is_(True), accounts.c.status == "active")
                .where(accounts.c.email.is_not(None))
                .order_by(accounts.c.login_key)
            )
            found += [str(a) for a in self.db.read(lambda c: c.execute(query).scalars().all())]
        return tuple(dict.fromkeys(a.strip() for a in found if a and a.strip()))

    def _deliver(
        self,
        sender: Sender,
        due: list[outbox.Delivery],
        recipients: tuple[str, ...],
        report: RunReport,
    ) -> None:
        language = self.config.language if self.config is not None else "en"
        for delivery in due:
            event = delivery.event
            subject, body = templates.render(event.kind, self._fields(event.data), language)
            message = Message(
                event.event_id, event.kind, event.created_at, self.installation, language,
                subject, body, event.data, recipients if sender.channel == "email" else (),
            )  # fmt: skip
            try:
                sender.send(message)
            except NotificationFailed as exc:
                self._failed(delivery, exc.reason)
                report.failed.append({"event_id": event.event_id, "channel": sender.channel,
                                      "error": exc.reason})  # fmt: skip
                if exc.unreachable:
                    # The rest stay due as they were: the next run tries again.
                    report.skipped_channels.append(sender.channel)
                    return
                continue
            self._delivered(delivery)
            report.delivered += 1

    def _delivered(self, delivery: outbox.Delivery) -> None:
        now = self.clock.now()
        self.db.write(lambda conn: outbox.delivered(conn, delivery.event.id, delivery.channel, now))

    def _failed(self, delivery: outbox.Delivery, reason: str) -> None:
        now = self.clock.now()
        self.db.write(
            lambda conn: outbox.failed(conn, delivery.event.id, delivery.channel, now, reason)
        )
