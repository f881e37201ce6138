"""Hostile licence tokens: one test per attack, named after it.

Like pyjwt's ``tests/test_advisory.py``, every defence has a regression test
named after the attack (and the advisory, where there is one). Each hostile
token must be refused with the exception that names its cause, and trying
to install it must change nothing: not the entitlement, not the installed
tokens, not the seat ledger.

The attacks run against one shared installation per database (a licence, an
add-on and three seat holders), built once per module: a refused install
writes nothing, which is exactly what every test checks, so sharing is safe
and keeps the file fast. A function-scoped fixture resets the clock and fails
loudly if an earlier test left the shared installation changed.

Tokens with arbitrary claims are signed here with PyJWT directly, or
assembled by hand (base64url + JSON) where PyJWT refuses to make them;
``seatgate.licensing.vendor.issue_token`` refuses invalid claims by design.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from jwt.algorithms import HMACAlgorithm

from seatgate.app import Core
from seatgate.clock import FakeClock
from seatgate.errors import (
    BadSignature,
    InvalidClaim,
    MalformedToken,
    MissingClaim,
    TokenConflict,
    TokenExpired,
    TokenNotYetValid,
    TokenRejected,
    UnknownKey,
    UnsupportedAlgorithm,
)
from seatgate.licensing.vendor import VendorKey
from tests.conftest import (
    INSTALLATION,
    ISSUER,
    START,
    add_users,
    create_pg_database,
    drop_pg_database,
    make_config,
)

DAY = 86_400
BASE_LICENCE = "base-licence"
BASE_ADDON = "base-addon"
DROP = object()  # a claim value meaning "leave this claim out"


# -- crafting tokens ---------------------------------------------------------


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def segment(value: object) -> str:
    return b64url(json.dumps(value, separators=(",", ":")).encode())


def assemble(header: object, payload: object, sign: Callable[[bytes], bytes]) -> str:
    """A compact JWS made by hand: any header, any payload, any signature."""
    signing_input = f"{segment(header)}.{segment(payload)}"
    return f"{signing_input}.{b64url(sign(signing_input.encode('ascii')))}"


class Forge:
    """Valid claim sets to start from, and signing with any key and header."""

    def __init__(self, key: VendorKey, clock: FakeClock) -> None:
        self.key = key
        self.clock = clock

    def claims(self, kind: str = "license", /, **changes: Any) -> dict[str, Any]:
        """A claim set an installation accepts, then ``changes`` (DROP removes a claim)."""
        iat = int(self.clock.now().timestamp())
        claims: dict[str, Any] = {
            "iss": ISSUER,
            "aud": INSTALLATION,
            "jti": f"{kind}-{secrets.token_hex(6)}",
            "iat": iat,
            "kind": kind,
            "sub": "acme",
        }
        if kind == "license":
            claims.update(
                edition="bizspace",
                seats=30,
                purchased_at=iat,
                price={"amount": "1990.00", "currency": "USD"},
            )
        elif kind == "addon":
            claims.update(seats=5, lic=BASE_LICENCE, purchased_at=iat)
        elif kind == "trial":
            claims.update(edition="bizspace", seats=25, exp=iat + 30 * DAY)
        elif kind == "renewal":
            claims.update(lic=BASE_LICENCE)
        for name, value in changes.items():
            if value is DROP:
                claims.pop(name, None)
            else:
                claims[name] = value
        return claims

    def sign(
        self,
        claims: dict[str, Any],
        *,
        key: Ed25519PrivateKey | None = None,
        headers: dict[str, Any] | None = None,
    ) -> str:
        """Sign with EdDSA; the vendor key and ``kid: k1`` unless told otherwise."""
        return jwt.encode(
            claims,
            key or self.key.private_key,
            algorithm="EdDSA",
            headers={"kid": self.key.kid} if headers is None else headers,
        )

    def token(self, kind: str = "license", /, **changes: Any) -> str:
        return self.sign(self.claims(kind, **changes))

    def ed25519(self, header: dict[str, Any], payload: object) -> str:
        """Hand-assembled and really signed with the vendor key (PyJWT would refuse the header)."""
        return assemble(header, payload, self.key.private_key.sign)


# -- the shared installation -------------------------------------------------


Snapshot = dict[str, Any]


def snapshot(app: Core) -> Snapshot:
    """Everything a refused token must leave alone."""
    status = app.licensing.status()
    return {
        "stored entitlement": app.ledger.state(),
        "entitlement": status.entitlement,
        "seats used": status.seats_used,
        "installed tokens": [(t.jti, t.kind, t.installed_at, t.problem) for t in status.tokens],
        "seat holders": app.ledger.holders(),
    }


@dataclass
class Installation:
    app: Core
    clock: FakeClock
    forge: Forge
    pristine: Snapshot


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def shared_installation(
    request: pytest.FixtureRequest,
    vendor_key: VendorKey,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Installation]:
    """A licensed installation with seat holders, once per database for the whole module."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('attacks') / 'seatgate.db'}"
    else:
        url = create_pg_database()
    clock = FakeClock(START)
    app = Core.build(make_config(url, vendor_key), clock=clock, check_schema=False)
    try:
        app.init_schema()
        forge = Forge(vendor_key, clock)
        app.licensing.install(forge.token("license", jti=BASE_LICENCE), actor="test")
        app.licensing.install(forge.token("addon", jti=BASE_ADDON), actor="test")
        logins = add_users(app, 4)
        for index, login in enumerate(logins[:3]):
            app.ledger.assign(app.accounts.get(login).id, actor="test", pinned=index == 0)
        pristine = snapshot(app)
        assert pristine["entitlement"].valid
        assert pristine["entitlement"].seats == 35
        assert len(pristine["seat holders"]) == 3
        yield Installation(app, clock, forge, pristine)
    finally:
        app.close()
        if request.param != "sqlite":
            drop_pg_database(url)


