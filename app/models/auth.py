"""Login challenges and bearer tokens (no passwords anywhere)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, UTCDateTime


class AuthChallenge(Base):
    """A one-time challenge a liaison signs with their Ed25519 key."""

    __tablename__ = "auth_challenges"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    liaison_id: Mapped[str] = mapped_column(ForeignKey("liaisons.id"), index=True)
    nonce: Mapped[bytes] = mapped_column(LargeBinary(32))
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)


class AuthToken(Base):
    """A short-lived bearer token; only a SHA-256 of its secret is stored."""

    __tablename__ = "auth_tokens"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    liaison_id: Mapped[str] = mapped_column(ForeignKey("liaisons.id"), index=True)
    key_id: Mapped[str] = mapped_column(ForeignKey("liaison_keys.key_id"), index=True)
    secret_hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
