"""One-time key-rotation challenges (``POST /v1/liaisons/me/keys/challenge``)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, UTCDateTime


class KeyRotationChallenge(Base):
    """A challenge a liaison's rotation statement must name, bound to the liaison and key.

    ``server_box_secret`` is the server's ephemeral X25519 secret for the
    X25519 proof of possession (docs/protocol.md §9). The row is deleted when
    it is used, when the liaison asks for another, and once expired by the
    next challenge or rotation of anyone, so the secret does not outlive its
    short TTL by much; it never leaves the database.
    """

    __tablename__ = "key_rotation_challenges"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    liaison_id: Mapped[str] = mapped_column(ForeignKey("liaisons.id"), index=True)
    key_id: Mapped[str] = mapped_column(ForeignKey("liaison_keys.key_id"))
    nonce: Mapped[bytes] = mapped_column(LargeBinary(32))
    server_box_secret: Mapped[bytes] = mapped_column(LargeBinary(32))
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
