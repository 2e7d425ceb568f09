"""C2SP signed notes, checkpoints, cosignatures, tlog-proofs.

Vectors: tests/vectors/signed-note-vectors.json (see tests/vectors/README.md).
"""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from nacl.signing import SigningKey

from ledger import (
    Checkpoint,
    CosignatureSigner,
    NoteFormatError,
    NoteSigner,
    NoteVerifier,
    SignatureError,
    TlogProof,
    VerificationError,
    add_signature_lines,
    open_checkpoint,
    parse_checkpoint_body,
    parse_note,
    parse_tlog_proof,
    sign_checkpoint,
    verify_cosignature,
)
from ledger.format.note import key_id, verify_note
from ledger.format.proof import verify_tlog_proof

VECTORS: dict[str, Any] = json.loads(
    (Path(__file__).parents[1] / "vectors" / "signed-note-vectors.json").read_text())
NEUMANN, EXAMPLE, COSIG_EXAMPLE = VECTORS["upstream"]
SELF = VECTORS["self_generated"]
LOG = NoteSigner("example.com/audit-ledger-test",
                 SigningKey(bytes.fromhex(SELF["log_ed25519_seed_hex"])))
WITNESS = CosignatureSigner("witness.example.com/test-w1",
                            SigningKey(bytes.fromhex(SELF["witness_ed25519_seed_hex"])))
LOG_VERIFIER = NoteVerifier.from_string(SELF["log_verifier_key"])
WITNESS_VERIFIER = NoteVerifier.from_string(SELF["witness_verifier_key_type_0x04"])
CHECKPOINT = parse_checkpoint_body(SELF["checkpoint_body"])


# -- upstream vectors ------------------------------------------------------------


def test_peter_neumann_key_id_and_verifier_string_are_reproduced() -> None:
    signer = NoteSigner("PeterNeumann",
                        SigningKey(bytes.fromhex(NEUMANN["signer_key_decoded"]["ed25519_seed_hex"])))
    assert signer.key_id.hex() == NEUMANN["signer_key_decoded"]["key_id_hex"]
    assert signer.verifier_key() == NEUMANN["verifier_key"]
    pub = bytes.fromhex(NEUMANN["verifier_key_decoded"]["ed25519_pub_hex"])
    assert key_id("PeterNeumann", b"\x01" + pub).hex() == "c74f20a3"


def test_peter_neumann_note_is_signed_and_verified_as_upstream() -> None:
    signer = NoteSigner("PeterNeumann",
                        SigningKey(bytes.fromhex(NEUMANN["signer_key_decoded"]["ed25519_seed_hex"])))
    assert signer.sign_line(NEUMANN["note_text"]) == NEUMANN["signature_line"]
    note = verify_note(NEUMANN["signed_note"], NoteVerifier.from_string(NEUMANN["verifier_key"]))
    assert note.text_body == NEUMANN["note_text"]
    assert note.signatures[0].sig.hex() == NEUMANN["ed25519_signature_hex"]


def test_unknown_second_signature_is_ignored_and_a_known_one_is_checked() -> None:
    both = NEUMANN["signed_note"] + NEUMANN["second_signature_line"]
    verify_note(both, NoteVerifier.from_string(NEUMANN["verifier_key"]))
    enoch = NoteVerifier.from_string(NEUMANN["second_verifier_key"])
    assert enoch.key_id.hex() == "af0cfe78"
    verify_note(both, enoch)  # the vector's second line is Enoch's valid signature


def test_c2sp_spec_example_verifies() -> None:
    verifier = NoteVerifier.from_string(EXAMPLE["verifier_key"])
    assert verifier.key_id.hex() == EXAMPLE["verifier_key_decoded"]["key_id_hex"]
    assert verify_note(EXAMPLE["signed_note"], verifier).text_body == EXAMPLE["note_text"]


def test_c2sp_cosignature_example_has_the_documented_structure() -> None:
    blob = base64.b64decode(COSIG_EXAMPLE["cosignature_line_b64"])
    decoded = COSIG_EXAMPLE["decoded"]
    assert blob[:4].hex() == decoded["key_id_hex"]
    assert int.from_bytes(blob[4:12], "big") == decoded["timestamp_be_u64"]
    assert blob[12:].hex() == decoded["ed25519_signature_hex"]


# -- self-generated end-to-end example ---------------------------------------------


