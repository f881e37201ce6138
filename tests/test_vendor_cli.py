"""The vendor's command line end to end: keygen, issue, and an installation that installs.

Everything goes through ``seatgate`` (click's CliRunner): the vendor makes a
key and issues tokens; an installation configured by a YAML file that names
the public key file by a relative path runs ``init``, ``license install``
and ``license status --json``.
"""

from __future__ import annotations

import json
import os
import stat
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import jwt
import pytest
from click.testing import CliRunner, Result
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from seatgate.cli.main import cli
from seatgate.clock import FakeClock
from seatgate.config import DEFAULT_ISSUER
from seatgate.errors import MissingClaim
from seatgate.licensing.kinds import KINDS, RULES, Kind
from seatgate.licensing.tokens import TokenVerifier
from seatgate.licensing.vendor import VendorKey, issue_token

INSTALLATION = "intranet.example.com"


def run(*args: str | Path, input: str | None = None) -> Result:
    return CliRunner().invoke(cli, [str(a) for a in args], input=input)


def ok(*args: str | Path, input: str | None = None) -> Result:
    result = run(*args, input=input)
    assert result.exit_code == 0, (result.exit_code, result.stdout, result.stderr)
    return result


@pytest.fixture
def vendor_dir(tmp_path: Path) -> Path:
    path = tmp_path / "vendor"
    path.mkdir()
    return path


@pytest.fixture
def k1(vendor_dir: Path) -> Path:
    """A vendor key made with `vendor keygen --kid k1`; returns the private key path."""
    key = vendor_dir / "vendor-k1.pem"
    ok("vendor", "keygen", "--out", key, "--kid", "k1")
    return key


def installation(tmp_path: Path, public_key: Path, kid: str = "k1", name: str = "site") -> Path:
    """An installation folder with seatgate.yaml and a copy of the public key; returns the YAML."""
    folder = tmp_path / name
    folder.mkdir()
    (folder / public_key.name).write_bytes(public_key.read_bytes())
    config = folder / "seatgate.yaml"
    config.write_text(
        f"installation_id: {INSTALLATION}\n"
        "database_url: sqlite:///seatgate.db\n"
        "license:\n"
        "  issuer: seatgate-vendor\n"
        "  public_keys:\n"
        f"    {kid}: {public_key.name}\n"
        # Cheap argon2id: every command builds the app, which hashes a dummy password.
        "passwords:\n"
        "  argon2_time_cost: 1\n"
        "  argon2_memory_kib: 1024\n"
        "  argon2_parallelism: 1\n",
        encoding="utf-8",
    )
    ok("--config", config, "init")
    return config


def issue(key: Path, kind: str, *options: str) -> str:
    result = ok(
        "vendor",
        "issue",
        kind,
        "--key",
        key,
        "--installation",
        INSTALLATION,
        "--customer",
        "acme",
        *options,
    )
    token = result.stdout.strip()
    assert token.count(".") == 2
    assert "\n" not in token
    return token


def status(config: Path) -> dict[str, Any]:
    result = run("--config", config, "license", "status", "--json")
    document: dict[str, Any] = json.loads(result.stdout)
    assert result.exit_code == (0 if document["valid"] else 1), result.stderr
    return document


# -- keygen ----------------------------------------------------------------------


def test_keygen_writes_a_private_key_readable_only_by_its_owner_and_the_public_key(
    vendor_dir: Path,
) -> None:
    key = vendor_dir / "vendor-k1.pem"
    result = ok("vendor", "keygen", "--out", key, "--kid", "k1")

    private = load_pem_private_key(key.read_bytes(), password=None)
    assert isinstance(private, Ed25519PrivateKey)
    assert stat.S_IMODE(os.stat(key).st_mode) == 0o600

    public = vendor_dir / "vendor-k1.pub.pem"
    lines = public.read_text(encoding="ascii").splitlines()
    assert lines[0] == "kid: k1"
    assert lines[1] == "-----BEGIN PUBLIC KEY-----"
    assert lines[-1] == "-----END PUBLIC KEY-----"

    assert "kid: k1" in result.stdout
    printed = [line.strip() for line in result.stdout.splitlines()]
    for pem_line in lines[1:]:
        assert pem_line in printed
    assert "PRIVATE" not in result.stdout


@pytest.mark.parametrize("existing", ["private", "public", "both"])
def test_keygen_refuses_to_overwrite_a_key(vendor_dir: Path, existing: str) -> None:
    key = vendor_dir / "vendor-k1.pem"
    public = vendor_dir / "vendor-k1.pub.pem"
    ok("vendor", "keygen", "--out", key, "--kid", "k1")
    if existing == "private":
        public.unlink()
    elif existing == "public":
        key.unlink()
    before = {p.name: p.read_bytes() for p in vendor_dir.iterdir()}

    result = run("vendor", "keygen", "--out", key, "--kid", "k1")

    assert result.exit_code == 1
    assert "already exists" in result.stderr
    assert "refusing to overwrite" in result.stderr
    assert {p.name: p.read_bytes() for p in vendor_dir.iterdir()} == before


