"""Packets: packets, wrapped keys, ciphertext streams, receipts, share requests.

Revision ID: 0003_packets
Revises: 0002_identity
Create Date: 2026-11-22 06:13:29.716657
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003_packets"
down_revision: str | None = "0002_identity"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "packets",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("channel_id", sa.String(length=128), nullable=False),
        sa.Column("sender_id", sa.String(length=128), nullable=False),
        sa.Column("sender_key_id", sa.String(length=64), nullable=False),
        sa.Column("classification", sa.Integer(), nullable=False),
        sa.Column("handling", sa.String(length=2), nullable=False),
        sa.Column("evaluation", sa.String(length=2), nullable=False),
        sa.Column("case_reference", sa.String(length=256), nullable=True),
        sa.Column("legal_basis", sa.String(length=256), nullable=True),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("in_reply_to", sa.String(length=36), nullable=True),
        sa.Column("urgency", sa.String(length=16), nullable=True),
        sa.Column("due", sa.DateTime(timezone=True), nullable=True),
        sa.Column("header", sa.LargeBinary(), nullable=False),
        sa.Column("header_sha256", sa.String(length=64), nullable=False),
        sa.Column("signature", sa.LargeBinary(length=64), nullable=False),
        sa.Column(
            "status",
            sa.Enum("active", "withdrawn", name="packet_status", native_enum=False, length=16),
            nullable=False,
        ),
        sa.Column("withdrawn_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("withdrawal_reason", sa.String(length=500), nullable=True),
        sa.ForeignKeyConstraint(
            ["channel_id"], ["channels.id"], name=op.f("fk_packets_channel_id_channels")
        ),
        sa.ForeignKeyConstraint(
            ["in_reply_to"], ["packets.id"], name=op.f("fk_packets_in_reply_to_packets")
        ),
        sa.ForeignKeyConstraint(
            ["sender_id"], ["liaisons.id"], name=op.f("fk_packets_sender_id_liaisons")
        ),
        sa.ForeignKeyConstraint(
            ["sender_key_id"],
            ["liaison_keys.key_id"],
            name=op.f("fk_packets_sender_key_id_liaison_keys"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_packets")),
    )
    with op.batch_alter_table("packets", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_packets_case_reference"), ["case_reference"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_packets_channel_id"), ["channel_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_packets_in_reply_to"), ["in_reply_to"], unique=False)
        batch_op.create_index(batch_op.f("ix_packets_sender_id"), ["sender_id"], unique=False)
        batch_op.create_index("ix_packets_submitted", ["submitted_at", "id"], unique=False)

    op.create_table(
        "packet_keys",
        sa.Column("packet_id", sa.String(length=36), nullable=False),
        sa.Column("liaison_id", sa.String(length=128), nullable=False),
        sa.Column("key_id", sa.String(length=64), nullable=False),
        sa.Column(
            "origin",
            sa.Enum("header", "share", name="packet_key_origin", native_enum=False, length=16),
            nullable=False,
        ),
        sa.Column("wrapped_key", sa.LargeBinary(length=81), nullable=False),
        sa.Column("share", sa.LargeBinary(), nullable=True),
        sa.Column("share_signature", sa.LargeBinary(length=64), nullable=True),
        sa.Column("shared_by", sa.String(length=128), nullable=True),
        sa.Column("added_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["key_id"], ["liaison_keys.key_id"], name=op.f("fk_packet_keys_key_id_liaison_keys")
        ),
        sa.ForeignKeyConstraint(
            ["liaison_id"], ["liaisons.id"], name=op.f("fk_packet_keys_liaison_id_liaisons")
        ),
        sa.ForeignKeyConstraint(
            ["packet_id"], ["packets.id"], name=op.f("fk_packet_keys_packet_id_packets")
        ),
        sa.ForeignKeyConstraint(
            ["shared_by"], ["liaisons.id"], name=op.f("fk_packet_keys_shared_by_liaisons")
        ),
        sa.PrimaryKeyConstraint("packet_id", "liaison_id", name=op.f("pk_packet_keys")),
    )
    with op.batch_alter_table("packet_keys", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_packet_keys_liaison_id"), ["liaison_id"], unique=False)

    op.create_table(
        "packet_receipts",
        sa.Column("packet_id", sa.String(length=36), nullable=False),
        sa.Column("recipient_id", sa.String(length=128), nullable=False),
        sa.Column("key_id", sa.String(length=64), nullable=False),
        sa.Column("receipt", sa.LargeBinary(), nullable=False),
        sa.Column("signature", sa.LargeBinary(length=64), nullable=False),
        sa.Column("received", sa.DateTime(timezone=True), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["key_id"], ["liaison_keys.key_id"], name=op.f("fk_packet_receipts_key_id_liaison_keys")
        ),
        sa.ForeignKeyConstraint(
            ["packet_id"], ["packets.id"], name=op.f("fk_packet_receipts_packet_id_packets")
        ),
        sa.ForeignKeyConstraint(
            ["recipient_id"], ["liaisons.id"], name=op.f("fk_packet_receipts_recipient_id_liaisons")
        ),
        sa.PrimaryKeyConstraint("packet_id", "recipient_id", name=op.f("pk_packet_receipts")),
    )
    op.create_table(
        "packet_streams",
        sa.Column("packet_id", sa.String(length=36), nullable=False),
        sa.Column("index", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("length", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["packet_id"], ["packets.id"], name=op.f("fk_packet_streams_packet_id_packets")
        ),
        sa.PrimaryKeyConstraint("packet_id", "index", name=op.f("pk_packet_streams")),
    )
    with op.batch_alter_table("packet_streams", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_packet_streams_sha256"), ["sha256"], unique=False)

    op.create_table(
        "share_requests",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("packet_id", sa.String(length=36), nullable=False),
        sa.Column("requested_by", sa.String(length=128), nullable=False),
        sa.Column("recipient_id", sa.String(length=128), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "pending",
                "approved",
                "used",
                name="share_request_status",
                native_enum=False,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["packet_id"], ["packets.id"], name=op.f("fk_share_requests_packet_id_packets")
        ),
        sa.ForeignKeyConstraint(
            ["recipient_id"], ["liaisons.id"], name=op.f("fk_share_requests_recipient_id_liaisons")
        ),
        sa.ForeignKeyConstraint(
            ["requested_by"], ["liaisons.id"], name=op.f("fk_share_requests_requested_by_liaisons")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_share_requests")),
    )
    with op.batch_alter_table("share_requests", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_share_requests_packet_id"), ["packet_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("share_requests", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_share_requests_packet_id"))

    op.drop_table("share_requests")
    with op.batch_alter_table("packet_streams", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_packet_streams_sha256"))

    op.drop_table("packet_streams")
    op.drop_table("packet_receipts")
    with op.batch_alter_table("packet_keys", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_packet_keys_liaison_id"))

    op.drop_table("packet_keys")
    with op.batch_alter_table("packets", schema=None) as batch_op:
        batch_op.drop_index("ix_packets_submitted")
        batch_op.drop_index(batch_op.f("ix_packets_sender_id"))
        batch_op.drop_index(batch_op.f("ix_packets_in_reply_to"))
        batch_op.drop_index(batch_op.f("ix_packets_channel_id"))
        batch_op.drop_index(batch_op.f("ix_packets_case_reference"))

    op.drop_table("packets")
