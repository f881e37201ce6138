"""``seatgate vendor``: the vendor's key generation and token issuing."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path

import click

from seatgate.clock import SystemClock
from seatgate.config import DEFAULT_ISSUER
from seatgate.licensing.kinds import MAX_OVERAGE
from seatgate.licensing.tokens import EDITIONS, KINDS
from seatgate.licensing.vendor import (
    DEFAULT_KID,
    VendorError,
    generate_key,
    issue_token,
    load_key,
    public_key_path,
)


@click.group("vendor")
def vendor_group() -> None:
    """The vendor's side: signing keys and licence tokens."""


@vendor_group.command("keygen")
@click.option(
    "--out",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where to write the private key (the public key goes beside it).",
)
@click.option("--kid", default=DEFAULT_KID, show_default=True, help="Key id for rotation.")
def keygen(out: Path, kid: str) -> None:
    """Create an Ed25519 signing key pair."""
    key = generate_key(out, kid)
    click.echo(f"private key: {out} (keep it secret)")
    click.echo(f"public key:  {public_key_path(out)}")
    click.echo(f"kid: {key.kid}")
    click.echo("")
    click.echo("Add to the installation's seatgate.yaml:")
    click.echo("license:")
    click.echo("  public_keys:")
    click.echo(f"    {key.kid}: |")
    for line in key.public_pem().strip().splitlines():
        click.echo(f"      {line}")


def _parse_date(_ctx: click.Context, _param: click.Parameter, value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        return datetime.strptime(value, "%Y-%m-%d").replace(tzinfo=UTC)
    except ValueError:
        raise click.BadParameter(f"`{value}` is not a date like 2026-03-31") from None


def _parse_amount(
    _ctx: click.Context, _param: click.Parameter, value: str | None
) -> Decimal | None:
    if value is None:
        return None
    try:
        amount = Decimal(value)
    except InvalidOperation:
        raise click.BadParameter(f"`{value}` is not an amount like 1990.00") from None
    if not amount.is_finite() or amount < 0:
        raise click.BadParameter(f"`{value}` is not an amount like 1990.00")
    return amount


def _parse_overage(
    _ctx: click.Context, _param: click.Parameter, value: str | None
) -> Decimal | None:
    if value is None:
        return None
    try:
        share = Decimal(value)
    except InvalidOperation:
        share = Decimal("NaN")
    if not share.is_finite() or not 0 <= share <= MAX_OVERAGE:
        raise click.BadParameter(
            f"`{value}` is not a share from 0 to {MAX_OVERAGE} (0.1 allows 10 % more seats)"
        )
    return share


@vendor_group.command("issue")
@click.argument("kind", type=click.Choice(KINDS))
@click.option(
    "--key",
    "key_path",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The private key file from `vendor keygen`.",
)
@click.option("--kid", help="Key id (default: from the key's .pub.pem companion, else k1).")
@click.option("--installation", required=True, help="The installation id (the token's aud).")
@click.option("--customer", required=True, help="The customer id (sub).")
@click.option("--issuer", default=DEFAULT_ISSUER, show_default=True)
@click.option("--edition", type=click.Choice(EDITIONS), help="licence and trial tokens")
@click.option("--seats", type=int, help="licence (at least 25) or add-on seats")
@click.option("--unlimited", is_flag=True, help="licence without a seat cap")
@click.option("--purchased", callback=_parse_date, help="purchase date YYYY-MM-DD (default today)")
@click.option(
    "--price", callback=_parse_amount, help="list price (renewal quotes; a site's is only shown)"
)
@click.option("--currency", help="three-letter currency code of --price")
@click.option("--lic", help="jti of the licence an add-on, site or renewal extends")
@click.option("--jti", help="token id (default: generated)")
@click.option("--site", "sites", multiple=True, help="licence: a site host name (repeatable)")
@click.option("--host", help="site token: the host name it adds")
@click.option(
    "--overage",
    callback=_parse_overage,
    help="licence: share of seats allowed beyond --seats, billed at true-up (0 to 0.5)",
)
def issue(
    kind: str,
    key_path: Path,
    kid: str | None,
    installation: str,
    customer: str,
    issuer: str,
    edition: str | None,
    seats: int | None,
    unlimited: bool,
    purchased: datetime | None,
    price: Decimal | None,
    currency: str | None,
    lic: str | None,
    jti: str | None,
    sites: tuple[str, ...],
    host: str | None,
    overage: Decimal | None,
) -> None:
    """Mint a signed KIND token; the token goes to stdout."""
    if (price is None) != (currency is None):
        raise click.UsageError("--price and --currency go together")
    try:
        token = issue_token(
            load_key(key_path, kid),
            kind=kind,
            installation_id=installation,
            customer=customer,
            now=SystemClock().now(),
            issuer=issuer,
            edition=edition,
            seats=seats,
            unlimited=unlimited,
            purchased_at=purchased,
            price=(price, currency) if price is not None and currency else None,
            lic=lic,
            jti=jti,
            sites=sites,
            host=host,
            overage=overage,
        )
    except VendorError as exc:
        # Missing or out-of-range options are a usage error (exit 2).
        raise click.UsageError(str(exc)) from None
    click.echo(token)
