"""Identity: states, liaisons and their keys, clearances, channels, login challenges, tokens.

Revision ID: 0002_identity
Revises: 0001_ledger
Create Date: 2026-11-22 06:04:09.351150
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002_identity"
down_revision: str | None = "0001_ledger"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "states",
        sa.Column("code", sa.String(length=2), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "active",
                "suspended",
                "withdrawn",
                name="state_status",
                native_enum=False,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("joining_note", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("code", name=op.f("pk_states")),
    )
    op.create_table(
        "liaisons",
        sa.Column("id", sa.String(length=128), nullable=False),
        sa.Column("state_code", sa.String(length=2), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column(
            "role",
            sa.Enum(
                "prosecutor",
                "coordinator",
                "auditor",
                name="liaison_role",
                native_enum=False,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["state_code"], ["states.code"], name=op.f("fk_liaisons_state_code_states")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_liaisons")),
    )
    with op.batch_alter_table("liaisons", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_liaisons_state_code"), ["state_code"], unique=False)

    op.create_table(
        "auth_challenges",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("liaison_id", sa.String(length=128), nullable=False),
        sa.Column("nonce", sa.LargeBinary(length=32), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["liaison_id"], ["liaisons.id"], name=op.f("fk_auth_challenges_liaison_id_liaisons")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_auth_challenges")),
    )
    with op.batch_alter_table("auth_challenges", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_auth_challenges_liaison_id"), ["liaison_id"], unique=False
        )

    op.create_table(
        "channels",
        sa.Column("id", sa.String(length=128), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column(
            "kind",
            sa.Enum(
                "bilateral",
                "multilateral",
                "specialized",
                name="channel_kind",
                native_enum=False,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("crime_type", sa.String(length=100), nullable=True),
        sa.Column("min_level", sa.Integer(), nullable=False),
        sa.Column("created_by", sa.String(length=128), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["created_by"], ["liaisons.id"], name=op.f("fk_channels_created_by_liaisons")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_channels")),
        sa.UniqueConstraint("name", name=op.f("uq_channels_name")),
    )
    op.create_table(
        "clearances",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("liaison_id", sa.String(length=128), nullable=False),
        sa.Column("level", sa.Integer(), nullable=False),
        sa.Column("valid_from", sa.DateTime(timezone=True), nullable=False),
        sa.Column("valid_until", sa.DateTime(timezone=True), nullable=False),
        sa.Column("granted_by", sa.String(length=128), nullable=False),
        sa.Column("granted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["granted_by"], ["liaisons.id"], name=op.f("fk_clearances_granted_by_liaisons")
        ),
        sa.ForeignKeyConstraint(
            ["liaison_id"], ["liaisons.id"], name=op.f("fk_clearances_liaison_id_liaisons")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_clearances")),
    )
    with op.batch_alter_table("clearances", schema=None) as batch_op:
        batch_op.create_index(
            "ix_clearances_liaison_valid", ["liaison_id", "valid_until"], unique=False
        )

    op.create_table(
        "liaison_keys",
        sa.Column("key_id", sa.String(length=64), nullable=False),
        sa.Column("liaison_id", sa.String(length=128), nullable=False),
        sa.Column("signing_public", sa.LargeBinary(length=32), nullable=False),
        sa.Column("encryption_public", sa.LargeBinary(length=32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("retired_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revocation_reason", sa.String(length=500), nullable=True),
        sa.ForeignKeyConstraint(
            ["liaison_id"], ["liaisons.id"], name=op.f("fk_liaison_keys_liaison_id_liaisons")
        ),
        sa.PrimaryKeyConstraint("key_id", name=op.f("pk_liaison_keys")),
    )
    with op.batch_alter_table("liaison_keys", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_liaison_keys_liaison_id"), ["liaison_id"], unique=False
        )

    op.create_table(
        "auth_tokens",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("liaison_id", sa.String(length=128), nullable=False),
        sa.Column("key_id", sa.String(length=64), nullable=False),
        sa.Column("secret_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["key_id"], ["liaison_keys.key_id"], name=op.f("fk_auth_tokens_key_id_liaison_keys")
        ),
        sa.ForeignKeyConstraint(
            ["liaison_id"], ["liaisons.id"], name=op.f("fk_auth_tokens_liaison_id_liaisons")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_auth_tokens")),
    )
    with op.batch_alter_table("auth_tokens", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_auth_tokens_key_id"), ["key_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_auth_tokens_liaison_id"), ["liaison_id"], unique=False)

    op.create_table(
        "channel_members",
        sa.Column("channel_id", sa.String(length=128), nullable=False),
        sa.Column("liaison_id", sa.String(length=128), nullable=False),
        sa.Column("added_by", sa.String(length=128), nullable=False),
        sa.Column("added_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["added_by"], ["liaisons.id"], name=op.f("fk_channel_members_added_by_liaisons")
        ),
        sa.ForeignKeyConstraint(
            ["channel_id"], ["channels.id"], name=op.f("fk_channel_members_channel_id_channels")
        ),
        sa.ForeignKeyConstraint(
            ["liaison_id"], ["liaisons.id"], name=op.f("fk_channel_members_liaison_id_liaisons")
        ),
        sa.PrimaryKeyConstraint("channel_id", "liaison_id", name=op.f("pk_channel_members")),
    )
    with op.batch_alter_table("channel_members", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_channel_members_liaison_id"), ["liaison_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("channel_members", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_channel_members_liaison_id"))

    op.drop_table("channel_members")
    with op.batch_alter_table("auth_tokens", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_auth_tokens_liaison_id"))
        batch_op.drop_index(batch_op.f("ix_auth_tokens_key_id"))

    op.drop_table("auth_tokens")
    with op.batch_alter_table("liaison_keys", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_liaison_keys_liaison_id"))

    op.drop_table("liaison_keys")
    with op.batch_alter_table("clearances", schema=None) as batch_op:
        batch_op.drop_index("ix_clearances_liaison_valid")

    op.drop_table("clearances")
    op.drop_table("channels")
    with op.batch_alter_table("auth_challenges", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_auth_challenges_liaison_id"))

    op.drop_table("auth_challenges")
    with op.batch_alter_table("liaisons", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_liaisons_state_code"))

    op.drop_table("liaisons")
    op.drop_table("states")
