"""Blobs in the database: ``blobs`` (complete blobs) and ``blob_chunks`` (their bytes).

Revision ID: 0013_blob_chunks
Revises: 0012_key_log
Create Date: 2026-12-07 01:00:00.000000

Used only with ``CADENA_BLOB_STORE=database`` on PostgreSQL (``app.blob_db``,
docs/adr/0024-blobs-in-postgresql-chunked-rows.md); created everywhere, so
that every database has one schema. On PostgreSQL the chunks are stored
uncompressed out of line (``STORAGE EXTERNAL``): ciphertext does not compress,
and an uncompressed value can be read in slices (a byte range) without
fetching it whole.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013_blob_chunks"
down_revision: str | None = "0012_key_log"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "blobs",
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("chunk_bytes", sa.Integer(), nullable=False),
        sa.Column("stored_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("sha256", name=op.f("pk_blobs")),
    )
    op.create_index(op.f("ix_blobs_stored_at"), "blobs", ["stored_at"])
    op.create_table(
        "blob_chunks",
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False, autoincrement=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("sha256", "seq", name=op.f("pk_blob_chunks")),
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE blob_chunks ALTER COLUMN data SET STORAGE EXTERNAL")


def downgrade() -> None:
    op.drop_table("blob_chunks")
    op.drop_index(op.f("ix_blobs_stored_at"), table_name="blobs")
    op.drop_table("blobs")
