"""Seats and admin rights that follow directory groups, inside the sync's transaction.

Every rule here reads the accounts as the sync left them (its entries are
already written in the same transaction), not the run's entries, so that an
incremental run applies the groups to the users who did not change too.
Group DNs are compared without regard to case, as directories do.

- Seat groups grant seats to their active members, groups in order, while
  seats remain. In ``exclusive`` mode they also decide: a directory account
  in no seat group loses its seat, unless the seat is pinned (kept and
  reported). Local and CSV accounts are never touched.
- Admin groups decide which directory accounts are admins: members become
  admins, the others stop being admins. Local admins are never changed.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, select, update

from seatgate.audit import log as audit
from seatgate.directory.model import SyncReport
from seatgate.seats.ledger import SeatLedger
from seatgate.seats.lock import SeatLock
from seatgate.storage.schema import accounts, seats

ACTOR = "sync:ldap"

_ACTIVE_ADMINS = select(accounts.c.login).where(
    accounts.c.is_admin.is_(True), accounts.c.status == "active"
)


@dataclass(frozen=True)
class _Member:
    id: int
    login: str
    external_id: str
    groups: frozenset[str]


def in_any(groups: frozenset[str], wanted: Iterable[str]) -> bool:
    """Whether an account with ``groups`` (lower-cased) is in one of ``wanted``."""
    return any(group.lower() in groups for group in wanted)


def _directory_accounts(conn: Connection, *, active_only: bool) -> list[_Member]:
    query = select(
        accounts.c.id, accounts.c.login, accounts.c.external_id, accounts.c.groups
    ).where(accounts.c.source == "ldap", accounts.c.external_id.is_not(None))
    query = query.where(
        accounts.c.status == "active" if active_only else accounts.c.status != "deleted"
    )
    return [
        _Member(
            row.id,
            row.login,
            row.external_id,
            frozenset(g.lower() for g in json.loads(row.groups)) if row.groups else frozenset(),
        )
        for row in conn.execute(query)
    ]


def grant_group_seats(
    lock: SeatLock,
    ledger: SeatLedger,
    report: SyncReport,
    seat_groups: Sequence[str],
    actor: str = ACTOR,
) -> None:
    """Give seats to active members of the seat groups, groups in order, while seats remain.

    Within a group, accounts go in order of their directory id: the same
    order on every run and every node, whatever order the search returned.
    """
    members = _directory_accounts(lock.conn, active_only=True)
    for group in seat_groups:
        wanted = group.lower()
        for member in sorted(
            (m for m in members if wanted in m.groups), key=lambda m: m.external_id
        ):
            if not ledger.has_room_in(lock):
                return
            if ledger.grant_in(
                lock, member.id, actor=actor, reason=f"seat_group:{group}", observe=False
            ):
                report.seats_granted.append(member.login)


def outside_seat_groups(
    conn: Connection, seat_groups: Sequence[str]
) -> tuple[list[tuple[int, str]], list[str]]:
    """Seat holders among active directory accounts in no seat group.

    Returns (id, login) of those whose seat is not pinned, and the logins of
    those whose seat is pinned (kept). Disabled and deleted accounts lost
    their seats already.
    """
    holders = {
        row.account_id: bool(row.pinned)
        for row in conn.execute(
            select(seats.c.account_id, seats.c.pinned)
            .join(accounts, accounts.c.id == seats.c.account_id)
            .where(accounts.c.source == "ldap", accounts.c.status == "active")
        )
    }
    revoke: list[tuple[int, str]] = []
    kept: list[str] = []
    for member in _directory_accounts(conn, active_only=True):
        if member.id not in holders or in_any(member.groups, seat_groups):
            continue
        if holders[member.id]:
            kept.append(member.login)
        else:
            revoke.append((member.id, member.login))
    return sorted(revoke, key=lambda r: r[1]), sorted(kept)


def revoke_seats(
    lock: SeatLock,
    ledger: SeatLedger,
    report: SyncReport,
    revoke: Sequence[tuple[int, str]],
    actor: str = ACTOR,
) -> None:
    """Release the seats of accounts that left every seat group (each audited)."""
    for account_id, login in revoke:
        if ledger.release_in(
            lock, account_id, actor=actor, reason="not_in_seat_group", observe=False
        ):
            report.seats_revoked.append(login)


def follow_admin_groups(
    conn: Connection,
    report: SyncReport,
    admin_groups: Sequence[str],
    now: datetime,
    actor: str = ACTOR,
) -> None:
    """Make members of the admin groups admins and the other directory accounts not.

    A deleted account is left as it is (it can log in to nothing); a
    disabled one follows its groups like any other.
    """
    admins = {
        row.id
        for row in conn.execute(
            select(accounts.c.id).where(accounts.c.source == "ldap", accounts.c.is_admin.is_(True))
        )
    }
    events = []
    for member in _directory_accounts(conn, active_only=False):
        wanted = in_any(member.groups, admin_groups)
        if wanted == (member.id in admins):
            continue
        conn.execute(
            update(accounts)
            .where(accounts.c.id == member.id)
            .values(is_admin=wanted, updated_at=now)
        )
        (report.admins_granted if wanted else report.admins_revoked).append(member.login)
        events.append(
            audit.event_row(
                at=now,
                actor=actor,
                action="account.admin_granted" if wanted else "account.admin_revoked",
                subject=member.login,
                details={"via": "ldap.admin_groups"},
            )
        )
    if events:
        audit.record_many(conn, events)
    report.admins_granted.sort()
    report.admins_revoked.sort()


def active_admins(conn: Connection) -> set[str]:
    """The logins of the active admins, of any source (a handful, by nature)."""
    return set(conn.execute(_ACTIVE_ADMINS).scalars())
