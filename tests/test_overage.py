"""The overage allowance signed by the vendor: the claim, the seat bound, status, usage, shrink.

On SQLite and PostgreSQL (the ``db_url`` fixture); the command line runs in-process
on the same database with the test's fake clock, the JSON API through the Flask
test client. Concurrent overage claims run in separate OS processes.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import jwt
import pytest
from click.testing import CliRunner
from sqlalchemy import select, update

from seatgate.app import Core
from seatgate.audit import log as audit
from seatgate.cli.main import cli
from seatgate.clock import FakeClock
from seatgate.config import load_config
from seatgate.errors import InvalidClaim, PinnedSeatsExceed
from seatgate.licensing.tokens import TokenVerifier
from seatgate.licensing.vendor import VendorError, VendorKey, generate_key, issue_token
from seatgate.storage import migrations
from seatgate.storage.schema import notify_events, seats
from tests import schema_history
from tests.conftest import INSTALLATION, ISSUER, add_users, write_config
from tests.seat_ops_support import Site, seats_section
from tests.test_concurrency import _run_children
from tests.web_support import ADMIN, ADMIN_PASSWORD, Web


@pytest.fixture
def overage_site(
    tmp_path: Path, db_url: str, vendor_key: VendorKey, clock: FakeClock, mint: Callable[..., str]
) -> Iterator[Callable[..., Site]]:
    built: list[Site] = []

    def _site(overage: str | None = "0.1", seat_count: int = 30, **options: Any) -> Site:
        """A licence of ``seat_count`` seats with ``overage`` (None: no claim)."""
        path = write_config(
            tmp_path / "seatgate.yaml", db_url, vendor_key, seats_section(**options)
        )
        made = Site(path, clock)
        built.append(made)
        share = None if overage is None else Decimal(overage)
        made.core.licensing.install(mint("license", seats=seat_count, overage=share), actor="t")
        return made

    yield _site
    for made in built:
        made.core.close()


# -- the claim ---------------------------------------------------------------------------------


def _verifier(key: VendorKey) -> TokenVerifier:
    return TokenVerifier(
        installation_id=INSTALLATION,
        issuer=ISSUER,
        public_keys={key.kid: key.private_key.public_key()},
        leeway_seconds=0,
        clock=FakeClock(datetime.now(UTC)),
    )


def _signed(key: VendorKey, **extra: Any) -> str:
    now = int(datetime.now(UTC).timestamp())
    claims = {
        "iss": ISSUER,
        "aud": INSTALLATION,
        "sub": "acme",
        "jti": "lic-x",
        "iat": now,
        "kind": "license",
        "edition": "bizspace",
        "seats": 30,
        "purchased_at": now,
        **extra,
    }
    return jwt.encode(claims, key.private_key, algorithm="EdDSA", headers={"kid": key.kid})


@pytest.mark.parametrize(
    ("value", "why"),
    [
        (0.51, "from 0 to 0.5"),
        (-0.1, "from 0 to 0.5"),
        ("0.1", "from 0 to 0.5"),
        (True, "from 0 to 0.5"),
        (1, "from 0 to 0.5"),
    ],
)
def test_verify_refuses_an_overage_out_of_range_naming_the_claim(
    vendor_key: VendorKey, value: object, why: str
) -> None:
    with pytest.raises(InvalidClaim, match=why) as caught:
        _verifier(vendor_key).verify(_signed(vendor_key, overage=value))
    assert "overage" in str(caught.value)


def test_verify_reads_the_share_exactly_and_refuses_it_on_an_unlimited_licence(
    vendor_key: VendorKey,
) -> None:
    token = _verifier(vendor_key).verify(_signed(vendor_key, overage=0.1))
    assert token.overage == Decimal("0.1")
    assert _verifier(vendor_key).verify(_signed(vendor_key)).overage is None
    with pytest.raises(InvalidClaim, match="unlimited licence has no seats to go beyond"):
        _verifier(vendor_key).verify(_signed(vendor_key, overage=0.1, unlimited=True))


def test_issue_refuses_overage_on_other_kinds_and_on_unlimited(vendor_key: VendorKey) -> None:
    base = {"installation_id": INSTALLATION, "customer": "acme", "now": datetime.now(UTC)}
    with pytest.raises(VendorError, match="only a `license` token"):
        issue_token(vendor_key, kind="addon", seats=5, lic="l1", overage=Decimal("0.1"), **base)
    with pytest.raises(VendorError, match="unlimited"):
        issue_token(
            vendor_key,
            kind="license",
            edition="bizspace",
            seats=30,
            unlimited=True,
            overage=Decimal("0.1"),
            **base,
        )


def test_vendor_issue_cli_takes_overage_and_refuses_a_bad_one(tmp_path: Path) -> None:
    key_path = tmp_path / "vendor.pem"
    key = generate_key(key_path)
    args = ["vendor", "issue", "license", "--key", str(key_path), "--installation"]
    args += [INSTALLATION, "--customer", "acme", "--edition", "bizspace", "--seats", "30"]
    good = CliRunner().invoke(cli, [*args, "--overage", "0.1"])
    assert good.exit_code == 0, good.output
    public = key.private_key.public_key()
    claims = jwt.decode(good.stdout.strip(), public, algorithms=["EdDSA"], audience=INSTALLATION)
    assert claims["overage"] == 0.1
    for bad in ("0.6", "-0.1", "ten", "nan"):
        refused = CliRunner().invoke(cli, [*args, "--overage", bad])
        assert refused.exit_code == 2
        assert "--overage" in refused.output and "from 0 to 0.5" in refused.output
    unlimited = CliRunner().invoke(cli, [*args, "--unlimited", "--overage", "0.1"])
    assert unlimited.exit_code == 2 and "overage" in unlimited.output


# -- claims beyond the seats -------------------------------------------------------------------


def test_claims_go_up_to_floor_of_seats_times_overage_each_audited(
    overage_site: Callable[..., Site],
) -> None:
    s = overage_site("0.1", seat_count=35)  # floor(35 x 0.1) = 3
    users = add_users(s.core, 40)
    results = [s.login(u) for u in users]
    assert results == [True] * 38 + [False] * 2
    assert s.core.ledger.used() == 38
    overage_events = s.events("seat.overage")
    assert sorted(e.subject or "" for e in overage_events) == users[35:38]
    assert {e.details["overage_used"] for e in overage_events} == {1, 2, 3}  # type: ignore[index]
    status = s.json("license", "status")
    assert (status["seats_total"], status["seats_used"], status["seats_free"]) == (35, 38, 0)
    assert (status["overage_allowed"], status["overage_used"]) == (3, 3)
    assert status["tokens"][0]["overage"] == 0.1
    text = s.run("license", "status").stdout
    assert "overage:   3 used of 3 allowed" in text
    (month,) = s.json("license", "usage")
    assert (month["peak_seats"], month["seats_total"], month["overage_peak"]) == (38, 35, 3)
    assert "OVERAGE PEAK" in s.run("license", "usage").stdout
    metrics = s.run("metrics").stdout
    assert "seatgate_seats_overage_allowed 3\n" in metrics
    assert "seatgate_seats_overage_used 3\n" in metrics
    # The admins are told, with the claims: one alert per number of seats over (and day).
    alerts = s.core.db.read(
        lambda c: (
            c.execute(select(notify_events.c.data).where(notify_events.c.kind == "seats.overage"))
            .scalars()
            .all()
        )
    )
    assert sorted(json.loads(data)["over"] for data in alerts) == [1, 2, 3]


def test_without_the_claim_nothing_changes(overage_site: Callable[..., Site]) -> None:
    s = overage_site(None, seat_count=25)
    users = add_users(s.core, 26)
    assert [s.login(u) for u in users] == [True] * 25 + [False]
    assert s.events("seat.overage") == []
    status = s.json("license", "status")
    assert (status["overage_allowed"], status["overage_used"]) == (0, 0)
    assert "overage" not in s.run("license", "status").stdout
    assert s.json("license", "usage")[0]["overage_peak"] == 0


def test_the_peak_overage_stays_for_the_true_up_after_seats_are_released(
    overage_site: Callable[..., Site], clock: FakeClock
) -> None:
    s = overage_site("0.2", seat_count=25)  # 5 beyond
    users = add_users(s.core, 29)
    assert all(s.login(u) for u in users)
    for login in users[:10]:
        s.core.ledger.revoke(s.core.accounts.get(login).id, actor="test")
    assert s.json("license", "status")["overage_used"] == 0
    clock.advance(timedelta(days=40))
    first, second = s.json("license", "usage")
    assert (first["peak_seats"], first["overage_peak"]) == (29, 4)
    assert (second["peak_seats"], second["overage_peak"]) == (19, 0)


def test_an_idle_seat_is_reclaimed_before_an_overage_seat_is_used(
    overage_site: Callable[..., Site], clock: FakeClock
) -> None:
    s = overage_site("0.1", seat_count=30, reclaim_idle_days=30, reclaim_on_demand=True)
    users = add_users(s.core, 33)
    assert all(s.login(u) for u in users[:30])
    clock.advance(timedelta(days=31))
    assert all(s.login(u) for u in users[1:30])  # user000 is now the only idle seat
    assert s.login(users[30])  # takes the idle seat: no overage
    assert [e.subject for e in s.events("seat.reclaimed")] == [users[0]]
    assert s.events("seat.overage") == []
    assert s.login(users[31]) and s.login(users[32])  # nothing idle: overage
    assert sorted(e.subject or "" for e in s.events("seat.overage")) == users[31:33]
    assert s.json("license", "status")["overage_used"] == 2


def test_the_admins_reserve_sits_at_the_top_of_the_allowance(
    overage_site: Callable[..., Site],
) -> None:
    s = overage_site("0.1", seat_count=30, reserved_for_admins=2)  # limit 33
    users = add_users(s.core, 33)
    admins = add_users(s.core, 3, prefix="boss", admin=True)
    assert [s.login(u) for u in users] == [True] * 31 + [False] * 2
    assert [s.login(a) for a in admins] == [True, True, False]
    assert s.core.ledger.used() == 33


def test_admin_assigns_and_directory_grants_stay_within_the_entitled_seats(
    overage_site: Callable[..., Site],
) -> None:
    s = overage_site("0.2", seat_count=25)
    users = add_users(s.core, 26)
    assert all(s.login(u) for u in users[:25])
    refused = s.run("seats", "assign", users[25])
    assert refused.exit_code == 1, refused.output
    assert s.login(users[25])  # a first login may use the overage


# -- a smaller licence ---------------------------------------------------------------------------


def test_a_licence_with_less_overage_releases_the_seats_beyond_it(
    overage_site: Callable[..., Site], mint: Callable[..., str], clock: FakeClock
) -> None:
    s = overage_site("0.2", seat_count=25)  # 30 may be held
    users = add_users(s.core, 30)
    assert all(s.login(u) for u in users)
    clock.advance(timedelta(minutes=1))
    assert all(s.login(u) for u in users[:27])  # users[27:] least recently used
    smaller = mint("license", seats=25, overage=Decimal("0.1"), jti="lic-smaller")  # floor(2.5)
    released = s.core.licensing.install(smaller, actor="test").released
    assert sorted(released) == users[27:]
    status = s.json("license", "status")
    assert (status["seats_used"], status["overage_allowed"], status["overage_used"]) == (27, 2, 2)
    assert not s.login(users[28])
    (changed,) = s.events("license.changed")[:1]
    assert changed.details["after"]["overage_seats"] == 2  # type: ignore[index]


def test_a_licence_change_refuses_to_release_pinned_seats_in_overage(
    overage_site: Callable[..., Site], mint: Callable[..., str], clock: FakeClock
) -> None:
    s = overage_site("0.2", seat_count=25)
    users = add_users(s.core, 30)
    assert all(s.login(u) for u in users)
    for login in users:
        assert s.run("seats", "pin", login).exit_code == 0
    clock.advance(timedelta(minutes=1))
    with pytest.raises(PinnedSeatsExceed):
        s.core.licensing.install(mint("license", seats=25, jti="lic-none"), actor="test")
    assert s.core.ledger.used() == 30
    assert s.core.ledger.state().overage_seats == 5


# -- the JSON API --------------------------------------------------------------------------------


def test_api_license_reports_overage(
    make_web: Callable[..., Web], mint: Callable[..., str]
) -> None:
    web = make_web(licence=False, users=27)
    web.core.licensing.install(mint("license", seats=25, overage=Decimal("0.1")), actor="t")
    for login in web.users:
        web.core.gate.decide(login, f"{login}-pw")
    client = web.client()
    assert web.api_login(client, ADMIN, ADMIN_PASSWORD).status_code == 403  # 2 over: all full
    web.core.ledger.revoke(web.core.accounts.get(web.users[0]).id, actor="test")
    assert web.api_login(client, ADMIN, ADMIN_PASSWORD).status_code == 200
    body = client.get("/api/license").get_json()
    assert (body["seats_total"], body["seats_used"]) == (25, 27)
    assert (body["overage_allowed"], body["overage_used"]) == (2, 2)
    seats_body = client.get("/api/seats").get_json()
    assert (seats_body["overage_allowed"], seats_body["overage_used"]) == (2, 2)
    page = web.admin_client().get("/admin").get_data(as_text=True)
    assert '<dd id="seats-overage">2 of 2</dd>' in page


# -- many processes at once ---------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("repeat", range(2))
def test_concurrent_overage_claims_never_exceed_seats_plus_overage(
    tmp_path: Path, db_url: str, vendor_key: VendorKey, repeat: int
) -> None:
    config_path = write_config(tmp_path / "seatgate.yaml", db_url, vendor_key)
    app = Core.build(load_config(config_path), check_schema=False)
    app.init_schema()
    try:
        token = issue_token(
            vendor_key,
            kind="license",
            installation_id=INSTALLATION,
            customer="acme",
            now=datetime.now(UTC),
            edition="bizspace",
            seats=25,
            overage=Decimal("0.2"),
        )
        app.licensing.install(token, actor="test")
        # 20 entitled seats already held: 5 free, 5 in overage, 40 first logins race.
        held = add_users(app, 20, prefix="held")
        for login in held:
            app.ledger.assign(app.accounts.get(login).id, actor="test")
        long_ago = datetime.now(UTC) - timedelta(days=1)
        app.db.write(lambda c: c.execute(update(seats).values(last_used_at=long_ago)))
        fresh = add_users(app, 40, prefix="new")

        outcomes = _run_children(
            config_path, [[(u, f"{u}-pw") for u in fresh[i::8]] for i in range(8)]
        )

        assert [e for o in outcomes for e in o.errors] == []
        decisions = [d for o in outcomes for d in o.decisions]
        allowed = {d[0] for d in decisions if d[1]}
        assert len(allowed) == 10
        assert sorted(d[2] for d in decisions if not d[1]) == ["no_seat_available"] * 30
        assert app.ledger.used() == 30
        overage = app.db.read(lambda c: audit.recent(c, limit=1000, action="seat.overage"))
        assert len(overage) == 5
        assert {e.subject for e in overage} <= allowed
        assert sorted(e.details["overage_used"] for e in overage) == [1, 2, 3, 4, 5]  # type: ignore[index]
    finally:
        app.close()


# -- the schema ------------------------------------------------------------------------------


def test_init_upgrades_a_version_8_database_then_a_licence_with_overage_applies(
    overage_site: Callable[..., Site], mint: Callable[..., str], clock: FakeClock
) -> None:
    s = overage_site(None, seat_count=25)
    users = add_users(s.core, 27)
    assert all(s.login(u) for u in users[:25])
    s.core.db.engine.dispose()
    with s.core.db.engine.begin() as conn:
        schema_history.back_to_version_8(conn)
    assert s.core.db.read(migrations.current_version) == 8
    stale = s.run("license", "status")
    assert stale.exit_code == 2 and "seatgate init" in stale.stderr

    result = s.run("init")
    assert result.exit_code == 0, result.output
    assert f"from version 8 to {migrations.SCHEMA_VERSION}" in result.stdout
    assert s.core.ledger.used() == 25
    status = s.json("license", "status")
    assert (status["overage_allowed"], status["overage_used"]) == (0, 0)
    assert s.json("license", "usage")[0]["overage_peak"] == 0
    assert not s.login(users[25])

    clock.advance(timedelta(minutes=1))
    s.core.licensing.install(mint("license", seats=25, overage=Decimal("0.1")), actor="t")
    assert s.login(users[25]) and s.login(users[26])
    assert s.json("license", "usage")[0]["overage_peak"] == 2
