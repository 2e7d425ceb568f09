"""The auditor-only detail of a refusal, kept out of the ledger entry.

The entry carries ``details.detail_digest = hex(SHA-256(salt || UTF-8(detail)))``
(``ledger.format.refusal``); this row holds the salt and the text, written in the
same transaction as the entry (``app.ledger.recording.record_refusal``). No foreign key
to the ledger: ledger rows may be inserted at commit (``ledger.sql.store``).
"""

from __future__ import annotations

from sqlalchemy import BigInteger, LargeBinary, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base


class RefusalDetail(Base):
    """The private detail (salt, text) of the refusal entry at ``ledger_index``."""

    __tablename__ = "refusal_details"

    ledger_index: Mapped[int] = mapped_column(BigInteger, primary_key=True,
                                              autoincrement=False)
    salt: Mapped[bytes] = mapped_column(LargeBinary())
    detail: Mapped[str] = mapped_column(Text())
