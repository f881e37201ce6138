"""The Kerberos door: ``GET /login/negotiate`` (SPNEGO, RFC 4559).

Without an ``Authorization: Negotiate`` header the answer is ``401`` with
``WWW-Authenticate: Negotiate`` and, as its body, the password form: a
browser that has a ticket sends it and never shows that page; one that has
none (or is not allowed to use it here) shows the form, so there is no
prompt and no loop. A token the acceptor refuses (garbage, a replay, a
ticket for another service) gets the form again with a notice; refusals are
audited in aggregate (``kerberos.refused``) since they can come at any
rate. An accepted ticket's principal goes through
:func:`seatgate.gate.principals.admit_principal` -- the seat decision every
door shares -- and the answer is the usual page: a session and a redirect,
or the refusal page with its reason. The acceptor's answer token is sent
back in ``WWW-Authenticate`` for mutual authentication.

``gssapi`` is imported only when the door starts (``web.kerberos`` set), so
an installation without it needs no Kerberos libraries.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from flask import Request, Response

from seatgate.app import Core
from seatgate.config.kerberos import KerberosConfig
from seatgate.gate.decision import Decision
from seatgate.gate.principals import admit_principal
from seatgate.gate.throttles import WindowTally

if TYPE_CHECKING:
    from ..kerberos import KerberosAcceptor

# ``GET /login?sso=off``: the password form, without trying Kerberos first
# (after signing out, or to sign in as someone else).
NO_SSO_PARAM = "sso"
NO_SSO_VALUE = "off"

# The 401 challenge page (the form), with an optional notice.
Challenge = Callable[[str | None], Response]
# The refusal page of a decision.
RefusalPage = Callable[[Decision], Response]


@dataclass
class NegotiateDoor:
    """Accepts a browser's Kerberos ticket and admits the user it names."""

    config: KerberosConfig
    acceptor: KerberosAcceptor
    refused: WindowTally = field(
        default_factory=lambda: WindowTally(
            action="kerberos.refused", outcome=None, scope="kerberos"
        )
    )

    @classmethod
    def start(cls, config: KerberosConfig) -> NegotiateDoor:
        """The door with its acceptor credentials read now (:class:`ConfigError` if unusable)."""
        from ..kerberos import KerberosAcceptor  # noqa: PLC0415 (gssapi only when configured)

        return cls(config, KerberosAcceptor(config))

    def automatic(self, request: Request, address: str | None) -> bool:
        """Whether ``GET /login`` sends this client to the negotiate door without asking."""
        if request.args.get(NO_SSO_PARAM) == NO_SSO_VALUE:
            return False
        return self.config.automatic_for(address)

    def answer(
        self,
        core: Core,
        request: Request,
        address: str | None,
        *,
        challenge: Challenge,
        refusal_page: RefusalPage,
        signed_in: Callable[[Decision], Response],
    ) -> Response:
        """The response to ``GET /login/negotiate``."""
        header = request.headers.get("Authorization")
        if header is None or not header.lstrip().lower().startswith("negotiate"):
            return _with_challenge(challenge(None))
        accepted = self.acceptor.accept(header)
        if accepted is None:
            self.refused.seen(core.db, core.clock.now(), {"address": address})
            return _with_challenge(challenge("kerberos_failed"))
        decision = admit_principal(
            core.gate, accepted.principal, realms=self.config.realms, address=address
        )
        if decision.allowed and decision.account is not None:
            response = signed_in(decision)
        else:
            response = refusal_page(decision)
        if accepted.answer:
            # Mutual authentication: the client checks the server knew the key.
            encoded = base64.b64encode(accepted.answer).decode("ascii")
            response.headers["WWW-Authenticate"] = f"Negotiate {encoded}"
        return response


def _with_challenge(response: Response) -> Response:
    response.status_code = 401
    response.headers["WWW-Authenticate"] = "Negotiate"
    return response