@pytest.fixture
def installation(shared_installation: Installation) -> Iterator[Installation]:
    shared_installation.clock.set(START)
    if snapshot(shared_installation.app) != shared_installation.pristine:
        pytest.fail("an earlier test changed the shared installation; see its failure first")
    yield shared_installation
    shared_installation.clock.set(START)


def expect_refused(
    installation: Installation, token: str, error: type[TokenRejected], *words: str
) -> TokenRejected:
    """Installing ``token`` raises ``error`` naming ``words``, and changes nothing."""
    app = installation.app
    before = snapshot(app)
    with pytest.raises(error) as caught:
        app.licensing.install(token, actor="test")
    message = str(caught.value)
    assert message.startswith("licence token rejected: ")
    for word in words:
        assert word in message, f"{word!r} not in {message!r}"
    assert snapshot(app) == before
    return caught.value


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


# -- the forged tokens are valid until attacked --------------------------------


@pytest.mark.parametrize("kind", ["license", "addon", "trial", "renewal"])
def test_unattacked_forged_tokens_verify(installation: Installation, kind: str) -> None:
    """Every attack below changes one thing in a token that would otherwise pass."""
    token = installation.forge.token(kind)
    verified = installation.app.licensing.verifier.verify(token)
    assert verified.kind == kind
    assert verified.kid == "k1"


# -- algorithm -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("alg", "signature"),
    [
        pytest.param(
            "none",
            b"",
            id="none-empty-signature",
        ),
        pytest.param("none", b"\x00" * 64, id="none-junk-signature"),
        pytest.param("None", b"\x00" * 64, id="None"),
        pytest.param("NONE", b"\x00" * 64, id="NONE"),
    ],
)
def test_alg_none(installation: Installation, alg: str, signature: bytes) -> None:
    token = assemble(
        {"alg": alg, "kid": "k1", "typ": "JWT"},
        installation.forge.claims(seats=10_000),
        lambda _: signature,
    )
    expect_refused(installation, token, UnsupportedAlgorithm, "`alg`", f"`{alg}`")


def _public_key_forms(key: VendorKey) -> dict[str, bytes]:
    public = key.private_key.public_key()
    pem = key.public_pem().encode()
    return {
        "pem": pem,
        "pub-pem-file": f"kid: {key.kid}\n".encode() + pem,
        "openssh": public.public_bytes(
            serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
        ),
        "raw": public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw),
    }


