"""The web gate's gettext catalogs: complete, current, and used with plurals and locale formats.

A message added to the sources but not extracted, or extracted but not
translated (or left fuzzy) in Spanish or English, fails here: see
docs/contributing.md for the extract / update / compile steps.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog, Message
from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

from seatgate.adapters.flask import i18n
from seatgate.adapters.flask.i18n import (
    LANGUAGES,
    catalog,
    format_money,
    format_number,
    format_rate,
    format_when,
    translate,
)
from seatgate.adapters.flask.messages import MESSAGES
from seatgate.texts import Plural
from tests.web_support import Web

ROOT = Path(__file__).resolve().parent.parent
TRANSLATIONS = ROOT / "adapters" / "flask" / "translations"
MessageId = str | tuple[str, str]
PLACEHOLDER = re.compile(r"\{(\w+)\}")
# Texts that are the same word in both languages.
SAME_IN_SPANISH = {"Token", "no"}


def _extracted() -> set[MessageId]:
    """Every msgid in the sources, extracted as scripts/messages extract does (babel.cfg)."""
    with (ROOT / "babel.cfg").open() as config:
        method_map, options_map = parse_mapping_cfg(config)
    found: set[MessageId] = set()
    for _file, _line, message, _comments, _context in extract_from_dir(
        str(ROOT), method_map, options_map, keywords={}
    ):
        found.add(message if isinstance(message, str) else (message[0], message[1]))
    return found


def _read(path: Path, language: str | None = None) -> Catalog:
    with path.open("rb") as stream:
        return read_po(stream, locale=language)


def _ids(entries: Catalog) -> set[MessageId]:
    return {_id(message) for message in entries if message.id}


def _id(message: Message) -> MessageId:
    return message.id if isinstance(message.id, str) else (message.id[0], message.id[1])


def _forms(message: Message) -> list[str]:
    return [message.string] if isinstance(message.string, str) else list(message.string)


@pytest.fixture(scope="module")
def extracted() -> set[MessageId]:
    return _extracted()


def test_the_template_is_current(extracted: set[MessageId]) -> None:
    template = _ids(_read(TRANSLATIONS / "messages.pot"))
    assert template - extracted == set(), "messages.pot holds texts the sources no longer have"
    assert extracted - template == set(), "run scripts/messages extract (docs/contributing.md)"


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_text_is_translated_and_none_is_fuzzy_or_obsolete(
    language: str, extracted: set[MessageId]
) -> None:
    entries = _read(TRANSLATIONS / language / "LC_MESSAGES" / "messages.po", language)
    assert not entries.obsolete, f"{language}: obsolete entries {sorted(entries.obsolete)}"
    assert _ids(entries) == extracted, f"{language}: run scripts/messages update"
    for message in entries:
        if not message.id:
            continue
        forms = _forms(message)
        assert not message.fuzzy, f"{language}: fuzzy {message.id!r}"
        assert len(forms) == (entries.num_plurals if message.pluralizable else 1), message.id
        assert all(form.strip() for form in forms), f"{language}: untranslated {message.id!r}"
        allowed = set(PLACEHOLDER.findall(" ".join(_ids_of(message))))
        for form in forms:
            assert set(PLACEHOLDER.findall(form)) <= allowed, f"{language}: {form!r}"


def _ids_of(message: Message) -> tuple[str, ...]:
    return (message.id,) if isinstance(message.id, str) else tuple(message.id)


def test_english_is_the_source_text_and_spanish_differs() -> None:
    texts = " ".join(" ".join(e[:2]) if isinstance(e, Plural) else e for e in MESSAGES.values())
    values: dict[str, object] = {name: 5 for name in PLACEHOLDER.findall(texts)}
    for key, entry in MESSAGES.items():
        singular = entry.singular if isinstance(entry, Plural) else entry
        source = entry.english(**values) if isinstance(entry, Plural) else entry
        # English is the source text itself.
        assert translate(key, "en", **values) == source.format(**values), key
        assert catalog("en").gettext(singular) == singular, key
        if singular not in SAME_IN_SPANISH:
            assert catalog("es").gettext(singular) != singular, key


@pytest.mark.parametrize(
    ("key", "count", "english", "spanish"),
    [
        ("days_left", 1, "1 day left", "queda 1 día"),
        ("days_left", 3, "3 days left", "quedan 3 días"),
        ("ended_days_ago", 1, "ended 1 day ago", "terminó hace 1 día"),
        ("no_seat_free", 1, "The only seat is in use.", "La única plaza está ocupada."),
        ("no_seat_free", 2, "All 2 seats are in use.", "Las 2 plazas están ocupadas."),
        ("no_seat_free", 1500, "All 1,500 seats are in use.", "Las 1.500 plazas están ocupadas."),
        ("no_seat_available", 1, "The licence's only seat", "La única plaza de la licencia"),
    ],
)
def test_counts_pick_the_plural_form_and_are_written_the_locale_way(
    key: str, count: int, english: str, spanish: str
) -> None:
    values = {"seats": count, "days": count}
    assert translate(key, "en", **values).startswith(english)
    assert translate(key, "es", **values).startswith(spanish)


def test_dates_numbers_rates_and_money_follow_the_locale() -> None:
    moment = datetime(2027, 3, 2, 13, 5, tzinfo=UTC)
    assert format_when(moment, "en") == "Mar 2, 2027, 13:05"
    assert format_when(moment, "es") == "2 mar 2027, 13:05"
    assert (format_number(12345, "en"), format_number(12345, "es")) == ("12,345", "12.345")
    assert format_rate(Decimal("0.22"), "en") == "22%"
    assert format_rate(Decimal("0.22"), "es") == "22\u00a0%"
    assert format_money(Decimal("437.80"), "EUR", "es") == "437,80\u00a0€"


def test_unknown_keys_and_languages_fall_back_as_before() -> None:
    assert translate("no_such_key", "es") == "no_such_key"
    assert translate("sign_in", "fr") == "Sign in"


@pytest.fixture
def without_compiled(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The catalogs read from a copy of the .po files only (a source checkout)."""
    for language in LANGUAGES:
        folder = tmp_path / language / "LC_MESSAGES"
        folder.mkdir(parents=True)
        source = TRANSLATIONS / language / "LC_MESSAGES" / "messages.po"
        (folder / "messages.po").write_bytes(source.read_bytes())
    monkeypatch.setattr(i18n, "TRANSLATIONS", tmp_path)
    catalog.cache_clear()
    yield tmp_path
    catalog.cache_clear()


