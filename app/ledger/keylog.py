"""The key log through a session: the tree of key entries each checkpoint carries.

``ledger.sql.keylog`` stores it; the checkpointer extends it
(``app.ledger.checkpointer``); the directory serves its leaves and proofs.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from app.models.ledger import KEY_LOG_TABLES
from ledger.sql import SqlKeyLog


def key_log_for(session: Session) -> SqlKeyLog:
    """The key log, read and written through ``session`` (in its transaction)."""
    return SqlKeyLog(session, KEY_LOG_TABLES)
