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

from sqlalchemy import Connection, select, update

from seatgate.audit import log as audit
from seatgate.clock import Clock, to_utc
from seatgate.errors import (
    ConfigError,
    PinnedSeatsExceed,
    StorageConflict,
    TokenConflict,
    TokenNotInstalled,
    TokenRejected,
    shorten,
)
from seatgate.licensing import clock_guard
from seatgate.licensing.clock_guard import ClockCheck
from seatgate.licensing.entitlement import Entitlement, compute_entitlement
from seatgate.licensing.lifecycle import UpdatesPeriod
from seatgate.licensing.report import InstalledToken, LicenseStatus, periods_of
from seatgate.licensing.token_rows import check_installable, store_token
from seatgate.licensing.tokens import LicenseToken, TokenVerifier, describe
from seatgate.records import SYSTEM_ACTOR
from seatgate.seats import usage
from seatgate.seats.ledger import SeatLedger
from seatgate.seats.lock import SeatLock, take_seat_lock
from seatgate.seats.state import SeatState, count_pinned, count_seats, read_state
from seatgate.storage import settings
from seatgate.storage.db import Database
from seatgate.storage.schema import license_state, license_tokens
from seatgate.storage.sites import LICENSED_SITES_KEY

log = logging.getLogger(__name__)

TRUST_FINGERPRINT = "license.trust_fingerprint"
VERIFIED = "license.verified_jtis"
# The licensed site host names as a JSON list, [] for none (the web gate reads it).
SITES = LICENSED_SITES_KEY
# Tokens `seatgate license remove` takes out; a licence is replaced instead.
REMOVABLE = ("addon", "renewal", "site")


@dataclass(frozen=True)
class InstallResult:
    """What installing a token did (or, in a dry run, would do)."""

    token: LicenseToken
    entitlement: Entitlement
    released: list[str] = field(default_factory=list)
    dry_run: bool = False
    # For a renewal coupon: the updates period of the token it renews, after.
    renewed: UpdatesPeriod | None = None


@dataclass(frozen=True)
class RemoveResult:
    """What removing a token did (or, in a dry run, would do)."""

    jti: str
    kind: str
    entitlement: Entitlement
    released: list[str] = field(default_factory=list)
    dry_run: bool = False


