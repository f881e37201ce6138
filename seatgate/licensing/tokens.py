"""Licence token verification.

A licence token is a JWS compact token signed with Ed25519 (``alg: EdDSA``).
The algorithm is pinned: the header's ``alg`` is compared with the one
allowed value before any key is touched, so ``none``, HS* (with the public
key as an HMAC secret) and RS* tokens are refused whatever they claim. The
key is chosen by ``kid`` from the configured set, never loaded from a path or
URL the token names.

PyJWT checks the signature; the claims are checked here, one by one (read
through :class:`~seatgate.licensing.claims.Claims`), so that each rejection
names the claim and what was wrong with it. Which claims each kind of token
carries is the table in :mod:`seatgate.licensing.kinds`.
"""

from __future__ import annotations

import binascii
import hashlib
import hmac
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, assert_never

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from jwt.utils import base64url_decode

from seatgate.clock import Clock
from seatgate.config import KID_PATTERN
from seatgate.errors import (
    BadSignature,
    InvalidClaim,
    MalformedToken,
    MissingClaim,
    TokenExpired,
    TokenNotYetValid,
    UnknownKey,
    UnsupportedAlgorithm,
    shorten,
)
from seatgate.licensing.claims import MAX_SEATS, Claims, Price
from seatgate.licensing.kinds import (
    EDITIONS,
    KINDS,
    MAX_OVERAGE,
    MIN_LICENSE_SEATS,
    RULES,
    TRIAL_DAYS,
    TRIAL_SEATS,
    Claim,
    Kind,
    KindRules,
)

ALGORITHM = "EdDSA"
MAX_TOKEN_LENGTH = 8192

_BASE64URL = re.compile(r"\A[A-Za-z0-9_-]*\Z")


@dataclass(frozen=True)
class LicenseToken:
    """The verified claims of one licence, add-on, trial or renewal token."""

    jti: str
    kind: Kind
    customer: str
    issuer: str
    installation_id: str
    kid: str
    issued_at: datetime
    not_before: datetime | None = None
    expires_at: datetime | None = None
    edition: str | None = None
    seats: int | None = None
    unlimited: bool = False
    purchased_at: datetime | None = None
    price: Price | None = None
    lic: str | None = None
    sites: tuple[str, ...] = ()
    host: str | None = None
    overage: Decimal | None = None
    """A licence's tolerated share of seats beyond ``seats`` (billed at true-up); None: none."""

    def expired(self, now: datetime, leeway: timedelta = timedelta(0)) -> bool:
        """Return whether the token's hard expiry (``exp``) has passed at ``now``."""
        return self.expires_at is not None and now >= self.expires_at + leeway


