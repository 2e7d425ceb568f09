"""Human-readable text the service stores: names, notes, reasons, references.

People read these in four languages, in the desk, in custody certificates
and in the ledger. None may hold a control character (Unicode category Cc:
C0, DEL and C1, NUL among them, which PostgreSQL text cannot even store) or
a bidirectional formatting character (U+061C, U+200E, U+200F,
U+202A-U+202E, U+2066-U+2069), which reorders what a reader sees: a name or
a case reference could read differently from the bytes the ledger holds.
Every other character is fine, letters of any script and joiners included.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator

_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def unsafe_character(value: str) -> str | None:
    """The first control or bidi formatting character in ``value``, if any."""
    found = _UNSAFE.search(value)
    return found.group() if found else None


def check_display_text(value: str) -> str:
    """``value`` unchanged, or ``ValueError`` naming the first character refused."""
    bad = unsafe_character(value)
    if bad is not None:
        raise ValueError(f"control or bidirectional formatting character U+{ord(bad):04X} "
                         "is not allowed in text")
    return value


DisplayText = Annotated[str, AfterValidator(check_display_text)]
"""A ``str`` field that people read; refused (422) with any character above.

Lengths stay per field: ``name: DisplayText = Field(min_length=1, max_length=200)``.
"""
