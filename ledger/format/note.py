"""C2SP signed notes, checkpoints and witness cosignatures (Ed25519 only).

- C2SP ``signed-note``: a UTF-8 text ending in a newline, a blank line, then
  signature lines ``— <key name> base64(key id || signature)``; the key id is
  ``SHA-256(name || 0x0A || type || public key)[:4]``, type 0x01 for Ed25519.
  Verifier keys are written ``<name>+<hex key id>+<base64(type || public key)>``.
- C2SP ``tlog-checkpoint``: the note text is ``origin``, tree size (decimal, no
  leading zeros), root hash (base64), then optional non-empty extension lines.
- C2SP ``tlog-cosignature`` v1: type 0x04, the signature is
  ``u64 timestamp || Ed25519(cosignature/v1\\ntime <ts>\\n<checkpoint body>)``.

Following the signed-note spec, signatures by unknown keys are ignored, a
known key whose signature fails rejects the note, and a note with no valid
signature from the expected key is rejected.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import struct
from collections.abc import Sequence
from dataclasses import dataclass

from nacl.exceptions import BadSignatureError
from nacl.signing import SigningKey, VerifyKey

from ledger.errors import NoteFormatError, SignatureError

ALG_ED25519 = 0x01
ALG_COSIGNATURE_V1 = 0x04
MAX_SIGNATURES = 100  # signed-note: verifiers MUST accept at least 16
MAX_TREE_SIZE = 2**63 - 1
_DASH = "\u2014 "
_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f]")
_NAME = re.compile(r"[^\s+]+")  # non-empty, no Unicode space, no '+'
_SIZE = re.compile(r"0|[1-9][0-9]{0,18}")


def key_id(name: str, alg_and_pubkey: bytes) -> bytes:
    """C2SP signed-note key id: SHA-256(name || 0x0A || type || public key)[:4]."""
    return hashlib.sha256(name.encode("utf-8") + b"\n" + alg_and_pubkey).digest()[:4]


def b64decode(text: str, what: str) -> bytes:
    """Strict standard base64 (RFC 4648 §4): canonical padding, no other characters."""
    try:
        data = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError) as exc:
        raise NoteFormatError(f"{what} is not base64") from exc
    if base64.b64encode(data).decode("ascii") != text:
        raise NoteFormatError(f"{what} is not canonical base64")
    return data


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _check_name(name: str) -> None:
    if not _NAME.fullmatch(name):
        raise NoteFormatError(f"key name {name!r} is empty or has a space or '+'")


@dataclass(frozen=True)
class NoteSignature:
    """One signature line: key name, 4-byte key id, signature bytes (after the key id)."""

    name: str
    key_id: bytes
    sig: bytes


@dataclass(frozen=True)
class Note:
    """A parsed signed note: its text (with the final newline) and signature lines."""

    text_body: str
    signatures: tuple[NoteSignature, ...]


def _signature_line(line: str) -> NoteSignature:
    if not line.startswith(_DASH):
        raise NoteFormatError("signature line does not start with an em dash and a space")
    name, sep, encoded = line[len(_DASH):].partition(" ")
    if not sep:
        raise NoteFormatError("signature line has no signature")
    _check_name(name)
    blob = b64decode(encoded, "signature")
    if len(blob) < 5:
        raise NoteFormatError("signature is shorter than a key id and one byte")
    return NoteSignature(name=name, key_id=blob[:4], sig=blob[4:])


def parse_note(text: str) -> Note:
    """Split a signed note into text and signatures (C2SP signed-note "Format")."""
    if _CONTROL.search(text):
        raise NoteFormatError("note holds a control character other than newline")
    split = text.rfind("\n\n")
    if split < 0 or not text.endswith("\n"):
        raise NoteFormatError("note has no blank line before its signatures")
    lines = text[split + 2:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise NoteFormatError(f"note has more than {MAX_SIGNATURES} signatures")
    return Note(text_body=text[:split + 1],
                signatures=tuple(_signature_line(line) for line in lines))


def _check_text(text: str) -> None:
    if not text.endswith("\n") or _CONTROL.search(text):
        raise NoteFormatError("note text must end in a newline and hold no control characters")


class NoteSigner:
    """Signs note texts with an Ed25519 key under a key name (signature type 0x01)."""

    def __init__(self, name: str, signing_key: SigningKey) -> None:
        """Sign as ``name`` with ``signing_key``."""
        _check_name(name)
        self.name = name
        self._key = signing_key
        self.public_key = bytes(signing_key.verify_key)
        self.key_id = key_id(name, bytes([ALG_ED25519]) + self.public_key)

    def verifier_key(self) -> str:
        """The C2SP verifier key string ``<name>+<hex key id>+<base64(0x01 || key)>``."""
        return f"{self.name}+{self.key_id.hex()}+{_b64(bytes([ALG_ED25519]) + self.public_key)}"

    def sign_line(self, text: str) -> str:
        """The signature line for ``text``, ending in a newline."""
        _check_text(text)
        sig = self._key.sign(text.encode("utf-8")).signature
        return f"{_DASH}{self.name} {_b64(self.key_id + sig)}\n"


class NoteVerifier:
    """A trusted public key, as published in a C2SP verifier key string."""

    def __init__(self, name: str, alg: int, public_key: bytes) -> None:
        """Trust ``public_key`` of signature type ``alg`` (0x01 or 0x04) under ``name``."""
        _check_name(name)
        if alg not in (ALG_ED25519, ALG_COSIGNATURE_V1) or len(public_key) != 32:
            raise NoteFormatError("only Ed25519 keys (types 0x01 and 0x04) are supported")
        self.name = name
        self.alg = alg
        self.public_key = public_key
        self.key_id = key_id(name, bytes([alg]) + public_key)
        self._key = VerifyKey(public_key)

    @classmethod
    def from_string(cls, vkey: str) -> NoteVerifier:
        """Parse ``<name>+<hex key id>+<base64(type || public key)>``; the id must match."""
        parts = vkey.split("+", 2)  # base64 may itself hold "+"
        if len(parts) != 3 or not re.fullmatch(r"[0-9a-f]{8}", parts[1]):
            raise NoteFormatError("verifier key is not <name>+<8 hex digits>+<base64 key>")
        blob = b64decode(parts[2], "verifier key")
        if not blob:
            raise NoteFormatError("verifier key has no key material")
        verifier = cls(parts[0], blob[0], blob[1:])
        if verifier.key_id.hex() != parts[1]:
            raise NoteFormatError("verifier key id does not match its name and key")
        return verifier

    def __str__(self) -> str:
        """The verifier key string."""
        return f"{self.name}+{self.key_id.hex()}+{_b64(bytes([self.alg]) + self.public_key)}"

    def verify_message(self, message: bytes, sig: bytes) -> None:
        """Check a raw Ed25519 signature over ``message``; raise :class:`SignatureError`."""
        try:
            self._key.verify(message, sig)
        except (BadSignatureError, ValueError) as exc:
            raise SignatureError(f"invalid signature by {self.name}") from exc

    def verify(self, text: str, sig: bytes) -> None:
        """Check a note signature (type 0x01) over ``text``; raise :class:`SignatureError`."""
        if self.alg != ALG_ED25519:
            raise SignatureError(f"{self.name} is a cosigner key; use verify_cosignature")
        self.verify_message(text.encode("utf-8"), sig)

    def matches(self, signature: NoteSignature) -> bool:
        """Whether a signature line claims to be by this key (same name and key id)."""
        return signature.name == self.name and signature.key_id == self.key_id


@dataclass(frozen=True)
class Checkpoint:
    """A C2SP tlog-checkpoint: origin, tree size, RFC 9162 root hash, extension lines."""

    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()

    def body(self) -> str:
        """The checkpoint note text, every line ending in a newline."""
        lines = [self.origin, str(self.size), _b64(self.root), *self.extensions]
        return "".join(line + "\n" for line in lines)


def parse_checkpoint_body(body: str) -> Checkpoint:
    """Parse a checkpoint note text strictly (C2SP tlog-checkpoint "Note text")."""
    if not body.endswith("\n"):
        raise NoteFormatError("checkpoint does not end in a newline")
    lines = body[:-1].split("\n")
    if len(lines) < 3 or not all(lines):
        raise NoteFormatError("checkpoint needs at least three lines, none empty")
    origin, size, root = lines[0], lines[1], lines[2]
    if _CONTROL.search(body):
        raise NoteFormatError("checkpoint holds a control character")
    if not _SIZE.fullmatch(size) or int(size) > MAX_TREE_SIZE:
        raise NoteFormatError(f"tree size {size!r} is not a decimal without leading zeros")
    root_hash = b64decode(root, "root hash")
    if len(root_hash) != 32:
        raise NoteFormatError("root hash is not 32 bytes")
    return Checkpoint(origin, int(size), root_hash, tuple(lines[3:]))


def sign_checkpoint(checkpoint: Checkpoint, signer: NoteSigner) -> str:
    """The full signed note of ``checkpoint``; the signer's key name must be its origin."""
    if checkpoint.origin != signer.name:
        raise ValueError(f"origin {checkpoint.origin!r} is not the key name {signer.name!r}")
    body = checkpoint.body()
    parse_checkpoint_body(body)
    return body + "\n" + signer.sign_line(body)


