"""The secret the web gate signs its session cookies with.

Named ``session_secret`` rather than ``secrets`` so that it never reads as
(or is confused with) the standard library module it uses.
"""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import Mapping

from sqlalchemy import Connection, insert

from seatgate.errors import ConfigError, StorageConflict, StorageError
from seatgate.storage import settings
from seatgate.storage.db import Database
from seatgate.storage.schema import settings as settings_table

log = logging.getLogger(__name__)

SETTINGS_KEY = "web.session_secret"
MIN_SECRET_LENGTH = 32


def installation_secret(
    db: Database, env_name: str, *, environ: Mapping[str, str] | None = None
) -> str:
    """Return the installation's session-signing secret.

    The environment variable ``env_name`` (from ``web.secret_key_env``) wins
    when it is set and non-empty; it must hold at least 32 characters.
    Otherwise a secret is generated once and kept in the database, so every
    web node of the installation signs with the same one; nodes starting at
    the same moment all end up with the first one stored.

    The secret is never logged. Raises :class:`ConfigError` (key
    ``web.secret_key_env``) for a secret that is too short, and
    :class:`~seatgate.errors.StorageError` when the database cannot be used.
    """
    configured = (os.environ if environ is None else environ).get(env_name, "") if env_name else ""
    if configured:
        if len(configured) < MIN_SECRET_LENGTH:
            raise ConfigError(
                "web.secret_key_env",
                f"the environment variable {env_name} holds {len(configured)} characters; a "
                f"session secret needs at least {MIN_SECRET_LENGTH} (for example the output of "
                "`python -c 'import secrets; print(secrets.token_urlsafe(48))'`), or unset it "
                "to have one generated and kept in the database",
            )
        return configured

    stored = db.read(lambda conn: settings.get(conn, SETTINGS_KEY))
    if stored:
        return stored
    candidate = secrets.token_urlsafe(48)

    def store_unless_present(conn: Connection) -> str:
        existing = settings.get(conn, SETTINGS_KEY)
        if existing:
            return existing
        # A plain insert, never settings.put: an update would overwrite the
        # secret another node has already started signing with.
        conn.execute(insert(settings_table).values(key=SETTINGS_KEY, value=candidate))
        return candidate

    try:
        secret = db.write(store_unless_present)
    except StorageConflict:
        # Another node inserted between our check and our insert: use theirs.
        winner = db.read(lambda conn: settings.get(conn, SETTINGS_KEY))
        if not winner:
            raise StorageError(
                f"the session secret (setting {SETTINGS_KEY}) conflicted but cannot be read back"
            ) from None
        return winner
    if secret is candidate:
        log.info("generated the web session secret and stored it in the database")
    return secret


__all__ = ["MIN_SECRET_LENGTH", "SETTINGS_KEY", "installation_secret"]
