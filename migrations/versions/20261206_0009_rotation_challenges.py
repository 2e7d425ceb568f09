"""One-time key-rotation challenges, with the server's ephemeral X25519 secret.

Revision ID: 0009_rotation_challenges
Revises: 0008_refusal_details
Create Date: 2026-12-06 18:15:00.000000

``key_rotation_challenges`` holds each liaison's outstanding rotation
challenge (docs/protocol.md §9); rows are deleted when used or expired.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009_rotation_challenges"
down_revision: str | None = "0008_refusal_details"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "key_rotation_challenges",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("liaison_id", sa.String(length=128), nullable=False),
        sa.Column("key_id", sa.String(length=64), nullable=False),
        sa.Column("nonce", sa.LargeBinary(length=32), nullable=False),
        sa.Column("server_box_secret", sa.LargeBinary(length=32), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["key_id"], ["liaison_keys.key_id"],
            name=op.f("fk_key_rotation_challenges_key_id_liaison_keys"),
        ),
        sa.ForeignKeyConstraint(
            ["liaison_id"], ["liaisons.id"],
            name=op.f("fk_key_rotation_challenges_liaison_id_liaisons"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_key_rotation_challenges")),
    )
    with op.batch_alter_table("key_rotation_challenges") as batch:
        batch.create_index(batch.f("ix_key_rotation_challenges_expires_at"), ["expires_at"],
                           unique=False)
        batch.create_index(batch.f("ix_key_rotation_challenges_liaison_id"), ["liaison_id"],
                           unique=False)


def downgrade() -> None:
    with op.batch_alter_table("key_rotation_challenges") as batch:
        batch.drop_index(batch.f("ix_key_rotation_challenges_liaison_id"))
        batch.drop_index(batch.f("ix_key_rotation_challenges_expires_at"))
    op.drop_table("key_rotation_challenges")
