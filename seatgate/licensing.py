"""Installing licence tokens and keeping the stored entitlement current.

Installing verifies the token completely before anything is written; a token
that fails changes nothing. After every change the entitlement is computed
again from all installed tokens (each re-verified with today's trusted keys)
and stored in the ``license_state`` row, and seats beyond it are released in
the same transaction.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Connection, insert, select, update

from seatgate import audit
from seatgate.clock import Clock, to_utc
from seatgate.entitlement import Entitlement, compute_entitlement
from seatgate.errors import ConfigError, StorageConflict, TokenConflict, TokenRejected
from seatgate.ledger import SeatLedger
from seatgate.models import SYSTEM_ACTOR
from seatgate.seat_state import SeatState, count_seats, read_state
from seatgate.storage import settings
from seatgate.storage.db import Database
from seatgate.storage.schema import license_state, license_tokens
from seatgate.tokens import LicenseToken, TokenVerifier, describe

log = logging.getLogger(__name__)

TRUST_FINGERPRINT = "license.trust_fingerprint"
VERIFIED = "license.verified_jtis"


@dataclass(frozen=True)
class InstalledToken:
    """A stored token, verified again today (``problem`` says why it does not count)."""

    jti: str
    kind: str
    installed_at: datetime
    token: LicenseToken | None
    problem: str | None = None


@dataclass(frozen=True)
class InstallResult:
    """What installing a token did (or, in a dry run, would do)."""

    token: LicenseToken
    entitlement: Entitlement
    released: list[str] = field(default_factory=list)
    dry_run: bool = False


@dataclass(frozen=True)
class LicenseStatus:
    """Everything ``seatgate license status`` shows."""

    entitlement: Entitlement
    valid: bool
    reason: str | None
    seats_used: int
    reserved_for_admins: int
    tokens: list[InstalledToken]

    @property
    def seats_total(self) -> int | None:
        """Entitled seats; None when unlimited."""
        return self.entitlement.capacity

    @property
    def seats_free(self) -> int | None:
        """Seats nobody holds; None when unlimited."""
        total = self.seats_total
        return None if total is None else max(0, total - self.seats_used)


class Licensing:
    """Installs tokens, recomputes the entitlement, reports status."""

    def __init__(
        self,
        db: Database,
        clock: Clock,
        verifier: TokenVerifier,
        ledger: SeatLedger,
        reserved_for_admins: int = 0,
    ) -> None:
        self.db = db
        self.clock = clock
        self.verifier = verifier
        self.ledger = ledger
        self.reserved_for_admins = reserved_for_admins

    def install(self, text: str, *, actor: str, dry_run: bool = False) -> InstallResult:
        """Verify and install a token, then apply the new entitlement.

        With ``dry_run`` everything is done in a transaction that is rolled
        back, so the result lists exactly who would lose a seat.
        Raises :class:`TokenRejected` (nothing is written).
        """
        token = self.verifier.verify(text)

        def work(conn: Connection) -> InstallResult:
            now = self.clock.now()
            read_state(conn, lock=True)
            _check_installable(conn, token)
            conn.execute(
                insert(license_tokens).values(
                    jti=token.jti,
                    kind=token.kind,
                    lic=token.lic,
                    token=text.strip(),
                    installed_at=now,
                    installed_by=actor,
                )
            )
            audit.record(
                conn,
                at=now,
                actor=actor,
                action="license.installed",
                subject=token.jti,
                details={
                    "kind": token.kind,
                    "seats": token.seats,
                    "edition": token.edition,
                    "unlimited": token.unlimited,
                    "lic": token.lic,
                    "customer": token.customer,
                },
            )
            entitlement, released = self.refresh_in(conn, actor=actor)
            return InstallResult(token, entitlement, released, dry_run)

        try:
            result = self.db.write(work, rollback=dry_run)
        except StorageConflict:
            raise TokenConflict(f"token `{token.jti}` is already installed") from None
        log.info("installed licence token %s", describe(token))
        return result

    def refresh(self, *, actor: str = SYSTEM_ACTOR) -> Entitlement:
        """Recompute the entitlement now and release seats beyond it."""
        return self.db.write(lambda conn: self.refresh_in(conn, actor=actor)[0])

    def refresh_if_stale(self, state: SeatState) -> SeatState:
        """Recompute when the stored entitlement has passed its expiry (e.g. a trial ended)."""
        if not state.stale(self.clock.now()):
            return state
        self.refresh()
        return self.ledger.state()

    def refresh_if_trust_changed(self) -> None:
        """Recompute when the trusted keys, issuer, installation id or leeway changed.

        The login gate enforces the stored entitlement; without this, a
        vendor key removed from the configuration would keep its tokens'
        seats until the next install. Costs one read when nothing changed.

        Raises :class:`ConfigError` -- and changes nothing -- when an
        installed token that verified before no longer does: that is far
        more often a typo (an `installation_id`, a key file) than an intended
        change, and recomputing would release seats. ``seatgate init``
        applies such a change on purpose.
        """
        fingerprint = self.verifier.fingerprint()
        stored = self.db.read(lambda conn: settings.get(conn, TRUST_FINGERPRINT))
        if stored == fingerprint:
            return
        if stored is not None:
            before = set(json.loads(self.db.read(lambda c: settings.get(c, VERIFIED)) or "[]"))
            lost = [
                t for t in self.db.read(self._installed_in) if t.token is None and t.jti in before
            ]
            if lost:
                raise ConfigError(
                    "license",
                    f"installed token `{lost[0].jti}` no longer verifies with this "
                    f"configuration ({lost[0].problem}). Fix installation_id, license.issuer "
                    "or license.public_keys; if a vendor key was removed on purpose, run "
                    "`seatgate init` to apply it (its tokens stop counting)",
                )
        log.info("licence verification settings changed: recomputing the entitlement")
        self.refresh(actor=SYSTEM_ACTOR)

    def refresh_in(self, conn: Connection, *, actor: str) -> tuple[Entitlement, list[str]]:
        """Recompute and store the entitlement inside the caller's transaction.

        Takes the seat lock; returns the entitlement and the logins released.
        """
        now = self.clock.now()
        before = read_state(conn, lock=True)
        tokens = [t.token for t in self._installed_in(conn) if t.token is not None]
        entitlement = compute_entitlement(tokens, now, self.verifier.leeway)
        conn.execute(
            update(license_state)
            .where(license_state.c.id == 1)
            .values(
                valid=entitlement.valid,
                reason=entitlement.reason,
                edition=entitlement.edition,
                seats_total=entitlement.seats,
                unlimited=entitlement.unlimited,
                trial=entitlement.trial,
                expires_at=entitlement.expires_at,
                base_jti=entitlement.base.jti if entitlement.base else None,
                updated_at=now,
            )
        )
        after = read_state(conn)
        if _summary(before) != _summary(after):
            audit.record(
                conn,
                at=now,
                actor=actor,
                action="license.changed",
                subject=after.base_jti,
                outcome="valid" if after.valid else "invalid",
                details={
                    "before": _summary(before),
                    "after": _summary(after),
                    "reason": entitlement.reason,
                },
            )
        released = self.ledger.enforce_capacity_in(conn, entitlement.capacity, actor=actor)
        settings.put(conn, TRUST_FINGERPRINT, self.verifier.fingerprint())
        settings.put(conn, VERIFIED, json.dumps(sorted(t.jti for t in tokens)))
        return entitlement, released

    def status(self) -> LicenseStatus:
        """The entitlement, seat use and every installed token."""
        self.refresh_if_stale(self.ledger.state())

        def work(conn: Connection) -> LicenseStatus:
            installed = self._installed_in(conn)
            entitlement = compute_entitlement(
                [t.token for t in installed if t.token is not None],
                self.clock.now(),
                self.verifier.leeway,
            )
            return LicenseStatus(
                entitlement=entitlement,
                valid=entitlement.valid,
                reason=entitlement.reason,
                seats_used=count_seats(conn),
                reserved_for_admins=self.reserved_for_admins,
                tokens=installed,
            )

        return self.db.read(work)

    def _installed_in(self, conn: Connection) -> list[InstalledToken]:
        rows = conn.execute(
            select(license_tokens).order_by(license_tokens.c.installed_at, license_tokens.c.jti)
        ).all()
        installed = []
        for row in rows:
            try:
                token = self.verifier.verify(row.token, check_expiry=False)
                problem = None
            except TokenRejected as exc:
                # e.g. its vendor key was removed from the configuration.
                log.warning("installed token %s no longer verifies: %s", row.jti, exc.reason)
                token, problem = None, exc.reason
            installed.append(
                InstalledToken(row.jti, row.kind, to_utc(row.installed_at), token, problem)
            )
        return installed


def _check_installable(conn: Connection, token: LicenseToken) -> None:
    present = {
        row.jti: row.kind
        for row in conn.execute(select(license_tokens.c.jti, license_tokens.c.kind))
    }
    if token.jti in present:
        raise TokenConflict(f"token `{token.jti}` is already installed")
    if token.kind == "addon" and present.get(token.lic or "") != "license":
        raise TokenConflict(
            f"add-on `{token.jti}` extends licence `{token.lic}`, which is not installed here; "
            "install that licence first"
        )
    if token.kind == "renewal" and present.get(token.lic or "") not in ("license", "addon"):
        raise TokenConflict(
            f"renewal `{token.jti}` names `{token.lic}`, "
            "which is not an installed licence or add-on"
        )


def _summary(state: SeatState) -> dict[str, object]:
    return {
        "valid": state.valid,
        "edition": state.edition,
        "seats": None if state.unlimited else state.seats_total,
        "unlimited": state.unlimited,
        "trial": state.trial,
        "base": state.base_jti,
    }
