"""``seatgate demo``: a whole installation in a temporary folder, end to end.

It uses the same code paths as a real installation: a vendor key, a signed
25-seat BizSpace licence, a configuration file, the schema, 40 accounts and
the login decision for each of them.
"""

from __future__ import annotations

import secrets
import sys
import tempfile
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import click

from seatgate.app import Core
from seatgate.clock import SystemClock
from seatgate.config import load_config
from seatgate.gate.decision import Reason
from seatgate.licensing.vendor import generate_key, issue_token

FIRST_NAMES = [
    "María",
    "José",
    "Lucía",
    "Javier",
    "Carmen",
    "Antonio",
    "Elena",
    "Manuel",
    "Isabel",
    "Francisco",
    "Laura",
    "David",
    "Pilar",
    "Alejandro",
    "Marta",
    "Sergio",
    "Rocío",
    "Pablo",
    "Nuria",
    "Álvaro",
]
LAST_NAMES = [
    "García",
    "Fernández",
    "González",
    "Rodríguez",
    "López",
    "Martínez",
    "Sánchez",
    "Pérez",
    "Gómez",
    "Martín",
    "Jiménez",
    "Ruiz",
    "Hernández",
    "Díaz",
    "Moreno",
    "Muñoz",
    "Álvarez",
    "Romero",
    "Alonso",
    "Peña",
]
DEMO_ACCOUNTS = 40
DEMO_SEATS = 25
INSTALLATION = "intranet.demo.example"


def spanish_people(count: int) -> list[tuple[str, str]]:
    """(login, display name) pairs with Spanish names; logins are plain ASCII."""
    people = []
    for i in range(count):
        first = FIRST_NAMES[i % len(FIRST_NAMES)]
        # Shifted on each round through the first names, so no two people match.
        last = LAST_NAMES[(i * 7 + i // len(FIRST_NAMES) * 3) % len(LAST_NAMES)]
        plain = unicodedata.normalize("NFKD", f"{first}.{last}").encode("ascii", "ignore").decode()
        people.append((plain.lower(), f"{first} {last}"))
    return people


def build_demo(folder: Path) -> Core:
    """Write a vendor key, a configuration and a licensed, initialised installation."""
    key = generate_key(folder / "vendor-k1.pem", "k1")
    config_path = folder / "seatgate.yaml"
    config_path.write_text(
        "installation_id: " + INSTALLATION + "\n"
        "database_url: sqlite:///seatgate.db\n"
        "license:\n"
        "  public_keys:\n"
        "    k1: vendor-k1.pub.pem\n"
        "seats:\n"
        "  assignment: auto\n"
        "web:\n"
        "  secure_cookies: false   # the demo serves plain http on 127.0.0.1\n",
        encoding="utf-8",
    )
    app = Core.build(load_config(config_path), check_schema=False)
    app.init_schema()
    token = issue_token(
        key,
        kind="license",
        installation_id=INSTALLATION,
        customer="Ayuntamiento de Ejemplo",
        now=SystemClock().now(),
        edition="bizspace",
        seats=DEMO_SEATS,
        jti="demo-bizspace-25",
    )
    (folder / "licence.jwt").write_text(token + "\n", encoding="ascii")
    app.licensing.install(token, actor="vendor (demo)")
    return app


@click.command("demo")
@click.option(
    "--folder",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where to build the demo (default: a new temporary folder).",
)
@click.option(
    "--serve/--no-serve",
    default=None,
    help="Then serve the web gate on 127.0.0.1 (default: only when run in a terminal).",
)
@click.option("--port", default=8080, show_default=True, type=click.IntRange(1, 65535))
def demo(folder: Path | None, serve: bool | None, port: int) -> None:
    """Build a 25-seat installation with 40 accounts, log them all in, then serve it."""
    if folder is None:
        folder = Path(tempfile.mkdtemp(prefix="seatgate-demo-"))
    else:
        folder.mkdir(parents=True, exist_ok=False)
    click.echo(f"demo installation in {folder}")
    app = build_demo(folder)
    try:
        logins = _run(app, folder)
    finally:
        app.close()
    if serve is None:
        serve = sys.stdout.isatty()
    if serve:
        _serve(folder, logins, port)


def _serve(folder: Path, logins: DemoLogins, port: int) -> None:
    from seatgate.cli.serve import run  # noqa: PLC0415 (werkzeug only when serving)

    config = load_config(folder / "seatgate.yaml")
    click.echo("")
    click.echo(f"web gate: http://127.0.0.1:{port}/login   (Ctrl-C stops)")
    click.echo(f"  admin:              admin / {logins.admin_password}  (then /admin)")
    for login in logins.holders[:3]:
        click.echo(f"  user with a seat:   {login} / {logins.passwords[login]}")
    for login in logins.refused[:1]:
        click.echo(f"  user without seat:  {login} / {logins.passwords[login]}")
    run(config, "127.0.0.1", port)


@dataclass(frozen=True)
class DemoLogins:
    """The demo's logins and passwords, to print for the web gate."""

    admin_password: str
    passwords: dict[str, str]
    holders: list[str]
    refused: list[str]


def _run(app: Core, folder: Path) -> DemoLogins:
    admin_password = secrets.token_urlsafe(12)
    app.accounts.add(
        "admin", password=admin_password, actor="demo", display_name="Administración", is_admin=True
    )
    people = spanish_people(DEMO_ACCOUNTS)
    passwords = {}
    for login, name in people:
        passwords[login] = secrets.token_urlsafe(12)
        app.accounts.add(
            login,
            password=passwords[login],
            actor="demo",
            display_name=name,
            email=f"{login}@demo.example",
        )
    click.echo(f"licence: BizSpace, {DEMO_SEATS} seats; accounts: {len(people)} (plus admin)")
    click.echo("")

    refused: list[str] = []
    for number, (login, name) in enumerate(people, start=1):
        decision = app.gate.decide(login, passwords[login], address="demo")
        click.echo(f"{number:>3}  {login:<22} {name:<22} {decision}")
        if not decision.allowed:
            refused.append(login)
    admitted = len(people) - len(refused)
    click.echo("")
    click.echo(f"{admitted} admitted, {len(refused)} refused with {Reason.NO_SEAT_AVAILABLE}")
    if refused:
        waiting = refused[0]
        seat_holder = app.ledger.holders()[0].login
        click.echo("")
        click.echo(f"admin reassigns the seat of {seat_holder} to {waiting} ...")
        app.ledger.reassign(
            app.accounts.get(seat_holder).id, app.accounts.get(waiting).id, actor="admin"
        )
        again = app.gate.decide(waiting, passwords[waiting], address="demo")
        click.echo(f"{waiting}: {again}")
        displaced = app.gate.decide(seat_holder, passwords[seat_holder], address="demo")
        click.echo(f"{seat_holder}: {displaced}")
    status = app.licensing.status()
    click.echo("")
    click.echo(f"seats used: {status.seats_used} of {status.seats_total}")
    click.echo(f"admin login: admin / {admin_password}")
    click.echo(f"look around: seatgate --config {folder / 'seatgate.yaml'} seats list")
    holders = [h.login for h in app.ledger.holders() if not h.is_admin]
    still_refused = [login for login in refused if login not in holders]
    return DemoLogins(admin_password, passwords, holders, still_refused)
