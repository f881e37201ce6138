"""Accounts: any number may exist; the seat ledger decides who may log in.

Local accounts carry an argon2id hash. Disabling an account releases its
seat in the same transaction; a new password, a disabled or a deleted
account ends the account's web sessions in the transaction of the change.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, exists, func, insert, select, update

from seatgate.accounts.login_forms import LoginForms
from seatgate.accounts.logins import check_new_login, display_login, login_key
from seatgate.accounts.passwords import PasswordHasher
from seatgate.audit import log as audit
from seatgate.clock import Clock
from seatgate.errors import (
    AccountError,
    AccountExists,
    StorageConflict,
    UnknownAccount,
    shorten,
)
from seatgate.records import SYSTEM_ACTOR, Account, Source, Status
from seatgate.seats.ledger import SeatLedger
from seatgate.seats.lock import SeatLock, take_seat_lock
from seatgate.sessions.service import EndReason, end_all_in
from seatgate.storage.db import Database
from seatgate.storage.driver_statement import DriverStatement
from seatgate.storage.schema import accounts, seats

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
MAX_NAME_LENGTH = 256
MAX_EMAIL_LENGTH = 320


@dataclass(frozen=True)
class AccountListing:
    """An account with whether it holds a seat, for lists."""

    account: Account
    has_seat: bool


class Accounts:
    """Creates, finds, enables and disables accounts."""

    def __init__(
        self, db: Database, clock: Clock, hasher: PasswordHasher, ledger: SeatLedger
    ) -> None:
        self.db = db
        self.clock = clock
        self.hasher = hasher
        self.ledger = ledger

    def add(
        self,
        login: str,
        *,
        password: str | None,
        actor: str,
        display_name: str | None = None,
        email: str | None = None,
        is_admin: bool = False,
        source: Source = "local",
    ) -> Account:
        """Create an account. Raises :class:`AccountExists`, :class:`InvalidLogin`,
        :class:`InvalidPassword` or :class:`AccountError` for a bad name or email."""
        key = login_key(login)
        if source == "local":
            check_new_login(login)  # a directory's logins are its own, flagged by the sync
        shown = display_login(login)
        display_name = _optional_text(display_name, "name", MAX_NAME_LENGTH)
        email = validate_email(email)
        password_hash = self.hasher.hash(password) if password is not None else None

        def work(conn: Connection) -> Account:
            existing = conn.execute(
                select(accounts.c.login).where(accounts.c.login_key == key)
            ).scalar()
            if existing is not None:
                raise AccountExists(shown, existing)
            now = self.clock.now()
            new_id = conn.execute(
                insert(accounts)
                .values(
                    login=shown,
                    login_key=key,
                    display_name=display_name,
                    email=email,
                    source=source,
                    status="active",
                    password_hash=password_hash,
                    is_admin=is_admin,
                    created_at=now,
                    updated_at=now,
                )
                .returning(accounts.c.id)
            ).scalar_one()
            audit.record(
                conn,
                at=now,
                actor=actor,
                action="account.created",
                subject=shown,
                details={"source": source, "admin": is_admin},
            )
            return _get_by_id(conn, new_id)

        try:
            return self.db.write(work)
        except StorageConflict:
            # Another process created the same login between our check and insert.
            raise AccountExists(shown, shown) from None

    def find(self, login: str) -> Account | None:
        """Return the account with this login (compared normalised), or None."""
        key = login_key(login)
        return self.db.read(lambda conn: _get_by_key(conn, key))

    def find_in(self, conn: Connection, login: str) -> Account | None:
        """:meth:`find` inside the caller's transaction."""
        return _get_by_key(conn, login_key(login))

    def find_signing_in(self, conn: Connection, typed: str, forms: LoginForms) -> Account | None:
        """The account ``typed`` names at a login, in the caller's transaction, or None.

        ``typed`` may be any form :class:`LoginForms` accepts (``alice``,
        ``alice@corp.example``, ``CORP\\alice``); the stored login itself wins
        over a directory form. Raises :class:`InvalidLogin` for an unusable text.
        """
        for candidate in forms.candidates(typed):
            account = _get_by_key(conn, candidate.key)
            if account is not None and (not candidate.directory_only or account.source == "ldap"):
                return account
        return None

    def get(self, login: str) -> Account:
        """Return the account with this login. Raises :class:`UnknownAccount`."""
        account = self.find(login)
        if account is None:
            raise UnknownAccount(login)
        return account

    def list(self) -> list[AccountListing]:
        """Every account, by login, with whether it holds a seat."""
        has_seat = exists().where(seats.c.account_id == accounts.c.id)
        query = select(accounts, has_seat.label("has_seat")).order_by(accounts.c.login_key)
        return self.db.read(
            lambda conn: [
                AccountListing(Account.from_row(row), bool(row.has_seat))
                for row in conn.execute(query)
            ]
        )

    def count(self) -> int:
        """Number of accounts of any status."""
        return self.db.read(
            lambda conn: int(conn.execute(select(func.count()).select_from(accounts)).scalar_one())
        )

    def set_status(self, login: str, status: Status, *, actor: str) -> bool:
        """Enable, disable or mark deleted; a non-active account loses its seat at once.

        Returns whether anything changed. Raises :class:`UnknownAccount`.
        """
        key = login_key(login)

        def work(conn: Connection) -> bool:
            # The seat lock: a concurrent claim must see the new status.
            lock = take_seat_lock(conn)
            account = _get_by_key(conn, key)
            if account is None:
                raise UnknownAccount(login)
            if account.status == status:
                return False
            change_status_in(
                lock,
                self.ledger,
                account.id,
                account.login,
                status,
                actor=actor,
                now=self.clock.now(),
            )
            return True

        return self.db.write(work)

    def set_password(self, login: str, password: str, *, actor: str) -> None:
        """Set a local account's password and end its sessions (in one transaction).

        Raises :class:`UnknownAccount` or :class:`InvalidPassword`.
        """
        account = self.get(login)
        if account.source == "ldap":
            raise AccountError(
                f"`{shorten(account.login)}` authenticates against the directory; "
                "seatgate stores no password for it"
            )
        new_hash = self.hasher.hash(password)

        def work(conn: Connection) -> None:
            now = self.clock.now()
            conn.execute(
                update(accounts)
                .where(accounts.c.id == account.id)
                .values(password_hash=new_hash, updated_at=now)
            )
            audit.record(
                conn, at=now, actor=actor, action="account.password_set", subject=account.login
            )
            end_all_in(conn, [account.id], now=now, actor=actor, reason=EndReason.PASSWORD_CHANGED)

        self.db.write(work)

    def rehash_in(self, conn: Connection, account: Account, new_hash: str, now: datetime) -> None:
        """Replace the hash a login just verified with ``new_hash`` (current parameters).

        Only if it is still the hash that was verified: a password an admin
        set in the meantime must not be overwritten by the old one.
        """
        replaced = conn.execute(
            update(accounts)
            .where(accounts.c.id == account.id)
            .where(accounts.c.password_hash == account.password_hash)
            .values(password_hash=new_hash, updated_at=now)
        ).rowcount
        if replaced:
            audit.record(
                conn,
                at=now,
                actor=SYSTEM_ACTOR,
                action="account.password_rehashed",
                subject=account.login,
            )


