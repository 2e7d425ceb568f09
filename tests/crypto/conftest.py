"""Shared material for the crypto tests: deterministic key sets and a packet factory."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime

from crypto import (
    Classification,
    HandlingCode,
    LiaisonKeys,
    LiaisonPublicKeys,
    PacketMeta,
    SealedPacket,
    seal_packet,
)

CHUNK = 64
NOW = datetime(2025, 3, 14, 15, 9, 26, tzinfo=UTC)
META = PacketMeta("ch-bilateral-mx-co", Classification.CONFIDENTIAL, HandlingCode.H2, "B2",
                  case_reference="FGR/123/2025")


def det_random(label: str) -> Callable[[int], bytes]:
    """A deterministic byte source (SHA-256 counter mode) for reproducible tests."""
    counter = 0

    def read(n: int) -> bytes:
        nonlocal counter
        out = b""
        while len(out) < n:
            out += hashlib.sha256(f"{label}/{counter}".encode()).digest()
            counter += 1
        return out[:n]

    return read


def keys(name: str) -> LiaisonKeys:
    """The deterministic key set of liaison ``name``."""
    return LiaisonKeys.from_secret_bytes(det_random(f"key/{name}")(64))


SENDER = keys("sender")
RECIPIENTS = {f"r{i}": keys(f"r{i}") for i in range(10)}
OUTSIDER = keys("outsider")


def publics(ids: Sequence[str]) -> Mapping[str, LiaisonPublicKeys]:
    """Public key sets of the named test recipients."""
    return {rid: RECIPIENTS[rid].public for rid in ids}


def seal(message: bytes = b"hola", attachments: Sequence[tuple[str, bytes]] = (),
         recipients: Sequence[str] = ("r0",), chunk_size: int = CHUNK,
         seed: str = "packet") -> SealedPacket:
    """Seal a test packet from ``sender`` with deterministic randomness."""
    return seal_packet(SENDER, "sender", publics(recipients), META, message, attachments,
                       chunk_size=chunk_size, now=NOW, random=det_random(seed))
