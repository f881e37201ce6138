"""Notifications that are never lost: the outbox, its causes, and webhook delivery.

Events are written in the transaction of their cause and delivered by
``notify run`` to a real HTTP receiver in a thread, on SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import text

from seatgate.app import Core
from seatgate.cli.main import cli
from seatgate.clock import FakeClock
from seatgate.config import config_from_mapping
from seatgate.config.notify import NotifyConfig, WebhookConfig
from seatgate.errors import ConfigError, SyncAlreadyRunning, SyncSafetyStop
from seatgate.licensing.vendor import VendorKey
from seatgate.reports import metrics
from seatgate.seats import alerts
from seatgate.storage import outbox
from seatgate.storage.locks import job_lock
from tests.conftest import add_users, make_config, write_config
from tests.notify_support import WEBHOOK_SECRET, WebhookReceiver
from tests.test_directory_sync import FakeDirectory, make_sync, person

SECRET_ENV = "SEATGATE_TEST_WEBHOOK_SECRET"


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    hook = WebhookReceiver()
    yield hook
    hook.stop()


@pytest.fixture
def notify_app(
    vendor_key: VendorKey,
    clock: FakeClock,
    db_url: str,
    receiver: WebhookReceiver,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Core]:
    """An installation without a licence whose webhook is ``receiver``."""
    monkeypatch.setenv(SECRET_ENV, WEBHOOK_SECRET)
    hook = WebhookConfig(url=receiver.url, secret_env=SECRET_ENV, key="notify.webhooks[0]")
    config = replace(make_config(db_url, vendor_key), notify=NotifyConfig(webhooks=(hook,)))
    app = Core.build(config, clock=clock, check_schema=False)
    app.init_schema()
    yield app
    app.close()


def events(app: Core) -> list[outbox.OutboxEvent]:
    return app.db.read(outbox.events_of)


def kinds(app: Core) -> list[str]:
    return [e.kind for e in events(app)]


def test_seat_thresholds_alert_once_and_a_receiver_down_gets_every_event_once_back(
    notify_app: Core, mint: Callable[..., str], receiver: WebhookReceiver, clock: FakeClock
) -> None:
    app = notify_app
    app.licensing.install(mint("license", seats=25), actor="test")
    logins = add_users(app, 26)

    def log_in(first: int, last: int) -> None:
        for login in logins[first:last]:
            assert app.gate.decide(login, f"{login}-pw").allowed

    log_in(0, 20)
    log_in(0, 1)  # a login again: no alert
    assert [e.data["threshold"] for e in events(app)] == [80]
    log_in(20, 23)
    assert [e.data["threshold"] for e in events(app)] == [80, 90]
    log_in(23, 25)
    assert [e.data["threshold"] for e in events(app)] == [80, 90, 100]
    # Falling back and crossing again the same day adds nothing.
    app.ledger.revoke(app.accounts.get(logins[24]).id, actor="test")
    log_in(24, 25)
    assert len(events(app)) == 3

    down = app.notifier.run()  # nobody listens yet
    assert down.delivered == 0 and len(down.failed) == 1
    (skipped,) = down.skipped_channels
    # Named by origin and a hash: a receiver's URL may carry its secret.
    assert skipped.startswith("webhook:http://127.0.0.1:") and receiver.url not in skipped
    waiting = app.notifier.pending()
    assert [d.attempts for d in waiting] == [1, 0, 0]
    assert "unreachable" in (waiting[0].last_error or "")
    assert WEBHOOK_SECRET not in (waiting[0].last_error or "")
    assert waiting[0].next_at == clock.now() + timedelta(minutes=1)
    text_metrics = metrics.render(app.db, clock.now())
    assert 'seatgate_notifications_undelivered{state="pending"} 2' in text_metrics
    assert 'seatgate_notifications_undelivered{state="failed"} 1' in text_metrics

    receiver.start()
    assert app.notifier.run().delivered == 2  # the failed one waits for its backoff
    clock.advance(timedelta(minutes=1))
    assert app.notifier.run().delivered == 1
    assert app.notifier.run().delivered == 0
    assert app.notifier.pending() == []

    stored = events(app)
    assert sorted(receiver.ids()) == sorted(e.event_id for e in stored)
    assert len(set(receiver.ids())) == 3
    for got in receiver.received:
        assert got.signed()
        assert not got.signed("another-secret-" + "x" * 32)
        assert got.document["id"] == got.headers["X-Seatgate-Event-Id"]
        assert got.document["type"] == "seats.threshold"
    by_id = {r.document["id"]: r.document for r in receiver.received}
    assert by_id[stored[2].event_id]["data"] == {"threshold": 100, "used": 25, "total": 25}
    assert "100% of seats in use" in by_id[stored[2].event_id]["subject"]


def test_failures_back_off_exponentially_and_keep_the_event(
    notify_app: Core, receiver: WebhookReceiver, clock: FakeClock
) -> None:
    app = notify_app
    now = clock.now()
    app.db.write(lambda conn: outbox.enqueue(conn, "audit.broken", "k1", {"problem": "p"}, now))
    receiver.status = 500
    receiver.start()
    waits = []
    for _ in range(3):
        report = app.notifier.run()
        assert report.failed[0]["error"].endswith("answered HTTP 500")
        assert report.skipped_channels == []  # answered: not unreachable
        (delivery,) = app.notifier.pending()
        waits.append(delivery.next_at - clock.now())
        assert app.notifier.run().failed == []  # not due yet: not tried
        clock.set(delivery.next_at)
    assert waits == [timedelta(minutes=1), timedelta(minutes=2), timedelta(minutes=4)]
    assert outbox.backoff(40) == timedelta(hours=6)
    receiver.status = 200
    assert app.notifier.run().delivered == 1
    assert len(receiver.received) == 1
    assert app.notifier.pending() == []


def test_a_redirect_is_not_a_delivery_and_runs_never_overlap(
    notify_app: Core, receiver: WebhookReceiver, clock: FakeClock
) -> None:
    app = notify_app
    now = clock.now()
    app.db.write(lambda conn: outbox.enqueue(conn, "audit.broken", "k1", {"problem": "p"}, now))
    receiver.status = 302
    receiver.start()
    assert app.notifier.run().failed[0]["error"].endswith("answered HTTP 302")
    with job_lock(app.db, "notify-run"), pytest.raises(SyncAlreadyRunning, match="notify-run"):
        app.notifier.run()
    receiver.status = 200
    clock.advance(timedelta(minutes=1))
    assert app.notifier.run().delivered == 1


def test_reminders_fire_once_per_milestone(
    notify_app: Core, mint: Callable[..., str], clock: FakeClock
) -> None:
    app = notify_app
    app.licensing.install(mint("license"), actor="test")
    (period,) = app.licensing.status().periods.values()
    end = period.updates_until
    steps = [
        (end - timedelta(days=40), []),
        (end - timedelta(days=29), ["updates.ending"]),
        (end - timedelta(days=20), []),
        (end - timedelta(days=6), ["updates.ending"]),
        (end + timedelta(days=1), ["updates.ended"]),
        (end + timedelta(days=24), ["renewal.rate_rising"]),
        (end + timedelta(days=29), []),
    ]
    seen = 0
    for when, expected in steps:
        clock.set(when)
        assert app.notifier.add_reminders() == len(expected), when
        assert app.notifier.add_reminders() == 0
        assert kinds(app)[seen:] == expected
        seen = len(kinds(app))
    days = [e.data.get("days") for e in events(app)]
    assert days == [30, 7, None, None]


def test_trial_reminders(notify_app: Core, mint: Callable[..., str], clock: FakeClock) -> None:
    app = notify_app
    app.licensing.install(mint("trial"), actor="test")
    trial = next(t.token for t in app.licensing.status().tokens if t.token is not None)
    assert trial.expires_at is not None
    for when in (timedelta(days=-6), timedelta(hours=-12), timedelta(hours=1)):
        clock.set(trial.expires_at + when)
        app.notifier.add_reminders()
        app.notifier.add_reminders()
    assert [(e.kind, e.data.get("days")) for e in events(app)] == [
        ("trial.ending", 7),
        ("trial.ending", 1),
        ("trial.ended", None),
    ]


def test_a_sync_stopped_by_its_safety_limit_alerts_once_a_day(
    notify_app: Core, mint: Callable[..., str], clock: FakeClock
) -> None:
    app = notify_app
    app.licensing.install(mint("license", seats=25), actor="test")
    directory = FakeDirectory([person(i) for i in range(20)])
    sync = make_sync(app)
    sync.run(directory, full=True)
    for n in (1, 2, 3):
        del directory.entries[f"guid-{n:04d}"]
    with pytest.raises(SyncSafetyStop):
        sync.run(directory, full=True, dry_run=True)
    assert events(app) == []  # a dry run alerts nobody
    for _ in range(2):
        with pytest.raises(SyncSafetyStop):
            sync.run(directory, full=True)
    (event,) = events(app)
    assert event.kind == "directory.sync_stopped"
    assert (event.data["count"], event.data["total"]) == (3, 20)
    clock.advance(timedelta(days=1))
    with pytest.raises(SyncSafetyStop):
        sync.run(directory, full=True)
    assert kinds(app) == ["directory.sync_stopped"] * 2


def test_audit_verify_break_goes_to_the_outbox_once(
    tmp_path: Path, vendor_key: VendorKey, db_url: str, clock: FakeClock
) -> None:
    config = write_config(tmp_path / "seatgate.yaml", db_url, vendor_key)
    runner = CliRunner()

    def run(*args: str) -> Any:
        return runner.invoke(cli, ["--config", str(config), *args], obj={"clock": clock})

    assert run("init").exit_code == 0, run("init").output
    app = Core.build(make_config(db_url, vendor_key), clock=clock)
    try:
        app.accounts.add("bob", password="bob-pw", actor="test")
        assert run("audit", "verify").exit_code == 0
        app.db.write(lambda c: c.execute(text("UPDATE audit_events SET actor = 'mallory'")))
        for _ in range(2):
            assert run("audit", "verify").exit_code == 1
        (event,) = events(app)
        assert event.kind == "audit.broken" and event.data["event"] is not None
    finally:
        app.close()


def test_cli_run_list_and_test(
    tmp_path: Path,
    vendor_key: VendorKey,
    sqlite_url: str,
    clock: FakeClock,
    receiver: WebhookReceiver,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(SECRET_ENV, WEBHOOK_SECRET)
    notify = {"language": "es", "webhooks": [{"url": receiver.url, "secret_env": SECRET_ENV}]}
    config = write_config(tmp_path / "seatgate.yaml", sqlite_url, vendor_key, {"notify": notify})
    runner = CliRunner()

    def run(*args: str) -> Any:
        return runner.invoke(cli, ["--config", str(config), *args], obj={"clock": clock})

    assert run("init").exit_code == 0
    monkeypatch.delenv(SECRET_ENV)
    unset = run("notify", "run")
    assert unset.exit_code == 2 and "notify.webhooks[0].secret_env" in unset.output
    monkeypatch.setenv(SECRET_ENV, WEBHOOK_SECRET)
    app = Core.build(make_config(sqlite_url, vendor_key), clock=clock)
    now = clock.now()
    app.db.write(lambda c: outbox.enqueue(c, "audit.broken", "k", {"problem": "p"}, now))
    app.close()
    assert run("notify", "test").exit_code == 1  # nobody listens
    listed = run("notify", "list", "--json")
    assert listed.exit_code == 0
    assert '"state": "pending"' in listed.output
    failed = run("notify", "run", "--json")
    assert failed.exit_code == 1 and '"delivered": 0' in failed.output
    receiver.start()
    tested = run("notify", "test")
    assert tested.exit_code == 0 and "sent" in tested.output
    assert receiver.received[0].document["type"] == "notify.test"
    assert "Notificación de prueba" in receiver.received[0].document["subject"]
    clock.advance(timedelta(minutes=5))
    assert run("notify", "run").exit_code == 0
    assert run("notify", "list", "--json").output.strip() == "[]"
    assert "Auditoría".lower() in receiver.received[1].document["subject"].lower()


@pytest.mark.parametrize(
    ("notify", "key"),
    [
        ({}, "notify"),
        ({"webhooks": [{"secret_env": "X"}]}, "notify.webhooks[0].url"),
        ({"webhooks": [{"url": "ftp://x", "secret_env": "X"}]}, "notify.webhooks[0].url"),
        ({"webhooks": [{"url": "http://x"}]}, "notify.webhooks[0].secret_env"),
        ({"webhooks": "http://x"}, "notify.webhooks"),
        ({"language": "fr", "webhooks": []}, "notify.language"),
        ({"email": {"host": "h", "from": "nobody"}}, "notify.email.from"),
        ({"email": {"host": "h", "from": "a@b.c", "to": ["x"]}}, "notify.email.to[0]"),
        ({"email": {"host": "h", "from": "a@b.c", "hots": 1}}, "notify.email.hots"),
        ({"email": {"from": "a@b.c"}}, "notify.email.host"),
        (
            {"email": {"host": "h", "from": "a@b.c", "username": "u"}},
            "notify.email.password_env",
        ),
        (
            {
                "email": {
                    "host": "h",
                    "from": "a@b.c",
                    "security": "none",
                    "username": "u",
                    "password_env": "P",
                }
            },
            "notify.email.security",
        ),
    ],
)
def test_config_errors_name_the_key(notify: dict[str, Any], key: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        config_from_mapping({"installation_id": "x", "notify": notify}, tmp_path)
    assert caught.value.key == key


def test_a_missing_signing_secret_names_its_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(SECRET_ENV, raising=False)
    hook = WebhookConfig(url="http://x", secret_env=SECRET_ENV, key="notify.webhooks[0]")
    with pytest.raises(ConfigError) as caught:
        hook.secret()
    assert caught.value.key == "notify.webhooks[0].secret_env"


def test_the_seat_request_and_overage_hooks_store_one_event_per_cause(
    notify_app: Core, clock: FakeClock
) -> None:
    app = notify_app
    now = clock.now()
    for _ in range(3):
        app.db.write(lambda conn: alerts.seat_requested_in(conn, "ana", now))
        app.db.write(lambda conn: alerts.overage_used_in(conn, 27, 25, 2, now))
    assert kinds(app) == ["seats.request", "seats.overage"]
    later = now + timedelta(days=1)
    app.db.write(lambda conn: alerts.seat_requested_in(conn, "ana", later))
    assert kinds(app) == ["seats.request", "seats.overage", "seats.request"]
    assert events(app)[1].data == {"used": 27, "seats": 25, "over": 2, "allowed": 2}
