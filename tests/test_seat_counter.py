"""The seats-held count on the licence-state row: the database keeps it, whatever writes seats.

:mod:`seatgate.storage.seat_counter` installs triggers on ``seats``; a claim on
PostgreSQL checks that count, read with the seat lock, instead of counting rows.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from click.testing import CliRunner
from sqlalchemy import delete, insert, select, text

from seatgate.app import Core
from seatgate.cli.main import cli
from seatgate.clock import FakeClock
from seatgate.licensing.vendor import VendorKey
from seatgate.seats.ledger import Claim
from seatgate.storage import migrations, seat_counter
from seatgate.storage.schema import audit_events, license_state, seats
from tests import schema_history
from tests.conftest import add_users, write_config
from tests.test_claim_statements import claim

Mint = Callable[..., str]


def kept(app: Core) -> tuple[int, int]:
    """(the count on the licence-state row, the seat rows)."""
    return app.db.read(seat_counter.check)


def test_every_seat_change_moves_the_count_with_it(app: Core, mint: Mint, clock: FakeClock) -> None:
    """Claims, assigns, a reassign, a revoke, a status change and a smaller licence."""
    app.licensing.install(mint("license", seats=30), actor="admin")
    users = add_users(app, 32)
    ids = [app.accounts.get(login).id for login in users]
    assert kept(app) == (0, 0)

    assert [claim(app, u) for u in users[:26]] == [Claim.GRANTED] * 26
    app.ledger.assign(ids[26], actor="admin", pinned=True)
    assert kept(app) == (27, 27)
    app.ledger.reassign(ids[0], ids[27], actor="admin")
    app.ledger.revoke(ids[1], actor="admin")
    app.accounts.set_status(users[2], "disabled", actor="admin")
    assert kept(app) == (25, 25)
    assert [claim(app, u) for u in users[28:32]] == [Claim.GRANTED] * 4
    assert kept(app) == (29, 29)

    clock.advance(timedelta(minutes=1))  # the newer licence is the base
    app.licensing.install(mint("license", seats=25), actor="admin")  # releases four seats
    assert kept(app) == (25, 25)
    assert claim(app, users[0]) is Claim.NO_SEAT
    assert kept(app) == (25, 25)


def test_rows_written_by_hand_are_counted_too(app: Core, mint: Mint) -> None:
    """The triggers count any writer, not only seatgate's code (and TRUNCATE on PostgreSQL)."""
    app.licensing.install(mint("license", seats=25), actor="admin")
    users = add_users(app, 3)
    ids = [app.accounts.get(login).id for login in users]
    now = app.clock.now()
    rows = [
        {"account_id": i, "assigned_at": now, "last_used_at": now, "assigned_by": "sql"}
        for i in ids
    ]
    with app.db.engine.begin() as conn:
        conn.execute(insert(seats), rows)
    assert kept(app) == (3, 3)
    with app.db.engine.begin() as conn:
        conn.execute(delete(seats).where(seats.c.account_id == ids[0]))
    assert kept(app) == (2, 2)
    with app.db.engine.begin() as conn:
        conn.execute(text("DELETE FROM seats" if app.db.is_sqlite else "TRUNCATE seats"))
    assert kept(app) == (0, 0)


def test_the_upgrade_counts_the_seats_already_held(
    build_app: Callable[..., Core], db_url: str, mint: Mint
) -> None:
    """Version 12 adds the count set to the seats held, and the triggers keep it from there."""
    app = build_app(db_url)
    app.licensing.install(mint("license", seats=25), actor="admin")
    users = add_users(app, 4)
    assert [claim(app, u) for u in users[:3]] == [Claim.GRANTED] * 3
    with app.db.engine.begin() as conn:
        schema_history.back_to_version_11(conn)
    app.db.engine.dispose()

    assert app.init_schema() == (11, migrations.SCHEMA_VERSION)

    assert kept(app) == (3, 3)
    assert claim(app, users[3]) is Claim.GRANTED
    assert kept(app) == (4, 4)


def test_doctor_seats_finds_a_count_gone_wrong_and_repairs_it(
    app: Core, mint: Mint, tmp_path: Path, db_url: str, vendor_key: VendorKey
) -> None:
    config_file = write_config(tmp_path / "seatgate.yaml", db_url, vendor_key)
    app.licensing.install(mint("license", seats=25), actor="admin")
    users = add_users(app, 2)
    assert [claim(app, u) for u in users] == [Claim.GRANTED] * 2
    runner = CliRunner()
    ok = runner.invoke(cli, ["--config", str(config_file), "doctor", "seats"])
    assert ok.exit_code == 0, ok.output
    assert "seats held: 2" in ok.stdout

    with app.db.engine.begin() as conn:  # someone edits the row by hand
        conn.execute(license_state.update().values(seats_held=7))
    bad = runner.invoke(cli, ["--config", str(config_file), "doctor", "seats"])
    assert bad.exit_code == 1
    assert "says 7" in bad.stdout and "--repair" in bad.stdout

    fixed = runner.invoke(cli, ["--config", str(config_file), "doctor", "seats", "--repair"])
    assert fixed.exit_code == 0, fixed.output
    assert kept(app) == (2, 2)
    recounted = app.db.read(
        lambda conn: conn.execute(
            select(audit_events.c.details).where(audit_events.c.action == "seats.recounted")
        ).all()
    )
    assert len(recounted) == 1