def test_self_generated_log_key_and_checkpoint_are_reproduced() -> None:
    assert LOG.verifier_key() == SELF["log_verifier_key"]
    assert WITNESS.verifier_key() == SELF["witness_verifier_key_type_0x04"]
    assert CHECKPOINT.body() == SELF["checkpoint_body"]
    with_cosig = SELF["checkpoint_with_log_signature_and_cosignature"]
    signed = sign_checkpoint(CHECKPOINT, LOG)
    assert with_cosig.startswith(signed)
    assert open_checkpoint(with_cosig, LOG_VERIFIER) == CHECKPOINT


def test_self_generated_cosignature_is_reproduced_and_verifies() -> None:
    line = WITNESS.cosign(CHECKPOINT, SELF["cosignature_timestamp"])
    assert SELF["checkpoint_with_log_signature_and_cosignature"].endswith(line)
    assert verify_cosignature(CHECKPOINT, line, WITNESS_VERIFIER) == 1_700_000_000


def test_self_generated_tlog_proof_verifies_and_round_trips() -> None:
    text = SELF["tlog_proof"]
    parsed = parse_tlog_proof(text)
    assert parsed.index == SELF["tlog_proof_leaf_index"]
    assert parsed.text() == text
    leaf = bytes.fromhex(SELF["tlog_proof_leaf_hex"])
    assert verify_tlog_proof(text, leaf, LOG_VERIFIER) == CHECKPOINT
    with pytest.raises(VerificationError):
        verify_tlog_proof(text, leaf + b"x", LOG_VERIFIER)


def test_tlog_proof_with_extra_data_round_trips() -> None:
    proof = TlogProof(3, (hashlib.sha256(b"a").digest(),), "note\n", extra=b"context")
    assert parse_tlog_proof(proof.text()) == proof


# -- properties and failures -------------------------------------------------------------

origins = st.from_regex(r"[a-z0-9.-]{1,20}(/[a-z0-9_-]{1,10}){0,2}", fullmatch=True)
roots = st.binary(min_size=32, max_size=32)
key = SigningKey(hashlib.sha256(b"note test key").digest())


@given(origin=origins, size=st.integers(0, 2**63 - 1), root=roots)
def test_checkpoint_sign_parse_verify_round_trip(origin: str, size: int, root: bytes) -> None:
    signer = NoteSigner(origin, key)
    checkpoint = Checkpoint(origin, size, root)
    note = sign_checkpoint(checkpoint, signer)
    assert open_checkpoint(note, NoteVerifier.from_string(signer.verifier_key())) == checkpoint


@given(size=st.integers(0, 2**40), root=roots, timestamp=st.integers(0, 2**63 - 1))
def test_cosignature_round_trip(size: int, root: bytes, timestamp: int) -> None:
    checkpoint = Checkpoint(LOG.name, size, root)
    line = WITNESS.cosign(checkpoint, timestamp)
    assert verify_cosignature(checkpoint, line, WITNESS_VERIFIER) == timestamp
    other = Checkpoint(LOG.name, size + 1, root)
    with pytest.raises(SignatureError):
        verify_cosignature(other, line, WITNESS_VERIFIER)


def test_wrong_key_is_refused() -> None:
    note = sign_checkpoint(CHECKPOINT, LOG)
    impostor = NoteSigner(LOG.name, SigningKey(bytes(32)))
    with pytest.raises(SignatureError):
        open_checkpoint(note, NoteVerifier.from_string(impostor.verifier_key()))
    forged = sign_checkpoint(CHECKPOINT, impostor)
    with pytest.raises(SignatureError):
        open_checkpoint(forged, LOG_VERIFIER)


def test_same_name_and_key_id_with_a_bad_signature_rejects_the_note() -> None:
    note = sign_checkpoint(CHECKPOINT, LOG)
    line = note.split("\n\n", 1)[1]
    blob = bytearray(base64.b64decode(line.split(" ")[2]))
    blob[10] ^= 1
    bad = note + f"\u2014 {LOG.name} {base64.b64encode(bytes(blob)).decode()}\n"
    with pytest.raises(SignatureError):
        open_checkpoint(bad, LOG_VERIFIER)


@pytest.mark.parametrize(("old", "new"), [("\n8\n", "\n9\n"), ("Xcna", "Ycna")])
def test_tampered_body_is_refused(old: str, new: str) -> None:
    note = sign_checkpoint(CHECKPOINT, LOG).replace(old, new, 1)
    with pytest.raises(VerificationError):
        open_checkpoint(note, LOG_VERIFIER)


