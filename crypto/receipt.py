"""Receipts: a recipient's signed acknowledgement that it opened a packet.

Signed under ``application/vnd.cadena.receipt.v1+json``::

    {"ciphertext_sha256": [hex per stream], "header_sha256": hex, "packet_id": uuid7,
     "received": time, "recipient": {"id", "key_id"}, "statement_sha256": hex, "v": 1}

The plaintext digests are bound through ``statement_sha256``, the SHA-256 of
the sender's inner statement, which lists every plaintext digest. Receipts are
stored by the server and in the ledger, and invariant 1 forbids unsalted
plaintext digests there; the statement carries a 32-byte random salt, so its
digest reveals nothing, while a court holding the disclosed statement can check
the link: receipt → statement → plaintext SHA-256.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime

from crypto.encoding import (
    canonical_json,
    check_keys,
    check_version,
    get_hex256,
    get_list,
    get_obj,
    get_str,
    parse_canonical,
)
from crypto.errors import BadSignature, FormatError
from crypto.header import Party
from crypto.holder import KeyHolder
from crypto.ids import check_time, check_uuid7, format_time, require_actor_id
from crypto.keys import LiaisonPublicKeys
from crypto.opening import OpenedEnvelope
from crypto.signing import RECEIPT_TYPE, verify_signature

RECEIPT_VERSION = 1


@dataclass(frozen=True)
class Receipt:
    """A parsed receipt."""

    packet_id: str
    recipient: Party
    header_sha256: str
    ciphertext_sha256: tuple[str, ...]
    statement_sha256: str
    received: str
    version: int = field(default=RECEIPT_VERSION)

    def to_bytes(self) -> bytes:
        """Canonical JSON encoding (the exact bytes that are signed)."""
        return canonical_json({
            "v": self.version, "packet_id": self.packet_id, "recipient": self.recipient.to_json(),
            "header_sha256": self.header_sha256, "ciphertext_sha256": list(self.ciphertext_sha256),
            "statement_sha256": self.statement_sha256, "received": self.received,
        })

    @classmethod
    def from_bytes(cls, data: bytes) -> Receipt:
        """Strictly parse receipt bytes."""
        obj = parse_canonical(data, max_size=1 << 20)
        check_version(obj, RECEIPT_VERSION)
        check_keys(obj, ("v", "packet_id", "recipient", "header_sha256", "ciphertext_sha256",
                         "statement_sha256", "received"))
        digests = get_list(obj, "ciphertext_sha256")
        if len(digests) < 2:
            raise FormatError("a receipt lists at least two ciphertext digests")
        return cls(
            packet_id=check_uuid7(get_str(obj, "packet_id")),
            recipient=Party.from_json(get_obj(obj, "recipient")),
            header_sha256=get_hex256(obj, "header_sha256"),
            ciphertext_sha256=tuple(get_hex256({"d": d}, "d") for d in digests),
            statement_sha256=get_hex256(obj, "statement_sha256"),
            received=check_time(get_str(obj, "received"), "received"),
        )


@dataclass(frozen=True)
class SignedReceipt:
    """Receipt bytes and the recipient's signature over them."""

    receipt: bytes
    signature: bytes


def make_receipt(opened: OpenedEnvelope, recipient_id: str, recipient: KeyHolder, *,
                 now: datetime | None = None) -> SignedReceipt:
    """Sign a receipt for an opened packet (call after every stream was decrypted)."""
    require_actor_id(recipient_id, "recipient_id")
    receipt = Receipt(
        packet_id=opened.header.packet_id,
        recipient=Party(recipient_id, recipient.public.key_id),
        header_sha256=hashlib.sha256(opened.envelope.header).hexdigest(),
        ciphertext_sha256=tuple(s.sha256 for s in opened.header.streams),
        statement_sha256=hashlib.sha256(opened.statement_bytes).hexdigest(),
        received=format_time(now),
    ).to_bytes()
    return SignedReceipt(receipt, recipient.sign(RECEIPT_TYPE, receipt))


def verify_receipt(receipt: bytes, signature: bytes, recipient: LiaisonPublicKeys) -> Receipt:
    """Verify a receipt against the recipient's public keys; return it parsed."""
    verify_signature(recipient.signing, RECEIPT_TYPE, receipt, signature)
    parsed = Receipt.from_bytes(receipt)
    if parsed.recipient.key_id != recipient.key_id:
        raise BadSignature("receipt names a different recipient key set")
    return parsed
