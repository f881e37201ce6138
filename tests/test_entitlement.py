"""The effective entitlement, computed from installed tokens.

First as a pure function (``compute_entitlement`` over hand-made verified
tokens), then through the licensing install path on each database: which
licence is the base, which add-ons count, trials, duplicate installs and
vendor key rotation.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from seatgate.app import Core
from seatgate.clock import FakeClock
from seatgate.config import Config, LicenseConfig
from seatgate.errors import ConfigError, TokenConflict, UnknownKey
from seatgate.gate.decision import Reason
from seatgate.licensing.entitlement import NO_LICENSE, Entitlement, compute_entitlement
from seatgate.licensing.tokens import LicenseToken
from seatgate.licensing.vendor import VendorKey, issue_token
from tests.conftest import INSTALLATION, ISSUER, START, add_users, make_config

LEEWAY = timedelta(seconds=60)


def token(
    kind: str,
    jti: str,
    *,
    day: float = 0,
    seats: int | None = None,
    lic: str | None = None,
    unlimited: bool = False,
    edition: str = "bizspace",
) -> LicenseToken:
    """A verified token as the verifier would return it, issued ``day`` days after START."""
    issued = START + timedelta(days=day)
    if seats is None:
        seats = {"license": 25, "trial": 25, "addon": 1}.get(kind)
    return LicenseToken(
        jti=jti,
        kind=kind,  # type: ignore[arg-type]
        customer="acme",
        issuer=ISSUER,
        installation_id=INSTALLATION,
        kid="k1",
        issued_at=issued,
        expires_at=issued + timedelta(days=30) if kind == "trial" else None,
        edition=edition if kind in ("license", "trial") else None,
        seats=seats if kind != "renewal" else None,
        unlimited=unlimited,
        purchased_at=issued if kind in ("license", "addon") else None,
        lic=lic,
    )


def compute(tokens: list[LicenseToken], *, day: float = 0) -> Entitlement:
    return compute_entitlement(tokens, START + timedelta(days=day), LEEWAY)


# -- compute_entitlement: pure ---------------------------------------------------


def test_no_tokens_means_no_licence() -> None:
    entitlement = compute([])
    assert entitlement == NO_LICENSE
    assert not entitlement.valid
    assert entitlement.capacity == 0
    assert entitlement.reason == "no licence is installed"


@pytest.mark.parametrize("order", ["oldest-first", "newest-first"])
def test_licence_with_the_latest_iat_wins(order: str) -> None:
    """The vendor's latest word counts, even when it grants fewer seats."""
    old = token("license", "lic-old", day=0, seats=100, edition="enterprise")
    new = token("license", "lic-new", day=10, seats=30, edition="teamspace")
    tokens = [old, new] if order == "oldest-first" else [new, old]
    entitlement = compute(tokens, day=20)
    assert entitlement.valid
    assert entitlement.base == new
    assert entitlement.seats == 30
    assert entitlement.edition == "teamspace"
    assert entitlement.capacity == 30


def test_licences_issued_at_the_same_instant_resolve_the_same_way_in_any_order() -> None:
    a = token("license", "lic-a", seats=30)
    b = token("license", "lic-b", seats=40)
    assert compute([a, b]).base == compute([b, a]).base


def test_addons_add_seats_only_to_the_licence_they_name() -> None:
    base = token("license", "lic-1", seats=30)
    mine = [token("addon", "add-1", seats=5, lic="lic-1"), token("addon", "add-2", lic="lic-1")]
    other = token("addon", "add-x", seats=500, lic="lic-someone-else")
    entitlement = compute([base, *mine, other])
    assert entitlement.seats == 30 + 5 + 1
    assert entitlement.capacity == 36
    assert {a.jti for a in entitlement.addons} == {"add-1", "add-2"}
    assert set(entitlement.source_jtis) == {"lic-1", "add-1", "add-2"}


def test_addon_for_a_superseded_licence_does_not_count() -> None:
    old = token("license", "lic-old", day=0, seats=30)
    addon = token("addon", "add-old", day=1, seats=10, lic="lic-old")
    new = token("license", "lic-new", day=5, seats=50)
    before = compute([old, addon], day=2)
    assert before.seats == 40
    after = compute([old, addon, new], day=6)
    assert after.base == new
    assert after.addons == ()
    assert after.seats == 50
    assert "add-old" not in after.source_jtis


def test_addon_without_its_licence_grants_nothing() -> None:
    entitlement = compute([token("addon", "add-1", seats=100, lic="lic-1")])
    assert not entitlement.valid
    assert entitlement.capacity == 0


