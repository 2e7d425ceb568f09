"""Regenerate tests/vectors/directory/vectors.json (Cadena's own key-directory vector).

Run from the repository root: ``.venv/bin/python tests/vectors/directory/generate.py``.
Every input is fixed (expansions of SHA-256("<label>/<counter>")) and every
output deterministic (Ed25519, RFC 8032 §5.1.6): a six-entry ledger in which
``mx-fgr-1`` is enrolled (entry 1) and rotates its keys (entry 3), two
checkpoints (sizes 3 and 6) signed by the ledger key, each carrying the key
log (2 then 3 leaves, docs/protocol.md §11.7), the second cosigned by one
witness, and the directory's answer for ``mx-fgr-1`` given ``since=3`` and
``key_since=2`` (docs/protocol.md §11). Refusals: the same answer changed one way each, with
the reason code a client must give.
"""

from __future__ import annotations

import base64
import hashlib
import json
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT))

from nacl.signing import SigningKey  # noqa: E402

from app.liaisons.rotation import entry_details  # noqa: E402
from app.liaisons.service import enrolment_details  # noqa: E402
from app.models.identity import Role  # noqa: E402
from crypto import LiaisonKeys, RotationStatement, sign_rotation  # noqa: E402
from ledger import (  # noqa: E402
    Actor,
    CosignatureSigner,
    EntryDraft,
    Ledger,
    MemoryKeyLog,
    MemoryStorage,
    NoteSigner,
    add_signature_lines,
    merkle,
    parse_checkpoint_body,
    parse_note,
)

OUT = Path(__file__).with_name("vectors.json")
ORIGIN = "cadena.example/ledger"
LIAISON = "mx-fgr-1"
T0 = datetime(2026, 12, 6, 18, 0, 0, tzinfo=UTC)
COSIGNED_AT = 1_765_044_000


