"""The notification channels: signed webhooks (HTTP POST) and email (SMTP).

Errors are reported without secrets: never the SMTP password or the signing
secret, and for a webhook the host only, not the URL (its path or query may
carry a token of the receiver's).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import smtplib
import socket
import ssl
import urllib.error
import urllib.parse
import urllib.request
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from seatgate.config.notify import EmailConfig, WebhookConfig
from seatgate.errors import NotificationFailed
from seatgate.notify.service import Message

SIGNATURE_HEADER = "X-Seatgate-Signature"
EVENT_ID_HEADER = "X-Seatgate-Event-Id"
WEBHOOK_TIMEOUT_SECONDS = 10


def signature(secret: bytes, body: bytes) -> str:
    """The ``X-Seatgate-Signature`` value: ``sha256=`` and the HMAC-SHA256 of the body, hex."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def webhook_body(message: Message) -> bytes:
    """The JSON document POSTed for ``message`` (its id is the idempotency key)."""
    document = {
        "id": message.event_id,
        "type": message.kind,
        "created_at": message.created_at.isoformat(),
        "installation": message.installation,
        "language": message.language,
        "subject": message.subject,
        "text": message.body,
        "data": dict(message.data),
    }
    return json.dumps(document, sort_keys=True, default=str).encode("utf-8")


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect is an answer, not a delivery: urllib would re-send a POST as a bodyless GET."""

    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirects())


class WebhookSender:
    """POSTs each event as signed JSON to one URL; any 2xx answer is delivery."""

    def __init__(self, config: WebhookConfig) -> None:
        self.config = config
        self.channel = config.channel
        self._host = urllib.parse.urlsplit(config.url).netloc.rsplit("@", 1)[-1]

    def check(self) -> None:
        """Raise :class:`ConfigError` when the signing secret's variable is unset or short."""
        self.config.secret()

    def send(self, message: Message) -> None:
        """POST ``message``; raise :class:`NotificationFailed` unless answered 2xx."""
        body = webhook_body(message)
        request = urllib.request.Request(  # noqa: S310 (the scheme is checked in the config)
            self.config.url,
            data=body,
            method="POST",
            headers={
                "Content-Type": "application/json",
                "User-Agent": "seatgate-notify",
                EVENT_ID_HEADER: message.event_id,
                SIGNATURE_HEADER: signature(self.config.secret(), body),
            },
        )
        try:
            with _OPENER.open(request, timeout=WEBHOOK_TIMEOUT_SECONDS) as answer:
                answer.read(1024)
        except urllib.error.HTTPError as exc:
            raise NotificationFailed(f"{self._host} answered HTTP {exc.code}") from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise NotificationFailed(
                f"{self._host} unreachable: {_plain(reason)}", unreachable=True
            ) from None


class EmailSender:
    """Mails each event to the message's recipients through one SMTP server."""

    channel = "email"

    def __init__(self, config: EmailConfig) -> None:
        self.config = config

    def check(self) -> None:
        """Raise :class:`ConfigError` when the SMTP password's variable is unset."""
        self.config.password()

    def send(self, message: Message) -> None:
        """Send ``message``; raise :class:`NotificationFailed` if the server does not take it."""
        if not message.recipients:
            raise NotificationFailed(
                "no recipients: no admin account has an email address and notify.email.to is empty"
            )
        mail = EmailMessage()
        mail["From"] = self.config.sender
        mail["To"] = ", ".join(message.recipients)
        mail["Subject"] = message.subject
        mail["Date"] = formatdate(localtime=False, usegmt=True)
        mail["Message-ID"] = make_msgid(idstring=message.event_id, domain="seatgate")
        mail[EVENT_ID_HEADER] = message.event_id
        mail.set_content(message.body + "\n")
        password = self.config.password()  # read before connecting: a config error is no retry
        try:
            with self._connect() as smtp:
                if self.config.username is not None and password is not None:
                    smtp.login(self.config.username, password)
                smtp.send_message(mail)
        except smtplib.SMTPResponseException as exc:
            raise NotificationFailed(f"SMTP server answered {exc.smtp_code}") from None
        except smtplib.SMTPRecipientsRefused:
            raise NotificationFailed("SMTP server refused every recipient") from None
        except (smtplib.SMTPException, OSError) as exc:
            raise NotificationFailed(
                f"SMTP {self.config.host}:{self.config.port} unreachable: {_plain(exc)}",
                unreachable=True,
            ) from None

    def _connect(self) -> smtplib.SMTP:
        config = self.config
        timeout = config.timeout_seconds
        if config.security == "tls":
            return smtplib.SMTP_SSL(
                config.host, config.port, timeout=timeout, context=self._context()
            )
        smtp = smtplib.SMTP(config.host, config.port, timeout=timeout)
        if config.security == "starttls":
            try:
                smtp.starttls(context=self._context())
            except BaseException:
                smtp.close()
                raise
        return smtp

    def _context(self) -> ssl.SSLContext:
        ca_file = str(self.config.ca_file) if self.config.ca_file is not None else None
        return ssl.create_default_context(cafile=ca_file)


def _plain(reason: object) -> str:
    """A short error text: the exception's class and message, never more than one line."""
    if isinstance(reason, socket.timeout | TimeoutError):
        return "timed out"
    text = (
        str(reason)
        if not isinstance(reason, BaseException)
        else (f"{type(reason).__name__}: {reason}")
    )
    return text.splitlines()[0][:200] if text else type(reason).__name__