# -- issue and install -------------------------------------------------------------


def test_issued_licence_is_accepted_by_an_installation(tmp_path: Path, k1: Path) -> None:
    token = issue(
        k1,
        "license",
        "--edition",
        "bizspace",
        "--seats",
        "30",
        "--purchased",
        "2026-01-15",
        "--price",
        "1990.00",
        "--currency",
        "USD",
    )
    assert jwt.get_unverified_header(token) == {"alg": "EdDSA", "kid": "k1", "typ": "JWT"}
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["purchased_at"] == int(datetime(2026, 1, 15, tzinfo=UTC).timestamp())
    assert claims["price"] == {"amount": "1990.00", "currency": "USD"}

    config = installation(tmp_path, k1.with_name("vendor-k1.pub.pem"))
    result = ok("--config", config, "license", "install", "-", input=token + "\n")
    assert "installed license" in result.stdout
    assert "entitlement: bizspace licence, 30 seats" in result.stdout

    document = status(config)
    assert document["valid"] is True
    assert document["seats_total"] == 30
    assert document["edition"] == "bizspace"
    assert document["unlimited"] is False
    assert document["trial"] is False
    assert document["seats_used"] == 0
    assert [(t["jti"], t["kind"], t["counted"]) for t in document["tokens"]] == [
        (claims["jti"], "license", True)
    ]


def test_issuing_a_licence_with_24_seats_is_a_usage_error(k1: Path) -> None:
    result = run(
        "vendor",
        "issue",
        "license",
        "--key",
        k1,
        "--installation",
        INSTALLATION,
        "--customer",
        "acme",
        "--edition",
        "bizspace",
        "--seats",
        "24",
    )
    assert result.exit_code == 2
    assert "claim `seats` is `24`" in result.stderr
    assert "at least 25" in result.stderr
    assert result.stdout == ""


def test_kid_is_read_from_the_companion_public_key_file(tmp_path: Path, vendor_dir: Path) -> None:
    key = vendor_dir / "vendor-k7.pem"
    ok("vendor", "keygen", "--out", key, "--kid", "k7")

    token = issue(key, "license", "--edition", "teamspace", "--seats", "25")
    assert jwt.get_unverified_header(token)["kid"] == "k7"

    overridden = issue(key, "license", "--edition", "teamspace", "--seats", "25", "--kid", "k8")
    assert jwt.get_unverified_header(overridden)["kid"] == "k8"

    config = installation(tmp_path, key.with_name("vendor-k7.pub.pem"), kid="k7")
    ok("--config", config, "license", "install", "-", input=token)
    assert status(config)["edition"] == "teamspace"
    refused = run("--config", config, "license", "install", "-", input=overridden)
    assert refused.exit_code == 1
    assert "`kid` is `k8`" in refused.stderr


def test_kid_defaults_to_k1_without_a_companion_file(vendor_dir: Path) -> None:
    key = vendor_dir / "vendor-k5.pem"
    ok("vendor", "keygen", "--out", key, "--kid", "k5")
    key.with_name("vendor-k5.pub.pem").unlink()
    token = issue(key, "license", "--edition", "bizspace", "--seats", "25")
    assert jwt.get_unverified_header(token)["kid"] == "k1"


def test_addon_and_renewal_issue_and_install(tmp_path: Path, k1: Path) -> None:
    config = installation(tmp_path, k1.with_name("vendor-k1.pub.pem"))
    licence = issue(k1, "license", "--edition", "enterprise", "--seats", "30", "--jti", "lic-1")
    addon = issue(
        k1, "addon", "--lic", "lic-1", "--seats", "5", "--price", "79.00", "--currency", "EUR"
    )
    renewal = issue(k1, "renewal", "--lic", "lic-1", "--jti", "ren-1")
    assert jwt.decode(addon, options={"verify_signature": False})["lic"] == "lic-1"

    ok("--config", config, "license", "install", "-", input=licence)
    addon_file = tmp_path / "addon.jwt"
    addon_file.write_text(addon + "\n", encoding="utf-8")
    result = ok("--config", config, "license", "install", addon_file)
    assert "entitlement: enterprise licence, 35 seats" in result.stdout
    ok("--config", config, "license", "install", "-", input=renewal)

    document = status(config)
    assert document["valid"] is True
    assert document["seats_total"] == 35
    assert document["edition"] == "enterprise"
    tokens = {t["kind"]: t for t in document["tokens"]}
    assert set(tokens) == {"license", "addon", "renewal"}
    assert tokens["addon"]["seats"] == 5
    assert tokens["addon"]["lic"] == "lic-1"
    assert tokens["addon"]["counted"] is True
    assert tokens["renewal"]["lic"] == "lic-1"
    assert all(t["problem"] is None for t in document["tokens"])


