"""Printing for the command line: JSON documents, plain tables and safe text.

The documents themselves are built in :mod:`seatgate.reports.documents`,
shared with the web API.

Everything printed as text passes through :func:`safe`: stored data (a login
sent to the gate, a browser's user agent, a directory's display name) may hold
terminal escape sequences or bidirectional overrides, which would otherwise
reach the administrator's terminal (clear the screen, set the window title,
rewrite what a line appears to say). JSON output is left exact: the JSON
encoder escapes C0 control characters itself, and what reads JSON is a program.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

import click

# C0 controls, DEL and C1 controls; the bidirectional embeddings, overrides
# and isolates (U+202A-202E, U+2066-2069); the directional marks LRM, RLM and
# ALM (U+200E, U+200F, U+061C); and the line and paragraph separators.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_UNSAFE_KEEPING_LINES = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]"
)


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def safe(value: object, *, multiline: bool = False) -> str:
    """``value`` as text a terminal shows literally: unsafe characters as ``\\x1b``, ``\\u202e``.

    With ``multiline`` newlines and tabs are kept (for messages built from
    several lines); otherwise they are escaped too, so stored text cannot
    start a line that looks like another record.
    """
    text = "" if value is None else str(value)
    pattern = _UNSAFE_KEEPING_LINES if multiline else _UNSAFE
    return pattern.sub(_escape, text)


def say(message: object, *, err: bool = False, nl: bool = True) -> None:
    """Print one line of text (made safe) to stdout, or stderr with ``err``."""
    click.echo(safe(message), err=err, nl=nl)


def say_lines(message: object, *, err: bool = False) -> None:
    """Print text that may span several lines (made safe, newlines and tabs kept)."""
    click.echo(safe(message, multiline=True), err=err)


def emit_json(document: Any) -> None:
    """Print ``document`` as indented JSON, keys in their given order."""
    click.echo(json.dumps(document, indent=2, ensure_ascii=False, sort_keys=False))


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """Print an aligned plain-text table, every cell made safe."""
    text = [[safe(cell) for cell in row] for row in rows]
    widths = [max([len(h), *(len(row[i]) for row in text)]) for i, h in enumerate(headers)]
    click.echo("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip())
    for row in text:
        click.echo("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
