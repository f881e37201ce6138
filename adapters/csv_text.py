"""Reading a CSV file's text: encoding detection, bounded lines, progress.

UTF-8 (a BOM is dropped) unless some byte sequence is not UTF-8, then
Windows-1252; checked in bounded chunks so memory stays flat.
"""

from __future__ import annotations

import codecs
import io
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from seatgate.errors import ImportRejected

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

MAX_LINE_CHARS = 65536
_CHUNK = 1 << 20


def detect_encoding(path: Path) -> str:
    """``utf-8-sig`` or ``cp1252``: UTF-8 unless some byte sequence is not (bounded reads)."""
    with path.open("rb") as raw:
        head = raw.read(4)
        if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
            raise ImportRejected(
                None, 'the file is UTF-16 text; save it as "CSV UTF-8" or "CSV" instead'
            )
        raw.seek(0)
        if first_undecodable(raw, "utf-8") is None:
            return "utf-8-sig"
        raw.seek(0)
        bad = first_undecodable(raw, "cp1252")
    if bad is not None:
        offset, line = bad
        raise ImportRejected(
            line,
            f"the byte at offset {offset} is neither UTF-8 nor Windows-1252 text; "
            'save the file as "CSV UTF-8"',
        )
    return "cp1252"


def first_undecodable(raw: BinaryIO, encoding: str) -> tuple[int, int] | None:
    """(offset, line) of the first byte ``encoding`` cannot decode, or None."""
    decoder = codecs.getincrementaldecoder(encoding)()
    offset = 0
    newlines = 0
    while True:
        chunk = raw.read(_CHUNK)
        final = not chunk
        try:
            decoder.decode(chunk, final)
        except UnicodeDecodeError as exc:
            # The decoder may hold back the start of a sequence from earlier chunks.
            start = max(0, exc.start - (len(exc.object) - len(chunk)))
            return offset + start, newlines + chunk.count(b"\n", 0, start) + 1
        if final:
            return None
        offset += len(chunk)
        newlines += chunk.count(b"\n")


class Reading(io.RawIOBase):
    """Reads a binary file, telling ``on_progress`` how many bytes are done."""

    def __init__(self, raw: io.BufferedReader, on_progress: Callable[[int], None] | None) -> None:
        self._raw = raw
        self._done = 0
        self._on_progress = on_progress

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer, /) -> int:
        view = memoryview(buffer).cast("B")
        count = self._raw.readinto(view)
        self._done += count
        if self._on_progress is not None:
            self._on_progress(self._done)
        return count

    def close(self) -> None:
        self._raw.close()
        super().close()


class LineTooLong(Exception):
    def __init__(self, line: int) -> None:
        self.line = line


class Lines:
    """The lines of a text stream, refusing any longer than :data:`MAX_LINE_CHARS`."""

    def __init__(self, text: io.TextIOBase) -> None:
        self._text = text
        self._count = 0

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        line = self._text.readline(MAX_LINE_CHARS + 1)
        if not line:
            raise StopIteration
        self._count += 1
        if len(line) > MAX_LINE_CHARS:
            raise LineTooLong(self._count)
        return line
