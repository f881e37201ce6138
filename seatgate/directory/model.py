"""What a directory sync reads and reports, independent of any protocol."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True)
class DirectoryEntry:
    """One user entry as the directory shows it."""

    external_id: str
    login: str
    dn: str
    display_name: str | None = None
    email: str | None = None
    groups: tuple[str, ...] = ()
    disabled: bool = False


@dataclass(frozen=True)
class Snapshot:
    """What one search of the directory returned."""

    entries: Sequence[DirectoryEntry]
    full: bool
    mark: str | None = None
    deleted_ids: Sequence[str] | None = None
    server: str | None = None
    """The server that answered (with several, ``ldap.urls``, the one this came from)."""


class DirectoryReader(Protocol):
    """Reads user entries from one directory server."""

    server_id: str

    def read(self, since: str | None) -> Snapshot:
        """Everything (``since`` None) or what changed after the mark ``since``.

        Raises :class:`~seatgate.errors.DirectoryUnavailable` or
        :class:`~seatgate.errors.DirectorySearchIncomplete`; never returns a
        partial result as if it were complete.
        """
        ...


DISABLES = "disables"
"""A :class:`SafetyHold` on accounts disabled or deleted (``--confirm-disables``)."""
SEAT_REVOCATIONS = "seat_revocations"
"""A :class:`SafetyHold` on seats exclusive seat groups take (``--confirm-seat-revocations``)."""


@dataclass(frozen=True)
class SafetyHold:
    """A safety limit a real run would stop at; what a preview reports instead of stopping.

    ``kind`` is :data:`DISABLES` or :data:`SEAT_REVOCATIONS`; a real run goes
    ahead only when confirmed with exactly ``count``.
    """

    kind: str
    count: int
    total: int
    limit: str


@dataclass
class SyncReport:
    """What a sync did (or, in a dry run, would do)."""

    full: bool
    dry_run: bool
    entries_seen: int = 0
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    renamed: list[tuple[str, str]] = field(default_factory=list)
    disabled: list[str] = field(default_factory=list)
    enabled: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    seats_freed: list[str] = field(default_factory=list)
    seats_granted: list[str] = field(default_factory=list)
    seats_revoked: list[str] = field(default_factory=list)
    """Exclusive seat groups: seats taken from directory accounts in no seat group."""
    seats_kept_pinned: list[str] = field(default_factory=list)
    """Exclusive seat groups: accounts in no seat group whose pinned seat was kept."""
    admins_granted: list[str] = field(default_factory=list)
    admins_revoked: list[str] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)
    flagged: list[dict[str, str]] = field(default_factory=list)
    """New logins (created or renamed) mixing scripts confusably: accepted, to be looked at."""
    server: str | None = None
    """The directory server that answered."""
    held: list[SafetyHold] = field(default_factory=list)
    """A preview only: the safety limits a real run would stop at (a real run raises)."""

    def as_dict(self) -> dict[str, Any]:
        """The report in the shape of ``seatgate sync ldap --json``."""
        return {
            "full": self.full,
            "dry_run": self.dry_run,
            "entries_seen": self.entries_seen,
            "created": len(self.created),
            "updated": len(self.updated),
            "renamed": len(self.renamed),
            "disabled": len(self.disabled),
            "enabled": len(self.enabled),
            "deleted": len(self.deleted),
            "seats_freed": self.seats_freed,
            "seats_granted": self.seats_granted,
            "seats_revoked": self.seats_revoked,
            "seats_kept_pinned": self.seats_kept_pinned,
            "admins_granted": self.admins_granted,
            "admins_revoked": self.admins_revoked,
            "conflicts": self.conflicts,
            "flagged": self.flagged,
            "server": self.server,
        }

    def summary(self) -> dict[str, Any]:
        """The run in counts: the details of its ``directory.synced`` audit event."""
        counts = self.as_dict()
        return {
            name: len(value) if isinstance(value, list) else value
            for name, value in counts.items()
            if name != "dry_run"
        }
