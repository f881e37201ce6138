"""The vendor's side: signing keys and licence tokens.

``seatgate vendor keygen`` and ``seatgate vendor issue`` use this module. A
minted token is verified with the matching public key before it is handed
out, so the vendor can never ship a token an installation would refuse for
its form.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from seatgate.clock import FakeClock
from seatgate.config import DEFAULT_ISSUER, KID_PATTERN
from seatgate.errors import SeatgateError, TokenRejected
from seatgate.licensing.kinds import KINDS, RULES, Claim
from seatgate.licensing.sites import BadHost, canonical_host
from seatgate.licensing.tokens import ALGORITHM, TokenVerifier

DEFAULT_KID = "k1"


class VendorError(SeatgateError):
    """A vendor command cannot do what was asked."""


@dataclass(frozen=True)
class VendorKey:
    """A private signing key and its key id."""

    private_key: Ed25519PrivateKey
    kid: str

    def public_pem(self) -> str:
        """The public key as PEM text, for an installation's ``license.public_keys``."""
        return (
            self.private_key.public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            .decode()
        )


def public_key_path(private_path: Path) -> Path:
    """``vendor-k1.pem`` → ``vendor-k1.pub.pem``."""
    name = private_path.name
    stem = name[: -len(".pem")] if name.endswith(".pem") else name
    return private_path.with_name(stem + ".pub.pem")


def generate_key(out: Path, kid: str = DEFAULT_KID) -> VendorKey:
    """Create an Ed25519 key pair: the private key at ``out`` (mode 0600), the public beside it.

    The public file starts with a ``kid:`` line (PEM readers skip text before
    the block), which ``vendor issue`` reads back. Refuses to overwrite.
    """
    if not KID_PATTERN.match(kid):
        raise VendorError(f"key id `{kid}` must be 1-64 letters, digits, `.`, `_` or `-`")
    pub_path = public_key_path(out)
    for path in (out, pub_path):
        if path.exists():
            raise VendorError(f"{path} already exists; refusing to overwrite a key")
    key = VendorKey(Ed25519PrivateKey.generate(), kid)
    private_pem = key.private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(private_pem)
    pub_path.write_text(f"kid: {kid}\n{key.public_pem()}", encoding="ascii")
    return key


def load_key(path: Path, kid: str | None = None) -> VendorKey:
    """Load a private key; the kid defaults to the companion public file's, else ``k1``."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise VendorError(f"cannot read key file {path}: {exc.strerror}") from None
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError):
        raise VendorError(f"{path} is not an unencrypted PEM private key") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise VendorError(f"{path} is not an Ed25519 key; licence tokens are EdDSA-signed")
    if kid is None:
        kid = _companion_kid(public_key_path(path)) or DEFAULT_KID
    if not KID_PATTERN.match(kid):
        raise VendorError(f"key id `{kid}` must be 1-64 letters, digits, `.`, `_` or `-`")
    return VendorKey(key, kid)


def _companion_kid(pub_path: Path) -> str | None:
    try:
        first = pub_path.read_text(encoding="ascii").splitlines()[0]
    except (OSError, UnicodeDecodeError, IndexError):
        return None
    return first.split(":", 1)[1].strip() if first.startswith("kid:") else None


def issue_token(
    key: VendorKey,
    *,
    kind: str,
    installation_id: str,
    customer: str,
    now: datetime,
    issuer: str = DEFAULT_ISSUER,
    edition: str | None = None,
    seats: int | None = None,
    unlimited: bool = False,
    purchased_at: datetime | None = None,
    price: tuple[Decimal, str] | None = None,
    lic: str | None = None,
    jti: str | None = None,
    sites: tuple[str, ...] = (),
    host: str | None = None,
    overage: Decimal | None = None,
) -> str:
    """Mint a signed token of ``kind`` and return its compact form.

    The token carries the claims its kind has (:mod:`seatgate.licensing.kinds`);
    missing values get the vendor's usual defaults (a trial: its fixed seats,
    ending after its lifetime; a purchase: now). The token is verified before
    it is returned; raises :class:`VendorError` with the reason it would be refused.
    Site host names (``sites``, ``host``) may be typed in any case or in
    Unicode; they are put in the canonical form tokens carry.
    """
    if kind not in RULES:
        raise VendorError(f"`{kind}` is not a kind of token (one of: {', '.join(KINDS)})")
    rules = RULES[kind]
    _refuse_license_options(rules.claims, unlimited=unlimited, overage=overage)
    site_names, host_name = _canonical_hosts(rules.claims, sites, host)
    offered: dict[Claim, Any] = {
        "edition": edition,
        "seats": rules.fixed_seats() if seats is None else seats,
        "unlimited": True if unlimited else None,
        "purchased_at": int((purchased_at or now).timestamp()),
        "price": None if price is None else {"amount": f"{price[0]:.2f}", "currency": price[1]},
        "lic": lic,
        "sites": site_names or None,
        "host": host_name,
        # A JSON number; Decimal is not JSON. Read back exactly (Claims.fraction).
        "overage": None if overage is None else float(overage),
    }
    claims: dict[str, Any] = {
        "iss": issuer,
        "aud": installation_id,
        "sub": customer,
        "jti": jti or f"{kind}-{secrets.token_hex(8)}",
        "iat": int(now.timestamp()),
        "kind": kind,
        **{name: offered[name] for name in rules.claims if offered[name] is not None},
    }
    if rules.lifetime is not None:
        claims["exp"] = int((now + rules.lifetime).timestamp())
    token = jwt.encode(claims, key.private_key, algorithm=ALGORITHM, headers={"kid": key.kid})
    _check_acceptable(token, key, installation_id=installation_id, issuer=issuer, now=now)
    return token


def _refuse_license_options(
    claims: tuple[Claim, ...], *, unlimited: bool, overage: Decimal | None
) -> None:
    """Options only a licence carries, given for another kind: :class:`VendorError`."""
    if unlimited and "unlimited" not in claims:
        raise VendorError("only a `license` token can be unlimited")
    if overage is not None and "overage" not in claims:
        raise VendorError("only a `license` token can carry an overage allowance")


def _canonical_hosts(
    claims: tuple[Claim, ...], sites: tuple[str, ...], host: str | None
) -> tuple[list[str], str | None]:
    """The site host names as a token carries them; :class:`VendorError` for a bad one."""
    if sites and "sites" not in claims:
        raise VendorError("only a `license` token names sites; a `site` token adds one")
    if host is not None and "host" not in claims:
        raise VendorError("only a `site` token has a host; a licence names its sites")
    try:
        return [canonical_host(name) for name in sites], (
            canonical_host(host) if host is not None else None
        )
    except BadHost as exc:
        raise VendorError(f"refusing to issue: {exc}") from None


def _check_acceptable(
    token: str, key: VendorKey, *, installation_id: str, issuer: str, now: datetime
) -> None:
    """Verify ``token`` as the installation will; raises :class:`VendorError` if it would not."""
    check = TokenVerifier(
        installation_id=installation_id,
        issuer=issuer,
        public_keys={key.kid: key.private_key.public_key()},
        leeway_seconds=0,
        clock=FakeClock(now),
    )
    try:
        check.verify(token)
    except TokenRejected as exc:
        raise VendorError(
            f"refusing to issue: an installation would reject it: {exc.reason}"
        ) from None