def test_addon_before_its_licence_is_refused(tmp_path: Path, k1: Path) -> None:
    config = installation(tmp_path, k1.with_name("vendor-k1.pub.pem"))
    addon = issue(k1, "addon", "--lic", "lic-1", "--seats", "5")
    result = run("--config", config, "license", "install", "-", input=addon)
    assert result.exit_code == 1
    assert "licence token rejected" in result.stderr
    assert "install that licence first" in result.stderr
    assert status(config)["tokens"] == []


def test_trial_issue_and_install(tmp_path: Path, k1: Path) -> None:
    config = installation(tmp_path, k1.with_name("vendor-k1.pub.pem"))
    before = datetime.now(UTC).replace(microsecond=0)
    trial = issue(k1, "trial", "--edition", "teamspace")
    claims = jwt.decode(trial, options={"verify_signature": False})
    assert claims["seats"] == 25
    assert claims["exp"] - claims["iat"] == 30 * 86_400

    ok("--config", config, "license", "install", "-", input=trial)
    document = status(config)
    assert document["valid"] is True
    assert document["trial"] is True
    assert document["seats_total"] == 25
    assert document["edition"] == "teamspace"
    expires = datetime.strptime(document["expires_at"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    assert before + timedelta(days=30) <= expires <= before + timedelta(days=30, minutes=5)


@pytest.mark.parametrize(
    "content",
    [
        pytest.param("this is not a licence token\n", id="prose"),
        pytest.param("", id="empty"),
        pytest.param("a.b.c\n", id="a.b.c"),
        pytest.param("eyJhbGciOiJub25lIn0.e30.\n", id="alg-none"),
        pytest.param(
            # header {"alg":"EdDSA","kid":1}
            "eyJhbGciOiJFZERTQSIsImtpZCI6MX0.e30.AAAA\n",
            id="kid-not-a-string",
        ),
    ],
)
def test_installing_a_garbage_file_is_refused(tmp_path: Path, k1: Path, content: str) -> None:
    config = installation(tmp_path, k1.with_name("vendor-k1.pub.pem"))
    garbage = tmp_path / "licence.txt"
    garbage.write_text(content, encoding="utf-8")

    result = run("--config", config, "license", "install", garbage)

    assert result.exit_code == 1
    assert "licence token rejected" in result.stderr
    assert "Traceback" not in result.output
    document = status(config)
    assert document["valid"] is False
    assert document["tokens"] == []


# -- one table of claims per kind ------------------------------------------------


COMMON_CLAIMS = {"iss", "aud", "sub", "jti", "iat", "kind"}


@pytest.mark.parametrize("kind", KINDS)
def test_each_kind_is_issued_with_its_claims_and_verified_against_the_same(kind: Kind) -> None:
    """Given every value, the vendor writes only the kind's claims; the verifier
    then misses each required one of them when it is taken out."""
    key = VendorKey(Ed25519PrivateKey.generate(), "k1")
    now = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    token = issue_token(
        key,
        kind=kind,
        installation_id=INSTALLATION,
        customer="acme",
        now=now,
        edition="bizspace",
        seats=25,
        purchased_at=now - timedelta(days=1),
        price=(Decimal("1990.00"), "USD"),
        lic="lic-a",
        # Refused by name where the kind has no such claim (a mistake on the command line).
        sites=("a.example.com",) if "sites" in RULES[kind].claims else (),
        host="b.example.com" if "host" in RULES[kind].claims else None,
    )
    claims = jwt.decode(token, options={"verify_signature": False})
    rules = RULES[kind]
    ends = {"exp"} if rules.lifetime is not None else set()
    # `unlimited` and `overage` were not asked for: they are left out.
    assert set(claims) == COMMON_CLAIMS | set(rules.claims) - {"unlimited", "overage"} | ends

    verifier = TokenVerifier(
        installation_id=INSTALLATION,
        issuer=DEFAULT_ISSUER,
        public_keys={"k1": key.private_key.public_key()},
        leeway_seconds=0,
        clock=FakeClock(now),
    )
    assert verifier.verify(token).kind == kind
    optional = ("unlimited", "price", "sites", "overage")
    for claim in [*(c for c in rules.claims if c not in optional), *ends]:
        without = {name: value for name, value in claims.items() if name != claim}
        forged = jwt.encode(without, key.private_key, algorithm="EdDSA", headers={"kid": "k1"})
        with pytest.raises(MissingClaim) as refused:
            verifier.verify(forged)
        assert refused.value.claim == claim
