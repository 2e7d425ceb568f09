"""Small ciphertext streams sent inline with the envelope are kept in their stream row.

Revision ID: 0007_inline_streams
Revises: 0006_certificates
Create Date: 2026-12-03 08:20:00.000000

``packet_streams.content`` holds the ciphertext of a stream submitted inline
(small packets: one request); streams uploaded as blobs leave it NULL.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_inline_streams"
down_revision: str | None = "0006_certificates"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("packet_streams", sa.Column("content", sa.LargeBinary(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("packet_streams") as batch:
        batch.drop_column("content")
