"""CSV files of accounts, as spreadsheets write them: the source side of ``accounts import-csv``.

What a file may look like:

- UTF-8 with or without a BOM, or Windows-1252 (what Spanish Excel saves as
  "CSV"): a file with any byte sequence that is not UTF-8 is read as
  Windows-1252 throughout;
- `,`, `;` or tab between fields, chosen by which one splits the header row
  into known column names; quoted fields may hold delimiters and line breaks;
- a header row naming the columns: ``login`` (required), ``name``, ``email``,
  ``admin``, ``active``, ``password_hash`` -- or in Spanish ``usuario``,
  ``nombre``, ``correo``, ``administrador``, ``activo``. Columns with an empty
  header are ignored; any other name is an error, so a misspelt column never
  silently drops its data.

The file is read as a stream, never whole: a line longer than
:data:`MAX_LINE_CHARS` stops the reading with a bad row, like any other CSV
syntax error. Rows come out with the line number they start on (a quoted
line break makes a row span several lines).

Cells beginning with ``=``, ``+``, ``-`` or ``@`` are kept as text. The export
(:func:`write_accounts_csv`) prefixes such cells with ``'`` so that a
spreadsheet never runs them as formulas, and the import removes that one
``'`` again, so exporting and importing changes nothing.
"""

from __future__ import annotations

import csv
import io
import unicodedata
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO, Any

from seatgate.errors import AccountError, shorten
from seatgate.imports import FIELDS, AccountRecord, Field, ImportRejected, RowProblem
from seatgate.records import Account

from .csv_cells import DEFAULTS, PARSERS, row_maker
from .csv_text import MAX_LINE_CHARS, Lines, LineTooLong, Reading, detect_encoding

# Header names, compared NFKC case-folded, in English and Spanish.
COLUMN_NAMES: dict[str, str] = {
    "login": "login",
    "usuario": "login",
    "name": "name",
    "nombre": "name",
    "email": "email",
    "correo": "email",
    "admin": "admin",
    "administrador": "admin",
    "active": "active",
    "activo": "active",
    "password_hash": "password_hash",
}
DELIMITERS = (",", ";", "\t")
_SHOWN = {",": "`,`", ";": "`;`", "\t": "a tab"}
# What a spreadsheet may take as the start of a formula (OWASP "CSV injection").
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_EXPORT_HEADER = ("login", "name", "email", "admin", "active")


