"""Events: notifications for liaisons, streamed as server-sent events.

Revision ID: 0005_events
Revises: 0004_witnesses
Create Date: 2026-11-22 06:42:39.000191
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_events"
down_revision: str | None = "0004_witnesses"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "events",
        sa.Column("liaison_id", sa.String(length=128), nullable=False),
        sa.Column("ledger_index", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("packet_id", sa.String(length=64), nullable=False),
        sa.Column("data", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["liaison_id"], ["liaisons.id"], name=op.f("fk_events_liaison_id_liaisons")
        ),
        sa.PrimaryKeyConstraint("liaison_id", "ledger_index", name=op.f("pk_events")),
    )


def downgrade() -> None:
    op.drop_table("events")