@pytest.mark.parametrize(
    ("alg", "form"),
    [
        ("HS256", "pem"),
        ("HS256", "pub-pem-file"),
        ("HS256", "openssh"),
        ("HS256", "raw"),
        ("HS384", "pem"),
        ("HS512", "pem"),
    ],
)
def test_hmac_signed_with_the_vendor_public_key_cve_2022_29217(
    installation: Installation, vendor_key: VendorKey, alg: str, form: str
) -> None:
    """Key confusion: the public key (which is public) used as an HMAC secret."""
    secret = _public_key_forms(vendor_key)[form]
    digest = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}[alg]
    token = assemble(
        {"alg": alg, "kid": "k1", "typ": "JWT"},
        installation.forge.claims(seats=10_000, unlimited=True),
        lambda signing_input: hmac.new(secret, signing_input, digest).digest(),
    )
    # The forgery is sound: a verifier that let the token pick HMAC would accept it.
    signing_input, _, signature = token.rpartition(".")
    hmac_alg = HMACAlgorithm(getattr(HMACAlgorithm, f"SHA{alg[2:]}"))
    assert hmac_alg.verify(
        signing_input.encode(), secret, base64.urlsafe_b64decode(signature + "==")
    )
    expect_refused(installation, token, UnsupportedAlgorithm, "`alg`", alg, "EdDSA")


@pytest.mark.parametrize("alg", ["RS256", "PS256", "ES256"])
def test_token_signed_with_another_algorithm(
    installation: Installation, rsa_key: rsa.RSAPrivateKey, alg: str
) -> None:
    key: Any = rsa_key if alg[:2] in ("RS", "PS") else ec.generate_private_key(ec.SECP256R1())
    claims = installation.forge.claims(seats=10_000)
    token = jwt.encode(claims, key, algorithm=alg, headers={"kid": "k1"})
    # A correctly signed token, for its own key and algorithm.
    assert jwt.decode(token, key.public_key(), algorithms=[alg], audience=INSTALLATION) == claims
    expect_refused(installation, token, UnsupportedAlgorithm, "`alg`", alg)


@pytest.mark.parametrize("header", ["jwk", "jku", "x5u", "x5c"])
def test_key_named_by_the_token_is_not_trusted_cve_2018_0114(
    installation: Installation, header: str
) -> None:
    """The attacker signs with its own key and points the header at it."""
    attacker = Ed25519PrivateKey.generate()
    public_raw = attacker.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    value: object = {
        "jwk": {"kty": "OKP", "crv": "Ed25519", "x": b64url(public_raw)},
        "jku": "https://attacker.example/keys.json",
        "x5u": "https://attacker.example/cert.pem",
        "x5c": [base64.b64encode(public_raw).decode()],
    }[header]
    token = assemble(
        {"alg": "EdDSA", "kid": "k1", header: value},
        installation.forge.claims(seats=10_000),
        attacker.sign,
    )
    expect_refused(installation, token, BadSignature, "signature", "`k1`")


# -- kid -------------------------------------------------------------------------


def test_unknown_kid(installation: Installation) -> None:
    forge = installation.forge
    token = forge.sign(forge.claims(), headers={"kid": "k9"})
    error = expect_refused(installation, token, UnknownKey, "`kid`", "`k9`", "public_keys")
    assert isinstance(error, UnknownKey)
    assert error.kid == "k9"


def test_missing_kid(installation: Installation) -> None:
    forge = installation.forge
    token = forge.sign(forge.claims(), headers={})
    assert "kid" not in jwt.get_unverified_header(token)
    expect_refused(installation, token, UnknownKey, "`kid`", "no kid")


@pytest.mark.parametrize(
    "kid",
    [
        "../../../../etc/passwd",
        "/etc/passwd",
        "..\\..\\..\\windows\\win.ini",
        "k1/../k1",
        "./k1",
        "file:///etc/passwd",
    ],
)
def test_kid_path_traversal(installation: Installation, kid: str) -> None:
    """The kid is only ever looked up among configured keys, never opened as a path."""
    forge = installation.forge
    token = forge.sign(forge.claims(), headers={"kid": kid})
    error = expect_refused(installation, token, UnknownKey, "`kid`", "trusted vendor keys")
    assert isinstance(error, UnknownKey)
    assert error.kid == kid


