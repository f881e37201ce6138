"""Email notifications through a real SMTP server (aiosmtpd): STARTTLS or implicit TLS, AUTH,
to the admins' addresses and the listed ones, in English and Spanish."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Literal

import pytest

from seatgate.app import Core
from seatgate.clock import FakeClock
from seatgate.config.notify import EmailConfig, NotifyConfig
from seatgate.licensing.vendor import VendorKey
from seatgate.notify import templates
from seatgate.storage import outbox
from tests.conftest import make_config
from tests.notify_support import SMTP_PASSWORD, SMTP_USER, SmtpServer

PASSWORD_ENV = "SEATGATE_TEST_SMTP_PASSWORD"


def email_config(server: SmtpServer, *, implicit: bool = False) -> EmailConfig:
    return EmailConfig(
        host="127.0.0.1",
        port=server.port,
        security="tls" if implicit else "starttls",
        sender="seatgate@example.com",
        to=("licences@example.com",),
        to_admins=True,
        username=SMTP_USER,
        password_env=PASSWORD_ENV,
        ca_file=server.cert,
        timeout_seconds=10,
    )


@pytest.fixture
def build(
    vendor_key: VendorKey, clock: FakeClock, sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[object]:
    monkeypatch.setenv(PASSWORD_ENV, SMTP_PASSWORD)
    built: list[Core] = []

    def _build(email: EmailConfig, language: Literal["en", "es"] = "en") -> Core:
        notify = NotifyConfig(language=language, email=email)
        config = replace(make_config(sqlite_url, vendor_key), notify=notify)
        app = Core.build(config, clock=clock, check_schema=False)
        app.init_schema()
        built.append(app)
        return app

    yield _build
    for app in built:
        app.close()


def sync_stopped(app: Core) -> None:
    now = app.clock.now()
    data = {"server": "ldaps://dc1", "count": 40, "total": 100, "reason": "over the limit"}
    app.db.write(lambda c: outbox.enqueue(c, "directory.sync_stopped", "k", data, now))


@pytest.mark.parametrize(
    ("language", "subject"),
    [
        ("en", "Directory sync stopped by its safety limit"),
        ("es", "Sincronización del directorio detenida por su límite"),
    ],
)
def test_starttls_mail_reaches_admins_and_listed_addresses(
    build: object, tmp_path: Path, language: Literal["en", "es"], subject: str
) -> None:
    with SmtpServer(tmp_path, implicit=False) as server:
        app = build(email_config(server), language)  # type: ignore[operator]
        app.accounts.add("boss", password="boss-pw", actor="t", is_admin=True, email="b@x.org")
        app.accounts.add("staff", password="staff-pw", actor="t", email="s@x.org")
        app.accounts.add("nomail", password="nomail-pw", actor="t", is_admin=True)
        sync_stopped(app)
        report = app.notifier.run()
        assert (report.delivered, report.failed) == (1, [])
        ((recipients, mail),) = server.messages
    assert recipients == ["licences@example.com", "b@x.org"]
    assert subject in mail["Subject"]
    assert mail["X-Seatgate-Event-Id"] == app.notifier.db.read(outbox.events_of)[0].event_id
    body = mail.get_payload(decode=True).decode("utf-8")
    assert "ldaps://dc1" in body and "40" in body


# aiosmtpd warns about AUTH without STARTTLS; here the whole connection is TLS.
@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_implicit_tls_and_the_test_command(build: object, tmp_path: Path) -> None:
    with SmtpServer(tmp_path, implicit=True) as server:
        app = build(email_config(server, implicit=True))  # type: ignore[operator]
        assert app.notifier.test() == {"email": None}
        ((recipients, mail),) = server.messages
    assert recipients == ["licences@example.com"]
    assert "Test notification" in mail["Subject"]


def test_a_wrong_password_is_retried_and_never_logged(
    build: object, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, clock: FakeClock
) -> None:
    with SmtpServer(tmp_path, implicit=False) as server:
        app = build(email_config(server))  # type: ignore[operator]
        sync_stopped(app)
        monkeypatch.setenv(PASSWORD_ENV, "wrong-password-value")
        report = app.notifier.run()
        (delivery,) = app.notifier.pending()
        assert report.failed[0]["error"] == "SMTP server answered 535"
        assert delivery.attempts == 1 and "wrong-password" not in (delivery.last_error or "")
        monkeypatch.setenv(PASSWORD_ENV, SMTP_PASSWORD)
        clock.advance(timedelta(minutes=1))
        assert app.notifier.run().delivered == 1
        assert len(server.messages) == 1


def test_an_unreachable_server_keeps_the_mail(
    build: object, tmp_path: Path, clock: FakeClock
) -> None:
    server = SmtpServer(tmp_path, implicit=False)  # never started
    app = build(email_config(server))  # type: ignore[operator]
    sync_stopped(app)
    report = app.notifier.run()
    assert report.skipped_channels == ["email"]
    with server:
        clock.advance(timedelta(minutes=1))
        assert app.notifier.run().delivered == 1
        assert len(server.messages) == 1


def test_every_event_has_both_languages() -> None:
    for kind, texts in templates.TEMPLATES.items():
        assert set(texts) == {"en", "es"}, kind
        for language in ("en", "es"):
            subject, body = templates.render(kind, {}, language)
            assert subject.startswith("[seatgate]") and body, (kind, language)
    assert templates.render("seats.request", {"login": "ana"}, "es")[0].startswith(
        "[seatgate] ana solicita"
    )
