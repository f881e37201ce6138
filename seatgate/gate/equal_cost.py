"""Every password check costs the same, whether the login exists, is local or is a directory's.

Without this, an unknown login paid one dummy argon2id verification, a
directory login one bind and a local login one argon2id verification, so
the time of a wrong answer told which of the three a login was. With a
directory that offers decoy binds (:class:`DecoyBinds`), every attempt
pays both: one argon2id verification (real or dummy) and one bind (real,
or a decoy bind as a distinguished name no entry has, with a random
password), and a decoy bind is padded to the median duration of recent real
binds, so a decoy that a directory answers faster than a real one still
takes as long.

The outage rule: while the directory does not answer, an unknown login gets
the same ``directory_unavailable`` as a directory login (the decoy bind
fails just as a real one does); a local account is answered as usual, its
decoy bind's failure ignored, so administrators with local accounts can
still sign in -- which tells, during an outage only, that a login answered
with anything but ``directory_unavailable`` is a local account.
"""

from __future__ import annotations

import contextlib
import statistics
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import Protocol, runtime_checkable

from seatgate.accounts.passwords import PasswordHasher
from seatgate.errors import DirectoryUnavailable
from seatgate.records import Account

# The source whose verifier is the directory (see Core's verifiers).
DIRECTORY_SOURCE = "ldap"
# How many recent real binds the padding's median is taken over.
RECENT_BINDS = 64


@runtime_checkable
class DecoyBinds(Protocol):
    """A directory that can spend the time of one bind that verifies no one."""

    def verify(self, account: Account, password: str) -> bool:
        """Bind as the account (see :class:`~seatgate.gate.decision.PasswordVerifier`)."""
        ...

    def decoy_bind(self) -> None:
        """Bind as a name no entry has, with a random password.

        Raises :class:`~seatgate.errors.DirectoryUnavailable` exactly when a
        real bind would (the server does not answer in time).
        """
        ...


class _Verifier(Protocol):
    def verify(self, account: Account, password: str) -> bool: ...


class EqualCost:
    """The cost of one password check, made the same on every path.

    ``verifiers`` is the gate's own mapping of verifiers by account source,
    read on every call (a verifier set later is honoured).
    """

    def __init__(
        self,
        hasher: PasswordHasher,
        verifiers: Mapping[str, _Verifier],
        *,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.hasher = hasher
        self.verifiers = verifiers
        self.monotonic = monotonic
        self.sleep = sleep
        self._binds: deque[float] = deque(maxlen=RECENT_BINDS)
        self._lock = threading.Lock()

    def _directory(self) -> DecoyBinds | None:
        verifier = self.verifiers.get(DIRECTORY_SOURCE)
        if verifier is None:
            # No directory, the common case: an isinstance against a runtime-checkable
            # Protocol inspects its methods, 8 µs on every login.
            return None
        return verifier if isinstance(verifier, DecoyBinds) else None

    def without_account(self, password: str, account: Account | None) -> str | None:
        """Spend a verification's cost for no verification (unknown login, unusable password).

        Returns the directory's outage message when a directory login would
        be answered ``directory_unavailable`` now (for an unknown login or a
        directory account), None otherwise.
        """
        self.hasher.verify_dummy(password)
        directory = self._directory()
        if directory is None:
            return None
        try:
            self._decoy(directory)
        except DirectoryUnavailable as exc:
            if account is None or account.source == DIRECTORY_SOURCE:
                return str(exc)
        return None

    def verify(self, verifier: _Verifier, account: Account, password: str) -> bool:
        """``verifier.verify(account, password)`` plus what the other paths pay.

        A directory login also pays a dummy argon2id verification; a local
        login also pays a decoy bind (its failure ignored). Raises what the
        verifier raises (after the directory login's dummy verification).
        """
        directory = self._directory()
        if directory is None:
            return verifier.verify(account, password)
        if verifier is directory:
            started = self.monotonic()
            try:
                verified = directory.verify(account, password)
            finally:
                # A bind that did not happen (unreachable) is not a bind's cost.
                elapsed = self.monotonic() - started
                self.hasher.verify_dummy(password)
            self._record(elapsed)
            return verified
        verified = verifier.verify(account, password)
        # A local account signs in whether or not the directory answers.
        with contextlib.suppress(DirectoryUnavailable):
            self._decoy(directory)
        return verified

    def _record(self, elapsed: float) -> None:
        with self._lock:
            self._binds.append(elapsed)

    def typical_bind(self) -> float | None:
        """The median duration of the recent real binds (seconds), None before the first."""
        with self._lock:
            return statistics.median(self._binds) if self._binds else None

    def _decoy(self, directory: DecoyBinds) -> None:
        started = self.monotonic()
        # A failed decoy is not padded: a real bind that fails is not either.
        directory.decoy_bind()
        target = self.typical_bind()
        if target is not None:
            remaining = target - (self.monotonic() - started)
            if remaining > 0:
                self.sleep(remaining)


__all__ = ["DIRECTORY_SOURCE", "DecoyBinds", "EqualCost"]
