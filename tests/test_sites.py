"""Licensed sites: the `sites` claim, `site` tokens, the entitlement's sites, status and quotes.

Host names in their canonical form, tokens verified and refused by name, the
vendor's and the installation's command lines on SQLite and PostgreSQL, and
renewal quotes that never count a site's price.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import jwt
import pytest
from click.testing import CliRunner, Result
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from seatgate.app import Core
from seatgate.audit import log as audit
from seatgate.cli.main import cli
from seatgate.clock import FakeClock
from seatgate.errors import BadSignature, InvalidClaim, MissingClaim, TokenConflict
from seatgate.licensing.sites import BadHost, canonical_host, request_host
from seatgate.licensing.vendor import VendorError, VendorKey
from seatgate.reports.documents import status_json
from tests.conftest import INSTALLATION, write_config

Mint = Callable[..., str]
PRICE = (Decimal("1990.00"), "USD")


# -- host names -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("typed", "canonical"),
    [
        ("portal.example.com", "portal.example.com"),
        ("Portal.EXAMPLE.com", "portal.example.com"),
        ("portal.example.com.", "portal.example.com"),
        (" intranet ", "intranet"),
        ("bücher.example", "xn--bcher-kva.example"),
        ("xn--bcher-kva.example", "xn--bcher-kva.example"),
    ],
)
def test_a_typed_host_name_is_put_in_canonical_form(typed: str, canonical: str) -> None:
    assert canonical_host(typed) == canonical


@pytest.mark.parametrize(
    ("typed", "why"),
    [
        ("", "empty"),
        ("*.example.com", "wildcards"),
        ("portal.example.com:8443", "without a port"),
        ("https://portal.example.com", "without a port, scheme or path"),
        ("10.0.0.5", "an address"),
        ("under_score.example", "not a valid host name"),
        ("-bad.example", "not a valid host name"),
        ("a" * 64 + ".example", "not a valid host name"),
        ("localhost", "this machine's own name"),
    ],
)
def test_a_host_that_cannot_be_a_site_is_refused_saying_why(typed: str, why: str) -> None:
    with pytest.raises(BadHost, match=why):
        canonical_host(typed)


@pytest.mark.parametrize(
    ("header", "host"),
    [
        ("Portal.Example.COM", "portal.example.com"),
        ("portal.example.com:8443", "portal.example.com"),
        ("portal.example.com.", "portal.example.com"),
        ("PORTAL.example.com.:443", "portal.example.com"),
        ("[::1]:8080", "::1"),
        ("127.0.0.1:5000", "127.0.0.1"),
        ("bücher.example", "xn--bcher-kva.example"),
        ("", None),
        ("[::1", None),
    ],
)
def test_a_request_host_is_compared_without_port_case_or_trailing_dot(
    header: str, host: str | None
) -> None:
    assert request_host(header) == host


# -- tokens -----------------------------------------------------------------------


def test_the_vendor_issues_sites_in_canonical_form(mint: Mint, app: Core) -> None:
    licence = mint("license", jti="L", sites=("Portal.Example.com", "bücher.example."))
    site = mint("site", jti="S", lic="L", host="PORTAL2.example.com")
    assert jwt.decode(licence, options={"verify_signature": False})["sites"] == [
        "portal.example.com",
        "xn--bcher-kva.example",
    ]
    assert app.licensing.verifier.verify(site).host == "portal2.example.com"


@pytest.mark.parametrize(
    ("kind", "options", "message"),
    [
        ("site", {"lic": "L", "host": "*.example.com"}, "wildcards"),
        ("site", {"lic": "L", "host": "portal:80"}, "port"),
        ("site", {"lic": "L"}, "claim `host` is missing"),
        ("site", {"host": "a.example.com"}, "claim `lic` is missing"),
        ("addon", {"lic": "L", "seats": 1, "sites": ("a.example.com",)}, "only a `license`"),
        ("license", {"host": "a.example.com"}, "only a `site` token has a host"),
    ],
)
def test_the_vendor_refuses_a_bad_site_token(
    mint: Mint, kind: str, options: dict[str, Any], message: str
) -> None:
    with pytest.raises(VendorError, match=message):
        mint(kind, **options)


def _forge(vendor_key: VendorKey, mint: Mint, kind: str, **changes: Any) -> str:
    """A token the vendor's key really signed, with claims the vendor would not write."""
    base = mint(kind, lic="L", host="a.example.com") if kind == "site" else mint(kind)
    claims = {**jwt.decode(base, options={"verify_signature": False}), **changes}
    return jwt.encode(claims, vendor_key.private_key, algorithm="EdDSA", headers={"kid": "k1"})


