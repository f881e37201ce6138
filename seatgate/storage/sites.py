"""The licensed site host names as stored for the web gate, read on every request.

The licensing service stores them (a JSON list, ``[]`` for none) in the
``settings`` row :data:`LICENSED_SITES_KEY` whenever it recomputes the
entitlement; the web gate reads that row alone in autocommit
(:class:`~seatgate.storage.quick_read.QuickRead`), so a site installed or
removed on one node is seen by the next request on every node. On SQLite
the row is kept per pooled connection while ``PRAGMA data_version`` shows
no commit elsewhere; on PostgreSQL it is one read by primary key. A request
with a session gets the same row with its session check instead
(:mod:`seatgate.sessions.check`), at no extra read.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from sqlalchemy import select

from seatgate.storage.db import Database
from seatgate.storage.quick_read import QuickRead
from seatgate.storage.schema import settings

log = logging.getLogger(__name__)

LICENSED_SITES_KEY = "license.sites"


def parse_sites(value: str | None) -> frozenset[str]:
    """The host names in the stored value (None: no row yet, no site)."""
    if value is None:
        return frozenset()
    try:
        hosts = json.loads(value)
    except ValueError:
        hosts = None
    if not isinstance(hosts, list) or not all(isinstance(host, str) for host in hosts):
        # Written only by the licensing service; never seen unless edited by hand.
        # Refusing every host would lock everyone out, so the gate says so loudly instead.
        log.error("setting %s is not a list of host names; ignoring it", LICENSED_SITES_KEY)
        return frozenset()
    return frozenset(hosts)


def _digest(row: dict[str, Any]) -> frozenset[str]:
    return parse_sites(row["value"])


class LicensedSites:
    """Reads the licensed site host names of one database (empty: every host is served)."""

    def __init__(self, db: Database) -> None:
        statement = select(settings.c.value).where(settings.c.key == LICENSED_SITES_KEY)
        self._read = QuickRead(db, statement, _digest, cache=True)

    def __call__(self) -> frozenset[str]:
        """The licensed host names now (one read, nothing written)."""
        return self._read.one({}) or frozenset()
