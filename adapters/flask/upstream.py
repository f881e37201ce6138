"""The trusted-upstream door: a proxy in front authenticated the user and names them.

See :mod:`seatgate.config.upstream` for what makes a request the proxy's.
Only ``GET /login`` reads the header: an unsigned-in visitor of a protected
page is sent there, and the proxy adds the header to that request as to
every other. The named account is admitted through the same seat decision
as a password login (audited with method ``upstream``). A header on a
request that is not the proxy's is ignored -- the visitor sees the password
form -- and audited as ``upstream.ignored``: the first of each 15 minutes, then the count,
since such requests can come at any rate.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from flask import Request

from seatgate.app import Core
from seatgate.config.upstream import TrustedIdentityConfig
from seatgate.gate.decision import Decision, Method
from seatgate.gate.throttles import WindowTally


class Ignored(enum.Enum):
    """The request carried the identity header but is not the proxy's."""

    IGNORED = "ignored"


IGNORED = Ignored.IGNORED


@dataclass
class UpstreamDoor:
    """Reads the proxy's identity header and admits the user it names."""

    config: TrustedIdentityConfig
    secret: bytes = field(repr=False)
    ignored: WindowTally = field(
        default_factory=lambda: WindowTally(
            action="upstream.ignored", outcome=None, scope="upstream"
        )
    )

    @classmethod
    def start(cls, config: TrustedIdentityConfig) -> UpstreamDoor:
        """The door, with its secret read now (:class:`ConfigError` when it is missing)."""
        return cls(config, config.secret())

    def identity(self, request: Request) -> str | Ignored | None:
        """The login the proxy names; ``IGNORED`` from anyone else; None: no header."""
        value = request.headers.get(self.config.header)
        if value is None:
            return None
        given = request.headers.get(self.config.secret_header)
        # The socket's peer: X-Forwarded-For is whatever the client wrote.
        if not self.config.from_proxy(request.remote_addr, given, self.secret):
            return IGNORED
        # An empty header: the proxy authenticated nobody; the form it is.
        # Never cut short: a shortened login could name someone else.
        return value.strip() or None

    def admit(self, core: Core, request: Request, address: str | None) -> Decision | None:
        """The decision for the user the proxy names, or None (no header, or ignored)."""
        named = self.identity(request)
        if named is None:
            return None
        if isinstance(named, Ignored):
            first: dict[str, object] = {
                "address": request.remote_addr,
                "header": self.config.header,
            }
            self.ignored.seen(core.db, core.clock.now(), first)
            return None
        return core.gate.admit_authenticated(named, method=Method.UPSTREAM, address=address)