@pytest.mark.parametrize(
    ("kind", "changes", "claim"),
    [
        ("site", {"host": "Portal.example.com"}, "host"),
        ("site", {"host": "portal.example.com."}, "host"),
        ("site", {"host": "portal.example.com:443"}, "host"),
        ("site", {"host": "*.example.com"}, "host"),
        ("site", {"host": ["a.example.com"]}, "host"),
        ("license", {"sites": "a.example.com"}, "sites"),
        ("license", {"sites": ["a.example.com", "a.example.com"]}, "sites"),
        ("license", {"sites": ["A.example.com"]}, "sites"),
        ("license", {"sites": ["192.0.2.1"]}, "sites"),
        ("license", {"sites": [f"h{i}.example" for i in range(101)]}, "sites"),
    ],
)
def test_a_signed_token_with_a_bad_site_is_refused_naming_the_claim(
    app: Core, vendor_key: VendorKey, mint: Mint, kind: str, changes: dict[str, Any], claim: str
) -> None:
    with pytest.raises(InvalidClaim) as refused:
        app.licensing.verifier.verify(_forge(vendor_key, mint, kind, **changes))
    assert refused.value.claim == claim


def test_a_site_token_without_a_host_is_refused(
    app: Core, vendor_key: VendorKey, mint: Mint
) -> None:
    token = _forge(vendor_key, mint, "site", host=None)
    with pytest.raises(MissingClaim):
        app.licensing.verifier.verify(token)


def test_a_tampered_site_token_is_refused_and_changes_nothing(app: Core, mint: Mint) -> None:
    app.licensing.install(mint("license", jti="L"), actor="t")
    header, payload, signature = mint("site", jti="S", lic="L", host="a.example.com").split(".")
    claims = json.loads(jwt.utils.base64url_decode(payload))
    claims["host"] = "evil.example.com"
    forged_payload = jwt.utils.base64url_encode(json.dumps(claims).encode()).decode()
    with pytest.raises(BadSignature):
        app.licensing.install(f"{header}.{forged_payload}.{signature}", actor="t")
    assert status_json(app.licensing.status())["sites"] == []


def test_a_site_token_for_another_licence_is_refused_or_does_not_count(
    app: Core, mint: Mint, clock: FakeClock
) -> None:
    with pytest.raises(TokenConflict, match="install that licence first"):
        app.licensing.install(mint("site", jti="S0", lic="L", host="a.example.com"), actor="t")
    app.licensing.install(mint("license", jti="L", sites=("portal.example.com",)), actor="t")
    with pytest.raises(TokenConflict, match="not installed here"):
        app.licensing.install(mint("site", jti="S1", lic="X", host="b.example.com"), actor="t")
    app.licensing.install(mint("site", jti="S2", lic="L", host="b.example.com"), actor="t")
    assert app.licensed_sites() == {"portal.example.com", "b.example.com"}
    # A newer licence is the base: the older licence's site token stops counting.
    clock.advance(timedelta(minutes=1))
    app.licensing.install(mint("license", jti="L2", sites=("new.example.com",)), actor="t")
    doc = status_json(app.licensing.status())
    assert doc["sites"] == ["new.example.com"]
    assert {t["jti"]: t["counted"] for t in doc["tokens"]}["S2"] is False
    assert app.licensed_sites() == {"new.example.com"}


def test_a_trial_names_no_site(app: Core, mint: Mint) -> None:
    app.licensing.install(mint("trial"), actor="t")
    assert status_json(app.licensing.status())["sites"] == []
    assert app.licensed_sites() == frozenset()


def test_site_changes_are_audited(app: Core, mint: Mint) -> None:
    app.licensing.install(mint("license", jti="L", sites=("a.example.com",)), actor="t")
    app.licensing.install(mint("site", jti="S", lic="L", host="b.example.com"), actor="t")
    app.licensing.remove("S", actor="admin")
    events = app.db.read(lambda c: audit.recent(c, limit=10, action="license.sites_changed"))
    changes = [(e.actor, e.details["before"], e.details["after"]) for e in reversed(events)]
    assert changes == [
        ("t", [], ["a.example.com"]),
        ("t", ["a.example.com"], ["a.example.com", "b.example.com"]),
        ("admin", ["a.example.com", "b.example.com"], ["a.example.com"]),
    ]


# -- renewal quotes never count a site --------------------------------------------


def test_renewal_quotes_apply_to_the_licence_and_add_ons_never_to_sites(
    app: Core, mint: Mint
) -> None:
    app.licensing.install(mint("license", jti="L", price=PRICE), actor="t")
    app.licensing.install(
        mint("addon", jti="A", lic="L", seats=5, price=(Decimal("80.00"), "USD")), actor="t"
    )
    app.licensing.install(
        mint("site", jti="S", lic="L", host="b.example.com", price=(Decimal("500.00"), "USD")),
        actor="t",
    )
    tokens = {t["jti"]: t for t in status_json(app.licensing.status())["tokens"]}
    assert tokens["S"]["price"] == {"amount": "500.00", "currency": "USD"}
    assert tokens["S"]["renewal"] is None and tokens["S"]["updates_until"] is None
    quoted = [t["renewal"]["amount"] for t in tokens.values() if t["renewal"] is not None]
    # 22 % of 1990.00 + 80.00, and nothing of the site's 500.00.
    assert sorted(quoted) == ["17.60", "437.80"]
    assert sum(Decimal(a) for a in quoted) == (Decimal("2070.00") * Decimal("0.22"))
    # No renewal coupon can name a site either.
    with pytest.raises(TokenConflict, match="not an installed licence or add-on"):
        app.licensing.install(mint("renewal", jti="R", lic="S"), actor="t")