def verify_note(note: str, verifier: NoteVerifier) -> Note:
    """Verify ``note`` carries a valid signature by ``verifier``; return it parsed."""
    parsed = parse_note(note)
    mine = [s for s in parsed.signatures if verifier.matches(s)]
    if not mine:
        raise SignatureError(f"note is not signed by {verifier.name}+{verifier.key_id.hex()}")
    for signature in mine:
        verifier.verify(parsed.text_body, signature.sig)
    return parsed


def open_checkpoint(note: str, verifier: NoteVerifier) -> Checkpoint:
    """Verify the log's signature on a checkpoint note and return the checkpoint."""
    checkpoint = parse_checkpoint_body(verify_note(note, verifier).text_body)
    if checkpoint.origin != verifier.name:
        raise SignatureError(f"checkpoint origin {checkpoint.origin!r} is not {verifier.name!r}")
    return checkpoint


def add_signature_lines(note: str, lines: Sequence[str]) -> str:
    """Append signature lines (e.g. cosignatures) to a signed note, skipping duplicates."""
    parse_note(note)
    out = note
    present = set(note.split("\n"))
    for line in lines:
        bare = line.removesuffix("\n")
        _signature_line(bare)
        if bare not in present:
            out += bare + "\n"
            present.add(bare)
    parse_note(out)
    return out


