"""Printing for the command line: JSON documents and plain tables.

The documents themselves are built in :mod:`seatgate.reports.documents`,
shared with the web API.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import click


def emit_json(document: Any) -> None:
    """Print ``document`` as indented JSON, keys in their given order."""
    click.echo(json.dumps(document, indent=2, ensure_ascii=False, sort_keys=False))


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """Print an aligned plain-text table."""
    text = [[("" if cell is None else str(cell)) for cell in row] for row in rows]
    widths = [max([len(h), *(len(row[i]) for row in text)]) for i, h in enumerate(headers)]
    click.echo("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip())
    for row in text:
        click.echo("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
