"""The ledger's tables, defined by ``ledger.sql.store`` on the shared metadata."""

from __future__ import annotations

from app.models.base import Base
from ledger.sql import LedgerTables, define_ledger_tables

LEDGER_TABLES: LedgerTables = define_ledger_tables(Base.metadata)
"""``ledger_entries``, ``ledger_nodes``, ``ledger_checkpoints`` and ``ledger_head``."""
