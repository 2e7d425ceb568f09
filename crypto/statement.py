"""The inner statement: the sender's signed link from packet id to plaintext digests.

It travels *inside* the encryption, as stream 0 (the manifest) of the packet,
so the server never sees a plaintext digest. A recipient may disclose the
statement bytes and signature to a court, which checks them with
:func:`verify_statement` and the sender's public key, then checks an evidence
file against the listed SHA-256 (``sha256sum``). A 32-byte random ``salt``
makes the statement's own digest (which receipts sign) unguessable.

Manifest stream plaintext: ``0x01 || signature (64) || statement bytes``.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from typing import Any

from crypto.encoding import (
    b64encode,
    canonical_json,
    check_keys,
    check_version,
    get_b64,
    get_hex256,
    get_int,
    get_list,
    get_obj,
    get_str,
    parse_canonical,
)
from crypto.errors import BadSignature, FormatError, InvalidArgument, UnknownVersion
from crypto.header import Party
from crypto.ids import check_uuid7
from crypto.keys import LiaisonPublicKeys
from crypto.signing import SIGNATURE_SIZE, STATEMENT_TYPE, verify_signature
from crypto.stream import StreamDigest

STATEMENT_VERSION = 1
MANIFEST_VERSION = 1
MAX_NAME_BYTES = 255
MAX_MANIFEST_SIZE = 16 << 20
_FORBIDDEN = re.compile(r"[/\\\x00-\x1f\x7f]")


def check_attachment_name(name: str) -> str:
    """Return ``name`` if it is a safe file name, else raise :class:`InvalidArgument`.

    Refused: empty, over 255 UTF-8 bytes, not NFC, path separators (``/``,
    ``\\``), NUL or other control characters, ``..`` anywhere, leading or
    trailing whitespace, and ``.`` alone.
    """
    if not name or len(name.encode("utf-8", "surrogatepass")) > MAX_NAME_BYTES:
        raise InvalidArgument("attachment name must be 1..255 UTF-8 bytes")
    if unicodedata.normalize("NFC", name) != name:
        raise InvalidArgument("attachment name must be NFC-normalized")
    if _FORBIDDEN.search(name) or ".." in name or name == "." or name.strip() != name:
        raise InvalidArgument(f"unsafe attachment name {name!r}")
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidArgument("attachment name is not valid Unicode") from None
    return name


@dataclass(frozen=True)
class Attachment:
    """One attachment as listed in the statement: name, plaintext length and SHA-256."""

    name: str
    length: int
    sha256: str


@dataclass(frozen=True)
class Statement:
    """The sender's signed statement of the plaintext digests of a packet."""

    packet_id: str
    sender: Party
    salt: bytes
    message: StreamDigest
    attachments: tuple[Attachment, ...]
    version: int = field(default=STATEMENT_VERSION)

    def to_bytes(self) -> bytes:
        """Canonical JSON encoding (the exact bytes that are signed)."""
        return canonical_json({
            "v": self.version, "packet_id": self.packet_id, "sender": self.sender.to_json(),
            "salt": b64encode(self.salt),
            "message": {"length": self.message.length, "sha256": self.message.sha256},
            "attachments": [{"name": a.name, "length": a.length, "sha256": a.sha256}
                            for a in self.attachments],
        })

    @classmethod
    def from_bytes(cls, data: bytes) -> Statement:
        """Strictly parse statement bytes."""
        obj = parse_canonical(data, max_size=MAX_MANIFEST_SIZE)
        check_version(obj, STATEMENT_VERSION)
        check_keys(obj, ("v", "packet_id", "sender", "salt", "message", "attachments"))
        message = get_obj(obj, "message")
        check_keys(message, ("length", "sha256"))
        attachments = tuple(_attachment(a) for a in get_list(obj, "attachments"))
        if len({a.name for a in attachments}) != len(attachments):
            raise FormatError("duplicate attachment names")
        return cls(
            packet_id=check_uuid7(get_str(obj, "packet_id")),
            sender=Party.from_json(get_obj(obj, "sender")), salt=get_b64(obj, "salt", 32),
            message=StreamDigest(get_int(message, "length"), get_hex256(message, "sha256")),
            attachments=attachments,
        )


def _attachment(obj: Any) -> Attachment:
    if not isinstance(obj, dict):
        raise FormatError("attachment entry is not an object")
    check_keys(obj, ("name", "length", "sha256"))
    try:
        name = check_attachment_name(get_str(obj, "name"))
    except InvalidArgument as exc:
        raise FormatError(str(exc)) from None
    return Attachment(name, get_int(obj, "length"), get_hex256(obj, "sha256"))


def verify_statement(statement: bytes, signature: bytes,
                     sender: LiaisonPublicKeys) -> Statement:
    """Verify a disclosed statement against the sender's public keys; return it parsed.

    Usable standalone (by a court). Raises :class:`BadSignature` if the
    signature does not verify or the statement names another key set.
    """
    verify_signature(sender.signing, STATEMENT_TYPE, statement, signature)
    parsed = Statement.from_bytes(statement)
    if parsed.sender.key_id != sender.key_id:
        raise BadSignature("statement names a different sender key")
    return parsed


def encode_manifest(statement: bytes, signature: bytes) -> bytes:
    """Manifest stream plaintext: version byte, signature, statement bytes."""
    return bytes([MANIFEST_VERSION]) + signature + statement


def decode_manifest(data: bytes) -> tuple[bytes, bytes]:
    """Split manifest plaintext into (statement bytes, signature)."""
    if not data or data[0] != MANIFEST_VERSION:
        raise UnknownVersion("unknown manifest version")
    if len(data) < 1 + SIGNATURE_SIZE + 2:
        raise FormatError("manifest too short")
    return data[1 + SIGNATURE_SIZE:], data[1:1 + SIGNATURE_SIZE]
