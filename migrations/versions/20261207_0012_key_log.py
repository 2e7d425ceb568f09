"""The key log: a Merkle tree over the ledger's key entries, extended with each checkpoint.

Revision ID: 0012_key_log
Revises: 0011_sealed_certificates
Create Date: 2026-12-07 00:00:00.000000

``ledger.sql.keylog`` describes the tables. The head starts at zero entries
processed: the next checkpoint signed after the upgrade builds the key log
from every existing entry (``ledger.store.keylog``), and carries it; the
checkpoints signed before the upgrade carry none.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012_key_log"
down_revision: str | None = "0011_sealed_certificates"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_Index = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "key_log_leaves",
        sa.Column("index", _Index, nullable=False, autoincrement=False),
        sa.Column("ledger_index", sa.BigInteger(), nullable=False),
        sa.Column("liaison_id", sa.String(length=255), nullable=False),
        sa.Column("leaf", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("index", name=op.f("pk_key_log_leaves")),
        sa.UniqueConstraint("ledger_index", name=op.f("uq_key_log_leaves_ledger_index")),
    )
    op.create_index("ix_key_log_leaves_liaison", "key_log_leaves",
                    ["liaison_id", "ledger_index"])
    op.create_table(
        "key_log_nodes",
        sa.Column("level", sa.SmallInteger(), nullable=False, autoincrement=False),
        sa.Column("index", sa.BigInteger(), nullable=False, autoincrement=False),
        sa.Column("hash", sa.LargeBinary(length=32), nullable=False),
        sa.PrimaryKeyConstraint("level", "index", name=op.f("pk_key_log_nodes")),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "key_log_checkpoints",
        sa.Column("size", sa.BigInteger(), nullable=False, autoincrement=False),
        sa.Column("key_size", sa.BigInteger(), nullable=False),
        sa.Column("key_root", sa.LargeBinary(length=32), nullable=False),
        sa.PrimaryKeyConstraint("size", name=op.f("pk_key_log_checkpoints")),
    )
    op.create_index(op.f("ix_key_log_checkpoints_key_size"), "key_log_checkpoints",
                    ["key_size"])
    head = op.create_table(
        "key_log_head",
        sa.Column("id", sa.SmallInteger(), nullable=False, autoincrement=False),
        sa.Column("ledger_size", sa.BigInteger(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("id = 1", name=op.f("ck_key_log_head_single_row")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_key_log_head")),
    )
    op.bulk_insert(head, [{"id": 1, "ledger_size": 0, "size": 0}])


def downgrade() -> None:
    op.drop_table("key_log_head")
    op.drop_index(op.f("ix_key_log_checkpoints_key_size"), table_name="key_log_checkpoints")
    op.drop_table("key_log_checkpoints")
    op.drop_table("key_log_nodes")
    op.drop_index("ix_key_log_leaves_liaison", table_name="key_log_leaves")
    op.drop_table("key_log_leaves")
