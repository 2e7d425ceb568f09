"""The desk's sections: one module (and one templates folder) per role's pages.

The navigation lists them in this order. To add a role's pages, write
``client/desk/sections/<key>.py`` with ``section = Section(...)`` and add it
here (docs/desk.md, "Adding a page"). The shell's own pages (home, unlock,
lock, language, first run) are :mod:`client.desk.sections.shell`, outside the
navigation.
"""

from __future__ import annotations

from client.desk.pages import Section
from client.desk.sections import auditor, coordinator, court, prosecutor

SECTIONS: tuple[Section, ...] = (
    prosecutor.section,
    coordinator.section,
    auditor.section,
    court.section,
)