STATUS_ACTIONS = {"active": "account.enabled", "disabled": "account.disabled"}


def change_status_in(
    lock: SeatLock,
    ledger: SeatLedger,
    account_id: int,
    login: str,
    status: str,
    *,
    actor: str,
    now: datetime,
    **values: Any,
) -> bool:
    """Set an account's status inside the transaction that holds ``lock``.

    A non-active account loses its seat and its sessions at once. ``values`` are further
    columns to set in the same statement. Returns whether a seat was freed.
    """
    conn = lock.conn
    audit.record(
        conn,
        at=now,
        actor=actor,
        action=STATUS_ACTIONS.get(status, "account.deleted"),
        subject=login,
    )
    if status != "active":
        reason = EndReason.ACCOUNT_DISABLED if status == "disabled" else EndReason.ACCOUNT_DELETED
        end_all_in(conn, [account_id], now=now, actor=actor, reason=reason)
    # Seat row before account row: the order a login's bookkeeping takes
    # them in, so the two can never deadlock on PostgreSQL.
    freed = status != "active" and ledger.release_in(
        lock, account_id, actor=actor, reason=f"account_{status}"
    )
    conn.execute(
        update(accounts)
        .where(accounts.c.id == account_id)
        .values(status=status, updated_at=now, **values)
    )
    return freed


def validate_email(email: str | None) -> str | None:
    """Return a cleaned email address or None. Raises :class:`AccountError`."""
    email = _optional_text(email, "email", MAX_EMAIL_LENGTH)
    if email is not None and not _EMAIL.match(email):
        raise AccountError(f"email `{shorten(email)}` is not an email address")
    return email


def _optional_text(value: str | None, what: str, limit: int) -> str | None:
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    if len(value) > limit:
        raise AccountError(f"{what} is longer than {limit} characters")
    # isprintable() is False for every control character: a cheap pass first.
    if not value.isprintable() and any(ord(ch) < 32 for ch in value):
        raise AccountError(f"{what} `{shorten(value)}` contains control characters")
    return value


# Built once: every login looks its account up.
_BY_KEY = DriverStatement(select(accounts).where(accounts.c.login_key == bindparam("key")))


def _get_by_key(conn: Connection, key: str) -> Account | None:
    row = _BY_KEY.run(conn, {"key": key}).first()
    return Account.from_row(row) if row is not None else None


def _get_by_id(conn: Connection, account_id: int) -> Account:
    return Account.from_row(conn.execute(select(accounts).where(accounts.c.id == account_id)).one())