class TokenVerifier:
    """Verifies licence tokens for one installation against its trusted vendor keys."""

    def __init__(
        self,
        *,
        installation_id: str,
        issuer: str,
        public_keys: Mapping[str, Ed25519PublicKey],
        leeway_seconds: int,
        clock: Clock,
    ) -> None:
        self.installation_id = installation_id
        self.issuer = issuer
        self.public_keys = dict(public_keys)
        self.leeway = timedelta(seconds=leeway_seconds)
        self.clock = clock

    def fingerprint(self) -> str:
        """A digest of everything verification depends on (keys, issuer, audience, leeway)."""
        digest = hashlib.sha256()
        for part in (self.installation_id, self.issuer, str(self.leeway.total_seconds())):
            digest.update(part.encode() + b"\0")
        for kid in sorted(self.public_keys):
            raw = self.public_keys[kid].public_bytes(Encoding.Raw, PublicFormat.Raw)
            digest.update(kid.encode() + b"\0" + raw)
        return digest.hexdigest()

    def verify(self, token: str, *, check_expiry: bool = True) -> LicenseToken:
        """Verify ``token`` completely and return its claims.

        ``check_expiry=False`` still checks everything else; the entitlement
        uses it to re-read installed tokens and decide about expiry itself.

        Raises a :class:`~seatgate.errors.TokenRejected` subclass naming the cause.
        """
        token = _compact(token)
        kid = self._check_header(token)
        payload = self._check_signature(token, kid)
        claims = Claims(payload)
        now = self.clock.now()

        issuer, audience = self._check_parties(claims)
        jti = claims.identifier("jti")
        kind: Kind = claims.choice("kind", KINDS)
        customer = claims.string("sub")
        issued_at = claims.date("iat")
        not_before = claims.date("nbf", required=False)
        expires_at = claims.date("exp", required=RULES[kind].lifetime is not None, kind=kind)

        if issued_at > now + self.leeway:
            raise TokenNotYetValid(f"claim `iat` is {issued_at:%Y-%m-%d %H:%M} UTC, in the future")
        if not_before is not None and not_before > now + self.leeway:
            raise TokenNotYetValid(f"claim `nbf`: the token is not valid before {not_before} UTC")

        fields = self._kind_fields(claims, kind, issued_at, expires_at)
        parsed = LicenseToken(
            jti=jti,
            kind=kind,
            customer=customer,
            issuer=issuer,
            installation_id=audience,
            kid=kid,
            issued_at=issued_at,
            not_before=not_before,
            expires_at=expires_at,
            **fields,
        )
        if check_expiry and parsed.expired(now, self.leeway):
            what = "trial" if kind == "trial" else "token"
            raise TokenExpired(f"the {what} `{jti}` expired on {expires_at:%Y-%m-%d %H:%M} UTC")
        return parsed

    def _check_parties(self, claims: Claims) -> tuple[str, str]:
        """The issuer and the audience, each the one this installation trusts."""
        issuer = claims.string("iss")
        if not hmac.compare_digest(issuer.encode(), self.issuer.encode()):
            raise InvalidClaim("iss", issuer, f"this installation trusts issuer `{self.issuer}`")
        audience = claims.get("aud")
        if audience is None:
            raise MissingClaim("aud")
        if not isinstance(audience, str):
            # A list audience would let one token serve many installations.
            raise InvalidClaim("aud", audience, "it must be the one installation id, as a string")
        if not hmac.compare_digest(audience.encode(), self.installation_id.encode()):
            raise InvalidClaim("aud", audience, f"this installation is `{self.installation_id}`")
        return issuer, audience

    def _kind_fields(
        self,
        claims: Claims,
        kind: Kind,
        issued_at: datetime,
        expires_at: datetime | None,
    ) -> dict[str, Any]:
        """The claims only tokens of ``kind`` carry, checked as its rules say (:data:`RULES`)."""
        rules = RULES[kind]
        fields: dict[str, Any] = {n: _kind_claim(claims, n, rules, kind) for n in rules.claims}
        if fields.get("overage") and fields.get("unlimited"):
            raise InvalidClaim(
                "overage", claims.get("overage"), "an unlimited licence has no seats to go beyond"
            )
        lifetime = rules.lifetime
        if (
            lifetime is not None
            and expires_at is not None
            and expires_at - issued_at > lifetime + self.leeway
        ):
            raise InvalidClaim(
                "exp", claims.get("exp"), f"a {kind} lasts at most {lifetime.days} days after `iat`"
            )
        return fields

    def _check_header(self, token: str) -> str:
        # Decoded here rather than by PyJWT so that every oddity (a header that
        # is not an object, a kid that is not a string) becomes a named rejection.
        header = _decode_segment(token.split(".", 1)[0], "header")
        if not isinstance(header, dict):
            raise MalformedToken("the header is not a JSON object")
        alg = header.get("alg")
        if alg != ALGORITHM:
            raise UnsupportedAlgorithm(alg)
        if "crit" in header:
            # RFC 7515 4.1.11: extensions a verifier does not understand must fail.
            raise MalformedToken(
                "header `crit` names extensions this verifier does not know: "
                f"{shorten(header['crit'])}"
            )
        kid = header.get("kid")
        if kid is None:
            raise UnknownKey("(no kid in the header)")
        # The kid is only ever a dictionary key, never a path or URL; the
        # message shows it shortened and with control characters escaped.
        if not isinstance(kid, str) or not KID_PATTERN.match(kid) or kid not in self.public_keys:
            raise UnknownKey(kid)
        return kid

    def _check_signature(self, token: str, kid: str) -> dict[str, Any]:
        try:
            payload: dict[str, Any] = jwt.decode(
                token,
                self.public_keys[kid],
                algorithms=[ALGORITHM],
                # Claims are checked below with messages that name them.
                options={
                    "verify_signature": True,
                    "verify_exp": False,
                    "verify_nbf": False,
                    "verify_iat": False,
                    "verify_aud": False,
                    "verify_iss": False,
                    "verify_sub": False,
                    "verify_jti": False,
                    "require": [],
                },
            )
        except jwt.InvalidSignatureError:
            raise BadSignature(f"the signature does not verify with vendor key `{kid}`") from None
        except jwt.InvalidAlgorithmError:
            raise UnsupportedAlgorithm("(mismatched key and algorithm)") from None
        except jwt.DecodeError as exc:
            raise MalformedToken(f"the payload is not readable JSON ({exc})") from None
        except jwt.InvalidTokenError as exc:
            raise MalformedToken(f"the token is not acceptable ({exc})") from None
        # PyJWT keeps the last of duplicate keys; a signed token whose readers
        # could disagree about a claim is refused instead (checked after the
        # signature, so the message is about a token the vendor really signed).
        _decode_segment(token.split(".")[1], "payload")
        return payload


