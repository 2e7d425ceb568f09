"""The packet header: the cleartext, sender-signed description of a packet.

Encoded as canonical JSON (see :mod:`crypto.encoding`) and signed under the
payload type ``application/vnd.cadena.packet-header.v1+json``. It holds no
plaintext digest and nothing derived from content except ciphertext digests
and lengths, which the server needs to check what it stores.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from crypto.encoding import (
    canonical_json,
    check_keys,
    check_version,
    get_hex256,
    get_int,
    get_list,
    get_obj,
    get_str,
    parse_canonical,
)
from crypto.errors import FormatError, InvalidArgument
from crypto.ids import check_actor_id, check_time, check_uuid7
from crypto.stream import StreamDigest, check_chunk_size, chunk_lengths

HEADER_VERSION = 1
MAX_RECIPIENTS = 1000
MAX_ATTACHMENTS = 10_000
MAX_HEADER_SIZE = 1 << 20
_KEY_ID = re.compile(r"[0-9a-f]{32}")
_EVALUATION = re.compile(r"[ABCX][1-4]")
_TEXT = re.compile(r"[^\x00-\x1f\x7f]{1,256}")
_OPTIONAL = ("case_reference", "legal_basis", "in_reply_to", "urgency", "due")


class Classification(StrEnum):
    """Classification levels, in increasing order of sensitivity."""

    RESTRICTED = "RESTRICTED"
    CONFIDENTIAL = "CONFIDENTIAL"
    SECRET = "SECRET"  # noqa: S105 - a classification level, not a password


class HandlingCode(StrEnum):
    """Handling codes H0..H3 (see DESIGN.md, Domain model)."""

    H0 = "H0"
    H1 = "H1"
    H2 = "H2"
    H3 = "H3"


class Urgency(StrEnum):
    """Urgency of a request."""

    ROUTINE = "routine"
    URGENT = "urgent"
    IMMEDIATE = "immediate"


@dataclass(frozen=True)
class Party:
    """A liaison as named in signed objects: id and key id of the key set used."""

    id: str
    key_id: str

    def __post_init__(self) -> None:
        check_actor_id(self.id)
        if not _KEY_ID.fullmatch(self.key_id):
            raise FormatError("key_id is not 32 lowercase hex digits")

    def to_json(self) -> dict[str, str]:
        """JSON object form ``{"id": .., "key_id": ..}``."""
        return {"id": self.id, "key_id": self.key_id}

    @classmethod
    def from_json(cls, obj: Any) -> Party:
        """Strictly parse the JSON object form."""
        if not isinstance(obj, dict):
            raise FormatError("party is not an object")
        check_keys(obj, ("id", "key_id"))
        return cls(get_str(obj, "id"), get_str(obj, "key_id"))


@dataclass(frozen=True)
class PacketMeta:
    """Header fields the sender chooses (everything but ids, keys, time and digests)."""

    channel_id: str
    classification: Classification
    handling: HandlingCode
    evaluation: str
    case_reference: str | None = None
    legal_basis: str | None = None
    in_reply_to: str | None = None
    urgency: Urgency | None = None
    due: str | None = None

    def __post_init__(self) -> None:
        try:
            self._validate()
        except (ValueError, FormatError) as exc:  # ValueError: unknown enum value
            raise InvalidArgument(str(exc)) from None

    def _validate(self) -> None:
        check_actor_id(self.channel_id, "channel_id")
        Classification(self.classification)
        HandlingCode(self.handling)
        if not _EVALUATION.fullmatch(self.evaluation):
            raise FormatError("evaluation is not [ABCX][1-4]")
        for name in ("case_reference", "legal_basis"):
            value = getattr(self, name)
            if value is not None and not _TEXT.fullmatch(value):
                raise FormatError(f"{name} must be 1..256 characters without controls")
        if self.in_reply_to is not None:
            check_uuid7(self.in_reply_to, "in_reply_to")
        if self.urgency is not None:
            Urgency(self.urgency)
        if self.due is not None:
            check_time(self.due, "due")


@dataclass(frozen=True)
class PacketHeader:
    """A parsed, validated packet header (version 1)."""

    packet_id: str
    sender: Party
    recipients: tuple[Party, ...]
    meta: PacketMeta
    created: str
    chunk_size: int
    key_commitment: str
    streams: tuple[StreamDigest, ...]
    version: int = field(default=HEADER_VERSION)

    def __post_init__(self) -> None:
        check_uuid7(self.packet_id)
        check_time(self.created, "created")
        check_chunk_size(self.chunk_size)
        ids = [r.id for r in self.recipients]
        if not 1 <= len(ids) <= MAX_RECIPIENTS or ids != sorted(set(ids)):
            raise FormatError("recipients must be 1..1000 unique ids in sorted order")
        if not 2 <= len(self.streams) <= 2 + MAX_ATTACHMENTS:
            raise FormatError("a packet has a manifest, a message and up to 10000 attachments")
        for stream in self.streams:
            chunk_lengths(stream.length, self.chunk_size)

    @property
    def recipient_ids(self) -> tuple[str, ...]:
        """The recipients' liaison ids, sorted."""
        return tuple(r.id for r in self.recipients)

    def recipient(self, recipient_id: str) -> Party | None:
        """The named recipient entry, or ``None``."""
        return next((r for r in self.recipients if r.id == recipient_id), None)

    def to_bytes(self) -> bytes:
        """Canonical JSON encoding (the exact bytes that are signed)."""
        obj: dict[str, Any] = {
            "v": self.version, "packet_id": self.packet_id, "sender": self.sender.to_json(),
            "recipients": [r.to_json() for r in self.recipients],
            "channel_id": self.meta.channel_id, "classification": str(self.meta.classification),
            "handling": str(self.meta.handling), "evaluation": self.meta.evaluation,
            "created": self.created, "chunk_size": self.chunk_size,
            "key_commitment": self.key_commitment,
            "streams": [{"length": s.length, "sha256": s.sha256} for s in self.streams],
        }
        for name in _OPTIONAL:
            value = getattr(self.meta, name)
            if value is not None:
                obj[name] = str(value)
        return canonical_json(obj)

    @classmethod
    def from_bytes(cls, data: bytes) -> PacketHeader:
        """Strictly parse header bytes; raise :class:`FormatError` or :class:`UnknownVersion`."""
        obj = parse_canonical(data, max_size=MAX_HEADER_SIZE)
        check_version(obj, HEADER_VERSION)
        check_keys(obj, ("v", "packet_id", "sender", "recipients", "channel_id",
                         "classification", "handling", "evaluation", "created", "chunk_size",
                         "key_commitment", "streams"), _OPTIONAL)
        try:
            meta = PacketMeta(
                get_str(obj, "channel_id"), Classification(get_str(obj, "classification")),
                HandlingCode(get_str(obj, "handling")), get_str(obj, "evaluation"),
                **{name: _optional_str(obj, name) for name in _OPTIONAL},  # type: ignore[arg-type]
            )
        except ValueError as exc:  # InvalidArgument from PacketMeta, or an unknown enum value
            raise FormatError(str(exc)) from None
        return cls(
            packet_id=get_str(obj, "packet_id"), sender=Party.from_json(get_obj(obj, "sender")),
            recipients=tuple(Party.from_json(r) for r in get_list(obj, "recipients")),
            meta=meta, created=get_str(obj, "created"),
            chunk_size=get_int(obj, "chunk_size"),
            key_commitment=get_hex256(obj, "key_commitment"),
            streams=tuple(_stream_digest(s) for s in get_list(obj, "streams")),
        )


def _optional_str(obj: dict[str, Any], name: str) -> str | None:
    return get_str(obj, name) if name in obj else None


def _stream_digest(obj: Any) -> StreamDigest:
    if not isinstance(obj, dict):
        raise FormatError("stream entry is not an object")
    check_keys(obj, ("length", "sha256"))
    return StreamDigest(get_int(obj, "length"), get_hex256(obj, "sha256"))