@pytest.mark.parametrize("kid", ["k1\nERROR forged log line", "k1\r\nX: y", "k1\x00"])
def test_kid_log_injection(installation: Installation, kid: str) -> None:
    """Control characters in the kid cannot forge lines in a log or on a terminal."""
    forge = installation.forge
    token = forge.sign(forge.claims(), headers={"kid": kid})
    error = expect_refused(installation, token, UnknownKey, "`kid`")
    assert not {"\n", "\r", "\x00"} & set(str(error))


@pytest.mark.parametrize(
    "kid", [1, ["k1"], {"k1": True}, True], ids=["int", "list", "dict", "bool"]
)
def test_kid_not_a_string(installation: Installation, kid: object) -> None:
    token = installation.forge.ed25519({"alg": "EdDSA", "kid": kid}, installation.forge.claims())
    expect_refused(installation, token, UnknownKey, "`kid`")


@pytest.mark.parametrize("crit", [["exp"], ["x-seatgate"], "exp", []], ids=repr)
def test_unknown_critical_header_extension(installation: Installation, crit: object) -> None:
    forge = installation.forge
    header = {"alg": "EdDSA", "kid": "k1", "crit": crit, "x-seatgate": 1}
    expect_refused(installation, forge.ed25519(header, forge.claims()), MalformedToken, "crit")


# -- required claims -------------------------------------------------------------

MISSING = [
    *(("license", claim) for claim in ("iss", "aud", "jti", "iat", "kind", "sub")),
    ("license", "edition"),
    ("license", "seats"),
    ("license", "purchased_at"),
    ("addon", "seats"),
    ("addon", "lic"),
    ("addon", "purchased_at"),
    ("trial", "exp"),
    ("trial", "edition"),
    ("trial", "seats"),
    ("renewal", "lic"),
]


def _missing_params() -> list[Any]:
    return [pytest.param(kind, claim, id=f"{kind}-{claim}") for kind, claim in MISSING]


@pytest.mark.parametrize(("kind", "claim"), _missing_params())
def test_missing_required_claim(installation: Installation, kind: str, claim: str) -> None:
    token = installation.forge.token(kind, **{claim: DROP})
    error = expect_refused(installation, token, MissingClaim, f"claim `{claim}`", "missing")
    assert isinstance(error, MissingClaim)
    assert error.claim == claim


@pytest.mark.parametrize(
    ("kind", "claim"),
    [
        ("license", "iss"),
        ("license", "jti"),
        ("license", "iat"),
        ("license", "seats"),
        ("trial", "exp"),
        ("addon", "lic"),
        ("license", "aud"),
    ],
)
def test_null_claim_counts_as_missing(installation: Installation, kind: str, claim: str) -> None:
    forge = installation.forge
    # Assembled by hand: PyJWT refuses to encode some of these.
    token = forge.ed25519({"alg": "EdDSA", "kid": "k1"}, forge.claims(kind, **{claim: None}))
    error = expect_refused(installation, token, MissingClaim, f"claim `{claim}`", "missing")
    assert isinstance(error, MissingClaim)
    assert error.claim == claim


# -- audience and issuer ---------------------------------------------------------


@pytest.mark.parametrize(
    "aud", ["intranet-b.example.com", INSTALLATION.upper(), f"{INSTALLATION} ", "intranet-a"]
)
def test_wrong_aud(installation: Installation, aud: str) -> None:
    """A token issued for another installation (or a near miss) is not this one's."""
    token = installation.forge.token(aud=aud)
    error = expect_refused(installation, token, InvalidClaim, "claim `aud`", INSTALLATION)
    assert isinstance(error, InvalidClaim)
    assert error.claim == "aud"


@pytest.mark.parametrize(
    "aud",
    [[INSTALLATION], [INSTALLATION, "intranet-b.example.com"], ["intranet-b", INSTALLATION]],
    ids=["alone", "first", "second"],
)
def test_aud_list_containing_this_installation(installation: Installation, aud: list[str]) -> None:
    """One token must not serve several installations."""
    token = installation.forge.token(aud=aud)
    error = expect_refused(installation, token, InvalidClaim, "claim `aud`", "string")
    assert isinstance(error, InvalidClaim)
    assert error.claim == "aud"


