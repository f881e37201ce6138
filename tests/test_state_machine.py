"""Random sequences of admin and user acts never break the seat rules.

A hypothesis ``RuleBasedStateMachine`` drives a real :class:`Core` on
SQLite and on PostgreSQL through the public API, the way admins and users do:
accounts are created, log in (right and wrong passwords, case and space
variants of the login), get seats assigned (pinned or not), revoked,
reassigned, pinned and unpinned, are disabled, deleted and enabled again;
licences are replaced (25..40 seats, the unlimited flag on and off), add-ons
installed, removed and put back, a trial is installed and the clock runs past
its end. The assignment mode and the seats reserved for admins are drawn per
example (the configuration is fixed per build, and every example builds).

After every step the database itself is read and must show:

- seats held <= the stored entitlement (none while it is not valid; no cap
  when unlimited), and no seat taken or used after a stored expiry;
- every seat belongs to exactly one existing, active account;
- exactly the seats the step may change have changed: a refusal
  (``NoSeatAvailable``, ``SeatNotHeld``, ``PinnedSeatsExceed``,
  ``TokenConflict``, ...) changes nothing, and a pinned seat is only
  released by an admin's act on that account or by a trial that ended.

Each rule also checks its own oracle: the exact outcome docs/licensing.md promises
(which login reason, which exception, which seats a shrink releases -- least
recently used and unpinned first -- and the entitlement a licence change
leaves). At the end of each example the audit hash chain must verify.
Three scripted walks drive the same machine and checks through situations
random runs reach only some of the time (a trial's end, pinned seats that do
not fit a smaller licence, the admins' reserve), so every run covers them.

Databases: one per test (the ``db_url`` fixture), emptied between examples
by deleting every row in foreign-key order and running ``init_schema()``
again, which finds no schema version and writes the rows of a fresh
installation. Creating a PostgreSQL database per example would cost more than
the steps themselves; one installation with state growing across examples
would make the examples depend on each other (the clock high-water mark, old
accounts, the audit chain), so they could not be replayed or shrunk.

Settings: ``max_examples=30`` and ``stateful_step_count=50`` (the initialize
step included): at most 30 x 49 = 1,470 rule steps per database; hypothesis
ends a few examples early, so runs execute about 1,200 to 1,470. The machine
counts the steps it executed and the test asserts at least 1,000. Fewer,
longer examples rather than many short ones: setting up an example (importing
up to 52 accounts, seating up to 45) costs about as much as 20 steps on
PostgreSQL, and long sequences reach the deep states (full pools, shrinks,
a trial's end). ``deadline=None``: database round trips on a loaded machine
vary more than any deadline could tell from a real slowdown. No health check
is suppressed.

With ``CI=true`` the run is derandomized (and keeps no example database):
every CI run executes the same sequences, so a red build is never a new
random draw and reproduces with the same command. Elsewhere the draws are
random, so local runs keep exploring new sequences; hypothesis saves a
failure in ``.hypothesis/`` and prints the reproduction blob.
``SEATGATE_STATEFUL_PROFILE=seatgate-stateful-soak`` runs 500 examples.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path
from time import perf_counter
from typing import Any, ClassVar

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    multiple,
    precondition,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import Connection, delete, func, select

from seatgate.adapters.csv import CsvAccountFile
from seatgate.app import Core
from seatgate.audit import chain as audit_chain
from seatgate.clock import FakeClock, to_utc
from seatgate.errors import (
    AccountExists,
    AccountNotActive,
    LicenseInvalid,
    NoSeatAvailable,
    PinnedSeatsExceed,
    SeatAlreadyHeld,
    SeatgateError,
    SeatNotHeld,
    TokenConflict,
    TokenNotInstalled,
)
from seatgate.gate.decision import Reason
from seatgate.imports import AccountImporter
from seatgate.licensing.tokens import TRIAL_DAYS, TRIAL_SEATS
from seatgate.licensing.vendor import VendorKey, issue_token
from seatgate.records import Status
from seatgate.seats.state import SeatState, read_state
from seatgate.storage import schema
from tests.conftest import INSTALLATION, START, in_ci, make_config

# -- settings -----------------------------------------------------------------

MIN_STEPS = 1000
"""Rule steps (initialize steps not counted) each database must execute."""

_COMMON: dict[str, Any] = {
    "max_examples": 30,
    "stateful_step_count": 50,
    "deadline": None,
    "print_blob": True,
}
settings.register_profile("seatgate-stateful-ci", derandomize=True, database=None, **_COMMON)
settings.register_profile("seatgate-stateful-dev", derandomize=False, **_COMMON)
settings.register_profile(
    "seatgate-stateful-soak",
    settings.get_profile("seatgate-stateful-dev"),
    max_examples=500,
)


def stateful_settings() -> settings:
    """The profile for this test: derandomized in CI, random elsewhere, or as named.

    Only used by this test (never loaded globally), so other tests keep theirs.
    """
    default = "seatgate-stateful-ci" if in_ci() else "seatgate-stateful-dev"
    return settings.get_profile(os.environ.get("SEATGATE_STATEFUL_PROFILE", default))


# -- what the test reads from the database ------------------------------------

LEEWAY = timedelta(seconds=60)  # make_config's default licence.leeway_seconds
TRIAL_LENGTH = timedelta(days=TRIAL_DAYS)


@dataclass(frozen=True)
class SeatRow:
    """One row of ``seats``."""

    pinned: bool
    assigned_at: datetime
    last_used_at: datetime

    def lru_key(self, account_id: int) -> tuple[datetime, datetime, int]:
        """The order in which a shrink releases seats (oldest use first)."""
        return (self.last_used_at, self.assigned_at, account_id)


@dataclass(frozen=True)
class Facts:
    """What the database holds after a step, read in one transaction."""

    state: SeatState
    seats: dict[int, SeatRow]
    status: dict[int, str]
    seat_rows: int
    joined_rows: int
    distinct_holders: int

    def pins(self) -> dict[int, bool]:
        """Seat holders: account id -> pinned."""
        return {account_id: row.pinned for account_id, row in self.seats.items()}

    def pinned_count(self) -> int:
        """How many seats are pinned."""
        return sum(row.pinned for row in self.seats.values())


def read_facts(conn: Connection) -> Facts:
    """Read the stored entitlement, the seats and the account statuses."""
    seats, accounts = schema.seats, schema.accounts
    rows = conn.execute(select(seats)).all()
    joined = conn.execute(
        select(seats.c.account_id).join(accounts, accounts.c.id == seats.c.account_id)
    ).all()
    distinct = conn.execute(select(func.count(func.distinct(seats.c.account_id)))).scalar_one()
    return Facts(
        state=read_state(conn),
        seats={
            r.account_id: SeatRow(bool(r.pinned), to_utc(r.assigned_at), to_utc(r.last_used_at))
            for r in rows
        },
        status={r.id: r.status for r in conn.execute(select(accounts.c.id, accounts.c.status))},
        seat_rows=len(rows),
        joined_rows=len(joined),
        distinct_holders=int(distinct),
    )


def empty_database(conn: Connection) -> None:
    """Delete every row, children before parents (``init_schema`` then starts afresh)."""
    for table in reversed(schema.metadata.sorted_tables):
        conn.execute(delete(table))


# -- the model: what the test itself did ---------------------------------------


@dataclass
class Member:
    """An account the test created."""

    id: int
    login: str
    password: str
    admin: bool
    status: Status = "active"


@dataclass(frozen=True)
class Licence:
    """A licence the test installed (the last one is the base: latest ``iat``, then ``jti``)."""

    jti: str
    seats: int
    unlimited: bool


@dataclass
class AddOn:
    """An add-on the test installed."""

    jti: str
    lic: str
    seats: int
    token: str
    removed: bool = False


@dataclass(frozen=True)
class Expected:
    """The entitlement the installed tokens should give."""

    valid: bool
    seats: int
    unlimited: bool
    trial: bool

    @property
    def capacity(self) -> int | None:
        """Seats that may be held: None for no cap, 0 when not valid."""
        if not self.valid:
            return 0
        return None if self.unlimited else self.seats


def stored(state: SeatState) -> Expected:
    """The entitlement fields of the stored state, to compare with :class:`Expected`."""
    return Expected(state.valid, state.seats_total, state.unlimited, state.trial)


@dataclass
class RunStats:
    """Counts for one database: the step claim is checked, not assumed."""

    examples: int = 0
    steps: int = 0
    lengths: Counter[int] = field(default_factory=Counter)
    checks: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)


# -- the machine ----------------------------------------------------------------


class SeatMachine(RuleBasedStateMachine):
    """Admins and users act at random on one installation; the seat rules must hold."""

    url: ClassVar[str]
    folder: ClassVar[Path]
    vendor_key: ClassVar[VendorKey]
    stats: ClassVar[RunStats]

    accounts = Bundle("accounts")
    addons = Bundle("addons")

    def __init__(self) -> None:
        super().__init__()
        self.app: Core | None = None
        self.clock = FakeClock(START)
        self.members: dict[str, Member] = {}
        self.licences: list[Licence] = []
        self.addon_tokens: dict[str, AddOn] = {}
        self.trial_ends: datetime | None = None
        self.serial = 0
        self.steps_here = 0
        # The database as the previous step left it, and what this step may do to it.
        self.seen: Facts | None = None
        self.expected_pins: dict[int, bool] | None = None
        self.unchanged = False
        self.pinned_release_ok: set[int] | None = set()
        self.rule_name = ""
        self.last_outcome = ""

    # -- helpers ---------------------------------------------------------------

    @property
    def gate(self) -> Core:
        """The installation under test."""
        assert self.app is not None
        return self.app

    def facts(self) -> Facts:
        """Read the database now."""
        return self.gate.db.read(read_facts)

    def before(self) -> Facts:
        """The database as the previous step left it."""
        assert self.seen is not None
        return self.seen

    def next_id(self, prefix: str) -> str:
        """A fresh, increasing id (``jti`` ties on ``iat`` are broken by ``jti``)."""
        self.serial += 1
        return f"{prefix}-{self.serial:04d}"

    def mint(self, kind: str, **claims: Any) -> str:
        """A real vendor-signed token for this installation, issued now."""
        if kind in ("license", "trial"):
            claims.setdefault("edition", "bizspace")
        return issue_token(
            self.vendor_key,
            kind=kind,
            installation_id=INSTALLATION,
            customer="acme",
            now=self.clock.now(),
            **claims,
        )

    def entitlement(
        self,
        licences: list[Licence] | None = None,
        addons: dict[str, AddOn] | None = None,
    ) -> Expected:
        """What docs/licensing.md says the installed tokens give now."""
        licences = self.licences if licences is None else licences
        addons = self.addon_tokens if addons is None else addons
        if licences:
            base = licences[-1]
            extra = sum(a.seats for a in addons.values() if a.lic == base.jti and not a.removed)
            return Expected(True, base.seats + extra, base.unlimited, False)
        if self.trial_ends is not None and self.clock.now() < self.trial_ends + LEEWAY:
            return Expected(True, TRIAL_SEATS, False, True)
        return Expected(False, 0, False, False)

    def expect(
        self,
        outcome: str,
        pins: dict[int, bool],
        *,
        unchanged: bool = False,
        admin_released: set[int] | None = None,
        automatic: bool = False,
    ) -> None:
        """State what this step leaves: the seat holders (id -> pinned) and its outcome.

        ``unchanged``: every seat row and the entitlement must be exactly as
        before (a refusal). ``admin_released``: the accounts whose pinned seat
        an admin's act may release. ``automatic``: the entitlement shrank by
        itself (a trial ended), which may release pinned seats too.
        """
        self.expected_pins = pins
        self.unchanged = unchanged
        self.pinned_release_ok = None if automatic else (admin_released or set())
        self.last_outcome = outcome
        self.stats.outcomes[f"{self.rule_name}: {outcome}"] += 1

    def refused(self, outcome: str) -> None:
        """The step was refused: nothing may change."""
        self.expect(outcome, self.before().pins(), unchanged=True)

    def check_raises(
        self,
        act: Callable[[], object],
        reasons: set[type[SeatgateError]],
    ) -> SeatgateError | None:
        """Run ``act``; it must raise one of ``reasons``, or succeed when there are none."""
        try:
            act()
        except SeatgateError as exc:
            assert reasons, f"unexpected refusal: {type(exc).__name__}: {exc}"
            assert isinstance(exc, tuple(reasons)), (
                f"{type(exc).__name__}: {exc}; expected one of "
                f"{sorted(r.__name__ for r in reasons)}"
            )
            return exc
        assert not reasons, f"expected one of {sorted(r.__name__ for r in reasons)}; it succeeded"
        return None

    def member(self, login: str) -> Member:
        """The model of an account."""
        return self.members[login]

    def id_of(self, login: str) -> int:
        """Account id by stored login."""
        return next(m.id for m in self.members.values() if m.login == login)

    def check_shrink(self, before: Facts, released: list[str], capacity: int | None) -> set[int]:
        """A licence change released the right seats: as few as needed, unpinned, LRU first."""
        gone = {self.id_of(login) for login in released}
        assert len(gone) == len(released)
        needed = 0 if capacity is None else max(0, len(before.seats) - capacity)
        assert len(gone) == needed, (len(gone), needed)
        assert all(not before.seats[i].pinned for i in gone), "a pinned seat was released"
        kept = [i for i, row in before.seats.items() if i not in gone and not row.pinned]
        if gone and kept:
            latest_gone = max(before.seats[i].lru_key(i) for i in gone)
            earliest_kept = min(before.seats[i].lru_key(i) for i in kept)
            assert latest_gone <= earliest_kept, "not the least recently used seats"
        return gone

    def check_entitlement(self) -> None:
        """The stored entitlement is the one the installed tokens give."""
        assert stored(self.gate.ledger.state()) == self.entitlement()

    # -- setting up an example ---------------------------------------------------

    @initialize(
        target=accounts,
        assignment=st.sampled_from(["auto", "auto", "manual"]),
        reserved=st.sampled_from([0, 0, 2]),
        start=st.sampled_from(["licence", "licence", "trial", "late trial", "unlimited", "none"]),
        seats=st.integers(25, 40),
        extra_people=st.integers(1, 12),
        admins=st.integers(1, 3),
        fill=st.sampled_from(["full", "full", "full", "all but two", "half"]),
        pins=st.sampled_from(["none", "three", "all but two"]),
    )
    def set_up(
        self,
        assignment: str,
        reserved: int,
        start: str,
        seats: int,
        extra_people: int,
        admins: int,
        fill: str,
        pins: str,
    ) -> Any:
        """A fresh installation: accounts, a starting entitlement and seats, often all taken.

        Sizes are relative to the starting seats so that full pools, shrinks
        and pinned seats that would not fit come up within a few steps.
        """
        self.rule_name = "set_up"
        config = make_config(
            self.url, self.vendor_key, assignment=assignment, reserved_for_admins=reserved
        )
        self.app = Core.build(config, clock=self.clock, check_schema=False)
        self.gate.db.write(empty_database)
        self.gate.init_schema()
        if start in ("licence", "unlimited"):
            licence = Licence(self.next_id("lic"), seats, start == "unlimited")
            text = self.mint("license", seats=seats, unlimited=licence.unlimited, jti=licence.jti)
            self.gate.licensing.install(text, actor="admin")
            self.licences.append(licence)
        elif start in ("trial", "late trial"):
            self.start_trial()
            seats = TRIAL_SEATS
        self.import_people(seats + extra_people, admins)
        capacity = self.entitlement().capacity
        room = len(self.members) if capacity is None else min(capacity, len(self.members))
        seated = {"full": room, "all but two": room - 2, "half": room // 2}[fill]
        pinned = {"none": 0, "three": 3, "all but two": seated - 2}[pins]
        holders = list(self.members.values())[: max(0, seated)]
        for n, member in enumerate(holders):
            self.clock.advance(timedelta(minutes=1))
            self.gate.ledger.assign(member.id, actor="admin", pinned=n < pinned)
        if start == "late trial" and self.trial_ends is not None:
            # Six hours left: ordinary time passing soon ends it.
            self.clock.set(self.trial_ends - timedelta(hours=6))
        self.check_entitlement()
        self.seen = self.facts()
        self.expect(f"{start}, {len(holders)} seated", self.seen.pins())
        self.stats.examples += 1
        return multiple(*self.members)

    def create(self, login: str, *, admin: bool) -> Member:
        """Create an account through the public API and model it."""
        password = f"pw-{login}"
        account = self.gate.accounts.add(login, password=password, actor="admin", is_admin=admin)
        member = Member(account.id, account.login, password, admin)
        self.members[login] = member
        return member

    def import_people(self, count: int, admins: int) -> None:
        """Create the staff in one go, the way an admin would: ``accounts import-csv``."""
        path = self.folder / "staff.csv"
        lines = ["login;admin;password_hash"]  # argon2 hashes contain commas
        for n in range(count):
            login = f"user{n:03d}"
            password = f"pw-{login}"
            self.members[login] = Member(0, login, password, admin=n < admins)
            admin = "yes" if n < admins else "no"
            lines.append(f"{login};{admin};{self.gate.hasher.hash(password)}")
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        importer = AccountImporter(self.gate.db, self.clock, self.gate.ledger)
        with importer.check(CsvAccountFile(path)) as checked:
            report = importer.apply(checked, actor="admin")
        assert report.created == count
        for listing in self.gate.accounts.list():
            self.members[listing.account.login].id = listing.account.id

    def start_trial(self) -> None:
        """Install a 30-day trial issued now."""
        self.gate.licensing.install(self.mint("trial", jti=self.next_id("trial")), actor="admin")
        self.trial_ends = self.clock.now() + TRIAL_LENGTH

    def teardown(self) -> None:
        """The audit chain is intact; the connections are released."""
        if self.app is None:
            return
        self.stats.lengths[self.steps_here] += 1
        try:
            report = self.app.db.read(audit_chain.verify)
            assert report.intact, report.problem
        finally:
            self.app.close()

    # -- the invariants, read from the database after every step --------------

    @invariant()
    def seat_rules_hold(self) -> None:
        """Capacity, one active account per seat, and only the changes the step may make."""
        before = self.before()
        after = self.facts()
        now = self.clock.now()
        state = after.state
        # Seats held never exceed the stored entitlement.
        if not state.valid:
            assert not after.seats, f"{len(after.seats)} seats held without a valid licence"
        elif not state.unlimited:
            assert len(after.seats) <= state.seats_total, (len(after.seats), state.seats_total)
        if state.valid and state.expires_at is not None:
            # An entitlement past its expiry is released lazily, but nothing is
            # taken or used after it.
            for row in after.seats.values():
                assert row.assigned_at < state.expires_at
                assert row.last_used_at < state.expires_at
        # One seat per account; every seat belongs to an existing active account.
        assert after.seat_rows == after.joined_rows == after.distinct_holders
        for account_id in after.seats:
            status = after.status.get(account_id)
            assert status == "active", f"account {account_id} holds a seat but is {status}"
        assert {m.id: m.status for m in self.members.values()} == after.status
        # Exactly what the step said it may change.
        assert self.expected_pins is not None, f"{self.rule_name} stated no expectation"
        assert after.pins() == self.expected_pins, (self.rule_name, after.pins())
        if self.unchanged:
            assert after.seats == before.seats, self.rule_name
            assert after.state == before.state, self.rule_name
        lost_pins = {i for i, row in before.seats.items() if row.pinned and i not in after.seats}
        if self.pinned_release_ok is not None:
            assert lost_pins <= self.pinned_release_ok, (self.rule_name, lost_pins)
        for account_id, row in after.seats.items():
            held = before.seats.get(account_id)
            assert held is None or row.assigned_at == held.assigned_at, self.rule_name
            assert row.assigned_at <= now and row.last_used_at <= now
        self.seen = after
        self.expected_pins = None
        if self.rule_name != "set_up":
            self.stats.steps += 1
            self.steps_here += 1
        self.stats.checks += 1
        self.rule_name = ""

    # -- accounts -----------------------------------------------------------------

    @rule(target=accounts, admin=st.booleans())
    def create_account(self, admin: bool) -> str:
        """An admin creates an account (no seat yet)."""
        self.rule_name = "create_account"
        member = self.create(self.next_id("staff"), admin=admin)
        self.expect("created", self.before().pins())
        return member.login

    @rule(login=accounts)
    def create_same_login_again(self, login: str) -> None:
        """A login that normalises to an existing one is refused."""
        self.rule_name = "create_same_login_again"
        with pytest.raises(AccountExists):
            self.gate.accounts.add(f" {login.upper()} ", password="pw-x", actor="admin")
        self.refused("AccountExists")

    @rule(login=accounts, status=st.sampled_from(["disabled", "deleted", "active", "active"]))
    def set_status(self, login: str, status: Status) -> None:
        """Disable, delete or enable an account: a non-active one loses its seat at once."""
        self.rule_name = "set_status"
        member = self.member(login)
        pins = self.before().pins()
        changed = self.gate.accounts.set_status(login, status, actor="admin")
        assert changed == (member.status != status)
        member.status = status
        if status != "active":
            pins.pop(member.id, None)
        self.expect(
            f"{status} ({'changed' if changed else 'unchanged'})",
            pins,
            admin_released={member.id},
        )

    # -- logins --------------------------------------------------------------------

    def log_in(
        self, member: Member, typed: str, state: SeatState, pins: dict[int, bool]
    ) -> tuple[str, dict[int, bool], bool]:
        """A login with the right password, checked against the documented decision order.

        ``state`` and ``pins`` are the stored entitlement and the seat holders
        just before. Returns the outcome, the seat holders afterwards and
        whether the entitlement shrank by itself (a trial ended, noticed here).
        """
        now = self.clock.now()
        pins = dict(pins)
        active = member.status == "active"
        trial_ended = active and state.stale(now)
        expected: Reason | None
        if not active:
            expected = Reason.ACCOUNT_DISABLED
        elif not state.is_valid(now):
            expected = Reason.LICENSE_INVALID
        elif member.id in pins:
            expected = None
        elif self.gate.ledger.config.assignment == "manual" and not member.admin:
            expected = Reason.NO_SEAT_AVAILABLE
        else:
            capacity = state.capacity(now)
            reserve = 0 if member.admin else self.gate.ledger.config.reserved_for_admins
            room = capacity is None or len(pins) < capacity - reserve
            expected = None if room else Reason.NO_SEAT_AVAILABLE
        decision = self.gate.gate.decide(typed, member.password)
        assert decision.reason == expected, (decision, expected, typed)
        assert decision.allowed == (expected is None)
        if decision.allowed:
            # An allowed login holds a seat afterwards.
            assert self.gate.ledger.holds_seat(member.id)
            assert decision.seat_claimed == (member.id not in pins)
            pins.setdefault(member.id, False)
        if trial_ended:
            # The entitlement shrank by itself: every seat goes, pinned ones too.
            pins = {}
        outcome = "trial_ended" if trial_ended else str(decision)
        if decision.seat_claimed:
            outcome += " (claimed)"
        return outcome, pins, trial_ended

    @rule(login=accounts, variant=st.sampled_from(["exact", "upper", "spaced"]))
    def log_in_once(self, login: str, variant: str) -> None:
        """A user logs in with the right password (the login as typed may vary)."""
        self.rule_name = "log_in_once"
        before = self.before()
        typed = {"exact": login, "upper": login.upper(), "spaced": f"  {login} "}[variant]
        outcome, pins, automatic = self.log_in(
            self.member(login), typed, before.state, before.pins()
        )
        # A refusal leaves every seat row and the entitlement as they were.
        self.expect(outcome, pins, unchanged=outcome.startswith("refused"), automatic=automatic)

    @rule(logins=st.lists(accounts, min_size=2, max_size=6))
    def morning_rush(self, logins: list[str]) -> None:
        """Several users log in one after the other, half a minute apart."""
        self.rule_name = "morning_rush"
        pins = self.before().pins()
        shrank = False
        for login in logins:
            self.clock.advance(timedelta(seconds=30))
            state = self.gate.ledger.state()
            outcome, pins, automatic = self.log_in(self.member(login), login, state, pins)
            shrank = shrank or automatic
            self.stats.outcomes[f"morning_rush login: {outcome}"] += 1
        self.expect(f"{len(logins)} logins", pins, automatic=shrank)

    @rule(
        login=accounts,
        attempt=st.sampled_from(["wrong password", "empty password", "unknown login"]),
    )
    def log_in_badly(self, login: str, attempt: str) -> None:
        """A wrong or empty password, or an unknown login: refused, nothing changes."""
        self.rule_name = "log_in_badly"
        member = self.member(login)
        if attempt == "unknown login":
            decision = self.gate.gate.decide(f"ghost-{login}", member.password)
        else:
            wrong = "" if attempt == "empty password" else f"not-{member.password}"
            decision = self.gate.gate.decide(login, wrong)
        assert not decision.allowed
        assert decision.reason is Reason.INVALID_CREDENTIALS
        self.refused(attempt)

    # -- seats ------------------------------------------------------------------------

    def waiting(self) -> list[str]:
        """Active accounts without a seat (as the previous step left them)."""
        seats = self.before().seats
        return sorted(
            login
            for login, member in self.members.items()
            if member.status == "active" and member.id not in seats
        )

    def holding(self) -> list[str]:
        """Accounts with a seat (as the previous step left them)."""
        seats = self.before().seats
        return sorted(login for login, member in self.members.items() if member.id in seats)

    @rule(login=accounts, pinned=st.booleans())
    def assign(self, login: str, pinned: bool) -> None:
        """An admin assigns a seat to any account (``seats assign [--pin]``)."""
        self.rule_name = "assign"
        self.assign_seat(login, pinned)

    @precondition(lambda self: bool(self.waiting()))
    @rule(data=st.data(), pinned=st.booleans())
    def assign_waiting(self, data: st.DataObject, pinned: bool) -> None:
        """An admin assigns a seat to someone who has none: refused when the pool is full."""
        self.rule_name = "assign_waiting"
        self.assign_seat(data.draw(st.sampled_from(self.waiting()), label="login"), pinned)

    def assign_seat(self, login: str, pinned: bool) -> None:
        """``seats assign [--pin] LOGIN``, checked against the refusals it may give."""
        before = self.before()
        member = self.member(login)
        now = self.clock.now()
        capacity = before.state.capacity(now)
        reasons: set[type[SeatgateError]] = set()
        if member.status != "active":
            reasons.add(AccountNotActive)
        if member.id in before.seats:
            reasons.add(SeatAlreadyHeld)
        if not before.state.is_valid(now):
            reasons.add(LicenseInvalid)
        elif capacity is not None and len(before.seats) >= capacity:
            reasons.add(NoSeatAvailable)
        error = self.check_raises(
            lambda: self.gate.ledger.assign(member.id, actor="admin", pinned=pinned), reasons
        )
        if error is not None:
            self.refused(type(error).__name__)
            return
        self.expect("assigned", {**before.pins(), member.id: pinned})

    @rule(login=accounts)
    def revoke(self, login: str) -> None:
        """An admin revokes a seat, pinned or not (``seats revoke``)."""
        self.rule_name = "revoke"
        before = self.before()
        member = self.member(login)
        reasons: set[type[SeatgateError]] = set() if member.id in before.seats else {SeatNotHeld}
        error = self.check_raises(
            lambda: self.gate.ledger.revoke(member.id, actor="admin"), reasons
        )
        if error is not None:
            self.refused(type(error).__name__)
            return
        pins = before.pins()
        del pins[member.id]
        self.expect("revoked", pins, admin_released={member.id})

    @rule(source=accounts, destination=accounts)
    def reassign(self, source: str, destination: str) -> None:
        """An admin moves a seat between any two accounts (``seats reassign``)."""
        self.rule_name = "reassign"
        self.move_seat(source, destination)

    @precondition(lambda self: bool(self.holding()) and bool(self.waiting()))
    @rule(data=st.data())
    def hand_over(self, data: st.DataObject) -> None:
        """An admin moves a seat from a holder to someone waiting for one."""
        self.rule_name = "hand_over"
        source = data.draw(st.sampled_from(self.holding()), label="source")
        self.move_seat(source, data.draw(st.sampled_from(self.waiting()), label="destination"))

    def move_seat(self, source: str, destination: str) -> None:
        """``seats reassign FROM TO``, checked against the refusals it may give."""
        before = self.before()
        giver, taker = self.member(source), self.member(destination)
        reasons: set[type[SeatgateError]] = set()
        if not before.state.is_valid(self.clock.now()):
            reasons.add(LicenseInvalid)
        if giver.id not in before.seats:
            reasons.add(SeatNotHeld)
        if taker.status != "active":
            reasons.add(AccountNotActive)
        if taker.id in before.seats:
            reasons.add(SeatAlreadyHeld)
        error = self.check_raises(
            lambda: self.gate.ledger.reassign(giver.id, taker.id, actor="admin"), reasons
        )
        if error is not None:
            self.refused(type(error).__name__)
            return
        pins = before.pins()
        pins[taker.id] = pins.pop(giver.id)  # the seat keeps its pin
        self.expect("reassigned", pins, admin_released={giver.id})

    @rule(login=accounts, pinned=st.booleans())
    def set_pin(self, login: str, pinned: bool) -> None:
        """An admin pins or unpins a seat (``seats pin|unpin``)."""
        self.rule_name = "set_pin"
        before = self.before()
        member = self.member(login)
        reasons: set[type[SeatgateError]] = set() if member.id in before.seats else {SeatNotHeld}
        error = self.check_raises(
            lambda: self.gate.ledger.set_pinned(member.id, pinned, actor="admin"), reasons
        )
        if error is not None:
            self.refused(type(error).__name__)
            return
        self.expect("pinned" if pinned else "unpinned", {**before.pins(), member.id: pinned})

    # -- licences -------------------------------------------------------------------

    @rule(seats=st.integers(25, 40), unlimited=st.sampled_from([False, False, False, True]))
    def install_licence(self, seats: int, unlimited: bool) -> None:
        """The vendor's newer licence: seat count and unlimited flag take effect at once."""
        self.rule_name = "install_licence"
        before = self.before()
        licence = Licence(self.next_id("lic"), seats, unlimited)
        text = self.mint("license", seats=seats, unlimited=unlimited, jti=licence.jti)
        capacity = self.entitlement([*self.licences, licence]).capacity
        pinned = before.pinned_count()
        reasons: set[type[SeatgateError]] = set()
        if capacity is not None and pinned > capacity:
            reasons.add(PinnedSeatsExceed)
        result: list[Any] = []
        error = self.check_raises(
            lambda: result.append(self.gate.licensing.install(text, actor="admin")), reasons
        )
        if error is not None:
            self.refused(type(error).__name__)
            return
        self.licences.append(licence)
        self.check_entitlement()
        gone = self.check_shrink(before, result[0].released, capacity)
        pins = {i: p for i, p in before.pins().items() if i not in gone}
        self.expect(f"installed (released {len(gone)})", pins)

    @rule(
        target=addons,
        seats=st.integers(1, 12),
        names=st.sampled_from(["base", "base", "older", "unknown"]),
    )
    def install_addon(self, seats: int, names: str) -> Any:
        """An add-on for the base licence, an older one, or one not installed here."""
        self.rule_name = "install_addon"
        if names == "unknown" or not self.licences:
            lic = "lic-not-installed"
        elif names == "older" and len(self.licences) > 1:
            lic = self.licences[-2].jti
        else:
            lic = self.licences[-1].jti
        addon = AddOn(self.next_id("addon"), lic, seats, "")
        addon.token = self.mint("addon", seats=seats, lic=lic, jti=addon.jti)
        known = {licence.jti for licence in self.licences}
        reasons: set[type[SeatgateError]] = set() if lic in known else {TokenConflict}
        error = self.check_raises(
            lambda: self.gate.licensing.install(addon.token, actor="admin"), reasons
        )
        if error is not None:
            self.refused(type(error).__name__)
            return multiple()
        self.addon_tokens[addon.jti] = addon
        self.check_entitlement()
        self.expect(f"installed for {names}", self.before().pins())
        return addon.jti

    @rule(jti=addons)
    def remove_addon(self, jti: str) -> None:
        """``license remove``: fewer seats, or refused when pinned seats would not fit."""
        self.rule_name = "remove_addon"
        before = self.before()
        addon = self.addon_tokens[jti]
        remaining = dict(self.addon_tokens)
        remaining[jti] = AddOn(addon.jti, addon.lic, addon.seats, addon.token, removed=True)
        capacity = self.entitlement(addons=remaining).capacity
        reasons: set[type[SeatgateError]] = set()
        if addon.removed:
            reasons.add(TokenNotInstalled)
        elif capacity is not None and before.pinned_count() > capacity:
            reasons.add(PinnedSeatsExceed)
        result: list[Any] = []
        error = self.check_raises(
            lambda: result.append(self.gate.licensing.remove(jti, actor="admin")), reasons
        )
        if error is not None:
            self.refused(type(error).__name__)
            return
        addon.removed = True
        self.check_entitlement()
        gone = self.check_shrink(before, result[0].released, capacity)
        pins = {i: p for i, p in before.pins().items() if i not in gone}
        self.expect(f"removed (released {len(gone)})", pins)

    @rule(jti=addons)
    def install_addon_again(self, jti: str) -> None:
        """The same add-on again: refused while installed, restored after ``license remove``."""
        self.rule_name = "install_addon_again"
        addon = self.addon_tokens[jti]
        reasons: set[type[SeatgateError]] = set() if addon.removed else {TokenConflict}
        error = self.check_raises(
            lambda: self.gate.licensing.install(addon.token, actor="admin"), reasons
        )
        if error is not None:
            self.refused(type(error).__name__)
            return
        addon.removed = False
        self.check_entitlement()
        self.expect("restored", self.before().pins())

    @precondition(lambda self: self.trial_ends is None)
    @rule()
    def install_trial(self) -> None:
        """A 30-day trial (it counts only while no licence is installed)."""
        self.rule_name = "install_trial"
        self.start_trial()
        self.check_entitlement()
        self.expect("installed", self.before().pins())

    @rule()
    def look_at_status(self) -> None:
        """``license status``: recomputes an entitlement past its expiry."""
        self.rule_name = "look_at_status"
        before = self.before()
        trial_ended = before.state.stale(self.clock.now())
        status = self.gate.licensing.status()
        self.check_entitlement()
        pins = {} if trial_ended else before.pins()
        assert status.seats_used == len(pins)
        if trial_ended:
            self.expect("trial_ended", pins, automatic=True)
        else:
            self.expect("looked", pins, unchanged=True)

    # -- time -----------------------------------------------------------------------

    @rule(minutes=st.integers(1, 60 * 24 * 20))
    def time_passes(self, minutes: int) -> None:
        """Minutes to weeks go by (perpetual licences never end; a trial does)."""
        self.rule_name = "time_passes"
        self.clock.advance(timedelta(minutes=minutes))
        self.expect("advanced", self.before().pins(), unchanged=True)

    @precondition(
        lambda self: (
            self.trial_ends is not None
            and not self.licences
            and self.clock.now() < self.trial_ends + LEEWAY
        )
    )
    @rule(after=st.integers(1, 2 * 24 * 3600))
    def trial_runs_out(self, after: int) -> None:
        """The clock passes the trial's end (and the leeway) by a second to two days."""
        self.rule_name = "trial_runs_out"
        assert self.trial_ends is not None
        self.clock.set(self.trial_ends + LEEWAY + timedelta(seconds=after))
        self.expect("advanced", self.before().pins(), unchanged=True)


