"""The Kerberos acceptor of the web gate: python-gssapi over the system's MIT krb5.

The only module that imports ``gssapi``. One set of acceptor credentials
is built at start-up from the configured keytab (the GSSAPI credential
store, so nothing in the process environment changes) and shared by every
request; each token gets a context of its own.

Replays: MIT krb5 keeps a replay cache per host (by default a file in
``/var/tmp`` shared by every process of the same user), so a token seen
once is refused when it comes again -- to any worker of this host.
"""

from __future__ import annotations

import base64
import binascii
import logging
from dataclasses import dataclass

import gssapi
from gssapi.raw.misc import GSSError

from seatgate.config.kerberos import KerberosConfig
from seatgate.errors import ConfigError

log = logging.getLogger(__name__)

# A browser's SPNEGO token is a few KiB (a ticket with a large PAC); refuse
# anything far larger before decoding it.
MAX_TOKEN_BYTES = 64 * 1024


@dataclass(frozen=True)
class Accepted:
    """A token the acceptor took: who it names, and the answer for mutual authentication."""

    principal: str
    answer: bytes | None


class KerberosAcceptor:
    """Accepts SPNEGO (and raw Kerberos) tokens for the configured service principal."""

    def __init__(self, config: KerberosConfig) -> None:
        self.config = config
        name = gssapi.Name(config.service_principal, gssapi.NameType.kerberos_principal)
        try:
            self.credentials = gssapi.Credentials(
                name=name, usage="accept", store={"keytab": str(config.keytab)}
            )
        except GSSError as exc:
            raise ConfigError(
                "web.kerberos.keytab",
                f"{config.keytab} holds no usable key for {config.service_principal} "
                f"({_reason(exc)}); run `seatgate doctor kerberos`",
            ) from None

    def accept(self, header: str | None) -> Accepted | None:
        """The principal of an ``Authorization: Negotiate <base64>`` header, or None.

        None for no header, another scheme, bad base64, a token the acceptor
        refuses (garbage, a replay, a ticket for another service, clock skew)
        or one that needs another round trip. The reason is logged, never
        the token.
        """
        token = _token(header)
        if token is None:
            return None
        context = gssapi.SecurityContext(creds=self.credentials, usage="accept")
        try:
            answer = context.step(token)
            # Read `complete` inside the try: a deferred error surfaces here.
            if not context.complete:
                log.info("Kerberos token refused: it needs another round trip")
                return None
            principal = str(context.initiator_name)
        except Exception as exc:  # any acceptor failure is a 401
            log.info("Kerberos token refused: %s", _reason(exc))
            return None
        return Accepted(principal=principal, answer=answer)


def _token(header: str | None) -> bytes | None:
    if header is None:
        return None
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() != "negotiate" or not value.strip():
        return None
    if len(value) > MAX_TOKEN_BYTES * 4 // 3 + 4:
        return None
    try:
        return base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError):
        return None


def _reason(exc: BaseException) -> str:
    """A GSSAPI error's own words, on one line (they name no secret)."""
    if isinstance(exc, GSSError):
        return " ".join(exc.gen_message().split())
    return type(exc).__name__
