"""Reading the directory accounts a sync compares its entries with.

A full sync reads them all: every one not in the directory is gone. An
incremental sync reads only the accounts of the entries that changed (and
of the ids the directory reported deleted), a batch of ids at a time, so
that its cost follows what changed rather than how many accounts exist.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable
from itertools import chain
from typing import Any

from sqlalchemy import Connection, Row, func, select

from seatgate.directory.apply import Known
from seatgate.storage.batches import BATCH, KEYS, batched
from seatgate.storage.schema import accounts

_COLUMNS = (
    accounts.c.id,
    accounts.c.login,
    accounts.c.login_key,
    accounts.c.external_id,
    accounts.c.dn,
    accounts.c.display_name,
    accounts.c.email,
    accounts.c.groups,
    accounts.c.status,
)
_DIRECTORY = (accounts.c.source == "ldap", accounts.c.external_id.is_not(None))
# Built once: see seatgate.storage.batches.KEYS.
_ALL = select(*_COLUMNS).where(*_DIRECTORY)
_BY_ID = select(*_COLUMNS).where(accounts.c.source == "ldap", accounts.c.external_id.in_(KEYS))
_LIVE = (
    select(func.count()).select_from(accounts).where(*_DIRECTORY, accounts.c.status != "deleted")
)


def load_known(conn: Connection, ids: Collection[str] | None = None) -> dict[str, Known]:
    """Directory accounts by directory id: all of them, or those with one of ``ids``."""
    rows: Iterable[Row[Any]]
    if ids is None:
        rows = conn.execute(_ALL)
    else:
        rows = chain.from_iterable(
            conn.execute(_BY_ID, {"keys": batch}) for batch in batched(sorted(ids), BATCH)
        )
    return {
        row.external_id: Known(
            id=row.id,
            login=row.login,
            login_key=row.login_key,
            external_id=row.external_id,
            dn=row.dn,
            display_name=row.display_name,
            email=row.email,
            groups=tuple(json.loads(row.groups)) if row.groups else (),
            status=row.status,
        )
        for row in rows
    }


def count_live(conn: Connection) -> int:
    """How many directory accounts are not deleted (the base of the safety ratio)."""
    return int(conn.execute(_LIVE).scalar_one())