@pytest.mark.parametrize(
    "iss",
    [
        "seatgate-vendor-evil",
        "seatgate",
        "xseatgate-vendorx",
        "vendor",
        "seatgate-vendo",
        "-",
        "SEATGATE-VENDOR",
        "seatgate-vendor ",
        ["seatgate-vendor"],
        "",
    ],
    ids=repr,
)
def test_partial_iss_match_cve_2024_53861(installation: Installation, iss: object) -> None:
    """pyjwt < 2.10.1 accepted any `iss` that was a substring of the expected issuer."""
    forge = installation.forge
    # Assembled by hand: PyJWT refuses to encode a list `iss`.
    token = forge.ed25519({"alg": "EdDSA", "kid": "k1"}, forge.claims(iss=iss))
    error = expect_refused(installation, token, InvalidClaim, "claim `iss`")
    assert isinstance(error, InvalidClaim)
    assert error.claim == "iss"
    if isinstance(iss, str) and iss.strip():
        assert ISSUER in str(error)


# -- seats, unlimited, edition ---------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "seats"),
    [
        ("license", True),
        ("license", "30"),
        ("license", -30),
        ("license", 10**20),
        ("license", 30.0),
        ("license", 0),
        ("license", [30]),
        ("addon", True),
        ("addon", "5"),
        ("addon", 0),
        ("addon", -5),
        ("addon", 5.0),
        ("addon", 10**20),
    ],
    ids=str,
)
def test_seats_not_a_plausible_whole_number(
    installation: Installation, kind: str, seats: object
) -> None:
    token = installation.forge.token(kind, seats=seats)
    error = expect_refused(installation, token, InvalidClaim, "claim `seats`")
    assert isinstance(error, InvalidClaim)
    assert error.claim == "seats"


def test_licence_with_24_seats(installation: Installation) -> None:
    """No licence has fewer than 25 users."""
    token = installation.forge.token(seats=24)
    expect_refused(installation, token, InvalidClaim, "claim `seats`", "`24`", "at least 25")


@pytest.mark.parametrize("seats", [1, 24, 26, 1000])
def test_trial_without_exactly_25_seats(installation: Installation, seats: int) -> None:
    token = installation.forge.token("trial", seats=seats)
    expect_refused(installation, token, InvalidClaim, "claim `seats`", "25")


@pytest.mark.parametrize("unlimited", ["true", 1, "1", "yes", {"value": True}], ids=repr)
def test_unlimited_not_a_boolean(installation: Installation, unlimited: object) -> None:
    token = installation.forge.token(seats=25, unlimited=unlimited)
    error = expect_refused(installation, token, InvalidClaim, "claim `unlimited`", "boolean")
    assert isinstance(error, InvalidClaim)
    assert error.claim == "unlimited"


@pytest.mark.parametrize(
    ("kind", "edition"),
    [
        ("license", "ultimate"),
        ("license", "BizSpace"),
        ("license", "enterprise "),
        ("license", ""),
        ("license", 1),
        ("trial", "ultimate"),
    ],
)
def test_edition_not_in_the_list(installation: Installation, kind: str, edition: object) -> None:
    token = installation.forge.token(kind, edition=edition)
    error = expect_refused(installation, token, InvalidClaim, "claim `edition`")
    assert isinstance(error, InvalidClaim)
    assert error.claim == "edition"


# -- time ------------------------------------------------------------------------


def test_expired_trial(installation: Installation) -> None:
    token = installation.forge.token("trial")
    assert installation.app.licensing.verifier.verify(token).kind == "trial"  # valid on day 0
    installation.clock.advance(timedelta(days=31))
    expect_refused(installation, token, TokenExpired, "trial", "expired", "2026-04-01")


@pytest.mark.parametrize("days", [31, 365, 100 * 365])
def test_trial_lasting_more_than_30_days(installation: Installation, days: int) -> None:
    iat = int(installation.clock.now().timestamp())
    token = installation.forge.token("trial", exp=iat + days * DAY)
    expect_refused(installation, token, InvalidClaim, "claim `exp`", "30 days")


@pytest.mark.parametrize(
    ("claim", "ahead"),
    [("iat", DAY), ("iat", 365 * DAY), ("iat", 10 * 365 * DAY), ("nbf", DAY)],
)
def test_issued_in_the_future(installation: Installation, claim: str, ahead: int) -> None:
    """A token dated ahead would become the 'latest word' and outrank every real licence."""
    now = int(installation.clock.now().timestamp())
    token = installation.forge.token(**{claim: now + ahead})
    expect_refused(installation, token, TokenNotYetValid, f"`{claim}`")


