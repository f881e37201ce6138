"""The composition root: builds the object graph from a configuration.

:class:`Core` is the one place that wires the domain packages to each other
and to the edges (:mod:`seatgate.adapters`): the command line, the Flask
extension and the benchmarks ask it for what they need instead of building
it themselves. What only some commands need is built on first use.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Protocol

from seatgate import upgrades
from seatgate.accounts.login_forms import LoginForms
from seatgate.accounts.passwords import PasswordHasher
from seatgate.accounts.service import Accounts
from seatgate.audit import chain as audit_chain
from seatgate.clock import Clock, SystemClock
from seatgate.config import Config
from seatgate.config.kerberos import KerberosConfig
from seatgate.directory.model import DirectoryReader
from seatgate.directory.sync import DirectorySync
from seatgate.errors import ConfigError
from seatgate.gate.api_tokens import ApiTokens
from seatgate.gate.decision import LocalPasswords, LoginGate, PasswordVerifier, RateLimiter
from seatgate.gate.ratelimit import DatabaseRateLimiter
from seatgate.gate.slots import VerificationSlots, automatic_bound
from seatgate.imports import AccountImporter, AccountSource
from seatgate.imports.pending import PendingImports
from seatgate.licensing.service import Licensing
from seatgate.licensing.tokens import TokenVerifier
from seatgate.notify.service import Notifier, Sender
from seatgate.records import Account
from seatgate.seats.ledger import SeatLedger
from seatgate.seats.reclaim import SeatReclaimer
from seatgate.seats.requests import SeatRequests
from seatgate.sessions.secret import installation_secret
from seatgate.sessions.service import Sessions, end_on_seat_loss_in
from seatgate.storage import Database, migrations
from seatgate.storage.sites import LicensedSites

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication


# -- the edges, as the core sees them --------------------------------------------------------


class DirectoryClient(DirectoryReader, PasswordVerifier, Protocol):
    """The directory server (``seatgate.adapters.ldap.LdapDirectory``): syncs and logins."""

    on_page: Callable[[int], None] | None
    """Called after each page of a search with the number of entries read so far."""


def _adapter(module: str) -> Any:
    """The adapter module ``seatgate.adapters.<module>``.

    The only place the core loads an edge. ``adapters/`` is mapped to
    ``seatgate.adapters`` at install time, which a type checker of the source
    tree cannot see, so each use below returns what it loads under the
    Protocol type the core relies on.
    """
    return importlib.import_module(f"seatgate.adapters.{module}")


# -- the installation ------------------------------------------------------------------------


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
    _directory: DirectoryClient | None = field(default=None, repr=False)
    # The audit chain's HMAC key (audit.key_env), None for a plain chain.
    audit_key: bytes | None = field(default=None, repr=False)
    _directory_sync: DirectorySync | None = field(default=None, init=False, repr=False)
    _importer: AccountImporter | None = field(default=None, init=False, repr=False)
    _session_secret: str | None = field(default=None, init=False, repr=False)

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
        directory, for an ``ldap:`` section, is ``ldap``). Raises
        :class:`~seatgate.errors.SchemaOutdated` unless the database is at the
        current schema version (``check_schema=False`` is for ``seatgate init``).

        ``rate_limited`` (the web gate) throttles failed logins with a
        :class:`~seatgate.gate.ratelimit.DatabaseRateLimiter` built from
        ``config.web`` unless ``rate_limiter`` is given, and bounds the
        password verifications running at once in this process
        (``web.max_concurrent_verifications``); the CLI leaves both off.

        ``database_clock`` reads the PostgreSQL server's clock as a second
        witness of the time, so a host clock set back cannot extend a trial;
        by default it is on with the system clock and off with an injected one
        (a test's fake time would disagree with the server's real one).
        """
        if database_clock is None:
            database_clock = clock is None
        clock = clock or SystemClock()
        # Read first: a missing or short key stops start-up before anything is opened.
        audit_key = config.audit.key()
        db = Database(config.database_url)
        audit_chain.use_key(db.engine, audit_key)
        if check_schema:
            migrations.check_version(db)
        hasher = PasswordHasher(config.passwords)
        ledger = SeatLedger(db, clock, config.seats, on_seat_lost=end_on_seat_loss_in)
        accounts = Accounts(db, clock, hasher, ledger)
        licensing = _licensing(config, db, clock, ledger, database_clock=database_clock)
        directory = _directory(config)
        all_verifiers = _verifiers(hasher, directory, verifiers or {})
        if rate_limiter is None and rate_limited:
            rate_limiter = _rate_limiter(config, db, clock)
        gate = LoginGate(
            db=db, clock=clock, accounts=accounts, ledger=ledger, licensing=licensing,
            hasher=hasher, verifiers=all_verifiers, rate_limiter=rate_limiter,
            slots=_slots(config) if rate_limited else None,
            forms=_login_forms(config),
        )  # fmt: skip
        sessions = Sessions(db, clock, timedelta(hours=config.web.session_hours))
        if check_schema:
            licensing.refresh_if_trust_changed()
        return cls(
            config, clock, db, hasher, ledger, accounts, licensing, gate, sessions,
            all_verifiers, directory, audit_key=audit_key,
        )  # fmt: skip

    # -- schema and lifetime -----------------------------------------------------------------

    def init_schema(self) -> tuple[int, int]:
        """Create or upgrade the schema and its rows, then recompute the entitlement."""
        result = upgrades.upgrade(self.db, self.clock.now())
        self.licensing.refresh()
        return result

    @functools.cached_property
    def api_tokens(self) -> ApiTokens:
        """Scoped bearer tokens for scripts; failed attempts share the logins' rate limiter."""
        return ApiTokens(self.db, self.clock, self.gate.rate_limiter)

    @property
    def seat_requests(self) -> SeatRequests:
        """The seat requests of refused logins (the same the login gate records)."""
        return self.gate.seats.requests

    @functools.cached_property
    def reclaimer(self) -> SeatReclaimer:
        """Releases idle seats (``seatgate seats reclaim``)."""
        return SeatReclaimer(self.db, self.clock, self.ledger)

    @functools.cached_property
    def notifier(self) -> Notifier:
        """Delivers the notification outbox through the channels of ``notify:``."""
        config = self.config.notify
        senders: list[Sender] = []
        if config is not None:
            channels = _adapter("notify")
            senders += [channels.WebhookSender(hook) for hook in config.webhooks]
            if config.email is not None:
                senders.append(channels.EmailSender(config.email))
        return Notifier(
            self.db, self.clock, self.licensing, config, senders, self.config.installation_id
        )

    @functools.cached_property
    def licensed_sites(self) -> LicensedSites:
        """The licensed site host names, read for every web request (empty: any host)."""
        return LicensedSites(self.db)

    def close(self) -> None:
        """Release database connections."""
        self.db.dispose()

    # -- the directory -----------------------------------------------------------------------

    def directory(self) -> DirectoryClient:
        """The directory server: the one that verifies directory logins, also read by syncs.

        Raises :class:`~seatgate.errors.ConfigError` when the installation
        has no ``ldap:`` section.
        """
        if self._directory is None:
            raise ConfigError("ldap", "this installation has no `ldap:` section")
        return self._directory

    def directory_reader(self, on_page: Callable[[int], None] | None = None) -> DirectoryClient:
        """A reader of the ``ldap:`` section's directory for one sync, with a progress callback.

        Its own object, not :meth:`directory`'s: ``on_page`` (called after
        each page of the search, and free to raise to end the read, which
        then changes nothing) belongs to this one sync, whatever else runs.
        Raises :class:`~seatgate.errors.ConfigError` without an ``ldap:`` section.
        """
        if self.config.ldap is None:
            raise ConfigError("ldap", "this installation has no `ldap:` section")
        reader: DirectoryClient = _adapter("ldap").LdapDirectory(self.config.ldap, on_page=on_page)
        return reader

    def directory_sync(self) -> DirectorySync:
        """The directory sync job, with the ``ldap:`` section's safety limits.

        Raises :class:`~seatgate.errors.ConfigError` when there is no
        ``ldap:`` section, or when its bind password's variable is unset --
        now, naming the variable, rather than halfway through a sync.
        """
        config = self.config.ldap
        if config is None:
            raise ConfigError("ldap", "this installation has no `ldap:` section to sync from")
        config.bind_password()
        if self._directory_sync is None:
            self._directory_sync = DirectorySync(
                self.db,
                self.clock,
                self.ledger,
                max_disable_ratio=config.max_disable_ratio,
                max_disable_count=config.max_disable_count,
                seat_groups=config.seat_groups,
                seat_groups_mode=config.seat_groups_mode,
                admin_groups=config.admin_groups,
            )
        return self._directory_sync

    # -- account files -----------------------------------------------------------------------

    def account_importer(self) -> AccountImporter:
        """Imports accounts from a source (:meth:`csv_file`), all or nothing."""
        if self._importer is None:
            self._importer = AccountImporter(self.db, self.clock, self.ledger)
        return self._importer

    @functools.cached_property
    def pending_imports(self) -> PendingImports:
        """Uploaded CSV files kept between their preview and their confirmation (the console's)."""
        return PendingImports(self.db, self.clock, self.account_importer(), self.csv_file)

    def csv_file(
        self,
        path: Path,
        *,
        on_progress: Callable[[int], None] | None = None,
        encoding: str | None = None,
    ) -> AccountSource:
        """The CSV file at ``path`` as an import source (``seatgate.adapters.csv``).

        ``on_progress`` is called with how far the reading has got; ``encoding``
        (utf-8, cp1252, latin-1, ...) overrides the detection. Raises
        :class:`~seatgate.errors.ImportRejected` when the file cannot be read
        as accounts at all (its header, its encoding).
        """
        source: AccountSource = _adapter("csv").CsvAccountFile(
            path, on_progress=on_progress, encoding=encoding
        )
        return source

    def write_accounts_csv(self, out: IO[str], accounts: Iterable[Account]) -> int:
        """Write ``accounts`` to ``out`` in the import format; return how many."""
        count: int = _adapter("csv").write_accounts_csv(out, accounts)
        return count

    # -- the web gate ------------------------------------------------------------------------

    def session_secret(self) -> str:
        """The secret the web gate signs session cookies with (``web.secret_key_env``).

        Read once: the login pages sign a device cookie with it on every
        successful login, which must not cost a database read each time
        (a changed secret takes a restart, as the session cookies' does).
        """
        if self._session_secret is None:
            self._session_secret = installation_secret(self.db, self.config.web.secret_key_env)
        return self._session_secret

    def web_app(self) -> WSGIApplication:
        """The standalone web gate on this installation (``seatgate.adapters.flask``)."""
        app: WSGIApplication = _adapter("flask.server").create_app(core=self)
        return app