class CsvAccountFile:
    """A CSV file of accounts; each :meth:`rows` call reads it from the start.

    Opening it reads it once through to choose the encoding, then reads the
    header. Raises :class:`~seatgate.imports.ImportRejected` for a file that
    is not text in a supported encoding, or whose header is unusable.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        on_progress: Callable[[int], None] | None = None,
        encoding: str | None = None,
    ) -> None:
        self.path = Path(path)
        self.name = str(path)
        self.on_progress = on_progress
        self.encoding = detect_encoding(self.path, encoding)
        self.delimiter, self._columns = self._read_header()
        self.fields: frozenset[Field] = frozenset(f for f in FIELDS if f in self._columns)
        # Each named column's index and parser, looked up once rather than per row.
        self._parsers = [
            (index, column, PARSERS[column])
            for index, column in enumerate(self._columns)
            if column is not None
        ]

    def rows(self) -> Iterator[AccountRecord | RowProblem]:
        """Every data row in file order; blank rows are skipped.

        Raises :class:`~seatgate.imports.ImportRejected` when the file
        stopped being text in its encoding since it was opened.
        """
        width, make = len(self._columns), row_maker(self._columns)
        reading = Reading(self.path.open("rb"), self.on_progress)
        buffered = io.BufferedReader(reading)
        with io.TextIOWrapper(buffered, encoding=self.encoding, newline="") as text:
            reader = csv.reader(Lines(text), delimiter=self.delimiter, strict=True)
            start = 1  # the line the next row starts on
            try:
                next(reader)  # the header, read by __init__
                start = reader.line_num + 1
                for cells in reader:
                    line, start = start, reader.line_num + 1
                    joined = "".join(cells)
                    # A full row with no `'` and no bad cell: one pass, without the
                    # per-cell bookkeeping of _record (which gives every reason when one fails).
                    if len(cells) == width and "'" not in joined:
                        try:
                            record = make(line, cells)
                        except AccountError:
                            pass
                        else:
                            yield record
                            continue
                    if joined.strip():  # a row of empty or blank cells is skipped
                        yield self._record(line, cells)
            except csv.Error as exc:
                yield RowProblem(start, _syntax_error(exc))
            except LineTooLong as exc:
                yield RowProblem(exc.line, f"the line is longer than {MAX_LINE_CHARS} characters")
            except UnicodeDecodeError:
                raise ImportRejected(
                    None, "the file changed while it was being read; nothing was written"
                ) from None

    def _read_header(self) -> tuple[str, list[str | None]]:
        with self.path.open(encoding=self.encoding, newline="") as text:
            line = text.readline(MAX_LINE_CHARS + 1)
        if not line.strip():
            raise ImportRejected(
                1, "the first line must name the columns: login, name, email, admin, active"
            )
        best: tuple[int, str, list[str]] = (-1, ",", [])
        for delimiter in DELIMITERS:
            cells = next(csv.reader([line], delimiter=delimiter))
            known = sum(_header_key(cell) in COLUMN_NAMES for cell in cells)
            if known > best[0]:
                best = (known, delimiter, cells)
        _known, delimiter, cells = best
        columns: list[str | None] = []
        for cell in cells:
            key = _header_key(cell)
            if not key:
                columns.append(None)  # spreadsheets leave trailing empty columns
                continue
            column = COLUMN_NAMES.get(key)
            if column is None:
                raise ImportRejected(
                    1,
                    f"unknown column `{shorten(cell.strip())}`; the columns are login, name, "
                    "email, admin, active and password_hash (or usuario, nombre, correo, "
                    "administrador, activo)",
                )
            if column in columns:
                raise ImportRejected(1, f"the `{column}` column appears twice")
            columns.append(column)
        if "login" not in columns:
            raise ImportRejected(1, "no `login` (or `usuario`) column in the header")
        return delimiter, columns

    def _record(self, line: int, cells: list[str]) -> AccountRecord | RowProblem:
        width = len(self._columns)
        if len(cells) > width and any(cell.strip() for cell in cells[width:]):
            return RowProblem(
                line,
                f"{len(cells)} fields, but the header names {width} (a value containing "
                f"{_SHOWN[self.delimiter]} must be in double quotes; argon2 hashes contain `,`)",
            )
        values: dict[str, Any] = {}
        reasons: list[str] = []
        given = len(cells)
        for index, column, parse in self._parsers:
            cell = cells[index] if index < given else ""
            if cell.startswith("'"):
                cell = _unescape(cell)
            try:
                values[column] = parse(cell)
            except AccountError as exc:  # InvalidLogin included
                reasons.append(str(exc))
        if reasons:
            return RowProblem(line, "; ".join(reasons))
        return _made(line, values)


def _made(line: int, parsed: dict[str, Any]) -> AccountRecord:
    """The record of a row whose cells all parsed (absent columns get their defaults)."""
    values = DEFAULTS | parsed
    login, key = values["login"]
    return AccountRecord(
        line,
        login,
        key,
        values["name"],
        values["email"],
        values["admin"],
        values["active"],
        values["password_hash"],
    )


def write_accounts_csv(out: IO[str], accounts: Iterable[Account], *, delimiter: str = ",") -> int:
    """Write ``accounts`` in the import format (login, name, email, admin, active).

    Cells a spreadsheet would run as a formula get a leading ``'``.
    Open ``out`` with ``newline=""`` (the writer ends lines with CRLF) and, for
    Excel, ``encoding="utf-8-sig"``. Returns the number of accounts written.
    """
    writer = csv.writer(out, delimiter=delimiter, lineterminator="\r\n")
    writer.writerow(_EXPORT_HEADER)
    count = 0
    for account in accounts:
        writer.writerow(
            [
                neutralise(account.login),
                neutralise(account.display_name or ""),
                neutralise(account.email or ""),
                "yes" if account.is_admin else "no",
                "yes" if account.status == "active" else "no",
            ]
        )
        count += 1
    return count


def neutralise(cell: str) -> str:
    """Prefix ``'`` to a cell a spreadsheet would take for a formula (undone on import)."""
    return "'" + cell if cell.lstrip("'").startswith(FORMULA_STARTS) else cell


def _unescape(cell: str) -> str:
    # The inverse of neutralise(): one `'` before a formula start came from an export.
    if not cell.startswith("'"):
        return cell
    return cell[1:] if neutralise(cell[1:]) == cell else cell


def _header_key(cell: str) -> str:
    return unicodedata.normalize("NFKC", cell).casefold().strip()


def _syntax_error(exc: csv.Error) -> str:
    reason = str(exc)
    if "unexpected end of data" in reason:
        reason = "a quoted field that starts here is never closed"
    elif "field larger than field limit" in reason:
        reason = f"a field is longer than {csv.field_size_limit()} characters (an unclosed quote?)"
    return f"{reason}; the rest of the file cannot be read"
