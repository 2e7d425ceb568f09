"""Certificates sealed once a cosigned checkpoint covers them; re-issues.

Revision ID: 0011_sealed_certificates
Revises: 0010_checkpoint_sequence
Create Date: 2026-12-06 19:00:00.000000

A certificate is recorded when asked for and sealed later, when a checkpoint
with the witness cosignatures its policy requires covers its issue entry
(docs/certificate.md, "Issuing"): ``bundle`` holds the sealed bytes, served
unchanged from then on, ``checkpoint_size`` the tree size its proofs are
against. ``reissue_of`` names the certificate a re-issue renews.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011_sealed_certificates"
down_revision: str | None = "0010_checkpoint_sequence"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("certificates") as batch:
        batch.add_column(sa.Column("bundle", sa.LargeBinary(), nullable=True))
        batch.add_column(sa.Column("checkpoint_size", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("sealed_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("reissue_of", sa.String(length=36), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("certificates") as batch:
        batch.drop_column("reissue_of")
        batch.drop_column("sealed_at")
        batch.drop_column("checkpoint_size")
        batch.drop_column("bundle")