# -- what build() wires ----------------------------------------------------------------------


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


def kerberos_checks(config: KerberosConfig, kdc: str | None = None) -> list[dict[str, Any]]:
    """The findings of ``seatgate doctor kerberos`` (``seatgate.adapters.kerberos_doctor``).

    Raises :class:`ImportError` when python-gssapi (the ``kerberos`` extra) is missing.
    """
    checks = _adapter("kerberos_doctor").run_checks(config, kdc)
    return [check.as_dict() for check in checks]


def _directory(config: Config) -> DirectoryClient | None:
    if config.ldap is None:
        return None
    directory: DirectoryClient = _adapter("ldap").LdapDirectory(config.ldap)
    return directory


def _login_forms(config: Config) -> LoginForms | None:
    """The UPN and down-level forms directory users may type (none without a directory)."""
    if config.ldap is None:
        return None
    ldap = config.ldap
    return LoginForms.of_directory(ldap.base_dn, ldap.upn_suffixes, ldap.netbios_domain)


def _verifiers(
    hasher: PasswordHasher,
    directory: DirectoryClient | None,
    extra: Mapping[str, PasswordVerifier],
) -> dict[str, PasswordVerifier]:
    local = LocalPasswords(hasher)
    verifiers: dict[str, PasswordVerifier] = {"local": local, "csv": local}
    if directory is not None:
        verifiers["ldap"] = directory
    verifiers.update(extra)
    return verifiers


def _slots(config: Config) -> VerificationSlots:
    bound = config.web.max_concurrent_verifications
    return VerificationSlots(bound or automatic_bound(config.passwords.memory_cost_kib))


def _rate_limiter(config: Config, db: Database, clock: Clock) -> DatabaseRateLimiter:
    return DatabaseRateLimiter(
        db,
        clock,
        per_login_and_address=config.web.max_failures_per_login_and_address,
        per_address=config.web.max_failures_per_address,
        per_login=config.web.max_failures_per_login,
        per_device=config.web.max_failures_per_device,
    )
