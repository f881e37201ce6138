"""A per-process bound on simultaneous password verifications.

Each argon2id verification takes ``passwords.memory_cost_kib`` of memory
(64 MiB by default), so a burst of logins is a memory attack as much as a
guessing one. The gate takes a slot before it verifies anything and answers
at once (429 with ``Retry-After``) when none is free, instead of queuing.
"""

from __future__ import annotations

import logging
import os
import threading
from types import TracebackType

log = logging.getLogger(__name__)

# The automatic bound uses at most this share of the memory available at start.
MEMORY_SHARE = 0.5
# ... and is never above this many, nor below one.
MAX_AUTOMATIC = 32
# What a client refused for want of a slot is told to wait.
BUSY_RETRY_AFTER_SECONDS = 1


def automatic_bound(memory_cost_kib: int, available_bytes: int | None = None) -> int:
    """Half the available memory divided by one verification's memory, between 1 and 32."""
    if available_bytes is None:
        available_bytes = _available_memory()
    if available_bytes is None:
        return MAX_AUTOMATIC // 4
    per_verification = max(1, memory_cost_kib) * 1024
    return max(1, min(MAX_AUTOMATIC, int(available_bytes * MEMORY_SHARE) // per_verification))


def _available_memory() -> int | None:
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, AttributeError):
        return None


class VerificationSlots:
    """At most ``bound`` verifications at once in this process; never waits for a slot."""

    def __init__(self, bound: int) -> None:
        """Raises :class:`ValueError` for a bound below 1."""
        if bound < 1:
            raise ValueError(f"the verification bound must be at least 1, not {bound}")
        self.bound = bound
        self._free = threading.BoundedSemaphore(bound)

    def take(self) -> Slot | None:
        """A slot to verify in (a context manager that frees it), or ``None`` when all are taken."""
        if not self._free.acquire(blocking=False):
            log.info("all %d password verification slots are busy: login refused", self.bound)
            return None
        return Slot(self._free)


class Slot:
    """One taken verification slot; leaving the ``with`` block frees it."""

    def __init__(self, free: threading.BoundedSemaphore) -> None:
        self._free = free

    def __enter__(self) -> Slot:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self._free.release()


__all__ = ["BUSY_RETRY_AFTER_SECONDS", "Slot", "VerificationSlots", "automatic_bound"]
