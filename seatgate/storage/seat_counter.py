"""The seats held, counted on the licence-state row by the database itself.

``license_state.seats_held`` is the number of rows in ``seats``. Triggers on
``seats`` keep it: every insert adds the rows inserted, every delete takes
away the rows deleted, in the statement that made the change and so in its
transaction. Whatever path writes seats -- a claim, an admin's assign or
revoke, a reclaim, a licence change, an import, a directory sync, a row
deleted by hand in ``psql`` -- the count moves with it; no code has to
remember to.

Why a count on that row: it is the seat lock (:mod:`seatgate.seats.lock`).
Every seat change holds it, so the count cannot move while a claim holds it,
and on PostgreSQL a statement that locks the row reads the row's newest
version once the lock is granted, count included: a claim can lock, count
and insert in one statement (:mod:`seatgate.seats.one_statement_claim`),
where ``COUNT(*)`` over ``seats`` would see the statement's older snapshot.

PostgreSQL: statement-level triggers with transition tables (one update of
the row per statement, however many seats it wrote; none when it wrote
none), and one for ``TRUNCATE``. SQLite: row-level triggers. :func:`check`
compares the count with the rows (``seatgate doctor seats``).
"""

from __future__ import annotations

from sqlalchemy import Connection, func, select, text, update

from seatgate.storage.schema import license_state, seats

_PG_FUNCTION = """
CREATE OR REPLACE FUNCTION seatgate_seats_held() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    changed integer;
BEGIN
    IF TG_OP = 'INSERT' THEN
        SELECT count(*) INTO changed FROM seats_added;
    ELSIF TG_OP = 'DELETE' THEN
        SELECT -count(*) INTO changed FROM seats_removed;
    ELSE
        UPDATE license_state SET seats_held = 0 WHERE id = 1;
        RETURN NULL;
    END IF;
    IF changed <> 0 THEN
        UPDATE license_state SET seats_held = seats_held + changed WHERE id = 1;
    END IF;
    RETURN NULL;
END
$$
"""
_PG_TRIGGERS = (
    "CREATE TRIGGER seats_held_added AFTER INSERT ON seats REFERENCING NEW TABLE AS "
    "seats_added FOR EACH STATEMENT EXECUTE FUNCTION seatgate_seats_held()",
    "CREATE TRIGGER seats_held_removed AFTER DELETE ON seats REFERENCING OLD TABLE AS "
    "seats_removed FOR EACH STATEMENT EXECUTE FUNCTION seatgate_seats_held()",
    "CREATE TRIGGER seats_held_truncated AFTER TRUNCATE ON seats "
    "FOR EACH STATEMENT EXECUTE FUNCTION seatgate_seats_held()",
)
_SQLITE_TRIGGERS = (
    "CREATE TRIGGER seats_held_added AFTER INSERT ON seats BEGIN "
    "UPDATE license_state SET seats_held = seats_held + 1 WHERE id = 1; END",
    "CREATE TRIGGER seats_held_removed AFTER DELETE ON seats BEGIN "
    "UPDATE license_state SET seats_held = seats_held - 1 WHERE id = 1; END",
)
TRIGGERS = ("seats_held_added", "seats_held_removed", "seats_held_truncated")
"""The triggers' names (the last on PostgreSQL only)."""


def install(conn: Connection) -> None:
    """Create the triggers and set the count to the seats held now (schema step).

    Idempotent: a fresh installation over emptied tables (the triggers are
    still there) replaces them rather than failing.
    """
    _drop_triggers(conn)
    if conn.dialect.name == "postgresql":
        conn.execute(text(_PG_FUNCTION))
        statements: tuple[str, ...] = _PG_TRIGGERS
    else:
        statements = _SQLITE_TRIGGERS
    for statement in statements:
        conn.execute(text(statement))
    recount(conn)


def uninstall(conn: Connection) -> None:
    """Drop the triggers (and the PostgreSQL function); the column stays."""
    _drop_triggers(conn)
    if conn.dialect.name == "postgresql":
        conn.execute(text("DROP FUNCTION IF EXISTS seatgate_seats_held()"))


def _drop_triggers(conn: Connection) -> None:
    postgres = conn.dialect.name == "postgresql"
    for name in TRIGGERS:
        conn.execute(text(f"DROP TRIGGER IF EXISTS {name}" + (" ON seats" if postgres else "")))


def recount(conn: Connection) -> None:
    """Set the count to the rows in ``seats`` (take the seat lock first outside a schema step)."""
    held = select(func.count()).select_from(seats).scalar_subquery()
    conn.execute(update(license_state).where(license_state.c.id == 1).values(seats_held=held))


def check(conn: Connection) -> tuple[int, int]:
    """The count on the licence-state row and the rows in ``seats``; equal when all is well."""
    counted = conn.execute(
        select(license_state.c.seats_held).where(license_state.c.id == 1)
    ).scalar_one()
    rows = conn.execute(select(func.count()).select_from(seats)).scalar_one()
    return int(counted), int(rows)