@pytest.mark.parametrize(
    ("claim", "value"),
    [
        ("iat", 10**30),
        ("iat", -1),
        ("iat", "2026-03-02"),
        ("iat", True),
        ("iat", float("nan")),
        ("purchased_at", 10**30),
        ("exp", "never"),
    ],
    ids=str,
)
def test_date_not_a_plausible_numeric_date(
    installation: Installation, claim: str, value: object
) -> None:
    kind = "trial" if claim == "exp" else "license"
    token = installation.forge.token(kind, **{claim: value})
    error = expect_refused(installation, token, InvalidClaim, f"claim `{claim}`")
    assert isinstance(error, InvalidClaim)
    assert error.claim == claim


# -- tokens that name something not installed --------------------------------------


def test_addon_naming_another_licence(installation: Installation) -> None:
    token = installation.forge.token("addon", lic="licence-of-another-customer", seats=500)
    expect_refused(
        installation, token, TokenConflict, "licence-of-another-customer", "not installed"
    )


def test_renewal_naming_a_token_that_is_not_installed(installation: Installation) -> None:
    token = installation.forge.token("renewal", lic="licence-of-another-customer")
    expect_refused(installation, token, TokenConflict, "licence-of-another-customer")


# -- signatures ------------------------------------------------------------------


def test_signed_by_another_key_with_the_same_kid(installation: Installation) -> None:
    impostor = Ed25519PrivateKey.generate()
    forge = installation.forge
    token = forge.sign(forge.claims(seats=10_000), key=impostor, headers={"kid": "k1"})
    assert jwt.decode(token, impostor.public_key(), algorithms=["EdDSA"], audience=INSTALLATION)
    expect_refused(installation, token, BadSignature, "signature", "`k1`")


@pytest.mark.parametrize(
    "edit",
    [
        {"seats": 10_000},
        {"unlimited": True},
        {"edition": "enterprise"},
        {"aud": "intranet-b.example.com"},
    ],
    ids=lambda edit: next(iter(edit)),
)
def test_payload_edited_after_signing(installation: Installation, edit: dict[str, Any]) -> None:
    forge = installation.forge
    claims = forge.claims()
    header, _, signature = forge.sign(claims).split(".")
    token = f"{header}.{segment({**claims, **edit})}.{signature}"
    expect_refused(installation, token, BadSignature, "signature")


def test_payload_not_a_json_object(installation: Installation) -> None:
    token = installation.forge.ed25519({"alg": "EdDSA", "kid": "k1"}, ["license", 10_000])
    expect_refused(installation, token, MalformedToken, "payload")


def signed_raw(installation: Installation, header_json: str, payload_json: str) -> str:
    """A token whose segments are exactly this JSON text, really signed with the vendor key."""
    signing_input = f"{b64url(header_json.encode())}.{b64url(payload_json.encode())}"
    signature = installation.forge.key.private_key.sign(signing_input.encode("ascii"))
    return f"{signing_input}.{b64url(signature)}"


def test_signed_token_with_a_duplicate_seats_claim(installation: Installation) -> None:
    """PyJWT would keep the last `seats`; a reader keeping the first would see another licence."""
    claims = json.dumps(installation.forge.claims("license", seats=30))
    payload = claims[:-1] + ', "seats": 10000}'
    token = signed_raw(installation, '{"alg": "EdDSA", "kid": "k1"}', payload)
    expect_refused(installation, token, MalformedToken, "payload", "`seats`", "more than once")


def test_signed_token_with_a_duplicate_key_inside_a_claim(installation: Installation) -> None:
    claims = installation.forge.claims("license")
    payload = json.dumps(claims).replace('"currency": "USD"', '"currency": "USD", "amount": "1"')
    token = signed_raw(installation, '{"alg": "EdDSA", "kid": "k1"}', payload)
    expect_refused(installation, token, MalformedToken, "`amount`", "more than once")


