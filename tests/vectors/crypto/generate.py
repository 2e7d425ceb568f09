"""Regenerate tests/vectors/crypto/vectors.json (Cadena's own known-answer vectors).

Run from the repository root: ``.venv/bin/python tests/vectors/crypto/generate.py``.
Every random input is fixed: the bytes a seal function draws come, in order,
from the hex string ``random`` recorded beside each vector, so any
implementation can reproduce the outputs exactly.
"""

from __future__ import annotations

import hashlib
import io
import json
import sys
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT))

from crypto import (  # noqa: E402
    Classification,
    HandlingCode,
    LiaisonKeys,
    PacketMeta,
    encrypt_archive,
    make_receipt,
    open_envelope,
    pae,
    save_keys,
    seal_packet,
)
from crypto.keyfile import MEMLIMIT_MIN, OPSLIMIT_MIN  # noqa: E402
from crypto.signing import PACKET_HEADER_TYPE, RECEIPT_TYPE  # noqa: E402

OUT = Path(__file__).with_name("vectors.json")
NOW = "2025-03-14T15:09:26Z"


def expand(label: str, size: int) -> bytes:
    """``size`` bytes of SHA-256(label || "/" || counter) blocks (how fixed inputs are made)."""
    blocks = (hashlib.sha256(f"{label}/{i}".encode()).digest() for i in range(size // 32 + 1))
    return b"".join(blocks)[:size]


def tape(data: bytes) -> Callable[[int], bytes]:
    """A random source that plays back ``data`` in order and fails if it runs out."""
    offset = 0

    def read(n: int) -> bytes:
        nonlocal offset
        chunk = data[offset:offset + n]
        if len(chunk) != n:
            raise RuntimeError("random tape exhausted")
        offset += n
        return chunk

    return read


def key_vector(name: str) -> dict[str, Any]:
    keys = LiaisonKeys.from_secret_bytes(expand(f"cadena-vectors/key/{name}", 64))
    return {"id": name, "secret": keys.secret_bytes().hex(),
            "sign_public": keys.public.signing.hex(), "box_public": keys.public.encryption.hex(),
            "key_id": keys.public.key_id, "fingerprint": keys.public.fingerprint}


def packet_vector(keys: dict[str, LiaisonKeys]) -> dict[str, Any]:
    inputs: dict[str, Any] = {
        "sender_id": "mx-fgr-1", "recipients": ["co-fgn-7", "gt-mp-3"],
        "meta": {"channel_id": "ch-mx-co-gt", "classification": "SECRET", "handling": "H1",
                 "evaluation": "A2", "case_reference": "FGR/UEIDO/0042/2025",
                 "legal_basis": "Chapultepec Consensus art. 4"},
        "message": b"Solicitud de asistencia: ver anexos.".hex(),
        "attachments": [{"name": "acta.pdf", "data": expand("acta", 150).hex()},
                        {"name": "vacío.txt", "data": ""}],
        "chunk_size": 64, "now": NOW, "random": expand("cadena-vectors/packet", 138).hex(),
    }
    sealed = seal_from_inputs(inputs, keys)
    rid = inputs["recipients"][0]
    opened = open_envelope(sealed.envelope, keys[inputs["sender_id"]].public, rid, keys[rid],
                           io.BytesIO(sealed.streams[0]))
    receipt = make_receipt(opened, rid, keys[rid], now=datetime.fromisoformat(NOW))
    return {"inputs": inputs, "outputs": {
        "envelope": sealed.envelope.to_bytes().decode(),
        "header": sealed.envelope.header.decode(),
        "streams": [s.hex() for s in sealed.streams],
        "content_key": opened.content_key.secret.hex(),
        "statement": opened.statement_bytes.decode(),
        "statement_signature": opened.statement_signature.hex(),
        "receipt": {"recipient_id": rid, "received": NOW,
                    "receipt": receipt.receipt.decode(), "signature": receipt.signature.hex()},
    }}


def archive_vector(keys: dict[str, LiaisonKeys]) -> dict[str, Any]:
    """An operator's encrypted backup archive (docs/protocol.md §12): three chunks of 64."""
    inputs: dict[str, Any] = {
        "operator": "operator", "plaintext": expand("cadena-vectors/archive/tar", 150).hex(),
        "chunk_size": 64, "unix_ms": 1742000000000,
        "random": expand("cadena-vectors/archive", 74).hex(),
    }
    archive = archive_from_inputs(inputs, keys)
    magic_end = archive.index(b"\n") + 1
    header_end = archive.index(b"\n", magic_end) + 1
    random = bytes.fromhex(inputs["random"])
    return {"inputs": inputs, "outputs": {
        "archive": archive.hex(), "header": archive[magic_end:header_end - 1].decode(),
        "content_key": random[10:42].hex(), "ciphertext": archive[header_end:].hex(),
    }}


def archive_from_inputs(inputs: dict[str, Any], keys: dict[str, LiaisonKeys]) -> bytes:
    """Encrypt the archive a vector's ``inputs`` describe (used by the tests too)."""
    out = io.BytesIO()
    encrypt_archive(io.BytesIO(bytes.fromhex(inputs["plaintext"])), out,
                    keys[inputs["operator"]].public, chunk_size=inputs["chunk_size"],
                    random=tape(bytes.fromhex(inputs["random"])), unix_ms=inputs["unix_ms"])
    return out.getvalue()


def seal_from_inputs(inputs: dict[str, Any], keys: dict[str, LiaisonKeys]) -> Any:
    """Seal the packet described by a vector's ``inputs`` (used by the tests too)."""
    meta = dict(inputs["meta"])
    meta["classification"] = Classification(meta["classification"])
    meta["handling"] = HandlingCode(meta["handling"])
    return seal_packet(
        keys[inputs["sender_id"]], inputs["sender_id"],
        {rid: keys[rid].public for rid in inputs["recipients"]}, PacketMeta(**meta),
        bytes.fromhex(inputs["message"]),
        [(a["name"], bytes.fromhex(a["data"])) for a in inputs["attachments"]],
        chunk_size=inputs["chunk_size"], now=datetime.fromisoformat(inputs["now"]),
        random=tape(bytes.fromhex(inputs["random"])),
    )


def main() -> None:
    names = ["mx-fgr-1", "co-fgn-7", "gt-mp-3", "operator"]
    key_vectors = [key_vector(n) for n in names]
    keys = {k["id"]: LiaisonKeys.from_secret_bytes(bytes.fromhex(k["secret"]))
            for k in key_vectors}
    keyfile_random = expand("cadena-vectors/keyfile", 40)
    vectors = {
        "source": "generated by tests/vectors/crypto/generate.py (Cadena's own implementation)",
        "keys": key_vectors,
        "pae": [{"payload_type": t, "payload": p.hex(), "pae": pae(t, p).hex()}
                for t, p in ((PACKET_HEADER_TYPE, b"{}"), (RECEIPT_TYPE, b"hello world"))],
        "packet": packet_vector(keys),
        "keyfile": {"key": names[0], "passphrase": "contraseña de prueba",
                    "random": keyfile_random.hex(),
                    "file": save_keys(keys[names[0]], "contraseña de prueba",
                                      opslimit=OPSLIMIT_MIN, memlimit=MEMLIMIT_MIN,
                                      random=tape(keyfile_random)).decode()},
        "archive": archive_vector(keys),
    }
    OUT.write_text(json.dumps(vectors, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