def test_the_late_rate_also_leaves_sites_out(app: Core, mint: Mint, clock: FakeClock) -> None:
    app.licensing.install(mint("license", jti="L", price=PRICE), actor="t")
    app.licensing.install(
        mint("site", jti="S", lic="L", host="b.example.com", price=(Decimal("500.00"), "USD")),
        actor="t",
    )
    clock.advance(timedelta(days=400))
    tokens = {t["jti"]: t for t in status_json(app.licensing.status())["tokens"]}
    assert tokens["L"]["renewal"]["rate"] == 0.6 and tokens["L"]["renewal"]["amount"] == "1194.00"
    assert tokens["S"]["renewal"] is None


# -- the command lines, on SQLite and PostgreSQL -----------------------------------


def _cli(config: Path) -> Callable[..., Result]:
    """The installation's command line, on the system clock (the vendor's tokens use it too)."""
    runner = CliRunner()

    def run(*args: str | Path) -> Result:
        return runner.invoke(cli, ["--config", str(config), *map(str, args)])

    return run


def _vendor(key: Path, kind: str, *options: str) -> Result:
    return CliRunner().invoke(
        cli,
        ["vendor", "issue", kind, "--key", str(key), "--installation", INSTALLATION,
         "--customer", "acme", *options],
    )  # fmt: skip


@pytest.fixture
def vendor_pem(tmp_path: Path) -> Path:
    key = tmp_path / "vendor" / "k1.pem"
    key.parent.mkdir()
    assert CliRunner().invoke(cli, ["vendor", "keygen", "--out", str(key)]).exit_code == 0
    return key


def test_issue_install_and_status_through_the_command_lines(
    tmp_path: Path, db_url: str, vendor_pem: Path
) -> None:
    private = load_pem_private_key(vendor_pem.read_bytes(), password=None)
    key = VendorKey(private, "k1")  # type: ignore[arg-type]
    run = _cli(write_config(tmp_path / "seatgate.yaml", db_url, key))
    assert run("init").exit_code == 0

    licence = _vendor(vendor_pem, "license", "--edition", "bizspace", "--seats", "25",
                      "--jti", "L", "--site", "Portal.Example.com", "--price", "1990",
                      "--currency", "USD")  # fmt: skip
    assert licence.exit_code == 0, licence.output
    site = _vendor(vendor_pem, "site", "--lic", "L", "--host", "portal2.example.com",
                   "--price", "500", "--currency", "USD", "--jti", "S")  # fmt: skip
    assert site.exit_code == 0, site.output
    bad = _vendor(vendor_pem, "site", "--lic", "L", "--host", "*.example.com")
    assert bad.exit_code == 2 and "wildcards are not allowed" in bad.output
    (tmp_path / "l.jwt").write_text(licence.stdout, encoding="ascii")
    (tmp_path / "s.jwt").write_text(site.stdout, encoding="ascii")

    early = run("license", "install", tmp_path / "s.jwt")
    assert early.exit_code == 1 and "install that licence first" in early.output
    assert run("license", "install", tmp_path / "l.jwt").exit_code == 0
    installed = run("license", "install", tmp_path / "s.jwt")
    assert installed.exit_code == 0, installed.output
    assert "installed site `S` for portal2.example.com" in installed.output

    doc = json.loads(run("license", "status", "--json").stdout)
    assert doc["sites"] == ["portal.example.com", "portal2.example.com"]
    tokens = {t["jti"]: t for t in doc["tokens"]}
    assert tokens["L"]["sites"] == ["portal.example.com"]
    assert tokens["S"]["host"] == "portal2.example.com" and tokens["S"]["counted"] is True
    assert tokens["S"]["price"] == {"amount": "500.00", "currency": "USD"}
    assert tokens["S"]["renewal"] is None
    assert tokens["L"]["renewal"]["amount"] == "437.80"

    text = run("license", "status").output
    assert "sites:     portal.example.com, portal2.example.com" in text
    assert "site portal2.example.com, price 500.00 USD, not renewed" in text
    assert "22% = 437.80 USD" in text

    removed = run("license", "remove", "S")
    assert removed.exit_code == 0 and "removed site `S`" in removed.output
    assert json.loads(run("license", "status", "--json").stdout)["sites"] == ["portal.example.com"]
