"""Onward sharing: re-wrapping a packet's content key for a new recipient.

A holder of the content key (a recipient, after unwrapping) wraps it for a
new recipient exactly as the sender would (:mod:`crypto.wrap`, bound to the
packet id and the new recipient), without re-encrypting any content, and
signs a *key share* under ``application/vnd.cadena.key-share.v1+json`` so the
server can verify who shared what with whom. The new recipient checks the
unwrapped key against the key commitment in the sender-signed header. ::

    {"created": time, "header_sha256": hex, "packet_id": uuid7,
     "recipient": {"id", "key_id"}, "sharer": {"id", "key_id"}, "v": 1,
     "wrapped_key": b64(81)}
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from datetime import datetime

from crypto.encoding import (
    b64encode,
    canonical_json,
    check_keys,
    check_version,
    get_b64,
    get_hex256,
    get_obj,
    get_str,
    parse_canonical,
)
from crypto.errors import BadSignature
from crypto.header import Party
from crypto.holder import KeyHolder
from crypto.ids import RandomSource, check_time, check_uuid7, format_time, require_actor_id
from crypto.keys import LiaisonPublicKeys
from crypto.opening import OpenedEnvelope
from crypto.signing import KEY_SHARE_TYPE, verify_signature
from crypto.wrap import WRAPPED_KEY_SIZE, wrap_content_key

SHARE_VERSION = 1


@dataclass(frozen=True)
class KeyShare:
    """A parsed key share: who re-wrapped which packet's key for whom, and when."""

    packet_id: str
    header_sha256: str
    sharer: Party
    recipient: Party
    wrapped_key: bytes
    created: str
    version: int = field(default=SHARE_VERSION)

    def to_bytes(self) -> bytes:
        """Canonical JSON encoding (the exact bytes that are signed)."""
        return canonical_json({
            "v": self.version, "packet_id": self.packet_id, "header_sha256": self.header_sha256,
            "sharer": self.sharer.to_json(), "recipient": self.recipient.to_json(),
            "wrapped_key": b64encode(self.wrapped_key), "created": self.created,
        })

    @classmethod
    def from_bytes(cls, data: bytes) -> KeyShare:
        """Strictly parse key-share bytes."""
        obj = parse_canonical(data, max_size=8192)
        check_version(obj, SHARE_VERSION)
        check_keys(obj, ("v", "packet_id", "header_sha256", "sharer", "recipient",
                         "wrapped_key", "created"))
        return cls(
            packet_id=check_uuid7(get_str(obj, "packet_id")),
            header_sha256=get_hex256(obj, "header_sha256"),
            sharer=Party.from_json(get_obj(obj, "sharer")),
            recipient=Party.from_json(get_obj(obj, "recipient")),
            wrapped_key=get_b64(obj, "wrapped_key", WRAPPED_KEY_SIZE),
            created=check_time(get_str(obj, "created"), "created"),
        )


@dataclass(frozen=True)
class SignedShare:
    """Key-share bytes and the sharer's signature over them."""

    share: bytes
    signature: bytes


def share_content_key(opened: OpenedEnvelope, sharer: KeyHolder, sharer_id: str,
                      recipient_id: str, recipient: LiaisonPublicKeys, *,
                      now: datetime | None = None,
                      random: RandomSource = os.urandom) -> SignedShare:
    """Re-wrap an opened packet's content key for ``recipient`` and sign the share."""
    require_actor_id(sharer_id, "sharer_id")
    require_actor_id(recipient_id, "recipient_id")
    packet_id = opened.header.packet_id
    share = KeyShare(
        packet_id=packet_id,
        header_sha256=hashlib.sha256(opened.envelope.header).hexdigest(),
        sharer=Party(sharer_id, sharer.public.key_id),
        recipient=Party(recipient_id, recipient.key_id),
        wrapped_key=wrap_content_key(opened.content_key, packet_id, recipient_id, recipient,
                                     random=random),
        created=format_time(now),
    ).to_bytes()
    return SignedShare(share, sharer.sign(KEY_SHARE_TYPE, share))


def verify_key_share(share: bytes, signature: bytes, sharer: LiaisonPublicKeys) -> KeyShare:
    """Verify a key share against the sharer's public keys; return it parsed."""
    verify_signature(sharer.signing, KEY_SHARE_TYPE, share, signature)
    parsed = KeyShare.from_bytes(share)
    if parsed.sharer.key_id != sharer.key_id:
        raise BadSignature("share names a different sharer key set")
    return parsed
