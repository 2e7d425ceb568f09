"""Key rotation (crypto.rotation): the statement, the current key's signature, two proofs."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from hypothesis import given
from hypothesis import strategies as st

from crypto import (
    KEY_ROTATION_TYPE,
    BadKeyProof,
    BadSignature,
    ChallengeMismatch,
    CryptoError,
    FormatError,
    LiaisonKeys,
    RotationChallenge,
    RotationStatement,
    SignedRotation,
    UnknownVersion,
    box_proof,
    canonical_json,
    check_box_proof,
    pae,
    parse_canonical,
    server_box_secret,
    sign,
    sign_rotation,
    verify_rotation,
)
from crypto.signing import RECEIPT_TYPE

VECTORS = json.loads((Path(__file__).resolve().parents[1] / "vectors" / "rotation"
                      / "vectors.json").read_text("utf-8"))["vectors"]
CURRENT, NEW, OTHER = (LiaisonKeys.generate() for _ in range(3))
CHALLENGE = RotationChallenge("test.cadena/ledger", "mx-fgr-1", "0123456789abcdef0123456789abcdef",
                              bytes(range(32)), server_box_secret())
# Curve25519 points of small order (RFC 7748 §6.1: the shared secret is all zeros).
LOW_ORDER = [bytes(32), (1).to_bytes(32, "little"),
             bytes.fromhex("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800")]


def _statement(new: LiaisonKeys = NEW, **change: Any) -> RotationStatement:
    base = RotationStatement(origin=CHALLENGE.origin, liaison=CHALLENGE.liaison,
                             challenge=CHALLENGE.challenge, nonce=CHALLENGE.nonce,
                             server_box=CHALLENGE.server_box, old_key_id=CURRENT.public.key_id,
                             new_keys=new.public)
    return replace(base, **change)


def _signed(**change: Any) -> SignedRotation:
    return sign_rotation(_statement(**change), CURRENT, NEW)


def test_an_honest_rotation_verifies_and_returns_the_statement() -> None:
    assert verify_rotation(_signed(), CURRENT.public, CHALLENGE) == _statement()


def test_statement_bytes_are_canonical_json_with_every_field() -> None:
    data = _signed().statement
    obj = parse_canonical(data)
    assert canonical_json(obj) == data
    assert set(obj) == {"v", "kind", "origin", "liaison", "challenge", "nonce", "server_box",
                        "old_key_id", "new_keys"}
    assert obj["kind"] == "cadena-key-rotation"
    assert RotationStatement.from_bytes(data) == _statement()


def test_a_statement_signed_by_another_key_fails_closed() -> None:
    signed = _signed()
    forged = replace(signed, signature=sign(OTHER.signing_key, KEY_ROTATION_TYPE,
                                            signed.statement))
    with pytest.raises(BadSignature):
        verify_rotation(forged, CURRENT.public, CHALLENGE)


def test_a_signature_under_another_payload_type_fails_closed() -> None:
    signed = _signed()
    receipt = replace(signed, signature=sign(CURRENT.signing_key, RECEIPT_TYPE, signed.statement))
    with pytest.raises(BadSignature):
        verify_rotation(receipt, CURRENT.public, CHALLENGE)


def test_a_statement_naming_another_current_key_fails_closed() -> None:
    statement = _statement(old_key_id=OTHER.public.key_id).to_bytes()
    signed = SignedRotation(statement, sign(CURRENT.signing_key, KEY_ROTATION_TYPE, statement),
                            sign(NEW.signing_key, KEY_ROTATION_TYPE, statement),
                            box_proof(NEW.encryption_key, CHALLENGE.server_box, statement))
    with pytest.raises(BadSignature, match="different current key"):
        verify_rotation(signed, CURRENT.public, CHALLENGE)


@pytest.mark.parametrize("field", ["origin", "liaison", "challenge", "nonce", "server_box"])
def test_a_statement_for_another_challenge_fails_closed(field: str) -> None:
    other = {"origin": "other.cadena/ledger", "liaison": "co-fgn-7",
             "challenge": "f" * 32, "nonce": bytes(32),
             "server_box": RotationChallenge("o", "l", "c", bytes(32),
                                             server_box_secret()).server_box}
    with pytest.raises(ChallengeMismatch, match=field):
        verify_rotation(_signed(**{field: other[field]}), CURRENT.public, CHALLENGE)


def test_without_possession_of_the_new_signing_key_fails_closed() -> None:
    signed = _signed()
    by_other = sign(OTHER.signing_key, KEY_ROTATION_TYPE, signed.statement)
    for proof in (by_other, signed.signature, bytes(64)):
        with pytest.raises(BadKeyProof) as caught:
            verify_rotation(replace(signed, new_key_signature=proof), CURRENT.public, CHALLENGE)
        assert caught.value.key == "signing"


def test_without_possession_of_the_new_encryption_key_fails_closed() -> None:
    signed = _signed()
    by_other = box_proof(OTHER.encryption_key, CHALLENGE.server_box, signed.statement)
    for proof in (by_other, bytes(32), signed.box_proof[:16]):
        with pytest.raises(BadKeyProof) as caught:
            verify_rotation(replace(signed, box_proof=proof), CURRENT.public, CHALLENGE)
        assert caught.value.key == "encryption"


def test_a_box_proof_against_another_server_key_fails_closed() -> None:
    signed = _signed()
    other = RotationChallenge("o", "l", "c", bytes(32), server_box_secret())
    with pytest.raises(BadKeyProof):
        check_box_proof(other.server_box_secret, NEW.public.encryption, signed.statement,
                        signed.box_proof)


@pytest.mark.parametrize("point", LOW_ORDER)
def test_low_order_points_make_no_box_proof(point: bytes) -> None:
    with pytest.raises(BadKeyProof):
        box_proof(NEW.encryption_key, point, b"statement")
    with pytest.raises(BadKeyProof):
        check_box_proof(CHALLENGE.server_box_secret, point, b"statement", bytes(32))


def test_keys_are_only_used_on_a_statement_that_names_them() -> None:
    with pytest.raises(ChallengeMismatch):
        sign_rotation(_statement(), OTHER, NEW)
    with pytest.raises(ChallengeMismatch):
        sign_rotation(_statement(), CURRENT, OTHER)


@pytest.mark.parametrize("change", [
    {"v": 2}, {"kind": "cadena-login"}, {"old_key_id": "ABC"}, {"origin": ""},
    {"liaison": "../x"}, {"nonce": "AAAA"}, {"extra": 1}, {"new_keys": {"box": "x"}},
])
def test_malformed_statements_are_format_errors(change: dict[str, Any]) -> None:
    obj = {**parse_canonical(_statement().to_bytes()), **change}
    data = canonical_json(obj)
    signed = SignedRotation(data, sign(CURRENT.signing_key, KEY_ROTATION_TYPE, data),
                            bytes(64), bytes(32))
    with pytest.raises(FormatError) as caught:
        verify_rotation(signed, CURRENT.public, CHALLENGE)
    assert isinstance(caught.value, UnknownVersion) == ("v" in change)


def test_non_canonical_statement_bytes_are_refused() -> None:
    data = _statement().to_bytes().replace(b'{"challenge"', b'{ "challenge"')
    signed = SignedRotation(data, sign(CURRENT.signing_key, KEY_ROTATION_TYPE, data),
                            bytes(64), bytes(32))
    with pytest.raises(FormatError):
        verify_rotation(signed, CURRENT.public, CHALLENGE)


_HONEST = _signed()
_PARTS = ("statement", "signature", "new_key_signature", "box_proof")


@given(part=st.sampled_from(_PARTS), data=st.data())
def test_flipping_any_byte_of_any_part_is_refused(part: str, data: st.DataObject) -> None:
    value: bytes = getattr(_HONEST, part)
    index = data.draw(st.integers(0, len(value) - 1), label="index")
    flip = data.draw(st.integers(1, 255), label="xor")
    changed = value[:index] + bytes([value[index] ^ flip]) + value[index + 1:]
    with pytest.raises(CryptoError):
        verify_rotation(replace(_HONEST, **{part: changed}), CURRENT.public, CHALLENGE)


# -- the known-answer vector (tests/vectors/rotation/vectors.json) -------------------


@pytest.mark.parametrize("vector", VECTORS)
def test_vector_statement_and_proofs_are_reproduced(vector: dict[str, Any]) -> None:
    inputs = vector["inputs"]
    current = LiaisonKeys.from_secret_bytes(bytes.fromhex(inputs["current_secret"]))
    new = LiaisonKeys.from_secret_bytes(bytes.fromhex(inputs["new_secret"]))
    challenge = RotationChallenge(inputs["origin"], inputs["liaison"], inputs["challenge"],
                                  bytes.fromhex(inputs["nonce"]),
                                  bytes.fromhex(inputs["server_box_secret"]))
    statement = RotationStatement(challenge.origin, challenge.liaison, challenge.challenge,
                                  challenge.nonce, challenge.server_box, current.public.key_id,
                                  new.public)
    signed = sign_rotation(statement, current, new)
    assert signed.statement == vector["statement"].encode("utf-8")
    assert hashlib.sha256(signed.statement).hexdigest() == vector["statement_sha256"]
    assert base64.b64encode(signed.signature).decode() == vector["signature"]
    assert base64.b64encode(signed.new_key_signature).decode() == vector["new_key_signature"]
    assert base64.b64encode(signed.box_proof).decode() == vector["box_proof"]
    assert (current.public.key_id, new.public.key_id) == (vector["current_key_id"],
                                                          vector["new_key_id"])
    assert verify_rotation(signed, current.public, challenge) == statement


@pytest.mark.parametrize("vector", VECTORS)
def test_vector_checks_with_an_independent_implementation(vector: dict[str, Any]) -> None:
    """pyca/cryptography alone (no crypto.rotation) reproduces the proofs, as documented."""
    inputs, statement = vector["inputs"], vector["statement"].encode("utf-8")
    new_secret = bytes.fromhex(inputs["new_secret"])
    server_box = base64.b64decode(vector["server_box"])
    server = X25519PrivateKey.from_private_bytes(bytes.fromhex(inputs["server_box_secret"]))
    new_box = base64.b64decode(vector["new_encryption_public"])
    shared = X25519PrivateKey.from_private_bytes(new_secret[32:]).exchange(
        X25519PublicKey.from_public_bytes(server_box))
    assert shared == server.exchange(X25519PublicKey.from_public_bytes(new_box))
    assert shared.hex() == vector["x25519_shared"]
    mac_key = HKDF(algorithm=hashes.SHA256(), length=32, salt=server_box + new_box,
                   info=vector["hkdf_info"].encode()).derive(shared)
    assert mac_key.hex() == vector["mac_key"]
    proof = hmac.new(mac_key, statement, hashlib.sha256).digest()
    assert base64.b64encode(proof).decode() == vector["box_proof"]
    message = b"DSSEv1 %d %s %d %s" % (len(vector["payload_type"]),
                                       vector["payload_type"].encode(), len(statement), statement)
    assert message == pae(KEY_ROTATION_TYPE, statement)
    assert hashlib.sha256(message).hexdigest() == vector["pae_sha256"]
    Ed25519PublicKey.from_public_bytes(base64.b64decode(vector["new_signing_public"])).verify(
        base64.b64decode(vector["new_key_signature"]), message)


def test_protocol_document_shows_the_vector() -> None:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "protocol.md").read_text("utf-8")
    vector = VECTORS[0]
    for key in ("statement", "signature", "new_key_signature", "x25519_shared", "mac_key",
                "box_proof", "ledger_entry"):
        assert vector[key] in doc, key
