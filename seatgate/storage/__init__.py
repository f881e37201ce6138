"""Storage with SQLAlchemy Core: the schema, its migrations and transactions."""

from seatgate.storage.db import Database
from seatgate.storage.migrations import SCHEMA_VERSION

__all__ = ["SCHEMA_VERSION", "Database"]