def expand(label: str, size: int) -> bytes:
    """``size`` bytes of SHA-256(label || "/" || counter) blocks (how fixed inputs are made)."""
    blocks = (hashlib.sha256(f"{label}/{i}".encode()).digest() for i in range(size // 32 + 1))
    return b"".join(blocks)[:size]


def _keys(label: str) -> LiaisonKeys:
    return LiaisonKeys.from_secret_bytes(expand(f"directory/{label}", 64))


LOG = NoteSigner(ORIGIN, SigningKey(expand("directory/ledger", 32)))
WITNESS = CosignatureSigner("witness.example/w1", SigningKey(expand("directory/witness", 32)))
CURRENT, NEW, OTHER = _keys("current"), _keys("new"), _keys("other")


def _draft(n: int, actor: Actor | None, action: str, liaison: str, details: dict[str, Any],
           signature: str | None = None) -> EntryDraft:
    return EntryDraft(time=T0 + timedelta(seconds=n), actor=actor, action=action,
                      subject={"type": "liaison", "id": liaison}, outcome="granted",
                      details=details, signature=signature)


def _rotation() -> EntryDraft:
    statement = RotationStatement(
        origin=ORIGIN, liaison=LIAISON, challenge="0c4f2a9d1e3b5c7a9f0e2d4c6b8a0f1e",
        nonce=expand("directory/nonce", 32), server_box=expand("directory/server-box", 32),
        old_key_id=CURRENT.public.key_id, new_keys=NEW.public)
    signed = sign_rotation(statement, CURRENT, NEW)
    return _draft(3, Actor(liaison=LIAISON, key=CURRENT.public.key_id), "key.rotate", LIAISON,
                  entry_details(signed, CURRENT.public.key_id, NEW.public),
                  base64.b64encode(signed.signature).decode())


def _ledger() -> tuple[Ledger, MemoryKeyLog, str, str]:
    ledger, keys = Ledger(MemoryStorage()), MemoryKeyLog()
    ledger.append_many([
        _draft(0, None, "liaison.enrol", "co-coord", enrolment_details(
            "CO", Role.COORDINATOR, OTHER.public)),
        _draft(1, Actor(liaison="co-coord", key=OTHER.public.key_id), "liaison.enrol",
               LIAISON, enrolment_details("MX", Role.PROSECUTOR, CURRENT.public)),
        _draft(2, Actor(liaison=LIAISON, key=CURRENT.public.key_id), "liaison.read",
               "co-coord", {}),
    ])
    old = keys.checkpoint(ledger.storage, LOG, ORIGIN)
    ledger.append_many([_rotation(), _draft(4, None, "liaison.read", "co-coord", {}),
                        _draft(5, None, "liaison.read", LIAISON, {})])
    new = keys.checkpoint(ledger.storage, LOG, ORIGIN)
    if old is None or new is None:
        raise SystemExit("the ledger did not grow")
    checkpoint = parse_checkpoint_body(parse_note(new.note).text_body)
    cosigned = add_signature_lines(new.note, [WITNESS.cosign(checkpoint, COSIGNED_AT)])
    return ledger, keys, old.note, cosigned


def _answer(ledger: Ledger, keys: MemoryKeyLog, note: str) -> dict[str, Any]:
    size = parse_checkpoint_body(parse_note(note).text_body).size
    key_size = keys.heads[size].size
    at = {leaf.ledger_index: i for i, leaf in enumerate(keys.leaves)}
    return {"liaison_id": LIAISON, "checkpoint": note, "tree_size": size, "since": 3,
            "consistency": [h.hex() for h in ledger.consistency_proof(3, size)],
            "key_since": 2,
            "key_consistency": [h.hex() for h in merkle.consistency_proof(keys, 2, key_size)],
            "entries": [{"index": i, "key": None,
                         "entry": base64.b64encode(next(ledger.storage.entries(i, i + 1)))
                         .decode(),
                         "proof": [h.hex() for h in ledger.inclusion_proof(i, size)],
                         "key_log_index": at[i],
                         "key_log_proof": [h.hex() for h in
                                           merkle.inclusion_proof(keys, at[i], key_size)]}
                        for i in (1, 3)]}


def _refusals(answer: dict[str, Any]) -> list[dict[str, Any]]:
    stripped = answer["checkpoint"].rsplit("— witness.example/w1 ", 1)[0]
    flipped = dict(answer["entries"][1], proof=["00" * 32, *answer["entries"][1]["proof"][1:]])
    return [
        {"name": "cosignature stripped", "reason": "quorum",
         "answer": dict(answer, checkpoint=stripped)},
        {"name": "inclusion proof changed", "reason": "bad-inclusion",
         "answer": dict(answer, entries=[answer["entries"][0], flipped])},
        {"name": "consistency proof withheld", "reason": "fork",
         "answer": dict(answer, consistency=None)},
        {"name": "rotation left out, new key served", "reason": "not-in-ledger",
         "answer": dict(answer, entries=answer["entries"][:1])},
        {"name": "old key served to encrypt to", "reason": "stale-key",
         "answer": answer, "key": "current"},
        {"name": "key-log proof changed", "reason": "not-in-key-log",
         "answer": dict(answer, entries=[answer["entries"][0], dict(
             answer["entries"][1], key_log_proof=["00" * 32,
                                                  *answer["entries"][1]["key_log_proof"][1:]])])},
        {"name": "key-log consistency proof withheld", "reason": "key-log-fork",
         "answer": dict(answer, key_consistency=None)},
    ]


def document() -> dict[str, Any]:
    """The vector file's content."""
    ledger, keys, old, new = _ledger()
    answer = _answer(ledger, keys, new)
    return {
        "source": "generated by tests/vectors/directory/generate.py from Cadena's ledger/ "
                  "and app/liaisons (entry details)",
        "format": "docs/protocol.md, section 11 (key transparency); docs/api.md (the answer)",
        "trust_roots": {"ledger_key": LOG.verifier_key(),
                        "witnesses": [WITNESS.verifier_key()], "quorum": 1},
        "seen": {"size": 3, "note": old},
        "answer": answer,
        "expect": {"liaison": LIAISON, "key_ids": [CURRENT.public.key_id, NEW.public.key_id],
                   "keys": {"current": CURRENT.public.to_json(), "new": NEW.public.to_json()}},
        "refusals": _refusals(answer),
    }


def main() -> None:
    """Write the vector file."""
    OUT.write_text(json.dumps(document(), indent=2, ensure_ascii=False) + "\n", "utf-8")


if __name__ == "__main__":
    main()
