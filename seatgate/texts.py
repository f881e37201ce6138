"""Texts marked for translation: gettext's markers, for the core and the web gate alike.

The core writes its user-facing texts in English; the web gate translates
them through gettext catalogs whose msgids are these English texts. ``N_``
and ``NP_`` change nothing at run time: they mark a text (or a text with
plural forms) so that Babel's extraction finds it (babel.cfg).
"""

from __future__ import annotations

from typing import NamedTuple


class Plural(NamedTuple):
    """A text with a singular and a plural form, picked by the value named ``counted``."""

    singular: str
    plural: str
    counted: str

    def english(self, **values: object) -> str:
        """The English form for the count in ``values``, ``values`` filled in."""
        text = self.singular if values[self.counted] == 1 else self.plural
        return text.format(**values)


def N_(text: str) -> str:
    """Mark ``text`` for extraction; it is translated where it is shown."""
    return text


def NP_(singular: str, plural: str, counted: str) -> Plural:
    """Mark a text with plural forms; ``counted`` names the value that picks the form."""
    return Plural(singular, plural, counted)


__all__ = ["NP_", "N_", "Plural"]
