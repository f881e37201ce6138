"""Working through many rows a batch at a time (the account import, the directory sync)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from itertools import islice
from typing import TypeVar

from sqlalchemy import BindParameter, Connection, bindparam

T = TypeVar("T")

BATCH = 1000
"""Keys per ``SELECT ... WHERE key IN (...)``: well under every database's
bound-parameter limit."""

# Built once: a statement per batch leaves reference cycles that only a full
# garbage collection frees, and memory then grows with the number of batches.
KEYS: BindParameter[str] = bindparam("keys", expanding=True)
"""The expanding ``keys`` parameter of statements run once per batch of keys."""


def plan_each_batch(conn: Connection) -> None:
    """Have PostgreSQL plan each batch's statement for its own keys, for this transaction.

    psycopg prepares a statement run five times, and PostgreSQL then keeps a
    generic plan made when `accounts` was small (a sequential scan that
    compares every row with all the keys): a 200,000-row import took 170 s
    instead of 10. Custom plans, for this transaction only, use the index.
    Nothing to do on SQLite.
    """
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("SET LOCAL plan_cache_mode = force_custom_plan")


def batched(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """``items`` in lists of ``size`` (the last one shorter), read lazily."""
    iterator = iter(items)
    # Each list filled by islice in C, not an append per item.
    while batch := list(islice(iterator, size)):
        yield batch
