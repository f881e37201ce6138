"""Helpers of the fault-injection tests: installations, and checks read from the database.

The checks use their own engine and plain SQL on the tables, not the
product's services, so a broken service cannot vouch for itself:

- the seat invariant (seats held <= ``license_state.seats_total`` unless
  unlimited), no seat without an account row, no account with two seats, no
  seat held by an account that is not active;
- the audit hash chain (:func:`seatgate.audit.chain.verify`).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Connection, Engine, create_engine, text

from seatgate.app import Core
from seatgate.audit import chain as audit_chain
from seatgate.config import load_config
from seatgate.licensing.vendor import VendorKey, issue_token
from tests.conftest import INSTALLATION, write_config

SEATS = 25


def wall_clock_installation(
    folder: Path, db_url: str, vendor_key: VendorKey, *, seats: int = SEATS
) -> tuple[Core, Path]:
    """An initialised installation on the wall clock, licensed now, and its config file.

    Other processes build their own installation from the config file, so
    every process judges the licence by the same (real) time.
    """
    config_path = write_config(folder / "seatgate.yaml", db_url, vendor_key)
    app = Core.build(load_config(config_path), check_schema=False)
    app.init_schema()
    token = issue_token(
        vendor_key,
        kind="license",
        installation_id=INSTALLATION,
        customer="acme",
        now=datetime.now(UTC),
        edition="bizspace",
        seats=seats,
    )
    app.licensing.install(token, actor="test")
    return app, config_path


@dataclass(frozen=True)
class LedgerFacts:
    """What the database itself says about the seats and the audit log."""

    seats_held: int
    seats_counted: int
    """``license_state.seats_held``, the count the triggers on ``seats`` keep."""
    seats_total: int
    unlimited: bool
    orphan_seats: int
    accounts_with_two_seats: int
    seats_of_inactive_accounts: int
    chain: audit_chain.ChainReport

    def problems(self) -> list[str]:
        """Every broken rule, in words (empty when all hold)."""
        found = []
        if not self.unlimited and self.seats_held > self.seats_total:
            found.append(f"{self.seats_held} seats held, {self.seats_total} entitled")
        if self.seats_counted != self.seats_held:
            found.append(f"{self.seats_held} seats held, the count says {self.seats_counted}")
        if self.orphan_seats:
            found.append(f"{self.orphan_seats} seats without an account row")
        if self.accounts_with_two_seats:
            found.append(f"{self.accounts_with_two_seats} accounts hold two seats")
        if self.seats_of_inactive_accounts:
            found.append(f"{self.seats_of_inactive_accounts} seats held by inactive accounts")
        if self.chain.problem is not None:
            found.append(f"audit chain broken: {self.chain.problem.message}")
        return found


def _scalar(conn: Connection, sql: str) -> int:
    return int(conn.execute(text(sql)).scalar_one())


def read_facts(engine: Engine) -> LedgerFacts:
    """Read :class:`LedgerFacts` in one snapshot."""
    with engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            conn.execution_options(isolation_level="REPEATABLE READ")
        state = conn.execute(
            text("SELECT seats_total, unlimited, seats_held FROM license_state WHERE id = 1")
        ).one()
        facts = LedgerFacts(
            seats_held=_scalar(conn, "SELECT count(*) FROM seats"),
            seats_counted=int(state.seats_held),
            seats_total=int(state.seats_total),
            unlimited=bool(state.unlimited),
            orphan_seats=_scalar(
                conn,
                "SELECT count(*) FROM seats s LEFT JOIN accounts a ON a.id = s.account_id "
                "WHERE a.id IS NULL",
            ),
            accounts_with_two_seats=_scalar(
                conn,
                "SELECT count(*) FROM (SELECT account_id FROM seats GROUP BY account_id "
                "HAVING count(*) > 1) twice",
            ),
            seats_of_inactive_accounts=_scalar(
                conn,
                "SELECT count(*) FROM seats s JOIN accounts a ON a.id = s.account_id "
                "WHERE a.status <> 'active'",
            ),
            chain=audit_chain.verify(conn),
        )
        conn.rollback()
    return facts


@contextmanager
def inspector(db_url: str) -> Iterator[Engine]:
    """An engine of its own on the database, for checks that do not trust the product."""
    engine = create_engine(db_url)
    try:
        yield engine
    finally:
        engine.dispose()


def assert_consistent(engine: Engine) -> LedgerFacts:
    """Fail with every broken rule named; return the facts when all hold."""
    facts = read_facts(engine)
    assert facts.problems() == [], facts.problems()
    return facts


def seat_holders(engine: Engine) -> set[str]:
    """Logins holding a seat, read from the tables."""
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT a.login FROM seats s JOIN accounts a ON a.id = s.account_id")
        )
        return {str(row.login) for row in rows}


def count_events(engine: Engine, action: str, subject: str, outcome: str | None = None) -> int:
    """How many audit events of ``action`` name ``subject`` (and ``outcome`` if given)."""
    sql = "SELECT count(*) FROM audit_events WHERE action = :action AND subject = :subject"
    params = {"action": action, "subject": subject}
    if outcome is not None:
        sql += " AND outcome = :outcome"
        params["outcome"] = outcome
    with engine.connect() as conn:
        return int(conn.execute(text(sql), params).scalar_one())


def sqlite_write_lock_wait(path: Path, timeout: float = 5.0) -> float:
    """Seconds until a plain sqlite3 connection got (and released) the write lock.

    Raises ``sqlite3.OperationalError`` ("database is locked") when the lock
    stayed taken for ``timeout`` seconds: a dead writer left it behind.
    """
    started = time.monotonic()
    conn = sqlite3.connect(path, timeout=timeout, isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("ROLLBACK")
    finally:
        conn.close()
    return time.monotonic() - started
