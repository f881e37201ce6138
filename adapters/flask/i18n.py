"""The web gate's language and its gettext catalogs: lookup, plural forms, dates and numbers.

The language is the visitor's switch (a cookie) if set, else ``web.language``
when it is not ``auto``, else the best match of ``Accept-Language``.

Texts are translated through the gettext catalogs in ``translations/``
(msgid = the English text). The wheel carries them compiled (``.mo``, built
by setup.py); a source checkout without compiled catalogs reads the ``.po``
files instead, so the tests and an editable install need no compile step.
Babel is used directly rather than Flask-Babel: the gate is an extension of
the portal's own Flask app, which may run Flask-Babel for its own pages, and
the gate must neither take over nor depend on that app's locale selector.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from functools import lru_cache
from io import BytesIO
from pathlib import Path

from babel import Locale
from babel.dates import format_date, format_skeleton
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.numbers import format_currency, format_decimal, format_percent
from babel.support import Translations
from flask import Request

from seatgate.texts import Plural

from .messages import MESSAGES

LANGUAGES = ("es", "en")
DEFAULT_LANGUAGE = "en"
LANGUAGE_COOKIE = "seatgate_lang"
DOMAIN = "messages"
TRANSLATIONS = Path(__file__).parent / "translations"
# 24-hour time without seconds (the admin page's events are minutes apart at most).
TIME_SKELETON = "Hm"


def choose_language(request: Request, configured: str) -> str:
    """The language of this request's pages and messages."""
    chosen = request.cookies.get(LANGUAGE_COOKIE)
    if chosen in LANGUAGES:
        return str(chosen)
    if configured in LANGUAGES:
        return configured
    return request.accept_languages.best_match(LANGUAGES, default=DEFAULT_LANGUAGE) or "en"


@lru_cache(maxsize=len(LANGUAGES))
def catalog(language: str) -> Translations:
    """The compiled catalog of ``language``; built from its ``.po`` when no current ``.mo``."""
    folder = TRANSLATIONS / language / "LC_MESSAGES"
    compiled, source = folder / f"{DOMAIN}.mo", folder / f"{DOMAIN}.po"
    if compiled.exists() and (
        not source.exists() or compiled.stat().st_mtime >= source.stat().st_mtime
    ):
        with compiled.open("rb") as stream:
            return Translations(stream, domain=DOMAIN)
    if not source.exists():
        raise FileNotFoundError(f"no {DOMAIN} catalog for the language {language!r} in {folder}")
    with source.open("rb") as stream:
        entries = read_po(stream, locale=language, domain=DOMAIN)
    buffer = BytesIO()
    write_mo(buffer, entries)
    buffer.seek(0)
    return Translations(buffer, domain=DOMAIN)


def _known(language: str) -> str:
    return language if language in LANGUAGES else DEFAULT_LANGUAGE


def _localized(language: str, values: dict[str, object]) -> dict[str, object]:
    """``values`` with whole numbers written the locale's way (1,000 or 1000 / 10.000)."""
    return {
        name: format_decimal(value, locale=language)
        if isinstance(value, int) and not isinstance(value, bool)
        else value
        for name, value in values.items()
    }


def gettext(text: str, language: str, **values: object) -> str:
    """The msgid ``text`` in ``language``, ``values`` filled in (untranslated: as-is)."""
    language = _known(language)
    translated = catalog(language).gettext(text)
    return translated.format(**_localized(language, values)) if values else translated


def ngettext(singular: str, plural: str, count: int, language: str, **values: object) -> str:
    """The form of a plural message for ``count`` in ``language``, ``values`` filled in."""
    language = _known(language)
    translated = catalog(language).ngettext(singular, plural, count)
    return translated.format(**_localized(language, values))


def translate(key: str, language: str, **values: object) -> str:
    """The message ``key`` (or a msgid) in ``language`` with ``values`` filled in.

    A key of :data:`.messages.MESSAGES` is looked up by its English text; any
    other string is taken as a msgid itself (templates write the English
    text); one the catalogs lack shows as-is.
    """
    entry = MESSAGES.get(key, key)
    if isinstance(entry, Plural):
        count = values[entry.counted]
        if not isinstance(count, int):
            raise TypeError(f"the message {key!r} needs a whole number as {entry.counted!r}")
        return ngettext(entry.singular, entry.plural, count, language, **values)
    return gettext(entry, language, **values)


def format_when(value: datetime, language: str) -> str:
    """A date and time (shown in UTC, as the gate stores them) written the locale's way."""
    language = _known(language)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    day = format_date(value.astimezone(UTC), "medium", locale=language)
    time = format_skeleton(TIME_SKELETON, value, tzinfo=UTC, locale=language)
    # The locale's way of joining a date and a time, e.g. "{1}, {0}".
    joined = str(Locale.parse(language).datetime_formats["medium"])
    return joined.replace("{1}", day).replace("{0}", time)


def format_number(value: int | float, language: str) -> str:
    """A number with the locale's digit grouping and decimal sign."""
    return format_decimal(value, locale=_known(language))


def format_money(amount: Decimal, currency: str, language: str) -> str:
    """An amount in ``currency`` (an ISO 4217 code) written the locale's way."""
    return format_currency(amount, currency, locale=_known(language))


def format_rate(rate: Decimal, language: str) -> str:
    """A fraction (0.22) as the locale writes a percentage (22% / 22 %)."""
    return format_percent(rate, locale=_known(language))
