"""Witnesses: registered witness nodes and the cosignatures they returned.

Revision ID: 0004_witnesses
Revises: 0003_packets
Create Date: 2026-11-22 06:14:51.718910
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_witnesses"
down_revision: str | None = "0003_packets"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "witnesses",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("url", sa.String(length=500), nullable=False),
        sa.Column("verifier_key", sa.String(length=600), nullable=False),
        sa.Column("key_name", sa.String(length=400), nullable=False),
        sa.Column("last_size", sa.BigInteger(), nullable=False),
        sa.Column("registered_by", sa.String(length=128), nullable=False),
        sa.Column("registered_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("removed_by", sa.String(length=128), nullable=True),
        sa.Column("removed_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["registered_by"], ["liaisons.id"], name=op.f("fk_witnesses_registered_by_liaisons")
        ),
        sa.ForeignKeyConstraint(
            ["removed_by"], ["liaisons.id"], name=op.f("fk_witnesses_removed_by_liaisons")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_witnesses")),
    )
    with op.batch_alter_table("witnesses", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_witnesses_name"), ["name"], unique=False)

    op.create_table(
        "witness_cosignatures",
        sa.Column("witness_id", sa.Integer(), nullable=False),
        sa.Column("checkpoint_size", sa.BigInteger(), nullable=False),
        sa.Column("line", sa.Text(), nullable=False),
        sa.Column("timestamp", sa.BigInteger(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["checkpoint_size"],
            ["ledger_checkpoints.size"],
            name=op.f("fk_witness_cosignatures_checkpoint_size_ledger_checkpoints"),
        ),
        sa.ForeignKeyConstraint(
            ["witness_id"], ["witnesses.id"],
            name=op.f("fk_witness_cosignatures_witness_id_witnesses"),
        ),
        sa.PrimaryKeyConstraint("witness_id", "checkpoint_size",
                                name=op.f("pk_witness_cosignatures")),
    )
    with op.batch_alter_table("witness_cosignatures", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_witness_cosignatures_checkpoint_size"), ["checkpoint_size"],
            unique=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("witness_cosignatures", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_witness_cosignatures_checkpoint_size"))
    op.drop_table("witness_cosignatures")
    with op.batch_alter_table("witnesses", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_witnesses_name"))
    op.drop_table("witnesses")
