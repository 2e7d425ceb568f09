"""The auditor-only detail of refusals, bound to their ledger entry by a salted digest.

Revision ID: 0008_refusal_details
Revises: 0007_inline_streams
Create Date: 2026-12-06 18:00:00.000000

``refusal_details(ledger_index, salt, detail)``: what a refusal entry's
reason code leaves out (a third party's level or status), for auditors only
(``GET /v1/ledger/refusals/{index}``). The entry carries
``details.detail_digest = hex(SHA-256(salt || UTF-8(detail)))``.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008_refusal_details"
down_revision: str | None = "0007_inline_streams"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "refusal_details",
        sa.Column("ledger_index", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("salt", sa.LargeBinary(), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("ledger_index", name=op.f("pk_refusal_details")),
    )


def downgrade() -> None:
    op.drop_table("refusal_details")
