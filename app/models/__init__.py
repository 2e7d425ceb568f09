"""ORM models. Importing this package registers every table on ``Base.metadata``."""

from app.models.auth import AuthChallenge, AuthToken
from app.models.base import Base
from app.models.blob import Blob as Blob
from app.models.certificate import CustodyCertificate as CustodyCertificate
from app.models.channel import Channel, ChannelMember
from app.models.event import Event as Event
from app.models.identity import Clearance, Liaison, LiaisonKey, State
from app.models.ledger import LEDGER_TABLES as LEDGER_TABLES
from app.models.packet import Packet as Packet
from app.models.refusal import RefusalDetail as RefusalDetail
from app.models.rotation import KeyRotationChallenge as KeyRotationChallenge
from app.models.witness import Witness as Witness

__all__ = [
    "AuthChallenge", "AuthToken", "Base", "Channel", "ChannelMember", "Clearance", "Liaison",
    "LiaisonKey", "State",
]