def machine_for(url: str, vendor_key: VendorKey, folder: Path) -> type[SeatMachine]:
    """The machine bound to one database, vendor key and scratch folder, with its own counters."""

    class BoundSeatMachine(SeatMachine):
        pass

    BoundSeatMachine.url = url
    BoundSeatMachine.folder = folder
    BoundSeatMachine.vendor_key = vendor_key
    BoundSeatMachine.stats = RunStats()
    return BoundSeatMachine


def create_schema(url: str, vendor_key: VendorKey) -> None:
    """Create the tables once; each example then empties and re-initialises them."""
    app = Core.build(make_config(url, vendor_key), clock=FakeClock(START), check_schema=False)
    try:
        app.init_schema()
    finally:
        app.close()


@pytest.mark.slow
def test_random_sequences_keep_the_seat_rules(
    db_url: str,
    vendor_key: VendorKey,
    tmp_path: Path,
    record_property: Callable[[str, object], None],
) -> None:
    """At least 1,000 random steps per database, every one checked against the rules."""
    create_schema(db_url, vendor_key)
    machine = machine_for(db_url, vendor_key, tmp_path)
    started = perf_counter()
    run_state_machine_as_test(machine, settings=stateful_settings())
    elapsed = perf_counter() - started
    stats = machine.stats
    record_property("stateful_examples", stats.examples)
    record_property("stateful_steps", stats.steps)
    record_property("stateful_seconds", round(elapsed, 1))
    print(
        f"\n{db_url.split(':', 1)[0]}: {stats.examples} examples, {stats.steps} steps, "
        f"{stats.checks} invariant checks in {elapsed:.1f} s"
    )
    print(f"  rule steps per example (steps: examples): {dict(sorted(stats.lengths.items()))}")
    for outcome, count in sorted(stats.outcomes.items()):
        print(f"  {count:5d}  {outcome}")
    assert stats.steps >= MIN_STEPS, f"only {stats.steps} steps ran; at least {MIN_STEPS} expected"
    # Not a vacuous run: logins got in and full pools refused. (Rarer situations
    # -- a trial's end, pinned seats that do not fit -- are walked through in
    # the scripted tests below, so every run covers them.)
    reached = {outcome.split(": ", 1)[1] for outcome in stats.outcomes}
    for needed in ("allowed (claimed)", "refused: no_seat_available", "NoSeatAvailable"):
        assert needed in reached, f"no step reached {needed!r}"


