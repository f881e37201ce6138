"""Several directory servers (``ldap.urls``): the first that answers, dead ones remembered.

Every login, decoy bind and sync opens its connection through
:meth:`DirectoryServers.first_answering`: the servers are tried in the
configured order, except that one which failed in the last
``server_down_seconds`` is tried only after the others (never skipped: with
every server marked, a recovered one is still found at once). The marks live
in this process, shared by its threads; each process learns on its own.

Only a transport failure moves on to the next server: no connection, no TLS,
no answer within ``timeout_seconds``, or a bind answered "busy" or
"unavailable" (:class:`ServerUnreachable`). A server
that answers -- a wrong password, a refused service bind -- has answered, and
a wrong password is never tried again elsewhere (that would count twice
against AD's lockout). With every server down, the error names each server
and why.

Why not ldap3's ``ServerPool``: its availability check is a bare TCP connect,
so a server that accepts and then hangs in TLS counts as alive; with
``active=True`` it loops forever (sleeping ``POOLING_LOOP_TIMEOUT`` between
rounds) when all are down, and with a number of rounds it raises
``LDAPServerPoolExhaustedError``, which names no server and no reason; its
``exhaust`` memory compares wall-clock ``datetime.now()`` by the
``.seconds`` field (which wraps every day) and is updated without a lock.
"""

from __future__ import annotations

import ssl
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TypeVar
from urllib.parse import urlsplit

import ldap3
from ldap3.core.exceptions import LDAPException

from seatgate.config.ldap import LdapConfig
from seatgate.errors import DirectoryUnavailable

from .ldap_values import brief, close_quietly, is_ip, send_at_once

T = TypeVar("T")

# Bind answers that say "this server cannot serve you now", not "wrong
# password": busy (51) and unavailable (52, e.g. a DC still starting).
NOT_SERVING = (51, 52)


class ServerUnreachable(DirectoryUnavailable):
    """This server did not answer (connection, TLS or timeout): the next one may."""

    def __init__(self, url: str, why: str) -> None:
        super().__init__(f"cannot reach {url}: {why}")
        self.url = url
        self.why = why


def make_server(config: LdapConfig, url: str) -> ldap3.Server:
    """The ldap3 server for ``url``, with the TLS settings of the ``ldap:`` section."""
    if config.insecure:
        tls = ldap3.Tls(validate=ssl.CERT_NONE)
    else:
        host = urlsplit(url).hostname
        tls = ldap3.Tls(
            validate=ssl.CERT_REQUIRED,
            version=ssl.PROTOCOL_TLS_CLIENT,
            ca_certs_file=str(config.ca_file) if config.ca_file else None,
            # ldap3 checks the name itself but sends no SNI unless asked;
            # a DC behind a TLS front needs it to pick the certificate.
            sni=host if host and not is_ip(host) else None,
        )
    return ldap3.Server(
        url,
        use_ssl=url.lower().startswith("ldaps://"),
        tls=tls,
        get_info=ldap3.NONE,
        connect_timeout=config.timeout_seconds,
    )


def open_connection(config: LdapConfig, url: str, user: str, password: str) -> ldap3.Connection:
    """Open, secure and bind on ``url``; returns the connection (bound or not: check ``.bound``).

    Raises :class:`ServerUnreachable` when the server cannot be reached,
    secured or does not answer in time.
    """
    conn = ldap3.Connection(
        make_server(config, url),
        user=user,
        password=password,
        authentication=ldap3.SIMPLE,
        auto_referrals=False,
        auto_range=False,
        read_only=True,
        raise_exceptions=False,
        receive_timeout=config.timeout_seconds,
    )
    try:
        conn.open()
        send_at_once(conn)
        if config.start_tls and not conn.start_tls():
            raise ServerUnreachable(url, f"StartTLS failed: {conn.result.get('description')}")
        conn.bind()
        result = conn.result or {}
        if not conn.bound and result.get("result") in NOT_SERVING:
            raise ServerUnreachable(url, f"the server answered {result.get('description')}")
    except LDAPException as exc:
        close_quietly(conn)
        raise ServerUnreachable(url, brief(exc)) from None
    except ServerUnreachable:
        close_quietly(conn)
        raise
    return conn


@dataclass
class _Down:
    since: float
    why: str


class DirectoryServers:
    """The configured servers in order, with this process's memory of the ones that failed."""

    def __init__(
        self,
        urls: Iterable[str],
        down_seconds: float,
        *,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.urls = tuple(urls)
        self.down_seconds = down_seconds
        self.monotonic = monotonic
        self._down: dict[str, _Down] = {}
        self._lock = threading.Lock()

    def order(self) -> list[str]:
        """The servers to try now: those not marked down first, each group in configured order."""
        now = self.monotonic()
        with self._lock:
            marked = {
                url for url, down in self._down.items() if now - down.since < self.down_seconds
            }
        return [u for u in self.urls if u not in marked] + [u for u in self.urls if u in marked]

    def mark_down(self, url: str, why: str) -> None:
        """Remember that ``url`` failed (tried last for ``down_seconds``)."""
        with self._lock:
            self._down[url] = _Down(self.monotonic(), why)

    def mark_up(self, url: str) -> None:
        with self._lock:
            self._down.pop(url, None)

    def is_down(self, url: str) -> bool:
        """Whether ``url`` failed in the last ``down_seconds``."""
        with self._lock:
            down = self._down.get(url)
        return down is not None and self.monotonic() - down.since < self.down_seconds

    def first_answering(
        self, attempt: Callable[[str], T], *, skip: Iterable[str] = ()
    ) -> tuple[str, T]:
        """``attempt(url)`` on each server in :meth:`order` until one does not raise
        :class:`ServerUnreachable`; returns that URL and its result.

        ``skip``: servers already found dead in this run. Raises
        :class:`DirectoryUnavailable` naming every server tried and why.
        """
        failures: list[str] = [f"{url} stopped answering" for url in skip]
        for url in self.order():
            if url in skip:
                continue
            try:
                result = attempt(url)
            except ServerUnreachable as exc:
                self.mark_down(url, exc.why)
                failures.append(f"{url}: {exc.why}")
                continue
            self.mark_up(url)
            return url, result
        raise self.all_down(failures)

    def all_down(self, failures: list[str]) -> DirectoryUnavailable:
        """The error when no server answered: one server's own message, or each named."""
        if len(self.urls) == 1 and len(failures) == 1:
            url, _, why = failures[0].partition(": ")
            return DirectoryUnavailable(f"cannot reach {url}: {why}" if why else failures[0])
        return DirectoryUnavailable(
            f"none of the {len(self.urls)} directory servers answered: " + "; ".join(failures)
        )
