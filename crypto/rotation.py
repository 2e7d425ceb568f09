"""Key rotation: a statement signed by the current key, with proofs of possession of the new.

A liaison replaces their key set by signing one *rotation statement*, the
canonical JSON (``docs/protocol.md`` §1)::

    {"challenge": <id>, "kind": "cadena-key-rotation", "liaison": <liaison id>,
     "new_keys": {"box": b64(x25519), "sign": b64(ed25519)}, "nonce": b64(32),
     "old_key_id": <hex32>, "origin": <ledger origin>, "server_box": b64(32), "v": 1}

under the payload type ``application/vnd.cadena.key-rotation.v1+json`` (DSSE
PAE, ``crypto.signing``), three times over:

1. Ed25519 by the **current** signing key: the holder of the registered key
   agrees to the change (a bearer token alone cannot change identity);
2. Ed25519 by the **new** signing key: proof of possession, so nobody can
   register a public key they do not hold (or someone else's);
3. an X25519 proof of possession of the new encryption key (an X25519 key
   cannot sign): ``box_proof`` below, computed against the server's one-time
   ephemeral X25519 key named in the statement (``server_box``).

The challenge id, its nonce and the server's ephemeral key make every
statement single-use; the origin keeps a statement for one ledger from being
played to another; ``old_key_id`` names the key set being replaced.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from dataclasses import dataclass, field

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from nacl import bindings
from nacl.public import PrivateKey

from crypto.encoding import (
    b64encode,
    canonical_json,
    check_keys,
    check_version,
    get_b64,
    get_obj,
    get_str,
    parse_canonical,
)
from crypto.errors import BadKeyProof, BadSignature, ChallengeMismatch, FormatError
from crypto.ids import RandomSource, check_actor_id
from crypto.keys import LiaisonKeys, LiaisonPublicKeys
from crypto.signing import KEY_ROTATION_TYPE, sign, verify_signature

ROTATION_VERSION = 1
ROTATION_KIND = "cadena-key-rotation"
NONCE_SIZE = 32
BOX_PROOF_SIZE = 32
BOX_PROOF_INFO = KEY_ROTATION_TYPE.encode("ascii") + b" x25519-proof"
"""HKDF ``info`` of the X25519 proof: bound to the payload type, so the MAC key is for this only."""
_FIELDS = ("v", "kind", "origin", "liaison", "challenge", "nonce", "server_box", "old_key_id",
           "new_keys")
_HEX32 = frozenset("0123456789abcdef")


@dataclass(frozen=True)
class RotationStatement:
    """What a rotation binds: who, which key set goes, which comes, for which challenge."""

    origin: str
    liaison: str
    challenge: str
    nonce: bytes
    server_box: bytes
    old_key_id: str
    new_keys: LiaisonPublicKeys
    version: int = field(default=ROTATION_VERSION)

    def to_bytes(self) -> bytes:
        """Canonical JSON encoding (the exact bytes that are signed and proven)."""
        return canonical_json({
            "v": self.version, "kind": ROTATION_KIND, "origin": self.origin,
            "liaison": self.liaison, "challenge": self.challenge,
            "nonce": b64encode(self.nonce), "server_box": b64encode(self.server_box),
            "old_key_id": self.old_key_id, "new_keys": self.new_keys.to_json(),
        })

    @classmethod
    def from_bytes(cls, data: bytes) -> RotationStatement:
        """Strictly parse statement bytes (canonical, every field, nothing else)."""
        obj = parse_canonical(data, max_size=4096)
        check_version(obj, ROTATION_VERSION)
        check_keys(obj, _FIELDS)
        if get_str(obj, "kind") != ROTATION_KIND:
            raise FormatError("not a key rotation statement")
        old_key_id = get_str(obj, "old_key_id")
        if len(old_key_id) != 32 or not set(old_key_id) <= _HEX32:
            raise FormatError("old_key_id is not 32 lowercase hex digits")
        origin = get_str(obj, "origin")
        if not origin or not origin.isprintable():
            raise FormatError("origin is empty or has control characters")
        return cls(
            origin=origin,
            liaison=check_actor_id(get_str(obj, "liaison"), "liaison"),
            challenge=check_actor_id(get_str(obj, "challenge"), "challenge"),
            nonce=get_b64(obj, "nonce", NONCE_SIZE),
            server_box=get_b64(obj, "server_box", 32),
            old_key_id=old_key_id,
            new_keys=LiaisonPublicKeys.from_json(get_obj(obj, "new_keys")),
        )


@dataclass(frozen=True)
class SignedRotation:
    """Statement bytes, the current key's signature, and the two proofs of possession."""

    statement: bytes
    signature: bytes
    new_key_signature: bytes
    box_proof: bytes


@dataclass(frozen=True)
class RotationChallenge:
    """The server's side of one rotation challenge, against which a statement is checked."""

    origin: str
    liaison: str
    challenge: str
    nonce: bytes
    server_box_secret: bytes

    @property
    def server_box(self) -> bytes:
        """The server's ephemeral X25519 public key (sent to the client)."""
        return bindings.crypto_scalarmult_base(self.server_box_secret)