# -- scripted walks: the same machine and checks, through chosen situations ------


def check_step(machine: SeatMachine, act: Callable[[], object], outcome: str) -> object:
    """Run one rule, then the invariants (as hypothesis does); the rule must come to ``outcome``."""
    result = act()
    machine.seat_rules_hold()
    assert machine.last_outcome == outcome, (machine.last_outcome, outcome)
    return result


@pytest.fixture
def machine(db_url: str, vendor_key: VendorKey, tmp_path: Path) -> Iterator[SeatMachine]:
    """One machine on a fresh database, for a scripted walk; its teardown verifies the audit."""
    create_schema(db_url, vendor_key)
    walker = machine_for(db_url, vendor_key, tmp_path)()
    yield walker
    walker.teardown()


def test_walk_full_pool_pins_and_shrinks(machine: SeatMachine) -> None:
    """A full pool refuses; pinned seats block a shrink until unpinned; LRU seats go first."""
    m = machine
    # 30 seats, all held by user000..user029, all but two pinned; user030..034 wait.
    check_step(
        m,
        lambda: m.set_up("auto", 0, "licence", 30, 5, 1, "full", "all but two"),
        "licence, 30 seated",
    )
    check_step(m, lambda: m.assign("user030", False), "NoSeatAvailable")
    check_step(m, lambda: m.log_in_once("user031", "upper"), "refused: no_seat_available")
    check_step(m, lambda: m.install_licence(25, False), "PinnedSeatsExceed")
    for login in ("user000", "user001", "user002", "user003"):
        check_step(m, partial(m.set_pin, login, False), "unpinned")
    check_step(m, lambda: m.install_licence(25, False), "installed (released 5)")
    jti = check_step(m, lambda: m.install_addon(5, "base"), "installed for base")
    check_step(m, lambda: m.assign("user030", False), "assigned")
    check_step(m, lambda: m.remove_addon(str(jti)), "removed (released 1)")
    check_step(m, lambda: m.remove_addon(str(jti)), "TokenNotInstalled")
    check_step(m, lambda: m.install_addon_again(str(jti)), "restored")
    check_step(m, lambda: m.reassign("user004", "user031"), "reassigned")
    check_step(m, lambda: m.set_status("user005", "disabled"), "disabled (changed)")
    check_step(m, lambda: m.log_in_once("user005", "exact"), "refused: account_disabled")
    check_step(m, lambda: m.log_in_badly("user006", "wrong password"), "wrong password")
    # Unlimited, then three more pinned seats: 26 pinned, 27 held.
    check_step(m, lambda: m.install_licence(40, True), "installed (released 0)")
    for login in ("user032", "user033", "user034"):
        check_step(m, partial(m.assign, login, True), "assigned")
    check_step(m, lambda: m.install_licence(25, False), "PinnedSeatsExceed")
    check_step(m, lambda: m.install_licence(26, False), "installed (released 1)")


