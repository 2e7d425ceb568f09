"""The four catalogs translate every string the desk shows, and Babel formats in the locale.

The extraction runs here (the same as ``python -m client.desk.catalogs``), so a
string added to a template or to Python without its translations fails this
test until the ``.po`` files carry it.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from client.desk import i18n
from client.desk.catalogs import extract, untranslated

_PLACEHOLDER = re.compile(r"%\((\w+)\)s")


@pytest.fixture(scope="module")
def template():  # type: ignore[no-untyped-def]
    """Every message extracted from the desk's Python and templates."""
    return extract()


def test_the_extraction_finds_the_desks_strings(template) -> None:  # type: ignore[no-untyped-def]
    ids = {m.id if isinstance(m.id, str) else m.id[0] for m in template if m.id}
    assert "Check a custody certificate" in ids          # a template
    assert "Wrong address" in ids                         # the guard (Python, N_)
    assert "Choose the certificate file." in ids          # a section (Python, _)
    assert len(ids) > 100


@pytest.mark.parametrize("language", sorted(i18n.LANGUAGES))
def test_every_catalog_translates_every_string(template, language: str  # type: ignore[no-untyped-def]
                                               ) -> None:
    missing = untranslated(language, template)
    assert not missing, f"{language} lacks {len(missing)}: {missing[:10]}"


@pytest.mark.parametrize("language", sorted(i18n.LANGUAGES))
def test_translations_keep_every_placeholder(template, language: str  # type: ignore[no-untyped-def]
                                             ) -> None:
    catalog = i18n.translations(language)
    i18n.set_language(language)
    for message in template:
        if not message.id or not isinstance(message.id, str):
            continue
        assert set(_PLACEHOLDER.findall(catalog.gettext(message.id))) == set(
            _PLACEHOLDER.findall(message.id)), (language, message.id)


def test_accept_language_picks_the_best_supported_language() -> None:
    assert i18n.negotiate("es-CO,es;q=0.9,en;q=0.8") == "es"
    assert i18n.negotiate("de-DE,pt-BR;q=0.7,fr;q=0.5") == "pt"
    assert i18n.negotiate("en;q=0.2, fr;q=0.9") == "fr"
    assert i18n.negotiate("de, ja") == "en"
    assert i18n.negotiate(None) == "en"


@given(st.text(max_size=200))
def test_any_accept_language_header_gives_one_of_the_four_languages(header: str) -> None:
    assert i18n.negotiate(header) in i18n.LANGUAGES


def test_dates_and_numbers_follow_the_readers_locale() -> None:
    moment = datetime(2026, 12, 7, 15, 4, tzinfo=UTC)
    shown = {}
    for language in i18n.LANGUAGES:
        i18n.set_language(language)
        shown[language] = (i18n.format_day(moment), i18n.format_number(1234567.5))
    assert shown["en"] == ("December 7, 2026", "1,234,567.5")
    assert shown["es"] == ("7 de diciembre de 2026", "1.234.567,5")
    assert shown["pt"][0] == "7 de dezembro de 2026"
    assert shown["fr"][0] == "7 décembre 2026"
    assert shown["fr"][1].replace("\u202f", " ") == "1 234 567,5"


def test_plural_forms_reach_the_compiled_catalogs() -> None:
    singular, plural = ("Not valid: %(num)s check does not hold.",
                        "Not valid: %(num)s checks do not hold.")
    expected = {"es": ("comprobación no se cumple", "comprobaciones no se cumplen"),
                "pt": ("verificação não se confirma", "verificações não se confirmam"),
                "fr": ("vérification n’est pas satisfaite", "vérifications ne sont pas"),
                "en": ("check does not hold", "checks do not hold")}
    for language, (one, many) in expected.items():
        i18n.set_language(language)
        assert one in i18n.ngettext(singular, plural, 1)
        assert many in i18n.ngettext(singular, plural, 3)