def server_box_secret(random: RandomSource = os.urandom) -> bytes:
    """A fresh ephemeral X25519 secret for one rotation challenge."""
    return random(32)


def _mac_key(shared: bytes, server_box: bytes, new_box: bytes) -> bytes:
    # RFC 5869 HKDF-SHA256; the salt names both public keys (as HPKE and
    # crypto_kx bind them), the info the payload type.
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=server_box + new_box,
                info=BOX_PROOF_INFO).derive(shared)


def box_proof(encryption_key: PrivateKey, server_box: bytes, statement: bytes) -> bytes:
    """The X25519 proof of possession of ``encryption_key`` over ``statement`` (32 bytes).

    ``HMAC-SHA256(HKDF-SHA256(ikm = X25519(new secret, server_box), salt =
    server_box || new public, info = BOX_PROOF_INFO), statement)``; an
    all-zero shared secret (a low-order ``server_box``) is refused with
    :class:`BadKeyProof`.
    """
    new_box = bytes(encryption_key.public_key)
    try:
        shared = bindings.crypto_scalarmult(bytes(encryption_key), server_box)
    except (RuntimeError, ValueError, TypeError) as exc:
        raise BadKeyProof("encryption", "the server's ephemeral key is not usable") from exc
    return hmac.new(_mac_key(shared, server_box, new_box), statement, hashlib.sha256).digest()


def check_box_proof(server_box_secret: bytes, new_box: bytes, statement: bytes,
                    proof: bytes) -> None:
    """Return ``None`` if ``proof`` proves possession of the X25519 key ``new_box``.

    The server recomputes the shared secret with its ephemeral secret and
    compares the MACs in constant time; raises :class:`BadKeyProof` otherwise
    (including a low-order ``new_box``, whose shared secret is all zeros).
    """
    server_box = bindings.crypto_scalarmult_base(server_box_secret)
    try:
        shared = bindings.crypto_scalarmult(server_box_secret, new_box)
    except (RuntimeError, ValueError, TypeError) as exc:
        raise BadKeyProof("encryption", "the new encryption key is a low-order point") from exc
    want = hmac.new(_mac_key(shared, server_box, new_box), statement, hashlib.sha256).digest()
    if not hmac.compare_digest(want, proof):
        raise BadKeyProof("encryption", "no proof of possession of the new encryption key")


def sign_rotation(statement: RotationStatement, current: LiaisonKeys,
                  new: LiaisonKeys) -> SignedRotation:
    """Sign ``statement`` with the current key set and prove possession of ``new``.

    Refuses (:class:`ChallengeMismatch`) a statement that names other keys
    than ``current`` and ``new``: the private keys are only used on what they
    are meant for.
    """
    if statement.old_key_id != current.public.key_id or statement.new_keys != new.public:
        raise ChallengeMismatch("the statement names other key sets than the ones given")
    data = statement.to_bytes()
    return SignedRotation(
        statement=data,
        signature=sign(current.signing_key, KEY_ROTATION_TYPE, data),
        new_key_signature=sign(new.signing_key, KEY_ROTATION_TYPE, data),
        box_proof=box_proof(new.encryption_key, statement.server_box, data),
    )


def _check_context(statement: RotationStatement, challenge: RotationChallenge) -> None:
    expected = (challenge.origin, challenge.liaison, challenge.challenge, challenge.nonce,
                challenge.server_box)
    got = (statement.origin, statement.liaison, statement.challenge, statement.nonce,
           statement.server_box)
    names = ("origin", "liaison", "challenge", "nonce", "server_box")
    for name, want, have in zip(names, expected, got, strict=True):
        if want != have:
            raise ChallengeMismatch(f"the statement's {name} is not the challenge's")


def verify_rotation(signed: SignedRotation, current: LiaisonPublicKeys,
                    challenge: RotationChallenge) -> RotationStatement:
    """Verify a rotation against the current public keys and the server's challenge.

    In order, failing closed: the current key's signature over the exact
    bytes (:class:`BadSignature`), before anything is parsed; strict parsing
    (:class:`FormatError`); the statement names ``current``
    (:class:`BadSignature`) and this challenge (:class:`ChallengeMismatch`);
    the new signing key's signature and the X25519 proof
    (:class:`BadKeyProof`). Returns the parsed statement.
    """
    verify_signature(current.signing, KEY_ROTATION_TYPE, signed.statement, signed.signature)
    statement = RotationStatement.from_bytes(signed.statement)
    if statement.old_key_id != current.key_id:
        raise BadSignature("the statement names a different current key set")
    _check_context(statement, challenge)
    try:
        verify_signature(statement.new_keys.signing, KEY_ROTATION_TYPE, signed.statement,
                         signed.new_key_signature)
    except BadSignature as exc:
        raise BadKeyProof("signing", "no proof of possession of the new signing key") from exc
    check_box_proof(challenge.server_box_secret, statement.new_keys.encryption,
                    signed.statement, signed.box_proof)
    return statement
