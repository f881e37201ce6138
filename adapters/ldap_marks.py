"""The sync's high-water mark when there are several directory servers: one mark per server.

AD's uSNs are numbered by each domain controller on its own, so DC1's
``uSNChanged`` means nothing on DC2. With one server the mark is that
server's, stored under its URL as before. With several (``ldap.urls``) the
stored mark is a JSON object ``{url: mark}``: a run reads from whichever
server answers, incrementally from that server's own mark (or in full when it
has none yet), and keeps the others' marks for when they answer again.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

SEVERAL_SERVERS = "servers"
"""The mark key's server id for a list of servers (``ldap.mark:servers``)."""


class ServerMarks:
    """The marks of the configured servers, read from and written to one stored string."""

    def __init__(self, urls: Sequence[str], stored: str | None) -> None:
        self.urls = tuple(urls)
        self.marks: dict[str, str] = {}
        if len(self.urls) == 1:
            if stored is not None:
                self.marks[self.urls[0]] = stored
            return
        try:
            loaded = json.loads(stored) if stored else {}
        except ValueError:
            loaded = {}  # not ours (an older single-server mark): read everything once
        if isinstance(loaded, dict):
            self.marks = {
                url: mark
                for url, mark in loaded.items()
                if url in self.urls and isinstance(mark, str)
            }

    def of(self, url: str) -> str | None:
        """The mark ``url`` gave at its last run, None when it has none."""
        return self.marks.get(url)

    def stored_with(self, url: str, mark: str | None) -> str | None:
        """What to store after a run on ``url`` that ended at ``mark``."""
        if len(self.urls) == 1:
            return mark
        marks = dict(self.marks)
        if mark is None:
            marks.pop(url, None)
        else:
            marks[url] = mark
        return json.dumps(marks, sort_keys=True) if marks else None
