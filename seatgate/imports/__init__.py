"""Bulk account import (CSV files): check the whole source, then apply it all or nothing.

Memory stays bounded whatever the size of the source. :meth:`AccountImporter.check`
reads the source once, row by row, and stages every valid row (a batch at a
time, in an unnamed temporary file) and every bad one (in a temporary SQLite
file), never in Python collections; one ``GROUP BY`` over the staged logins
finds those that appear twice. Only a source with no bad row at all
reaches :meth:`AccountImporter.apply`, which reads the staged rows back in
batches -- exactly what was checked, even if the file has changed since --
and writes every change, with its audit event, in one transaction that holds
the seat lock.

A source of new accounts only -- the usual first import -- takes a shorter
way: :meth:`AccountImporter.apply_new` checks each batch as it reads it and
writes it at once, in one such transaction, with no staging. At the first
bad row, or a login the database (through its unique login key) or an
earlier row already has, it rolls back, having written nothing, and the
source goes through ``check`` and ``apply``.

The format of the source (encodings, delimiters, column names) is the
adapter's business (:mod:`seatgate.adapters.csv`); the rules about accounts
-- which logins are the same, who owns an account, what a disable does to a
seat -- live here.
"""

from seatgate.errors import ImportRejected
from seatgate.imports.apply import AccountImporter
from seatgate.imports.check import CheckedImport
from seatgate.imports.records import (
    FIELDS,
    AccountRecord,
    AccountSource,
    Change,
    ChangeJournal,
    ChangeKind,
    Field,
    ImportReport,
    RowProblem,
    directory_reason,
)
from seatgate.storage.batches import BATCH

__all__ = [
    "BATCH",
    "FIELDS",
    "AccountImporter",
    "AccountRecord",
    "AccountSource",
    "Change",
    "ChangeJournal",
    "ChangeKind",
    "CheckedImport",
    "Field",
    "ImportRejected",
    "ImportReport",
    "RowProblem",
    "directory_reason",
]
