"""The composition root: builds the object graph from a configuration."""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta

from seatgate.accounts.passwords import PasswordHasher
from seatgate.accounts.service import Accounts
from seatgate.clock import Clock, SystemClock
from seatgate.config import Config
from seatgate.gate.decision import LocalPasswords, LoginGate, PasswordVerifier, RateLimiter
from seatgate.gate.ratelimit import DatabaseRateLimiter
from seatgate.licensing.service import Licensing
from seatgate.licensing.tokens import TokenVerifier
from seatgate.seats.ledger import SeatLedger
from seatgate.sessions.service import Sessions
from seatgate.storage import Database, migrations


@dataclass
class Core:
    """One installation: its database, services and login gate."""

    config: Config
    clock: Clock
    db: Database
    hasher: PasswordHasher
    ledger: SeatLedger
    accounts: Accounts
    licensing: Licensing
    gate: LoginGate
    sessions: Sessions
    verifiers: dict[str, PasswordVerifier] = field(default_factory=dict)

    @classmethod
    def build(
        cls,
        config: Config,
        *,
        clock: Clock | None = None,
        verifiers: Mapping[str, PasswordVerifier] | None = None,
        rate_limiter: RateLimiter | None = None,
        check_schema: bool = True,
        rate_limited: bool = False,
        database_clock: bool | None = None,
    ) -> Core:
        """Wire every service for ``config``.

        ``verifiers`` adds password verifiers by account source (the
        directory adapter registers ``ldap``). Raises
        :class:`~seatgate.errors.SchemaOutdated` unless the database is at the
        current schema version (``check_schema=False`` is for ``seatgate init``).

        ``rate_limited`` (the web gate) throttles failed logins with a
        :class:`~seatgate.gate.ratelimit.DatabaseRateLimiter` built from
        ``config.web`` unless ``rate_limiter`` is given; the CLI leaves it off.

        ``database_clock`` reads the PostgreSQL server's clock as a second
        witness of the time, so a host clock set back cannot extend a trial;
        by default it is on with the system clock and off with an injected one
        (a test's fake time would disagree with the server's real one).
        """
        if database_clock is None:
            database_clock = clock is None
        clock = clock or SystemClock()
        db = Database(config.database_url)
        if check_schema:
            migrations.check_version(db)
        hasher = PasswordHasher(config.passwords)
        ledger = SeatLedger(db, clock, config.seats)
        accounts = Accounts(db, clock, hasher, ledger)
        licensing = _licensing(config, db, clock, ledger, database_clock=database_clock)
        all_verifiers = _password_verifiers(config, hasher, verifiers or {})
        if rate_limiter is None and rate_limited:
            rate_limiter = _web_rate_limiter(config, db, clock)
        gate = LoginGate(
            db=db,
            clock=clock,
            accounts=accounts,
            ledger=ledger,
            licensing=licensing,
            hasher=hasher,
            verifiers=all_verifiers,
            rate_limiter=rate_limiter,
        )
        sessions = Sessions(db, clock, timedelta(hours=config.web.session_hours))
        if check_schema:
            licensing.refresh_if_trust_changed()
        return cls(
            config, clock, db, hasher, ledger, accounts, licensing, gate, sessions, all_verifiers
        )

    def init_schema(self) -> tuple[int, int]:
        """Create or upgrade the schema, then recompute the entitlement."""
        result = migrations.upgrade(self.db, self.clock.now())
        self.licensing.refresh()
        return result

    def close(self) -> None:
        """Release database connections."""
        self.db.dispose()


def _licensing(
    config: Config, db: Database, clock: Clock, ledger: SeatLedger, *, database_clock: bool
) -> Licensing:
    verifier = TokenVerifier(
        installation_id=config.installation_id,
        issuer=config.license.issuer,
        public_keys=config.license.public_keys,
        leeway_seconds=config.license.leeway_seconds,
        clock=clock,
    )
    return Licensing(
        db,
        clock,
        verifier,
        ledger,
        config.seats.reserved_for_admins,
        database_clock=database_clock,
    )


def _password_verifiers(
    config: Config, hasher: PasswordHasher, extra: Mapping[str, PasswordVerifier]
) -> dict[str, PasswordVerifier]:
    local = LocalPasswords(hasher)
    verifiers: dict[str, PasswordVerifier] = {"local": local, "csv": local}
    if config.ldap is not None:
        # The composition root is the one core module that names an adapter;
        # imported by name because `adapters/` is mapped into the package
        # at install time, where a type checker of the source tree cannot see it.
        ldap = importlib.import_module("seatgate.adapters.ldap")
        verifiers["ldap"] = ldap.LdapDirectory(config.ldap)
    verifiers.update(extra)
    return verifiers


def _web_rate_limiter(config: Config, db: Database, clock: Clock) -> DatabaseRateLimiter:
    return DatabaseRateLimiter(
        db,
        clock,
        per_login_and_address=config.web.max_failures_per_login_and_address,
        per_address=config.web.max_failures_per_address,
        per_login=config.web.max_failures_per_login,
    )