def test_renewal_adds_no_seats() -> None:
    base = token("license", "lic-1", seats=30)
    renewal = token("renewal", "ren-1", day=1, lic="lic-1")
    entitlement = compute([base, renewal], day=2)
    assert entitlement.base == base
    assert entitlement.seats == 30


def test_unlimited_licence_has_no_capacity() -> None:
    unlimited = token("license", "lic-big", seats=750, unlimited=True, edition="enterprise")
    entitlement = compute([unlimited, token("addon", "add-1", seats=5, lic="lic-big")])
    assert entitlement.valid
    assert entitlement.unlimited
    assert entitlement.capacity is None


def test_later_capped_licence_replaces_an_unlimited_one() -> None:
    unlimited = token("license", "lic-big", day=0, seats=750, unlimited=True)
    capped = token("license", "lic-small", day=1, seats=40)
    entitlement = compute([unlimited, capped], day=2)
    assert not entitlement.unlimited
    assert entitlement.capacity == 40


def test_trial_counts_when_there_is_no_licence() -> None:
    trial = token("trial", "trial-1")
    entitlement = compute([trial], day=1)
    assert entitlement.valid
    assert entitlement.trial
    assert entitlement.base == trial
    assert entitlement.capacity == 25
    assert entitlement.expires_at == START + timedelta(days=30) + LEEWAY


@pytest.mark.parametrize("trial_day", [-5, 5], ids=["trial-older", "trial-newer"])
def test_trial_is_ignored_once_a_licence_exists(trial_day: int) -> None:
    """A licence outranks a trial whatever their dates."""
    licence = token("license", "lic-1", day=0, seats=30, edition="teamspace")
    trial = token("trial", "trial-1", day=trial_day, edition="enterprise")
    entitlement = compute([trial, licence], day=6)
    assert entitlement.base == licence
    assert not entitlement.trial
    assert entitlement.edition == "teamspace"
    assert entitlement.capacity == 30
    assert entitlement.expires_at is None


def test_expired_trial_is_invalid_with_a_reason_naming_the_trial_end() -> None:
    trial = token("trial", "trial-1")  # ends 2026-04-01 09:00 UTC
    entitlement = compute([trial], day=31)
    assert not entitlement.valid
    assert entitlement.capacity == 0
    assert entitlement.reason == "the trial ended on 2026-04-01 09:00 UTC"


def test_latest_expired_trial_is_named() -> None:
    first = token("trial", "trial-1", day=0)
    second = token("trial", "trial-2", day=10)  # ends 2026-04-11
    entitlement = compute([second, first], day=45)
    assert not entitlement.valid
    assert entitlement.reason is not None
    assert "trial" in entitlement.reason
    assert "2026-04-11" in entitlement.reason


@pytest.mark.parametrize(
    ("day", "valid"),
    [(29, True), (30, True), (30 + 61 / 86_400, False), (31, False)],
    ids=["day-29", "at-exp-within-leeway", "just-past-leeway", "day-31"],
)
def test_trial_ends_after_30_days_and_the_leeway(day: float, valid: bool) -> None:
    assert compute([token("trial", "trial-1")], day=day).valid is valid


# -- the install path, on each database ------------------------------------------


Mint = Callable[..., str]


def snapshot(app: Core) -> dict[str, Any]:
    status = app.licensing.status()
    return {
        "stored": app.ledger.state(),
        "entitlement": status.entitlement,
        "tokens": [(t.jti, t.kind, t.installed_at, t.problem) for t in status.tokens],
        "holders": app.ledger.holders(),
    }


def assign(app: Core, logins: list[str]) -> None:
    for login in logins:
        app.ledger.assign(app.accounts.get(login).id, actor="test")


def test_installed_licence_with_latest_iat_wins_whatever_the_install_order(
    app: Core, mint: Mint, clock: FakeClock
) -> None:
    old = mint("license", seats=100, jti="lic-old", edition="enterprise")
    clock.advance(timedelta(days=1))
    new = mint("license", seats=30, jti="lic-new", edition="teamspace")
    app.licensing.install(new, actor="test")
    result = app.licensing.install(old, actor="test")  # installed last, issued first
    assert result.entitlement.base is not None
    assert result.entitlement.base.jti == "lic-new"
    status = app.licensing.status()
    assert status.seats_total == 30
    assert status.entitlement.edition == "teamspace"
    assert app.ledger.state().base_jti == "lic-new"
    assert app.ledger.state().seats_total == 30
    counted = {t.jti: t.jti in status.entitlement.source_jtis for t in status.tokens}
    assert counted == {"lic-new": True, "lic-old": False}


