"""A first-login seat claim: few statements under the seat lock, the same rules on each database.

On PostgreSQL the seat lock, the claimant's read, the seat insert and the month's
and the day's seat use are one statement (:mod:`seatgate.seats.one_statement_claim`);
on SQLite they stay the portable statements. Both must decide alike and keep the month's
record in step with the seats held.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import psycopg._queries as psycopg_queries
from sqlalchemy import func, select
from sqlalchemy.dialects import postgresql

from seatgate.app import Core
from seatgate.clock import FakeClock
from seatgate.seats import one_statement_claim
from seatgate.seats.ledger import Claim
from seatgate.storage.schema import seat_days, seat_usage, seats
from tests.conftest import add_users
from tests.statements_support import counting

Mint = Callable[..., str]


def claim(app: Core, user: str | int) -> Claim:
    account_id = user if isinstance(user, int) else app.accounts.get(user).id
    return app.db.write(lambda conn: app.ledger.claim_in(conn, account_id, app.clock.now()))


def month_rows(app: Core) -> list[tuple[str, int, int, int | None]]:
    query = select(
        seat_usage.c.month, seat_usage.c.peak, seat_usage.c.last, seat_usage.c.seats_total
    )
    return [tuple(row) for row in app.db.read(lambda conn: conn.execute(query).all())]


def held(app: Core) -> int:
    return app.db.read(
        lambda conn: conn.execute(select(func.count()).select_from(seats)).scalar_one()
    )


def test_a_claim_runs_two_statements_on_postgresql_and_nine_on_sqlite(
    build_app: Callable[..., Core], db_url: str, mint: Mint
) -> None:
    app = build_app(db_url)
    app.licensing.install(mint("license", seats=25), actor="admin")
    users = add_users(app, 3)
    assert claim(app, users[0]) is Claim.GRANTED  # the month's row exists from here on

    second = app.accounts.get(users[1]).id
    with counting(app) as statements:
        assert claim(app, second) is Claim.GRANTED

    if app.db.engine.dialect.name == "postgresql":
        # The lock, the claimant, the seat, the month and the day's seat use (the
        # console's chart); the audit head and the events.
        assert len(statements) == 2, statements
        assert statements[0].startswith("WITH seat_lock AS")
        assert "FOR SHARE OF accounts" in statements[0]
        assert "INSERT INTO seat_days" in statements[0]
        assert "FOR UPDATE OF audit_chain" in statements[1]
    else:
        assert len(statements) == 9, "\n".join(s[:90] for s in statements)
    assert held(app) == 2


def test_claims_keep_the_month_in_step_and_refuse_alike(
    build_app: Callable[..., Core], db_url: str, mint: Mint, clock: FakeClock
) -> None:
    app = build_app(db_url, reserved_for_admins=1)
    app.licensing.install(mint("license", seats=25), actor="admin")
    users = add_users(app, 25)
    (admin,) = add_users(app, 1, prefix="admin", admin=True)

    assert claim(app, users[0]) is Claim.GRANTED  # no month row yet: the portable path makes it
    assert month_rows(app) == [("2026-03", 1, 1, 25)]
    assert claim(app, users[0]) is Claim.HELD
    clock.advance(timedelta(days=31))  # a new month: its row is made again
    assert [claim(app, u) for u in users[1:24]] == [Claim.GRANTED] * 23
    assert month_rows(app) == [("2026-03", 1, 1, 25), ("2026-04", 24, 24, 25)]
    # The last seat is the admins' reserve.
    assert claim(app, users[24]) is Claim.NO_SEAT
    assert claim(app, admin) is Claim.GRANTED
    assert claim(app, users[24]) is Claim.NO_SEAT
    assert held(app) == 25
    assert month_rows(app)[-1] == ("2026-04", 25, 25, 25)

    app.ledger.revoke(app.accounts.get(users[3]).id, actor="admin")
    app.accounts.set_status(users[24], "disabled", actor="admin")
    assert claim(app, users[24]) is Claim.NOT_ACTIVE
    # 24 held: the free seat is the admins' reserve again.
    assert claim(app, users[3]) is Claim.NO_SEAT
    assert held(app) == 24
    assert month_rows(app)[-1] == ("2026-04", 25, 24, 25)


def test_manual_assignment_lets_only_admins_claim(
    build_app: Callable[..., Core], db_url: str, mint: Mint
) -> None:
    app = build_app(db_url, assignment="manual")
    app.licensing.install(mint("license", seats=25), actor="admin")
    (user,) = add_users(app, 1)
    (admin,) = add_users(app, 1, prefix="admin", admin=True)

    assert claim(app, user) is Claim.NOT_ALLOWED
    assert claim(app, admin) is Claim.GRANTED
    assert held(app) == 1


def test_a_seated_login_marks_the_seat_used_and_the_last_login_in_few_statements(
    build_app: Callable[..., Core], db_url: str, mint: Mint, clock: FakeClock
) -> None:
    app = build_app(db_url)
    app.licensing.install(mint("license", seats=25), actor="admin")
    (user,) = add_users(app, 1)
    assert app.gate.decide(user, f"{user}-pw").seat_claimed
    clock.advance(timedelta(hours=1))

    with counting(app) as statements:
        decision = app.gate.decide(user, f"{user}-pw")

    assert decision.allowed and not decision.seat_claimed
    (holder,) = app.ledger.holders()
    assert (holder.last_used_at, holder.last_login_at) == (clock.now(), clock.now())
    if app.db.engine.dialect.name == "postgresql":
        # Reservation and account; status, licence and seat; seat used and last login in
        # one; the audit head and the events.
        assert len(statements) == 4, statements


def day_rows(app: Core) -> list[tuple[str, int, int, int | None]]:
    query = select(seat_days.c.day, seat_days.c.peak, seat_days.c.last, seat_days.c.seats_total)
    return [tuple(row) for row in app.db.read(lambda conn: conn.execute(query.order_by("day")))]


def test_claims_keep_each_days_seat_use_alike_on_both_databases(
    build_app: Callable[..., Core], db_url: str, mint: Mint, clock: FakeClock
) -> None:
    """A claim makes or raises today's row (on PostgreSQL inside the claim statement): a new
    day starts from what the last recorded one ended with, as the portable path does."""
    app = build_app(db_url)
    app.licensing.install(mint("license", seats=25), actor="admin")
    users = add_users(app, 4)
    first = clock.now().date()

    assert [claim(app, u) for u in users[:3]] == [Claim.GRANTED] * 3
    app.ledger.revoke(app.accounts.get(users[0]).id, actor="admin")
    clock.advance(timedelta(days=1))
    assert [claim(app, u) for u in (users[3], users[0])] == [Claim.GRANTED] * 2
    clock.advance(timedelta(days=2))
    app.ledger.revoke(app.accounts.get(users[1]).id, actor="admin")
    assert claim(app, users[1]) is Claim.GRANTED

    days = [(first + timedelta(days=n)).isoformat() for n in (0, 1, 3)]
    assert day_rows(app) == [(days[0], 3, 2, 25), (days[1], 4, 4, 25), (days[2], 4, 4, 25)]


def test_the_postgresql_claim_statement_is_short_enough_for_psycopg_to_cache() -> None:
    """psycopg parses a longer statement's placeholders again on every run, in the claiming
    process, while other first logins wait: the claim statement stays under its limit."""
    statement = one_statement_claim._compiled(postgresql.psycopg.dialect()).string
    assert len(statement) <= one_statement_claim.MAX_STATEMENT_LENGTH
    assert psycopg_queries.MAX_CACHED_STATEMENT_LENGTH == one_statement_claim.MAX_STATEMENT_LENGTH
