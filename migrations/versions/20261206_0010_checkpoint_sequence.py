"""Checkpoint sequence numbers: every checkpoint row numbered, the head keeps the latest.

Revision ID: 0010_checkpoint_sequence
Revises: 0009_rotation_challenges
Create Date: 2026-12-06 19:00:00.000000

``ledger_checkpoints.seq`` numbers the stored checkpoints 1, 2, ... and
``ledger_head.checkpoint_seq`` holds the latest number, so that
``cadena-server ledger verify`` names a deleted checkpoint row
(``missing_checkpoint``, docs/ledger-formats.md). Existing rows are numbered
in size order.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010_checkpoint_sequence"
down_revision: str | None = "0009_rotation_challenges"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add and fill the sequence columns."""
    with op.batch_alter_table("ledger_checkpoints") as batch:
        batch.add_column(sa.Column("seq", sa.BigInteger(), nullable=True))
    op.execute("UPDATE ledger_checkpoints SET seq = (SELECT count(*) FROM ledger_checkpoints "
               "AS earlier WHERE earlier.size <= ledger_checkpoints.size)")
    with op.batch_alter_table("ledger_checkpoints") as batch:
        batch.alter_column("seq", existing_type=sa.BigInteger(), nullable=False)
    with op.batch_alter_table("ledger_head") as batch:
        batch.add_column(sa.Column("checkpoint_seq", sa.BigInteger(), nullable=False,
                                   server_default=sa.text("0")))
    op.execute("UPDATE ledger_head SET checkpoint_seq = (SELECT count(*) FROM ledger_checkpoints)")


def downgrade() -> None:
    """Drop the sequence columns."""
    with op.batch_alter_table("ledger_head") as batch:
        batch.drop_column("checkpoint_seq")
    with op.batch_alter_table("ledger_checkpoints") as batch:
        batch.drop_column("seq")