def test_a_compiled_catalog_is_used_and_a_newer_po_wins(without_compiled: Path) -> None:
    assert translate("sign_in", "es") == "Iniciar sesión"  # from the .po
    compiled = without_compiled / "es" / "LC_MESSAGES" / "messages.mo"
    # A compiled catalog that says something else, newer than its .po: it is the one read.
    entries = _read(without_compiled / "es" / "LC_MESSAGES" / "messages.po", "es")
    entries["Sign in"].string = "Entrar"
    with compiled.open("wb") as stream:
        write_mo(stream, entries)
    catalog.cache_clear()
    assert translate("sign_in", "es") == "Entrar"
    # The .po edited after the compile: the stale .mo is ignored.
    source = without_compiled / "es" / "LC_MESSAGES" / "messages.po"
    stamp = compiled.stat().st_mtime + 10
    os.utime(source, (stamp, stamp))
    catalog.cache_clear()
    assert translate("sign_in", "es") == "Iniciar sesión"


def test_the_admin_page_writes_counts_the_locale_way(make_web: Callable[..., Web]) -> None:
    client = make_web(seats=1500).admin_client()
    html = client.get("/admin").get_data(as_text=True)
    assert '<dd id="seats-total">1,500</dd>' in html
    client.get("/language/es")
    html = client.get("/admin").get_data(as_text=True)
    assert '<dd id="seats-total">1.500</dd>' in html and '<dd id="seats-free">1.499</dd>' in html


def test_the_trial_days_left_take_the_plural_in_both_languages(
    make_web: Callable[..., Web], mint: Callable[..., str]
) -> None:
    web = make_web(licence=False)
    web.core.licensing.install(mint("trial", seats=25), actor="test")
    client = web.admin_client()
    html = client.get("/admin").get_data(as_text=True)
    assert "trial until Apr 1, 2026, " in html and "(30 days left)" in html
    web.clock.set(datetime(2026, 3, 31, 9, 0, tzinfo=UTC))
    client = web.admin_client()  # the earlier session has expired by now
    assert "(1 day left)" in client.get("/admin").get_data(as_text=True)
    client.get("/language/es")
    assert "(queda 1 día)" in client.get("/admin").get_data(as_text=True)
