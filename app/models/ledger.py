"""The ledger's tables, defined by ``ledger.sql.store`` on the shared metadata."""

from __future__ import annotations

from app.models.base import Base
from ledger.sql import KeyLogTables, LedgerTables, define_key_log_tables, define_ledger_tables

LEDGER_TABLES: LedgerTables = define_ledger_tables(Base.metadata)
"""``ledger_entries``, ``ledger_nodes``, ``ledger_checkpoints`` and ``ledger_head``."""

KEY_LOG_TABLES: KeyLogTables = define_key_log_tables(Base.metadata)
"""``key_log_leaves``, ``key_log_nodes``, ``key_log_checkpoints`` and ``key_log_head``."""