def test_installed_addons_count_only_for_the_current_licence(
    app: Core, mint: Mint, clock: FakeClock
) -> None:
    app.licensing.install(mint("license", seats=30, jti="lic-1"), actor="test")
    result = app.licensing.install(mint("addon", seats=5, lic="lic-1", jti="add-1"), actor="test")
    assert result.entitlement.seats == 35
    assert app.licensing.status().seats_total == 35
    assert app.ledger.state().seats_total == 35

    clock.advance(timedelta(days=1))
    app.licensing.install(mint("license", seats=40, jti="lic-2"), actor="test")
    status = app.licensing.status()
    assert status.seats_total == 40
    assert app.ledger.state().seats_total == 40
    assert status.entitlement.source_jtis == ("lic-2",)
    addon = next(t for t in status.tokens if t.jti == "add-1")
    assert addon.problem is None  # still a good token, just not counted
    assert addon.jti not in status.entitlement.source_jtis


def test_installed_unlimited_licence_has_no_seat_cap(app: Core, mint: Mint) -> None:
    app.licensing.install(mint("license", seats=750, unlimited=True), actor="test")
    logins = add_users(app, 30)
    assign(app, logins)  # more than any capped licence of 25 would allow
    status = app.licensing.status()
    assert status.valid
    assert status.entitlement.unlimited
    assert status.seats_total is None
    assert status.seats_free is None
    assert status.seats_used == 30
    state = app.ledger.state()
    assert state.unlimited
    assert state.capacity(app.clock.now()) is None


def test_installed_trial_counts_only_until_a_licence_arrives(
    app: Core, mint: Mint, clock: FakeClock
) -> None:
    app.licensing.install(mint("trial", jti="trial-1", edition="enterprise"), actor="test")
    status = app.licensing.status()
    assert status.valid
    assert status.entitlement.trial
    assert status.seats_total == 25
    assert status.entitlement.edition == "enterprise"

    clock.advance(timedelta(days=3))
    app.licensing.install(mint("license", seats=30, jti="lic-1", edition="teamspace"), actor="test")
    status = app.licensing.status()
    assert not status.entitlement.trial
    assert status.entitlement.edition == "teamspace"
    assert status.seats_total == 30
    assert status.entitlement.expires_at is None
    assert not app.ledger.state().trial


def test_trial_is_valid_on_day_29_and_invalid_on_day_31(
    app: Core, mint: Mint, clock: FakeClock
) -> None:
    app.licensing.install(mint("trial", jti="trial-1"), actor="test")
    logins = add_users(app, 3)
    assert all(app.gate.decide(login, f"{login}-pw").allowed for login in logins)

    clock.advance(timedelta(days=29))
    status = app.licensing.status()
    assert status.valid
    assert status.entitlement.trial
    assert status.seats_used == 3
    assert app.gate.decide(logins[0], f"{logins[0]}-pw").allowed

    clock.advance(timedelta(days=2))  # day 31
    status = app.licensing.status()
    assert not status.valid
    assert status.reason == "the trial ended on 2026-04-01 09:00 UTC"
    assert status.seats_total == 0
    state = app.ledger.state()
    assert not state.valid
    assert state.reason == status.reason
    # The entitlement shrank to nothing: every unpinned seat is released.
    assert app.ledger.used() == 0
    decision = app.gate.decide(logins[0], f"{logins[0]}-pw")
    assert not decision.allowed
    assert decision.reason is Reason.LICENSE_INVALID


@pytest.mark.parametrize("second", ["same-token", "re-signed-with-more-seats"])
def test_installing_the_same_jti_twice_is_refused_and_changes_nothing(
    app: Core, mint: Mint, clock: FakeClock, second: str
) -> None:
    first = mint("license", seats=30, jti="lic-1")
    app.licensing.install(first, actor="test")
    assign(app, add_users(app, 2))
    before = snapshot(app)

    clock.advance(timedelta(hours=1))
    again = first if second == "same-token" else mint("license", seats=500, jti="lic-1")
    with pytest.raises(TokenConflict) as caught:
        app.licensing.install(again, actor="test")
    assert "`lic-1`" in str(caught.value)
    assert "already installed" in str(caught.value)
    assert snapshot(app) == before
    assert app.licensing.status().seats_total == 30


# -- vendor key rotation -----------------------------------------------------------


@pytest.fixture
def second_key() -> VendorKey:
    return VendorKey(Ed25519PrivateKey.generate(), "k2")


def config_trusting(db_url: str, *keys: VendorKey) -> Config:
    base = make_config(db_url, keys[0])
    return Config(
        installation_id=base.installation_id,
        database_url=base.database_url,
        license=LicenseConfig(
            issuer=ISSUER,
            public_keys={key.kid: key.private_key.public_key() for key in keys},
            leeway_seconds=60,
        ),
        seats=base.seats,
        passwords=base.passwords,
    )