def test_checkpoint_origin_must_be_the_log_key_name() -> None:
    with pytest.raises(ValueError, match="origin"):
        sign_checkpoint(Checkpoint("other.example/log", 1, bytes(32)), LOG)


BAD_NOTES = {
    "no blank line": "a\n\u2014 x AAAAAAA=\n",
    "no signatures": "a\n\n",
    "signature without dash": "a\n\n- x AAAAAAA=\n",
    "bad base64": "a\n\n\u2014 x AAAA*AA=\n",
    "non-canonical base64": "a\n\n\u2014 x AAAAAAB=\n",
    "signature too short": "a\n\n\u2014 x AAAA\n",
    "control character": "a\tb\n\n\u2014 x AAAAAAA=\n",
    "no final newline": "a\n\n\u2014 x AAAAAAA=",
    "name with plus": "a\n\n\u2014 x+y AAAAAAA=\n",
}


@pytest.mark.parametrize("text", BAD_NOTES.values(), ids=BAD_NOTES.keys())
def test_malformed_notes_are_refused(text: str) -> None:
    with pytest.raises(NoteFormatError):
        parse_note(text)


BAD_BODIES = {
    "two lines": "origin\n8\n",
    "leading zero": "origin\n08\nXcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg=\n",
    "negative size": "origin\n-1\nXcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg=\n",
    "short root": "origin\n8\nXcnaeacG\n",
    "root not base64": "origin\n8\n!cnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg=\n",
    "empty extension": "origin\n8\nXcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg=\n\n",
    "no final newline": "origin\n8\nXcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg=",
    "size too large": "origin\n9223372036854775808\nXcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg=\n",
}


@pytest.mark.parametrize("body", BAD_BODIES.values(), ids=BAD_BODIES.keys())
def test_malformed_checkpoint_bodies_are_refused(body: str) -> None:
    with pytest.raises(NoteFormatError):
        parse_checkpoint_body(body)


def test_checkpoint_extension_lines_round_trip() -> None:
    checkpoint = Checkpoint(LOG.name, 8, CHECKPOINT.root, ("ext one", "ext two"))
    assert open_checkpoint(sign_checkpoint(checkpoint, LOG), LOG_VERIFIER) == checkpoint


def test_several_signatures_on_one_note() -> None:
    note = sign_checkpoint(CHECKPOINT, LOG)
    witnesses = [CosignatureSigner(f"w{i}.example", SigningKey(bytes([i]) * 32)) for i in range(3)]
    lines = [w.cosign(CHECKPOINT, 1_700_000_000 + i) for i, w in enumerate(witnesses)]
    merged = add_signature_lines(note, [*lines, lines[0]])
    assert len(parse_note(merged).signatures) == 4  # duplicates are not added twice
    assert open_checkpoint(merged, LOG_VERIFIER) == CHECKPOINT
    for i, (witness, line) in enumerate(zip(witnesses, lines, strict=True)):
        verifier = NoteVerifier.from_string(witness.verifier_key())
        assert verify_cosignature(CHECKPOINT, line, verifier) == 1_700_000_000 + i


def test_cosignature_tampering_is_detected() -> None:
    line = WITNESS.cosign(CHECKPOINT, 1_700_000_000)
    blob = bytearray(base64.b64decode(line.split(" ")[2]))
    blob[11] ^= 1  # the timestamp
    tampered = f"\u2014 {WITNESS.name} {base64.b64encode(bytes(blob)).decode()}\n"
    with pytest.raises(SignatureError):
        verify_cosignature(CHECKPOINT, tampered, WITNESS_VERIFIER)
    with pytest.raises(SignatureError):
        verify_cosignature(CHECKPOINT, line, LOG_VERIFIER)  # not a cosigner key
    other = CosignatureSigner("witness.example.com/test-w2", SigningKey(bytes(32)))
    with pytest.raises(SignatureError):
        verify_cosignature(CHECKPOINT, line, NoteVerifier.from_string(other.verifier_key()))


@pytest.mark.parametrize("vkey", [
    "PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # wrong key id
    "PeterNeumann+c74f20a3+AhpcQ==",                                       # not Ed25519
    "PeterNeumann+c74f20a3",
    "PeterNeumann+C74F20A3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # uppercase id
    "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10T",   # bad base64
])
def test_malformed_verifier_keys_are_refused(vkey: str) -> None:
    with pytest.raises(NoteFormatError):
        NoteVerifier.from_string(vkey)


def test_verifier_string_round_trips() -> None:
    assert str(NoteVerifier.from_string(NEUMANN["verifier_key"])) == NEUMANN["verifier_key"]
