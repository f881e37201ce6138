"""Reading a CSV file's text: encoding detection, bounded lines, progress.

UTF-8 (a BOM is dropped), Windows-1252 only for a file with no UTF-8 in it at
all, or the encoding the operator names; checked in bounded chunks so memory
stays flat.
"""

from __future__ import annotations

import codecs
import io
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, NoReturn

from seatgate.errors import ImportRejected

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

MAX_LINE_CHARS = 65536
_CHUNK = 1 << 20


ENCODING_NAMES = {
    "utf-8": "utf-8-sig",
    "utf8": "utf-8-sig",
    "utf-8-sig": "utf-8-sig",
    "cp1252": "cp1252",
    "windows-1252": "cp1252",
    "latin-1": "latin-1",
    "latin1": "latin-1",
    "iso-8859-1": "latin-1",
    "iso-8859-15": "iso-8859-15",
    "latin-9": "iso-8859-15",
    "cp850": "cp850",
}
"""The encodings ``--encoding`` accepts (lower case) and the codec each reads with."""

# A well-formed UTF-8 sequence of two to four bytes (RFC 3629): text written
# as Windows-1252 practically never contains one, a UTF-8 file with accented
# names is full of them.
_UTF8_SEQUENCE = re.compile(
    rb"[\xc2-\xdf][\x80-\xbf]|\xe0[\xa0-\xbf][\x80-\xbf]|[\xe1-\xec\xee\xef][\x80-\xbf]{2}"
    rb"|\xed[\x80-\x9f][\x80-\xbf]|\xf0[\x90-\xbf][\x80-\xbf]{2}"
    rb"|[\xf1-\xf3][\x80-\xbf]{3}|\xf4[\x80-\x8f][\x80-\xbf]{2}"
)


def codec_for(encoding: str) -> str:
    """The codec for an ``--encoding`` name; ImportRejected naming the choices otherwise."""
    codec = ENCODING_NAMES.get(encoding.strip().lower())
    if codec is None:
        choices = ", ".join(sorted(ENCODING_NAMES))
        raise ImportRejected(None, f"unknown encoding `{encoding}`; use one of: {choices}")
    return codec


def detect_encoding(path: Path, encoding: str | None = None) -> str:
    """The codec to read ``path`` with: ``encoding`` if given, else UTF-8 or Windows-1252.

    Without ``encoding``: UTF-8 (a BOM dropped) when every byte sequence is
    UTF-8; Windows-1252 only when no well-formed multi-byte UTF-8 sequence
    appears at all. A file that is mostly UTF-8 with a stray byte is refused,
    naming the first bad byte, never read whole as Windows-1252 (which would
    garble every accented name). Reads are bounded, so memory stays flat.
    """
    with path.open("rb") as raw:
        head = raw.read(4)
        if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
            raise ImportRejected(
                None, 'the file is UTF-16 text; save it as "CSV UTF-8" or "CSV" instead'
            )
        raw.seek(0)
        if encoding is not None:
            codec = codec_for(encoding)
            _refuse_undecodable(raw, codec, f"is not {encoding} text")
            return codec
        bad_utf8 = first_undecodable(raw, "utf-8")
        if bad_utf8 is None:
            return "utf-8-sig"
        raw.seek(0)
        if _has_utf8_sequence(raw):
            _refuse(bad_utf8, "is not UTF-8, though the rest of the file is UTF-8 text")
        raw.seek(0)
        _refuse_undecodable(raw, "cp1252", "is neither UTF-8 nor Windows-1252 text")
    return "cp1252"


def _refuse_undecodable(raw: BinaryIO, codec: str, what: str) -> None:
    bad = first_undecodable(raw, codec)
    if bad is not None:
        _refuse(bad, what)


def _refuse(bad: tuple[int, int, int], what: str) -> NoReturn:
    offset, line, value = bad
    raise ImportRejected(
        line,
        f"the byte 0x{value:02x} at offset {offset} {what}; correct it, or say the "
        'file\'s encoding with --encoding (utf-8, cp1252, latin-1, ...), or save it as "CSV UTF-8"',
    )


def _has_utf8_sequence(raw: BinaryIO) -> bool:
    """Whether a well-formed multi-byte UTF-8 sequence appears anywhere (bounded reads)."""
    carry = b""
    while chunk := raw.read(_CHUNK):
        # Three bytes carried over find a sequence cut by the chunk boundary.
        if _UTF8_SEQUENCE.search(carry + chunk):
            return True
        carry = chunk[-3:]
    return False


def first_undecodable(raw: BinaryIO, encoding: str) -> tuple[int, int, int] | None:
    """(offset, line, byte value) of the first byte ``encoding`` cannot decode, or None."""
    decoder = codecs.getincrementaldecoder(encoding)()
    offset = 0
    newlines = 0
    held = b""
    while True:
        chunk = raw.read(_CHUNK)
        final = not chunk
        try:
            decoder.decode(chunk, final)
        except UnicodeDecodeError as exc:
            # The decoder may hold back the start of a sequence from earlier chunks.
            data = held + chunk
            start = max(0, exc.start - (len(exc.object) - len(data)))
            at = offset - len(held) + start
            value = data[start] if start < len(data) else 0
            lines = newlines - held.count(b"\n") + data.count(b"\n", 0, start) + 1
            return at, lines, value
        if final:
            return None
        offset += len(chunk)
        newlines += chunk.count(b"\n")
        held = chunk[-3:]


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
