"""Local password hashing with argon2id.

One :class:`PasswordHasher` per installation, built from the configured cost
parameters. A hash made with other parameters still verifies and is flagged
for rehashing, so raising the cost takes effect at each user's next login.
"""

from __future__ import annotations

import contextlib

import argon2
from argon2.exceptions import InvalidHashError, VerificationError

from seatgate.config import HashParameters
from seatgate.errors import InvalidPassword

MAX_PASSWORD_LENGTH = 1024


class PasswordHasher:
    """Hashes and verifies local passwords; timing does not depend on the account existing."""

    def __init__(self, params: HashParameters | None = None) -> None:
        self.params = params or HashParameters()
        self._hasher = argon2.PasswordHasher(
            time_cost=self.params.time_cost,
            memory_cost=self.params.memory_cost_kib,
            parallelism=self.params.parallelism,
            type=argon2.Type.ID,
        )
        # Verified against when the login is unknown, so that "no such user"
        # costs the same time as "wrong password" and leaks nothing. Made on
        # first use (or by prepare()): a sync or import never needs it, and at
        # production cost it takes most of a second and 64 MiB.
        self._dummy_hash: str | None = None

    def prepare(self) -> None:
        """Make the dummy hash now, so that the first unknown login is not slower.

        Long-running front doors (the web gate) call this at start-up.
        """
        self._dummy()

    def _dummy(self) -> str:
        if self._dummy_hash is None:
            self._dummy_hash = self._hasher.hash("seatgate-dummy-password-never-matches")
        return self._dummy_hash

    def hash(self, password: str) -> str:
        """Return the argon2id hash of ``password``.

        Raises :class:`InvalidPassword` for an empty or absurdly long password.
        """
        check_password_acceptable(password)
        return self._hasher.hash(password)

    def verify(self, stored_hash: str | None, password: str) -> bool:
        """Return whether ``password`` matches ``stored_hash``.

        ``stored_hash`` None (unknown account, or an account with no local
        password) verifies against the dummy hash and returns False.
        """
        if stored_hash is None:
            self.verify_dummy(password)
            return False
        try:
            return bool(self._hasher.verify(stored_hash, password))
        except (VerificationError, InvalidHashError):
            # A mismatch, or a stored value that is not a hash: never a match.
            return False

    def verify_dummy(self, password: str) -> None:
        """Spend the time of one verification without any account."""
        with contextlib.suppress(VerificationError):
            self._hasher.verify(self._dummy(), password)

    def needs_rehash(self, stored_hash: str) -> bool:
        """Return whether ``stored_hash`` was made with other than the configured parameters."""
        try:
            return bool(self._hasher.check_needs_rehash(stored_hash))
        except InvalidHashError:
            return True


def check_password_acceptable(password: str) -> None:
    """Refuse passwords that must never be stored: empty, whitespace-only or over 1 KiB."""
    if not isinstance(password, str) or not password.strip():
        raise InvalidPassword("the password is empty")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise InvalidPassword(f"the password is longer than {MAX_PASSWORD_LENGTH} characters")


def is_argon2_hash(value: str) -> bool:
    """Return whether ``value`` looks like an encoded argon2id hash."""
    return value.startswith("$argon2id$")


__all__ = ["HashParameters", "PasswordHasher", "is_argon2_hash"]
