"""An independent C2SP tlog-proof check, written from the specs, sharing no code with ``ledger``.

A second implementation that a court could write itself: if the project's
verifier and this one ever disagree, one of them misreads the specs.

- C2SP signed-note: text ending in a newline, an empty line, then signature
  lines ``— <name> <base64(key id(4) || signature)>``; a verifier key is
  ``<name>+<hex key id>+<base64(type || public key)>``, key id =
  SHA-256(name || 0x0A || type || public key)[:4]; type 0x01 is Ed25519 over
  the note text;
- C2SP tlog-cosignature: type 0x04, signature = key id || u64 big-endian
  timestamp || Ed25519 over ``cosignature/v1\\ntime <ts>\\n<note text>``;
- C2SP tlog-checkpoint: text lines origin, decimal size, base64 root hash;
- C2SP tlog-proof: ``c2sp.org/tlog-proof@v1``, optional ``extra``, ``index N``,
  base64 inclusion hashes, an empty line, the signed checkpoint note;
- C2SP tlog-policy: ``log``, ``witness``, ``group <name> all|any|k ...``, ``quorum``;
- RFC 9162 §2.1.3.2: the root from a leaf, its index and its inclusion path.
"""

from __future__ import annotations

import base64
import hashlib
import struct
from dataclasses import dataclass

from nacl.exceptions import BadSignatureError
from nacl.signing import VerifyKey

DASH = "\u2014"


class ProofRejected(Exception):
    """The tlog-proof does not hold under the policy."""


@dataclass(frozen=True)
class VKey:
    """A signed-note verifier key."""

    name: str
    key_id: bytes
    kind: int
    public: bytes


def parse_vkey(text: str) -> VKey:
    """``<name>+<hex id>+<base64(type || key)>``, with the key id recomputed."""
    name, hex_id, blob = text.split("+", 2)  # a key name holds no "+"; base64 may
    raw = base64.b64decode(blob, validate=True)
    key_id = hashlib.sha256(name.encode() + b"\n" + raw).digest()[:4]
    if key_id.hex() != hex_id or len(raw) != 33:
        raise ProofRejected(f"bad verifier key {text}")
    return VKey(name, key_id, raw[0], raw[1:])


def _signatures(note: str) -> tuple[str, list[tuple[str, bytes]]]:
    cut = note.rfind("\n\n")
    text, lines = note[:cut + 1], note[cut + 2:].split("\n")
    if lines[-1] != "":
        raise ProofRejected("a signed note ends with a newline")
    found = []
    for line in lines[:-1]:
        if not line.startswith(DASH + " "):
            raise ProofRejected(f"not a signature line: {line!r}")
        name, blob = line[2:].rsplit(" ", 1)
        found.append((name, base64.b64decode(blob, validate=True)))
    return text, found


def _ed25519(public: bytes, message: bytes, signature: bytes) -> bool:
    try:
        VerifyKey(public).verify(message, signature)
    except BadSignatureError:
        return False
    return True


def signed_by(note: str, key: VKey) -> bool:
    """Whether ``key`` (type 0x01 or 0x04) has a valid signature line on the note."""
    text, signatures = _signatures(note)
    for name, blob in signatures:
        if name != key.name or blob[:4] != key.key_id:
            continue
        if key.kind == 0x01 and _ed25519(key.public, text.encode(), blob[4:]):
            return True
        if key.kind == 0x04 and len(blob) == 4 + 8 + 64:
            (stamp,) = struct.unpack(">Q", blob[4:12])
            message = f"cosignature/v1\ntime {stamp}\n".encode() + text.encode()
            if _ed25519(key.public, message, blob[12:]):
                return True
    return False


def _hash(*parts: bytes) -> bytes:
    return hashlib.sha256(b"".join(parts)).digest()


def inclusion_root(entry: bytes, index: int, size: int, path: list[bytes]) -> bytes:
    """RFC 9162 §2.1.3.2 (verifying an inclusion proof), step by step."""
    if index >= size:
        raise ProofRejected("index beyond the tree")
    fn, sn, r = index, size - 1, _hash(b"\x00", entry)
    for p in path:
        if sn == 0:
            raise ProofRejected("inclusion path too long")
        if fn & 1 or fn == sn:
            r = _hash(b"\x01", p, r)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn, sn = fn >> 1, sn >> 1
        else:
            r = _hash(b"\x01", r, p)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise ProofRejected("inclusion path too short")
    return r


@dataclass(frozen=True)
class TlogPolicy:
    """The logs, witnesses and quorum of a C2SP tlog-policy."""

    logs: list[VKey]
    witnesses: dict[str, VKey]
    groups: dict[str, tuple[int, list[str]]]
    quorum: str

    def holds(self, cosigned: set[str]) -> bool:
        """Whether the quorum is met by the witnesses named in ``cosigned``."""
        done = set(cosigned)
        for name, (k, members) in self.groups.items():  # defined in order: one pass
            if sum(m in done for m in members) >= k:
                done.add(name)
        return self.quorum == "none" or self.quorum in done


def parse_policy(text: str) -> TlogPolicy:
    """A tlog-policy text (comments and blank lines ignored)."""
    logs: list[VKey] = []
    witnesses: dict[str, VKey] = {}
    groups: dict[str, tuple[int, list[str]]] = {}
    quorum = ""
    for line in text.splitlines():
        items = line.split()
        if not items or items[0].startswith("#"):
            continue
        if items[0] == "log":
            logs.append(parse_vkey(items[1]))
        elif items[0] == "witness":
            witnesses[items[1]] = parse_vkey(items[2])
        elif items[0] == "group":
            members = items[3:]
            k = {"all": len(members), "any": 1}.get(items[2]) or int(items[2])
            groups[items[1]] = (k, members)
        elif items[0] == "quorum":
            quorum = items[1]
    return TlogPolicy(logs, witnesses, groups, quorum)


def check_tlog_proof(entry: bytes, proof: str, policy: TlogPolicy) -> None:
    """Raise :class:`ProofRejected` unless ``entry`` is proven under ``policy``."""
    head, _, note = proof.partition("\n\n")
    lines = head.split("\n")
    if lines[0] != "c2sp.org/tlog-proof@v1":
        raise ProofRejected("not a tlog-proof")
    lines = lines[1:]
    if lines[0].startswith("extra "):
        lines = lines[1:]
    if not lines[0].startswith("index "):
        raise ProofRejected("no index line")
    index = int(lines[0][len("index "):])
    path = [base64.b64decode(h, validate=True) for h in lines[1:]]
    origin, size, root = note.split("\n")[:3]
    log = next((k for k in policy.logs if k.name == origin), None)
    if log is None or not signed_by(note, log):
        raise ProofRejected(f"no log of the policy signed the checkpoint of {origin}")
    cosigned = {name for name, key in policy.witnesses.items() if signed_by(note, key)}
    if not policy.holds(cosigned):
        raise ProofRejected(f"quorum {policy.quorum} not met: cosigned by {sorted(cosigned)}")
    if inclusion_root(entry, index, int(size), path) != base64.b64decode(root):
        raise ProofRejected(f"entry {index} does not lead to the checkpoint root")
