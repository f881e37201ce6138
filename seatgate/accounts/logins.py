"""Login normalisation: the one place that decides when two logins are the same.

``Bob``, ``BOB `` and ``Bob`` in fullwidth letters are one person. The normalised form
(the *login key*) is what the database keeps unique; the display form is what
the admin typed.
"""

from __future__ import annotations

import unicodedata

from seatgate.errors import InvalidLogin

MAX_LOGIN_LENGTH = 256


def login_key(login: str) -> str:
    """Return the normalised key of ``login``: NFKC, case-folded, stripped.

    Case folding can leave a string that is no longer NFKC (e.g. some Greek
    and ligature forms), so NFKC is applied again after folding.

    Raises :class:`InvalidLogin` for empty logins, logins over
    ``MAX_LOGIN_LENGTH`` characters, and logins with control characters (a NUL
    byte in a login is an attack on whatever reads it next, never a name).
    """
    if not isinstance(login, str):
        raise InvalidLogin(repr(login), "a login must be text")
    key = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", login).casefold()).strip()
    if not key:
        raise InvalidLogin(login, "it is empty")
    if len(key) > MAX_LOGIN_LENGTH:
        raise InvalidLogin(login, f"it is longer than {MAX_LOGIN_LENGTH} characters")
    if any(unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co", "Cn") for ch in key):
        raise InvalidLogin(login, "it contains control or unassigned characters")
    return key


def display_login(login: str) -> str:
    """Return the display form kept for an account: NFC, surrounding spaces removed."""
    return unicodedata.normalize("NFC", login).strip()
