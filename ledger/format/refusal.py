"""Refusal details kept out of the ledger, bound to their entry by a salted digest.

A refusal entry carries a coarse reason code (``reason``) that anyone holding
the entry may read — a court among them, through a custody certificate. What
the code leaves out (a third party's clearance level, a state's status, the
liaison named) is kept by the service in an auditor-only record, and the
entry carries only ``details.detail_digest``::

    detail_digest = hex(SHA-256(salt || UTF-8(detail)))

with ``salt`` exactly :data:`DETAIL_SALT_BYTES` (32) random bytes. The salt
stops a holder of the entry from testing guesses of the detail (its space is
small: three level names, three statuses, the liaisons of a channel); its
fixed length makes ``salt || detail`` unambiguous, so no other (salt, detail)
split of the same bytes verifies. ``docs/ledger-formats.md`` has an example.
"""

from __future__ import annotations

import hashlib
import hmac

from ledger.errors import RefusalDetailError
from ledger.format.entry import Entry

DETAIL_SALT_BYTES = 32
"""Length of every refusal detail salt, in bytes."""

DIGEST_FIELD = "detail_digest"
"""The key of the digest in a refusal entry's ``details``."""


def detail_digest(salt: bytes, detail: str) -> str:
    """``hex(SHA-256(salt || UTF-8(detail)))``; ``salt`` must be 32 bytes.

    Raises :class:`~ledger.errors.RefusalDetailError` for a salt of another
    length or a detail that is not encodable text (a lone surrogate).
    """
    if len(salt) != DETAIL_SALT_BYTES:
        raise RefusalDetailError(f"the salt is {len(salt)} bytes, not {DETAIL_SALT_BYTES}")
    try:
        text = detail.encode("utf-8")
    except UnicodeEncodeError:
        raise RefusalDetailError("the detail is not valid Unicode text") from None
    return hashlib.sha256(salt + text).hexdigest()


def verify_refusal_detail(entry: Entry, salt: bytes, detail: str) -> None:
    """Check that ``(salt, detail)`` is the private detail of the refusal ``entry``.

    ``entry`` should come from bytes the caller has verified (its inclusion in a
    signed checkpoint): the digest is recomputed and compared with the one the
    entry carries. Returns ``None`` or raises
    :class:`~ledger.errors.RefusalDetailError`.
    """
    if entry.outcome != "denied":
        raise RefusalDetailError(f"entry {entry.index} is not a refusal")
    expected = entry.details.get(DIGEST_FIELD)
    if not isinstance(expected, str):
        raise RefusalDetailError(f"entry {entry.index} carries no {DIGEST_FIELD}")
    if not hmac.compare_digest(detail_digest(salt, detail), expected):
        raise RefusalDetailError(f"the detail does not match the digest of entry {entry.index}")