@pytest.fixture
def build(clock: FakeClock) -> Iterator[Callable[[Config], Core]]:
    built: list[Core] = []

    def _build(config: Config) -> Core:
        app = Core.build(config, clock=clock, check_schema=False)
        app.init_schema()
        built.append(app)
        return app

    yield _build
    for app in built:
        app.close()


def issue(key: VendorKey, kind: str, now: datetime, **claims: Any) -> str:
    claims.setdefault("installation_id", INSTALLATION)
    claims.setdefault("customer", "acme")
    if kind == "license":
        claims.setdefault("edition", "bizspace")
    return issue_token(key, kind=kind, now=now, **claims)


def test_tokens_from_every_trusted_key_verify(
    build: Callable[[Config], Core],
    db_url: str,
    vendor_key: VendorKey,
    second_key: VendorKey,
    clock: FakeClock,
) -> None:
    app = build(config_trusting(db_url, vendor_key, second_key))
    now = clock.now()
    app.licensing.install(issue(vendor_key, "license", now, seats=30, jti="lic-k1"), actor="t")
    app.licensing.install(
        issue(second_key, "addon", now, seats=5, lic="lic-k1", jti="add-k2"), actor="t"
    )
    status = app.licensing.status()
    assert status.seats_total == 35
    kids = {t.jti: t.token.kid for t in status.tokens if t.token is not None}
    assert kids == {"lic-k1": "k1", "add-k2": "k2"}
    assert all(t.problem is None for t in status.tokens)


def test_token_whose_key_was_removed_no_longer_counts_after_rebuild(
    build: Callable[[Config], Core],
    db_url: str,
    vendor_key: VendorKey,
    second_key: VendorKey,
    clock: FakeClock,
) -> None:
    both = build(config_trusting(db_url, vendor_key, second_key))
    older = issue(second_key, "license", clock.now(), seats=30, jti="lic-k2")
    clock.advance(timedelta(days=1))
    newer = issue(vendor_key, "license", clock.now(), seats=50, jti="lic-k1")
    both.licensing.install(older, actor="t")
    both.licensing.install(newer, actor="t")
    assert both.licensing.status().seats_total == 50

    only_k2 = build(config_trusting(db_url, second_key))
    status = only_k2.licensing.status()
    by_jti = {t.jti: t for t in status.tokens}
    assert set(by_jti) == {"lic-k1", "lic-k2"}  # still listed...
    removed = by_jti["lic-k1"]
    assert removed.token is None
    assert removed.problem is not None
    assert "`kid` is `k1`" in removed.problem
    assert "trusted vendor keys" in removed.problem
    assert by_jti["lic-k2"].problem is None
    # ...but no longer counted: the older licence signed with k2 is the base again.
    assert status.entitlement.source_jtis == ("lic-k2",)
    assert status.seats_total == 30
    with pytest.raises(UnknownKey):
        only_k2.licensing.verifier.verify(newer)


def test_start_with_a_key_removed_is_refused_until_init_applies_it(
    build: Callable[[Config], Core],
    db_url: str,
    vendor_key: VendorKey,
    second_key: VendorKey,
    clock: FakeClock,
) -> None:
    both = build(config_trusting(db_url, vendor_key, second_key))
    both.licensing.install(issue(vendor_key, "license", clock.now(), seats=50), actor="t")
    holders = add_users(both, 3)
    for login in holders:
        assert both.gate.decide(login, f"{login}-pw").allowed
    both.close()

    # A restart with k1 gone (a typo, or on purpose): starting is refused, nothing changes.
    with pytest.raises(ConfigError) as refused:
        Core.build(config_trusting(db_url, second_key), clock=clock)
    assert "no longer verifies" in str(refused.value)
    assert "seatgate init" in str(refused.value)
    again = Core.build(config_trusting(db_url, vendor_key, second_key), clock=clock)
    assert sorted(h.login for h in again.ledger.holders()) == holders
    again.close()

    # `seatgate init` applies the change on purpose: the k1 licence stops counting.
    only_k2 = Core.build(config_trusting(db_url, second_key), clock=clock, check_schema=False)
    try:
        only_k2.init_schema()
        assert not only_k2.ledger.state().is_valid(clock.now())
        decision = only_k2.gate.decide(holders[0], f"{holders[0]}-pw")
        assert decision.reason is Reason.LICENSE_INVALID
        restarted = Core.build(config_trusting(db_url, second_key), clock=clock)
        restarted.close()
    finally:
        only_k2.close()