@pytest.mark.parametrize(
    ("header", "key"),
    [
        ('{"alg": "none", "alg": "EdDSA", "kid": "k1"}', "alg"),
        ('{"alg": "EdDSA", "kid": "other", "kid": "k1"}', "kid"),
    ],
)
def test_signed_token_with_a_duplicate_header_key(
    installation: Installation, header: str, key: str
) -> None:
    payload = json.dumps(installation.forge.claims("license"))
    token = signed_raw(installation, header, payload)
    expect_refused(installation, token, MalformedToken, "header", f"`{key}`", "more than once")


# -- not a token at all ----------------------------------------------------------


def test_truncated_signature(installation: Installation) -> None:
    """Cut at a base64 quantum, the signature decodes but is too short to verify."""
    token = installation.forge.token()
    assert len(token.rpartition(".")[2]) % 4 == 2  # 64 bytes -> 86 characters
    expect_refused(installation, token[:-2], BadSignature, "signature")


def test_truncated_signature_mid_character(installation: Installation) -> None:
    token = installation.forge.token()
    error = expect_refused(installation, token[:-1], MalformedToken, "signature")
    assert "header" not in str(error)


def test_token_cut_in_the_payload(installation: Installation) -> None:
    token = installation.forge.token()
    cut = token[: token.rindex(".") - 5]
    expect_refused(installation, cut, MalformedToken, "three base64url segments", "found 2")


def test_two_segment_token(installation: Installation) -> None:
    header, payload, _ = installation.forge.token(seats=10_000).split(".")
    for token in (f"{header}.{payload}", f"{header}.{payload}.."):
        expect_refused(installation, token, MalformedToken, "three base64url segments")


@pytest.mark.parametrize(
    ("text", "words"),
    [
        pytest.param("this is not a licence", ("JWS compact", "found 1 segment"), id="prose"),
        pytest.param("a.b.c", ("header segment", "base64url"), id="a.b.c"),
        pytest.param("лицензия.на.тридцать", ("header segment", "base64url"), id="non-ascii"),
        pytest.param(
            "eyJhbGciOiJFZERTQSJ9.eyJzZWF0cyI6MzB9.c2ln.extra",
            ("JWS compact", "found 4 segments"),
            id="4-seg",
        ),
        pytest.param(
            "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA\n-----END PUBLIC KEY-----",
            ("JWS compact",),
            id="pem",
        ),
        pytest.param('{"kind": "license", "seats": 10000}', ("JWS compact",), id="json"),
        pytest.param("\x00\x01\x02", ("JWS compact",), id="control"),
    ],
)
def test_garbage_text(installation: Installation, text: str, words: tuple[str, ...]) -> None:
    expect_refused(installation, text, MalformedToken, *words)


@pytest.mark.parametrize("text", ["", "   ", "\n\r\n\t"], ids=["empty", "spaces", "newlines"])
def test_empty_token(installation: Installation, text: str) -> None:
    expect_refused(installation, text, MalformedToken, "empty")


@pytest.mark.parametrize("shape", ["filler", "padded-claim"])
def test_one_megabyte_token(installation: Installation, shape: str) -> None:
    """Size is refused before any parsing: no JSON bomb, no megabyte in a log."""
    forge = installation.forge
    filler = "A" * (1 << 20)
    token = filler if shape == "filler" else forge.sign(forge.claims(note=filler))
    error = expect_refused(installation, token, MalformedToken, "characters long", "8192")
    assert len(str(error)) < 300


# -- unknown claims are ignored (the positive case) ------------------------------


def test_unknown_extra_claims_are_ignored(
    app: Core, vendor_key: VendorKey, clock: FakeClock
) -> None:
    forge = Forge(vendor_key, clock)
    claims = forge.claims(
        seats=40,
        **{
            "x-note": "renewed at the partner's office",
            "seats_extra": 1000,
            "unlimited_soon": True,
            "nested": {"seats": 10_000, "kind": "trial"},
        },
    )
    token = forge.sign(claims, headers={"kid": "k1", "typ": "JWT", "x-vendor": "crm-7"})
    result = app.licensing.install(token, actor="test")
    assert result.token.jti == claims["jti"]
    assert result.token.seats == 40
    assert not result.token.unlimited
    status = app.licensing.status()
    assert status.valid
    assert status.seats_total == 40
    assert status.entitlement.edition == "bizspace"
    assert [t.jti for t in status.tokens] == [claims["jti"]]