class Licensing:
    """Installs and removes tokens, recomputes the entitlement, reports status."""

    def __init__(
        self,
        db: Database,
        clock: Clock,
        verifier: TokenVerifier,
        ledger: SeatLedger,
        reserved_for_admins: int = 0,
        *,
        database_clock: bool = False,
    ) -> None:
        self.db = db
        self.clock = clock
        self.verifier = verifier
        self.ledger = ledger
        self.reserved_for_admins = reserved_for_admins
        # Read the PostgreSQL server's clock as a second witness of the time
        # (seatgate.licensing.clock_guard); off when a test injects its own clock.
        self.database_clock = database_clock

    def install(self, text: str, *, actor: str, dry_run: bool = False) -> InstallResult:
        """Verify and install a token, then apply the new entitlement.

        Licences and add-ons record when their updates period starts; a
        renewal coupon extends the period of the token it names. With
        ``dry_run`` everything is done in a transaction that is rolled back,
        so the result lists exactly who would lose a seat.
        Raises :class:`TokenRejected` or :class:`PinnedSeatsExceed` (nothing is written).
        """
        token = self.verifier.verify(text)

        def work(conn: Connection) -> InstallResult:
            now = self.clock.now()
            lock = take_seat_lock(conn)
            previous = check_installable(conn, token)
            store_token(conn, token, text, now=now, actor=actor, previous=previous)
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
                    "sites": list(token.sites or ([token.host] if token.host else [])),
                    "reinstalled": previous is not None,
                },
            )
            entitlement, released = self.refresh_in(lock, actor=actor, protect_pinned=True)
            renewed = None
            if token.kind == "renewal" and token.lic is not None:
                renewed = periods_of(self._installed_in(conn), now).get(token.lic)
            return InstallResult(token, entitlement, released, dry_run, renewed)

        try:
            result = self.db.write(work, rollback=dry_run)
        except StorageConflict:
            raise TokenConflict(f"token `{token.jti}` is already installed") from None
        log.info("installed licence token %s", describe(token))
        return result

    def remove(self, jti: str, *, actor: str, dry_run: bool = False) -> RemoveResult:
        """Take out an add-on or renewal coupon installed by mistake.

        The row is marked removed, not deleted: its ``jti`` stays known and
        the audit log says who removed it. Seats beyond the smaller
        entitlement are released as for any shrink.
        Raises :class:`TokenNotInstalled` or :class:`PinnedSeatsExceed`.
        """

        def work(conn: Connection) -> RemoveResult:
            now = self.clock.now()
            lock = take_seat_lock(conn)
            row = conn.execute(
                select(license_tokens).where(license_tokens.c.jti == jti)
            ).one_or_none()
            if row is None or row.removed_at is not None:
                raise TokenNotInstalled(f"no installed token has the id `{shorten(jti)}`")
            if row.kind not in REMOVABLE:
                raise TokenNotInstalled(
                    f"`{shorten(jti)}` is a {row.kind}; only add-ons, site tokens and renewal "
                    "coupons can be removed -- a licence is replaced by installing a newer one"
                )
            conn.execute(
                update(license_tokens)
                .where(license_tokens.c.jti == jti)
                .values(removed_at=now, removed_by=actor)
            )
            audit.record(
                conn,
                at=now,
                actor=actor,
                action="license.removed",
                subject=jti,
                details={"kind": row.kind, "lic": row.lic},
            )
            entitlement, released = self.refresh_in(lock, actor=actor, protect_pinned=True)
            return RemoveResult(jti, row.kind, entitlement, released, dry_run)

        return self.db.write(work, rollback=dry_run)

    def refresh(self, *, actor: str = SYSTEM_ACTOR) -> Entitlement:
        """Recompute the entitlement now and release seats beyond it."""
        return self.db.write(lambda conn: self.refresh_in(take_seat_lock(conn), actor=actor)[0])

    def refresh_if_stale(self, state: SeatState) -> SeatState:
        """Recompute when the stored entitlement has passed its expiry (e.g. a trial ended).

        During a trial this first moves the clock high-water mark (one small
        write), so that a clock set back is caught at the next login.
        """
        if state.trial:
            self.db.write(self._observe_clock)
            state = self.ledger.state()
        if not state.stale(self.clock.now()):
            return state
        self.refresh()
        return self.ledger.state()

    def _observe_clock(self, conn: Connection) -> ClockCheck:
        return self.observe_clock_in(take_seat_lock(conn))

    def observe_clock_in(self, lock: SeatLock) -> ClockCheck:
        """Move the clock high-water mark, under ``lock``."""
        return clock_guard.observe_in(lock, self.clock.now(), database_clock=self.database_clock)

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

    def refresh_in(
        self, lock: SeatLock, *, actor: str, protect_pinned: bool = False
    ) -> tuple[Entitlement, list[str]]:
        """Recompute and store the entitlement inside the transaction that holds ``lock``.

        Returns the entitlement and the logins released. ``protect_pinned``
        (an admin's licence change) refuses a change that would release
        pinned seats, with :class:`PinnedSeatsExceed`; an automatic refresh
        (a trial that ended) releases them last.
        """
        conn = lock.conn
        before = read_state(conn)  # not lock.state: this transaction may have refreshed already
        now = self.clock.now()
        trusted = self.observe_clock_in(lock).trusted_now
        tokens = [t.token for t in self._installed_in(conn) if t.token is not None]
        entitlement = compute_entitlement(tokens, trusted, self.verifier.leeway)
        capacity = entitlement.capacity
        # Less seats or less overage: the seats beyond both go by the shrink rules.
        limit = entitlement.seat_limit
        if protect_pinned:
            _refuse_releasing_pinned(conn, limit)
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
                overage_seats=entitlement.overage_seats,
                updated_at=now,
            )
        )
        after = read_state(conn)
        if before.summary() != after.summary():
            audit.record(
                conn,
                at=now,
                actor=actor,
                action="license.changed",
                subject=after.base_jti,
                outcome="valid" if after.valid else "invalid",
                details={
                    "before": before.summary(),
                    "after": after.summary(),
                    "reason": entitlement.reason,
                },
            )
        self._store_sites(conn, entitlement, actor=actor, now=now)
        released = self.ledger.enforce_capacity_in(lock, limit, actor=actor)
        # Once, after the releases: a grown or shrunk entitlement moves the level too.
        usage.observe_in(lock, now, capacity, actor=actor)
        settings.put(conn, TRUST_FINGERPRINT, self.verifier.fingerprint())
        settings.put(conn, VERIFIED, json.dumps(sorted(t.jti for t in tokens)))
        return entitlement, released

    def _store_sites(
        self, conn: Connection, entitlement: Entitlement, *, actor: str, now: datetime
    ) -> None:
        """Store the licensed sites for the web gate; a change is audited."""
        before = json.loads(settings.get(conn, SITES) or "[]")
        after = list(entitlement.sites)
        if before == after:
            return
        settings.put(conn, SITES, json.dumps(after))
        audit.record(
            conn,
            at=now,
            actor=actor,
            action="license.sites_changed",
            subject=entitlement.base.jti if entitlement.base else None,
            details={"before": before, "after": after},
        )

    def status(self) -> LicenseStatus:
        """The entitlement, seat use, every installed token and its updates period."""
        self.refresh_if_stale(self.ledger.state())

        def work(conn: Connection) -> LicenseStatus:
            check = self.observe_clock_in(take_seat_lock(conn))
            installed = self._installed_in(conn)
            entitlement = compute_entitlement(
                [t.token for t in installed if t.token is not None],
                check.trusted_now,
                self.verifier.leeway,
            )
            return LicenseStatus(
                entitlement=entitlement,
                valid=entitlement.valid,
                reason=entitlement.reason,
                seats_used=count_seats(conn),
                reserved_for_admins=self.reserved_for_admins,
                tokens=installed,
                periods=periods_of(installed, check.now),
                clock=check,
            )

        # A write: reading the status also moves the clock high-water mark.
        return self.db.write(work)

    def _installed_in(self, conn: Connection) -> list[InstalledToken]:
        rows = conn.execute(
            select(license_tokens)
            .where(license_tokens.c.removed_at.is_(None))
            .order_by(license_tokens.c.installed_at, license_tokens.c.jti)
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
                InstalledToken(
                    jti=row.jti,
                    kind=row.kind,
                    lic=row.lic,
                    installed_at=to_utc(row.installed_at),
                    activated_at=to_utc(row.activated_at) if row.activated_at else None,
                    token=token,
                    problem=problem,
                )
            )
        return installed


def _refuse_releasing_pinned(conn: Connection, limit: int | None) -> None:
    """An admin's licence change that would release pinned seats: :class:`PinnedSeatsExceed`."""
    if limit is None:
        return
    pinned = count_pinned(conn)
    if pinned > limit:
        raise PinnedSeatsExceed(limit, pinned)
