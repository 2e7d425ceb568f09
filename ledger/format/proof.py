"""Verification of RFC 9162 proofs, and the C2SP ``tlog-proof`` text format.

Each verifier checks its preconditions before hashing (sizes in range, the
proof exactly as long as the tree shape requires, every hash 32 bytes) and
raises :class:`~ledger.errors.InclusionProofError` /
:class:`~ledger.errors.ConsistencyProofError` when they fail, or
:class:`~ledger.errors.RootMismatchError` when the recomputed root differs.
Roots given by the caller are compared, not length-checked: a root of the
wrong length can never equal a computed one (this is what the
transparency-dev probes expect for equal sizes).
"""

from __future__ import annotations

import base64
import re
from collections.abc import Sequence
from dataclasses import dataclass

from ledger.errors import (
    ConsistencyProofError,
    InclusionProofError,
    NoteFormatError,
    RootMismatchError,
)
from ledger.format.merkle import HASH_SIZE, leaf_hash, node_hash
from ledger.format.note import Checkpoint, NoteVerifier, b64decode, open_checkpoint

TLOG_PROOF_HEADER = "c2sp.org/tlog-proof@v1"


def _inclusion_length(index: int, size: int) -> int:
    # The path climbs through the levels where index and the last leaf differ
    # ("inner"), then through the left siblings on the right border.
    inner = (index ^ (size - 1)).bit_length()
    return inner + (index >> inner).bit_count()


def _check_hashes(hashes: Sequence[bytes], error: type[Exception]) -> None:
    for i, item in enumerate(hashes):
        if len(item) != HASH_SIZE:
            raise error(f"proof element {i} is {len(item)} bytes, not {HASH_SIZE}")


def root_from_inclusion(leaf: bytes, index: int, size: int, proof: Sequence[bytes]) -> bytes:
    """The root implied by an inclusion proof (RFC 9162 §2.1.3.2), preconditions checked."""
    if not 0 <= index < size:
        raise InclusionProofError(f"index {index} is not in a tree of size {size}")
    if len(leaf) != HASH_SIZE:
        raise InclusionProofError(f"leaf hash is {len(leaf)} bytes, not {HASH_SIZE}")
    want = _inclusion_length(index, size)
    if len(proof) != want:
        raise InclusionProofError(f"proof has {len(proof)} hashes, the tree shape needs {want}")
    _check_hashes(proof, InclusionProofError)
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = node_hash(r, p)
        fn, sn = fn >> 1, sn >> 1
    return r


def verify_inclusion(leaf: bytes, index: int, size: int, proof: Sequence[bytes],
                     *, root: bytes) -> None:
    """Check that ``leaf`` (a leaf hash) is at ``index`` in the tree of ``size`` with ``root``."""
    computed = root_from_inclusion(leaf, index, size, proof)
    if computed != root:
        raise RootMismatchError(root, computed)


def _consistency_length(old_size: int, new_size: int) -> int:
    # RFC 9162 §2.1.4.1: the path of leaf old_size - 1 above the largest
    # perfect subtree ending at old_size, plus that subtree's root unless it
    # is the whole old tree (old_size a power of two).
    shift = (old_size & -old_size).bit_length() - 1
    full = _inclusion_length(old_size - 1, new_size) - shift
    return full if old_size == 1 << shift else full + 1


def verify_consistency(old_size: int, new_size: int, old_root: bytes, new_root: bytes,
                       *, proof: Sequence[bytes]) -> None:
    """Check that the tree (old_size, old_root) is a prefix of (new_size, new_root).

    RFC 9162 §2.1.4.2. Consistency from size 0 is refused as meaningless; for
    equal sizes the proof must be empty and the roots equal.
    """
    if not 0 < old_size <= new_size:
        raise ConsistencyProofError(f"no consistency between sizes {old_size} and {new_size}")
    if old_size == new_size:
        if proof:
            raise ConsistencyProofError("equal sizes need an empty proof")
        if old_root != new_root:
            raise RootMismatchError(old_root, new_root)
        return
    want = _consistency_length(old_size, new_size)
    if len(proof) != want:
        raise ConsistencyProofError(f"proof has {len(proof)} hashes, the tree shape needs {want}")
    _check_hashes(proof, ConsistencyProofError)
    path = list(proof)
    if old_size & (old_size - 1) == 0:
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = path[0]
    for c in path[1:]:
        if fn & 1 or fn == sn:
            fr, sr = node_hash(c, fr), node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            sr = node_hash(sr, c)
        fn, sn = fn >> 1, sn >> 1
    if fr != old_root:
        raise RootMismatchError(old_root, fr)
    if sr != new_root:
        raise RootMismatchError(new_root, sr)


@dataclass(frozen=True)
class TlogProof:
    """A C2SP tlog-proof: entry index, inclusion path, signed checkpoint note, extra data."""

    index: int
    proof: tuple[bytes, ...]
    note: str
    extra: bytes | None = None

    def text(self) -> str:
        """The tlog-proof text (C2SP tlog-proof "Format")."""
        lines = [TLOG_PROOF_HEADER]
        if self.extra is not None:
            lines.append("extra " + base64.b64encode(self.extra).decode("ascii"))
        lines.append(f"index {self.index}")
        lines.extend(base64.b64encode(h).decode("ascii") for h in self.proof)
        return "\n".join(lines) + "\n\n" + self.note


def parse_tlog_proof(text: str) -> TlogProof:
    """Parse a C2SP tlog-proof strictly (the checkpoint note is not verified here)."""
    head, sep, note = text.partition("\n\n")
    lines = head.split("\n")
    if not sep or lines[0] != TLOG_PROOF_HEADER or len(lines) < 2:
        raise NoteFormatError("not a c2sp.org/tlog-proof@v1")
    extra = None
    if lines[1].startswith("extra "):
        extra = b64decode(lines[1][len("extra "):], "extra data")
        lines = lines[1:]
    match = re.fullmatch(r"index (0|[1-9][0-9]{0,18})", lines[1])
    if match is None:
        raise NoteFormatError("tlog-proof has no valid index line")
    hashes = tuple(b64decode(line, "proof hash") for line in lines[2:])
    return TlogProof(int(match[1]), hashes, note, extra)


def verify_tlog_proof(text: str, entry: bytes, verifier: NoteVerifier) -> Checkpoint:
    """Verify a tlog-proof of ``entry`` under the log key; return the signed checkpoint."""
    parsed = parse_tlog_proof(text)
    checkpoint = open_checkpoint(parsed.note, verifier)
    verify_inclusion(leaf_hash(entry), parsed.index, checkpoint.size, parsed.proof,
                     root=checkpoint.root)
    return checkpoint
