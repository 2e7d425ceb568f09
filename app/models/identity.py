"""States, liaisons, their keys and clearances."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import Enum, ForeignKey, Index, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.models.base import Base, UTCDateTime


class StateStatus(enum.StrEnum):
    """Whether a state takes part in the exchange."""

    ACTIVE = "active"
    SUSPENDED = "suspended"
    WITHDRAWN = "withdrawn"


class Role(enum.StrEnum):
    """What a liaison does in the centre."""

    PROSECUTOR = "prosecutor"
    COORDINATOR = "coordinator"
    AUDITOR = "auditor"


class Level(enum.IntEnum):
    """Clearance and classification levels, ordered."""

    RESTRICTED = 1
    CONFIDENTIAL = 2
    SECRET = 3


def _enum(cls: type[enum.Enum], name: str) -> Enum:
    return Enum(cls, name=name, native_enum=False, length=16,
                values_callable=lambda e: [m.value for m in e], validate_strings=True)


class State(Base):
    """A participating state (ISO 3166-1 alpha-2)."""

    __tablename__ = "states"

    code: Mapped[str] = mapped_column(String(2), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    status: Mapped[StateStatus] = mapped_column(_enum(StateStatus, "state_status"))
    joining_note: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Liaison(Base):
    """A person designated by a state: prosecutor, coordinator or auditor."""

    __tablename__ = "liaisons"

    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    state_code: Mapped[str] = mapped_column(ForeignKey("states.code"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    role: Mapped[Role] = mapped_column(_enum(Role, "liaison_role"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())

    state: Mapped[State] = relationship(lazy="joined")


class LiaisonKey(Base):
    """A liaison's public key set; old ones stay to verify old signatures."""

    __tablename__ = "liaison_keys"

    key_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    liaison_id: Mapped[str] = mapped_column(ForeignKey("liaisons.id"), index=True)
    signing_public: Mapped[bytes] = mapped_column(LargeBinary(32))
    encryption_public: Mapped[bytes] = mapped_column(LargeBinary(32))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    retired_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    revocation_reason: Mapped[str | None] = mapped_column(String(500), default=None)

    liaison: Mapped[Liaison] = relationship(lazy="joined")

    @property
    def usable(self) -> bool:
        """Neither rotated out nor revoked."""
        return self.retired_at is None and self.revoked_at is None


class Clearance(Base):
    """A security clearance: a level valid over a window, revocable."""

    __tablename__ = "clearances"
    __table_args__ = (Index("ix_clearances_liaison_valid", "liaison_id", "valid_until"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    liaison_id: Mapped[str] = mapped_column(ForeignKey("liaisons.id"))
    level: Mapped[int] = mapped_column()
    valid_from: Mapped[datetime] = mapped_column(UTCDateTime())
    valid_until: Mapped[datetime] = mapped_column(UTCDateTime())
    granted_by: Mapped[str] = mapped_column(ForeignKey("liaisons.id"))
    granted_at: Mapped[datetime] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)

    def valid_at(self, moment: datetime) -> bool:
        """In force at ``moment``: inside its window and not revoked."""
        return self.revoked_at is None and self.valid_from <= moment < self.valid_until
