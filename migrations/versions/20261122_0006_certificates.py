"""Custody certificates: issued certificates, judicial-use permissions, entries by subject.

Revision ID: 0006_certificates
Revises: 0005_events
Create Date: 2026-11-22 06:51:22.413211

``ledger_subjects`` indexes the ledger entries about packets and liaisons
(filled by ``app.ledger.recording.record`` from now on; a new database needs no backfill).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006_certificates"
down_revision: str | None = "0005_events"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "ledger_subjects",
        sa.Column("subject_type", sa.String(length=32), nullable=False),
        sa.Column("subject_id", sa.String(length=200), nullable=False),
        sa.Column("ledger_index", sa.BigInteger(), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("subject_type", "subject_id", "ledger_index",
                                name=op.f("pk_ledger_subjects")),
    )
    op.create_table(
        "certificates",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("packet_id", sa.String(length=36), nullable=False),
        sa.Column("issued_to", sa.String(length=500), nullable=False),
        sa.Column("purpose", sa.String(length=500), nullable=False),
        sa.Column("issued_by", sa.String(length=128), nullable=False),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ledger_index", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["issued_by"], ["liaisons.id"],
                                name=op.f("fk_certificates_issued_by_liaisons")),
        sa.ForeignKeyConstraint(["packet_id"], ["packets.id"],
                                name=op.f("fk_certificates_packet_id_packets")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_certificates")),
    )
    op.create_index(op.f("ix_certificates_packet_id"), "certificates", ["packet_id"])
    op.create_table(
        "judicial_permissions",
        sa.Column("packet_id", sa.String(length=36), nullable=False),
        sa.Column("court", sa.String(length=500), nullable=False),
        sa.Column("purpose", sa.String(length=500), nullable=True),
        sa.Column("granted_by", sa.String(length=128), nullable=False),
        sa.Column("granted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ledger_index", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["granted_by"], ["liaisons.id"],
                                name=op.f("fk_judicial_permissions_granted_by_liaisons")),
        sa.ForeignKeyConstraint(["packet_id"], ["packets.id"],
                                name=op.f("fk_judicial_permissions_packet_id_packets")),
        sa.PrimaryKeyConstraint("packet_id", "court", name=op.f("pk_judicial_permissions")),
    )


def downgrade() -> None:
    op.drop_table("judicial_permissions")
    op.drop_index(op.f("ix_certificates_packet_id"), table_name="certificates")
    op.drop_table("certificates")
    op.drop_table("ledger_subjects")
