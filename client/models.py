"""What the API returns, as typed, immutable values (the client's own, not the server's).

Unknown members are ignored, so a newer server that adds fields does not break
an older client; a missing or mistyped member is a :class:`~client.errors.ProtocolError`
(raised by :func:`parse`). Times are always aware UTC datetimes.
"""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    TypeAdapter,
    ValidationError,
)

from client.errors import ProtocolError

LevelName = Literal["RESTRICTED", "CONFIDENTIAL", "SECRET"]
RoleName = Literal["prosecutor", "coordinator", "auditor"]
StateStatusName = Literal["active", "suspended", "withdrawn"]
ChannelKindName = Literal["bilateral", "multilateral", "specialized"]


def _as_utc(moment: datetime) -> datetime:
    # The API writes UTC with "Z"; a naive time is read as UTC rather than as local time.
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


UtcDatetime = Annotated[datetime, AfterValidator(_as_utc)]


def _from_b64(value: Any) -> bytes:
    # Standard base64, canonical padding only: one entry has exactly one encoding.
    if not isinstance(value, str):
        raise ValueError("expected a base64 string")
    try:
        data = base64.b64decode(value.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError) as exc:
        raise ValueError("not standard base64") from exc
    if base64.b64encode(data).decode("ascii") != value:
        raise ValueError("not canonical base64")
    return data


Base64Bytes = Annotated[bytes, BeforeValidator(_from_b64)]


class Model(BaseModel):
    """Base of the API values: frozen, unknown members ignored."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    def to_json(self) -> dict[str, Any]:
        """The JSON form (as ``--json`` prints it)."""
        return self.model_dump(mode="json")


class LedgerRef(Model):
    """The ledger entry that a request appended."""

    index: int
    leaf_hash: str


class Challenge(Model):
    """A login challenge: ``payload`` is the base64 of the exact bytes to sign."""

    challenge_id: str
    payload: str
    payload_type: str
    expires_at: UtcDatetime


class RotationChallenge(Model):
    """A key-rotation challenge: what the rotation statement must name (binary in base64)."""

    challenge_id: str
    liaison_id: str
    key_id: str
    nonce: str
    server_box: str
    origin: str
    payload_type: str
    expires_at: UtcDatetime


class Token(Model):
    """A bearer token with its expiry and the expiry of the clearance in force."""

    token: str
    expires_at: UtcDatetime
    clearance_expires_at: UtcDatetime | None
    ledger: LedgerRef | None = None

    def __repr__(self) -> str:
        """Never show the bearer secret."""
        return f"Token(expires_at={self.expires_at.isoformat()}, token=<redacted>)"

    __str__ = __repr__


class State(Model):
    """A participating state."""

    code: str
    name: str
    status: StateStatusName
    joining_note: str
    created_at: UtcDatetime
    updated_at: UtcDatetime


class KeyInfo(Model):
    """A liaison's public key set and its status."""

    key_id: str
    signing_public: str
    encryption_public: str
    fingerprint: str
    created_at: UtcDatetime
    retired_at: UtcDatetime | None
    revoked_at: UtcDatetime | None


class Liaison(Model):
    """A liaison with their current key set (if any)."""

    id: str
    state_code: str
    name: str
    role: RoleName
    created_at: UtcDatetime
    current_key: KeyInfo | None


class Clearance(Model):
    """A clearance and whether it is in force now."""

    id: str
    liaison_id: str
    level: LevelName
    valid_from: UtcDatetime
    valid_until: UtcDatetime
    granted_by: str
    granted_at: UtcDatetime
    revoked_at: UtcDatetime | None
    in_force: bool


class Channel(Model):
    """A channel and its members."""

    id: str
    name: str
    kind: ChannelKindName
    crime_type: str | None
    min_clearance: LevelName
    members: list[str]
    created_by: str
    created_at: UtcDatetime


class RawEntry(Model):
    """One ledger entry as served: its index and its exact bytes."""

    index: int
    entry: Base64Bytes


class EntryPage(Model):
    """A page of ledger entries."""

    entries: list[RawEntry]


class SignedCheckpointRecord(Model):
    """A signed checkpoint as listed (unverified): size, root in hex, time, the note."""

    size: int
    root: str
    time: UtcDatetime
    note: str

    def root_bytes(self) -> bytes:
        """The root as 32 bytes (hex as served)."""
        try:
            root = bytes.fromhex(self.root)
        except ValueError as exc:
            raise ProtocolError("the checkpoint root is not hex") from exc
        if len(root) != 32:
            raise ProtocolError("the checkpoint root is not 32 bytes")
        return root


class CheckpointPage(Model):
    """A page of signed checkpoints, oldest first; ``next`` is the next page's ``after``."""

    checkpoints: list[SignedCheckpointRecord]
    next: int | None = None


class RefusalDetailRecord(Model):
    """A refusal's auditor-only detail as served (unverified): salt and digest in hex."""

    index: int
    detail: str
    salt: str
    digest: str

    def salt_bytes(self) -> bytes:
        """The salt as bytes (hex as served)."""
        try:
            return bytes.fromhex(self.salt)
        except ValueError as exc:
            raise ProtocolError("the refusal detail's salt is not hex") from exc


class HashProof(Model):
    """An RFC 9162 proof as the API serves it: hashes in lowercase hex."""

    proof: list[str]

    def hashes(self) -> list[bytes]:
        """The proof's hashes as bytes (each must be 32 bytes of hex)."""
        try:
            out = [bytes.fromhex(h) for h in self.proof]
        except ValueError as exc:
            raise ProtocolError("proof hash is not hex") from exc
        if any(len(h) != 32 for h in out):
            raise ProtocolError("proof hash is not 32 bytes")
        return out


M = TypeVar("M", bound=BaseModel)


def parse(model: type[M], data: Any) -> M:
    """Validate one API value; a mismatch is the server's fault (``ProtocolError``)."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ProtocolError(f"unexpected {model.__name__} from the server: {exc}") from exc


def parse_list(model: type[M], data: Any) -> list[M]:
    """Validate a JSON array of API values."""
    try:
        return TypeAdapter(list[model]).validate_python(data)  # type: ignore[valid-type]
    except ValidationError as exc:
        raise ProtocolError(f"unexpected {model.__name__} list from the server: {exc}") from exc


class DirectoryItem(Model):
    """One key entry as the directory serves it (unverified): bytes, inclusion proof, key."""

    index: int
    entry: Base64Bytes
    proof: list[str]
    key: KeyInfo | None
    key_log_index: int | None = None
    key_log_proof: list[str] | None = None


class DirectoryPage(Model):
    """A liaison's key entries proven against one checkpoint note (unverified)."""

    liaison_id: str
    checkpoint: str
    tree_size: int
    since: int | None
    consistency: list[str] | None
    entries: list[DirectoryItem]
    key_since: int | None = None
    key_consistency: list[str] | None = None


class KeyLeavesPage(Model):
    """Key-log leaves from ``start``, as served (unverified)."""

    start: int
    leaves: list[Base64Bytes]