def _cosigned_message(checkpoint: Checkpoint, timestamp: int) -> bytes:
    # C2SP tlog-cosignature "Ed25519 signed message".
    return f"cosignature/v1\ntime {timestamp}\n{checkpoint.body()}".encode()


class CosignatureSigner:
    """A witness key producing C2SP tlog-cosignature v1 lines (signature type 0x04)."""

    def __init__(self, name: str, signing_key: SigningKey) -> None:
        """Cosign as ``name`` with ``signing_key``."""
        _check_name(name)
        self.name = name
        self._key = signing_key
        self.public_key = bytes(signing_key.verify_key)
        self.key_id = key_id(name, bytes([ALG_COSIGNATURE_V1]) + self.public_key)

    def verifier_key(self) -> str:
        """The verifier key string ``<name>+<hex key id>+<base64(0x04 || key)>``."""
        blob = bytes([ALG_COSIGNATURE_V1]) + self.public_key
        return f"{self.name}+{self.key_id.hex()}+{_b64(blob)}"

    def cosign(self, checkpoint: Checkpoint, timestamp: int) -> str:
        """The cosignature line for ``checkpoint`` at POSIX ``timestamp``, ending in a newline."""
        if not 0 <= timestamp <= MAX_TREE_SIZE:
            raise ValueError("timestamp must be in [0, 2**63 - 1]")
        sig = self._key.sign(_cosigned_message(checkpoint, timestamp)).signature
        blob = self.key_id + struct.pack(">Q", timestamp) + sig
        return f"{_DASH}{self.name} {_b64(blob)}\n"


def verify_cosignature(checkpoint: Checkpoint, line: str, verifier: NoteVerifier) -> int:
    """Verify a cosignature line by ``verifier`` (type 0x04) on ``checkpoint``; return its time."""
    if verifier.alg != ALG_COSIGNATURE_V1:
        raise SignatureError(f"{verifier.name} is not a cosignature (type 0x04) key")
    signature = _signature_line(line.removesuffix("\n"))
    if not verifier.matches(signature):
        raise SignatureError(f"cosignature is not by {verifier.name}+{verifier.key_id.hex()}")
    if len(signature.sig) != 8 + 64:
        raise NoteFormatError("cosignature is not a timestamp and an Ed25519 signature")
    (timestamp,) = struct.unpack(">Q", signature.sig[:8])
    if timestamp > MAX_TREE_SIZE:
        raise NoteFormatError("cosignature timestamp exceeds 2**63 - 1")
    verifier.verify_message(_cosigned_message(checkpoint, timestamp), signature.sig[8:])
    return int(timestamp)