def _compact(token: object) -> str:
    if not isinstance(token, str):
        raise MalformedToken("a licence token is text")
    token = token.strip()
    if not token:
        raise MalformedToken("the token is empty")
    if len(token) > MAX_TOKEN_LENGTH:
        raise MalformedToken(
            f"the token is {len(token)} characters long; licence tokens are under "
            f"{MAX_TOKEN_LENGTH} (is this the right file?)"
        )
    segments = token.split(".")
    if len(segments) != 3:
        parts = len(segments)
        raise MalformedToken(
            "not a JWS compact token: expected three base64url segments separated by dots, "
            f"found {parts} segment{'s' if parts != 1 else ''}"
        )
    # An empty signature is let through here so that `alg: none` is refused by name.
    for name, segment in zip(("header", "payload", "signature"), segments, strict=True):
        if not _BASE64URL.match(segment) or (name != "signature" and not segment):
            raise MalformedToken(f"the {name} segment is not base64url (is the token cut short?)")
        try:
            base64url_decode(segment)
        except (ValueError, binascii.Error):
            raise MalformedToken(
                f"the {name} segment is not valid base64url (is the token cut short?)"
            ) from None
    return token


class _DuplicateKey(ValueError):
    def __init__(self, key: str) -> None:
        self.key = key
        super().__init__(key)


def _unique_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object's members, refusing a key given twice (at any depth)."""
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _DuplicateKey(key)
        result[key] = value
    return result


def _decode_segment(segment: str, name: str) -> Any:
    """The JSON in one base64url segment; a duplicate key is a named rejection."""
    try:
        return json.loads(base64url_decode(segment), object_pairs_hook=_unique_pairs)
    except _DuplicateKey as dup:
        raise MalformedToken(
            f"the {name} has the key `{shorten(dup.key)}` more than once; "
            "a token must be read the same way by every reader"
        ) from None
    except (ValueError, UnicodeDecodeError):
        raise MalformedToken(f"the {name} segment is not base64url-encoded JSON") from None


def describe(token: LicenseToken) -> str:
    """One line about a token for logs and messages: never the token text itself."""
    seats = "unlimited" if token.unlimited else f"{token.seats} seats" if token.seats else ""
    host = f"for {token.host}" if token.host else ""
    return " ".join(
        x
        for x in (token.kind, f"`{shorten(token.jti, 40)}`", token.edition or "", seats, host)
        if x
    )


def _kind_claim(claims: Claims, name: Claim, rules: KindRules, kind: str) -> Any:
    """The kind-specific claim ``name``, checked as :mod:`seatgate.licensing.kinds` describes it."""
    if name == "edition":
        return claims.choice(name, EDITIONS, kind=kind)
    if name == "seats":
        minimum, maximum = rules.seats or (1, MAX_SEATS)
        return claims.seats(minimum=minimum, maximum=maximum, kind=kind)
    if name == "unlimited":
        return claims.boolean(name)
    if name == "purchased_at":
        return claims.date(name, kind=kind)
    if name == "price":
        return claims.price()
    if name == "lic":
        return claims.identifier(name, kind=kind)
    if name == "sites":
        return claims.hosts(name)
    if name == "host":
        return claims.host(name, kind=kind)
    if name == "overage":
        return claims.fraction(name, maximum=MAX_OVERAGE)
    assert_never(name)


__all__ = [
    "ALGORITHM",
    "EDITIONS",
    "KINDS",
    "MAX_SEATS",
    "MAX_TOKEN_LENGTH",
    "MIN_LICENSE_SEATS",
    "TRIAL_DAYS",
    "TRIAL_SEATS",
    "Kind",
    "LicenseToken",
    "Price",
    "TokenVerifier",
    "describe",
]
