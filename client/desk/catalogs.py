"""The desk's message catalogs: extract every string, merge into the four ``.po`` files.

``python -m client.desk.catalogs`` extracts the strings marked in the desk's
Python (``_``, ``N_``, ``ngettext``) and templates, and merges them into
``client/desk/locale/<lang>/LC_MESSAGES/desk.po``: new strings arrive
untranslated (English is its own translation), strings no longer used are
dropped. Then translate the empty ``msgstr`` of es, pt and fr;
``tests/desk/test_catalogs.py`` runs :func:`untranslated` and fails while any
is left.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.pofile import read_po, write_po

from client.desk.i18n import DOMAIN, LANGUAGES, catalog_path

DESK = Path(__file__).parent
METHODS = [("**/templates/**.html", "jinja2"), ("**.py", "python")]
OPTIONS = {"**/templates/**.html": {"extensions": "jinja2.ext.i18n", "newstyle_gettext": "true"}}
KEYWORDS = {**DEFAULT_KEYWORDS, "N_": None}
FIXED_DATE = datetime(2026, 12, 1, tzinfo=UTC)
"""The catalogs' header dates: fixed, so that an update changes only the messages (merges)."""


def extract() -> Catalog:
    """Every message the desk's Python and templates mark for translation."""
    catalog = Catalog(domain=DOMAIN, project="Cadena Desk", fuzzy=False)
    for filename, lineno, message, comments, context in extract_from_dir(
            DESK, METHODS, OPTIONS, keywords=KEYWORDS, strip_comment_tags=True):
        catalog.add(message, None, [(filename, lineno)], auto_comments=comments,
                    context=context)
    return catalog


def read(language: str) -> Catalog:
    """The ``.po`` catalog of ``language`` (empty if it does not exist yet)."""
    path = catalog_path(language)
    if not path.exists():
        return Catalog(locale=language, domain=DOMAIN, fuzzy=False)
    with path.open("rb") as handle:
        return read_po(handle, locale=language, domain=DOMAIN)


def untranslated(language: str, template: Catalog | None = None) -> list[str]:
    """The extracted messages that ``language``'s catalog lacks or leaves untranslated."""
    template = template or extract()
    catalog = read(language)
    missing = []
    for message in template:
        if not message.id:
            continue
        found = catalog.get(message.id, context=message.context)
        strings = found.string if found is not None else None
        if isinstance(strings, tuple | list):
            complete = bool(strings) and all(strings)
        else:
            complete = bool(strings)
        if found is None or not complete or found.fuzzy:
            missing.append(message.id if isinstance(message.id, str) else message.id[0])
    return missing


def update(language: str, template: Catalog | None = None) -> None:
    """Merge the extracted messages into ``language``'s catalog and write it."""
    template = template or extract()
    catalog = read(language)
    catalog.update(template, no_fuzzy_matching=True)
    catalog.obsolete.clear()
    catalog.project, catalog.version = "Cadena Desk", "1"
    catalog.copyright_holder, catalog.msgid_bugs_address = "Cadena", ""
    catalog.last_translator = "Cadena <cadena@localhost>"
    catalog.language_team = f"{language} <cadena@localhost>"
    catalog.creation_date = catalog.revision_date = FIXED_DATE
    catalog.fuzzy = False  # a fuzzy header is left out of the compiled catalog
    if language == "en":
        for message in catalog:
            if message.id and not (all(message.string) if isinstance(message.string, tuple)
                                   else message.string):
                message.string = message.id
    path = catalog_path(language)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as handle:
        write_po(handle, catalog, width=100, omit_header=False, sort_output=True,
                 include_lineno=False)


def main() -> None:
    """Update the four catalogs and say how many messages each still lacks."""
    template = extract()
    for language in LANGUAGES:
        update(language, template)
        print(f"{language}: {len(untranslated(language, template))} untranslated")  # noqa: T201


if __name__ == "__main__":
    main()
