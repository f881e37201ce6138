"""Login normalisation: the one place that decides when two logins are the same.

``Bob``, ``BOB `` and ``Bob`` in fullwidth letters are one person. The normalised form
(the *login key*) is what the database keeps unique; the display form is what
the admin typed.

It also decides when a new login mixes scripts in a way that deceives the eye
(``admin`` spelt with a Cyrillic ``a``, U+0430): :func:`confusable_mix`.
"""

from __future__ import annotations

import unicodedata

from confusable_homoglyphs import categories, confusables

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
    if login.isascii():  # NFKC leaves ASCII as it is, and folds its case as lower() does
        key = login.lower().strip()
    else:
        key = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", login).casefold())
        key = key.strip()
    if not key:
        raise InvalidLogin(login, "it is empty")
    if len(key) > MAX_LOGIN_LENGTH:
        raise InvalidLogin(login, f"it is longer than {MAX_LOGIN_LENGTH} characters")
    # isprintable() is False for every character of those categories: a cheap pass first.
    if not key.isprintable() and any(
        unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co", "Cn") for ch in key
    ):
        raise InvalidLogin(login, "it contains control or unassigned characters")
    return key


def display_login(login: str) -> str:
    """Return the display form kept for an account: NFC, surrounding spaces removed."""
    return unicodedata.normalize("NFC", login).strip()


# Unicode TR39 section 5.1: a string's resolved script set is the intersection of
# its characters' augmented script sets, Common and Inherited left out. Han
# writing mixes scripts on purpose (Japanese, Korean, Han with Bopomofo).
_AUGMENTED = {
    "HAN": frozenset({"HAN", "JPAN", "KORE", "HANB"}),
    "HIRAGANA": frozenset({"HIRAGANA", "JPAN"}),
    "KATAKANA": frozenset({"KATAKANA", "JPAN"}),
    "HANGUL": frozenset({"HANGUL", "KORE"}),
    "BOPOMOFO": frozenset({"BOPOMOFO", "HANB"}),
}
_ANY_SCRIPT = frozenset({"COMMON", "INHERITED"})


def confusable_mix(login: str) -> str | None:
    """Why ``login`` mixes scripts confusably (TR39), or None when it does not.

    A login is refused as new when it is not single-script (its resolved
    script set is empty) and one of its letters looks like a letter of
    another script in it, per Unicode's confusables data: ``admin`` spelt with
    a Cyrillic ``a`` (U+0430) among Latin letters is; ``Zoë``, ``p.garcía``,
    ``山田たろう`` and ``tanakaさん`` are not.
    """
    if login.isascii():
        return None  # one script (Latin) and Common
    text = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", login).casefold())
    scripts = {ch: categories.alias(ch).upper() for ch in set(text)}
    letters = {ch: s for ch, s in scripts.items() if s not in _ANY_SCRIPT}
    resolved: frozenset[str] | None = None
    for script in set(letters.values()):
        augmented = _AUGMENTED.get(script, frozenset({script}))
        resolved = augmented if resolved is None else resolved & augmented
    if resolved is None or resolved:
        return None
    found = [_looks_like(ch, letters) for ch in sorted(letters, key=text.index)]
    named = [f for f in found if f is not None]
    if not named:
        return None
    # Named: the letters of the less used scripts (the Cyrillic a of a Latin admin).
    counts = {
        s: sum(text.count(ch) for ch, t in letters.items() if t == s) for s in letters.values()
    }
    main = max(
        counts, key=lambda s: (counts[s], -text.index(next(c for c in letters if letters[c] == s)))
    )
    shown = [f[1] for f in named if f[0] != main] or [f[1] for f in named]
    mixed = ", ".join(sorted(_title(s) for s in counts))
    listed = "; ".join(shown[:3]) + ("; ..." if len(shown) > 3 else "")
    return f"it mixes scripts that look alike ({mixed}): {listed}"


def _looks_like(ch: str, letters: dict[str, str]) -> tuple[str, str] | None:
    """(script, description) when ``ch`` looks like a letter of another script in the login."""
    script = letters[ch]
    others = sorted({s for s in letters.values() if s != script})
    hits = confusables.is_confusable(ch, greedy=True, preferred_aliases=others) or []
    like = [
        g["c"]
        for hit in hits
        for g in hit["homoglyphs"]
        if categories.alias(g["c"][0]).upper() in others
    ]
    if not like:
        return None
    return script, (
        f"`{ch}` (U+{ord(ch):04X} {unicodedata.name(ch, '?')}, {_title(script)}) "
        f"looks like {_title(categories.alias(like[0][0]))} `{like[0]}`"
    )


def check_new_login(login: str) -> None:
    """Refuse ``login`` for a new account when it mixes scripts confusably.

    Only new local and imported logins are checked: existing accounts keep
    their logins, and a directory's logins are accepted (and flagged).
    Raises :class:`InvalidLogin` naming the characters and their scripts.
    """
    reason = confusable_mix(login)
    if reason is not None:
        raise InvalidLogin(login, reason + "; use letters of one script")


def _title(script: str) -> str:
    return script.replace("_", " ").title()
