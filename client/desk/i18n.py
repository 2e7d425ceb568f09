"""The desk's languages: gettext catalogs (Babel), the reader's choice, dates and numbers.

Catalogs are ``client/desk/locale/<lang>/LC_MESSAGES/desk.po``; only the
``.po`` files are kept (in git and in the installed package): they are
compiled in memory when the desk starts, so a fresh clone and an installed
package behave the same. A string is marked with ``_()`` in Python
(``from client.desk.i18n import _``) and ``{{ _("...") }}`` or
``{% trans %}`` in templates; ``python scripts/desk_messages.py`` extracts
them and merges them into the four catalogs; ``tests/desk/test_catalogs.py``
fails while any catalog lacks a translation.

The language in force for a request is held in a context variable set by the
desk's guard (:mod:`client.desk.security`): the reader's cookie, else the
profile's setting, else the browser's ``Accept-Language``, else English.
"""

from __future__ import annotations

import io
from contextvars import ContextVar
from datetime import date, datetime
from functools import cache
from pathlib import Path

from babel import Locale, UnknownLocaleError
from babel.dates import LOCALTZ
from babel.dates import format_date as _format_date
from babel.dates import format_datetime as _format_datetime
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.numbers import format_decimal
from babel.support import NullTranslations, Translations

LANGUAGES: dict[str, str] = {"es": "Español", "pt": "Português", "fr": "Français",
                             "en": "English"}
"""The desk's languages, each named in itself (as the language switcher shows them)."""
DEFAULT_LANGUAGE = "en"
LOCALE_DIR = Path(__file__).parent / "locale"
DOMAIN = "desk"

_language: ContextVar[str] = ContextVar("desk_language", default=DEFAULT_LANGUAGE)


def catalog_path(language: str) -> Path:
    """The ``.po`` file of ``language``."""
    return LOCALE_DIR / language / "LC_MESSAGES" / f"{DOMAIN}.po"


@cache
def translations(language: str) -> NullTranslations:
    """The compiled catalog of ``language`` (compiled in memory once per process)."""
    path = catalog_path(language)
    if language not in LANGUAGES or not path.exists():
        return NullTranslations()
    with path.open("rb") as handle:
        catalog = read_po(handle, locale=language, domain=DOMAIN)
    compiled = io.BytesIO()
    write_mo(compiled, catalog)
    compiled.seek(0)
    return Translations(compiled, domain=DOMAIN)


def set_language(language: str) -> None:
    """Make ``language`` the one in force for this request (context)."""
    _language.set(language if language in LANGUAGES else DEFAULT_LANGUAGE)


def current_language() -> str:
    """The language in force."""
    return _language.get()


def negotiate(accept_language: str | None) -> str:
    """The best of our languages for an ``Accept-Language`` header (English if none fits)."""
    wanted: list[tuple[float, str]] = []
    for index, item in enumerate((accept_language or "").split(",")):
        tag, _, params = item.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                quality = 0.0
        if tag:
            wanted.append((-quality + index * 1e-6, tag.replace("_", "-").lower()))
    for _, tag in sorted(wanted):
        base = tag.split("-")[0]
        if base in LANGUAGES:
            return base
    return DEFAULT_LANGUAGE


def _(message: str, **values: object) -> str:
    """``message`` translated into the language in force (then ``% values``, if any)."""
    text = translations(current_language()).gettext(message)
    return text % values if values else text


def ngettext(singular: str, plural: str, n: int) -> str:
    """The singular or plural form for ``n``, translated."""
    return translations(current_language()).ngettext(singular, plural, n)


def N_(message: str) -> str:  # noqa: N802 - gettext's name for "mark, translate later"
    """Mark ``message`` for extraction; it is translated where it is shown."""
    return message


def _locale() -> Locale:
    try:
        return Locale.parse(current_language())
    except (UnknownLocaleError, ValueError):
        return Locale.parse(DEFAULT_LANGUAGE)


def format_datetime(moment: datetime | None) -> str:
    """A date and time in the reader's locale (``-`` for none)."""
    if moment is None:
        return "-"
    return _format_datetime(moment, format="medium", locale=_locale(), tzinfo=LOCALTZ)


def format_day(day: date | datetime | None) -> str:
    """A date in the reader's locale (``-`` for none)."""
    if day is None:
        return "-"
    return _format_date(day, format="long", locale=_locale())


def format_number(value: int | float) -> str:
    """A number in the reader's locale (grouping, decimal mark)."""
    return format_decimal(value, locale=_locale())