def test_walk_trial_end_manual_assignment(machine: SeatMachine) -> None:
    """Manual assignment with a reserve; a trial's end releases every seat, pinned ones too."""
    m = machine
    # A trial with six hours left; 12 of 28 people seated, 3 pinned; user000/001 are admins.
    check_step(
        m,
        lambda: m.set_up("manual", 2, "late trial", 25, 3, 2, "half", "three"),
        "late trial, 12 seated",
    )
    check_step(m, lambda: m.log_in_once("user020", "exact"), "refused: no_seat_available")
    check_step(m, lambda: m.log_in_once("user000", "spaced"), "allowed")
    check_step(m, lambda: m.time_passes(7 * 60), "advanced")
    check_step(m, lambda: m.assign("user020", True), "LicenseInvalid")
    check_step(m, lambda: m.log_in_once("user001", "exact"), "trial_ended")
    check_step(m, m.look_at_status, "looked")
    check_step(m, lambda: m.install_licence(25, False), "installed (released 0)")
    check_step(m, lambda: m.log_in_once("user001", "exact"), "allowed (claimed)")
    check_step(m, lambda: m.log_in_once("user020", "exact"), "refused: no_seat_available")
    check_step(m, lambda: m.assign("user020", True), "assigned")
    check_step(m, lambda: m.log_in_once("user020", "exact"), "allowed")


def test_walk_reserved_seats_and_a_trial_noticed_by_status(machine: SeatMachine) -> None:
    """Non-admins stop short of the admins' reserve; ``license status`` notices a trial's end."""
    m = machine
    check_step(
        m,
        lambda: m.set_up("auto", 2, "trial", 25, 4, 1, "all but two", "three"),
        "trial, 23 seated",
    )
    check_step(m, lambda: m.log_in_once("user024", "exact"), "refused: no_seat_available")
    admin = str(check_step(m, lambda: m.create_account(True), "created"))
    check_step(m, lambda: m.log_in_once(admin, "upper"), "allowed (claimed)")
    check_step(m, lambda: m.trial_runs_out(60), "advanced")
    check_step(m, m.look_at_status, "trial_ended")
    check_step(m, lambda: m.log_in_once(admin, "exact"), "refused: license_invalid")
