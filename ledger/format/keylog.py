"""The key log: a second RFC 9162 tree over the ledger's key entries (docs/protocol.md §11.7).

Key transparency needs the directory's answer to be *complete*: a client
watching its own liaison must see every key entry under its name, not only
those the server's per-liaison index chooses to show. The key log makes
that cheap to check. It is a deterministic function of the ledger: one leaf
per key entry (:data:`KEY_ACTIONS` about a liaison), in ledger order, each
a few tens of bytes::

    u64 big-endian ledger index || ledger leaf hash (32 bytes)
        || u8 length || liaison id (UTF-8)

so a client scans every leaf and fetches full entries for its own liaison
only. The leaf starts with the index's high byte (0x00 below 2**56) and a
ledger entry with ``{``: neither can pass for the other. Leaves are hashed
as in the ledger (RFC 9162 §2.1.1) by :mod:`ledger.format.merkle`.

Every checkpoint carries the key log's size and root as a C2SP
tlog-checkpoint extension line, ``cadena-key-log <size> <base64 root>``,
so the log's signature and the witnesses' cosignatures cover it.
"""

from __future__ import annotations

import base64
import json
import re
import struct
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from ledger.errors import (
    EntryFormatError,
    NoteFormatError,
    RootMismatchError,
    VerificationError,
)
from ledger.format.merkle import EMPTY_ROOT, HASH_SIZE, Node, TreeBuilder, frontier, leaf_hash
from ledger.format.note import MAX_TREE_SIZE, Checkpoint, b64decode

KEY_ACTIONS = frozenset({"liaison.enrol", "key.rotate", "key.replace", "key.revoke"})
"""Every action that registers, replaces or ends a liaison's key set."""
EXTENSION = "cadena-key-log"
"""The first word of the checkpoint extension line."""
MAX_LIAISON_ID = 255
_LINE = re.compile(r"cadena-key-log (0|[1-9][0-9]{0,18}) ([A-Za-z0-9+/]{43}=)")
# A cheap filter before parsing: compact JSON with sorted keys writes the
# action as exactly one of these byte strings (a nested "action" key would
# match too; the parse below decides).
_ACTION_BYTES = tuple(f'"action":"{a}"'.encode() for a in sorted(KEY_ACTIONS))


@dataclass(frozen=True)
class KeyLeaf:
    """One key-log leaf: which liaison's key entry sits at which ledger index, with which hash."""

    liaison_id: str
    ledger_index: int
    ledger_leaf_hash: bytes

    def encode(self) -> bytes:
        """The leaf bytes (module docstring)."""
        ident = self.liaison_id.encode("utf-8")
        return struct.pack(">Q", self.ledger_index) + self.ledger_leaf_hash + \
            bytes([len(ident)]) + ident

    def hash(self) -> bytes:
        """The RFC 9162 leaf hash of :meth:`encode` in the key tree."""
        return leaf_hash(self.encode())


def decode_key_leaf(data: bytes) -> KeyLeaf:
    """Parse leaf bytes strictly; :class:`EntryFormatError` if they are not one leaf."""
    if len(data) < 8 + HASH_SIZE + 2 or data[8 + HASH_SIZE] != len(data) - 9 - HASH_SIZE:
        raise EntryFormatError("key-log leaf has the wrong length")
    (index,) = struct.unpack(">Q", data[:8])
    if index > MAX_TREE_SIZE:
        raise EntryFormatError("key-log leaf index exceeds 2**63 - 1")
    try:
        ident = data[9 + HASH_SIZE:].decode("utf-8")
    except UnicodeDecodeError as exc:
        raise EntryFormatError("key-log leaf liaison id is not UTF-8") from exc
    return KeyLeaf(ident, index, data[8:8 + HASH_SIZE])


def key_leaf_of(index: int, entry: bytes, parsed: Mapping[str, object] | None = None
                ) -> KeyLeaf | None:
    """The key-log leaf of ledger entry ``index`` (its exact bytes), or ``None`` if not a key entry.

    A key entry: a top-level ``action`` in :data:`KEY_ACTIONS` and a
    ``subject`` of type ``liaison`` with a string id of 1 to 255 UTF-8
    bytes, whatever the outcome (a refused rotation is in the log too).
    ``parsed``: the entry's JSON object, if the caller has it.
    """
    if parsed is None:
        if not any(needle in entry for needle in _ACTION_BYTES):
            return None
        try:
            parsed = json.loads(entry)
        except ValueError:
            return None
    if not isinstance(parsed, Mapping) or parsed.get("action") not in KEY_ACTIONS:
        return None
    subject = parsed.get("subject")
    if not isinstance(subject, Mapping) or subject.get("type") != "liaison":
        return None
    ident = subject.get("id")
    if not isinstance(ident, str) or not 0 < len(ident.encode("utf-8")) <= MAX_LIAISON_ID:
        return None
    return KeyLeaf(ident, index, leaf_hash(entry))


def key_leaves(first: int, entries: Iterable[bytes]) -> list[KeyLeaf]:
    """The key-log leaves of the entries ``first, first + 1, ...``, in ledger order."""
    return [leaf for leaf in (key_leaf_of(i, raw) for i, raw in enumerate(entries, first))
            if leaf is not None]


def extension_line(size: int, root: bytes) -> str:
    """The checkpoint extension line carrying the key log's size and root."""
    if not 0 <= size <= MAX_TREE_SIZE or len(root) != HASH_SIZE:
        raise ValueError("key-log size or root out of range")
    return f"{EXTENSION} {size} {base64.b64encode(root).decode('ascii')}"


@dataclass(frozen=True)
class KeyLogHead:
    """The key log's size and root as a checkpoint carries them."""

    size: int
    root: bytes


def key_log_head(checkpoint: Checkpoint) -> KeyLogHead | None:
    """The key log ``checkpoint`` carries: ``None`` without the line; malformed or twice raises."""
    lines = [x for x in checkpoint.extensions if x.split(" ", 1)[0] == EXTENSION]
    if not lines:
        return None
    if len(lines) > 1:
        raise NoteFormatError("checkpoint carries the key-log line twice")
    match = _LINE.fullmatch(lines[0])
    if match is None or int(match.group(1)) > MAX_TREE_SIZE:
        raise NoteFormatError(f"malformed key-log line {lines[0]!r}")
    return KeyLogHead(int(match.group(1)), b64decode(match.group(2), "key-log root"))


class KeyLogFrontier:
    """The right edge of a key tree: enough to extend it with scanned leaves and check its root.

    A client keeps one between logins (``size`` and :attr:`hashes`, the
    :func:`~ledger.format.merkle.frontier` nodes' hashes in order): the
    leaves it scans next, appended, must reproduce the next checkpoint's key
    root, which proves both that it saw every leaf and that the new key log
    extends the old one.
    """

    def __init__(self, size: int = 0, hashes: Sequence[bytes] = ()) -> None:
        """Start from a tree of ``size`` leaves with these frontier hashes."""
        keys = frontier(size)
        if len(keys) != len(hashes) or any(len(h) != HASH_SIZE for h in hashes):
            raise ValueError(f"a key tree of {size} leaves has {len(keys)} frontier hashes")
        self._builder = TreeBuilder(size, dict(zip(keys, hashes, strict=True)))
        self._created: dict[Node, bytes] = dict(zip(keys, hashes, strict=True))

    @property
    def size(self) -> int:
        """How many leaves the tree has."""
        return self._builder.size

    @property
    def hashes(self) -> list[bytes]:
        """The frontier hashes to store (the perfect subtrees of :func:`frontier`)."""
        return [self._created[key] for key in frontier(self.size)]

    def extend(self, leaf_hashes: Iterable[bytes]) -> list[tuple[Node, bytes]]:
        """Append leaf hashes; return the perfect nodes completed (what a store keeps)."""
        created = self._builder.extend(leaf_hashes)
        self._created.update(created)
        keep = set(frontier(self.size))
        self._created = {k: v for k, v in self._created.items() if k in keep}
        return created

    def root(self) -> bytes:
        """The RFC 9162 root of the tree so far."""
        return self._builder.root() if self.size else EMPTY_ROOT

    def check(self, head: KeyLogHead) -> None:
        """Raise :class:`VerificationError` unless this tree is ``head`` (size and root)."""
        if self.size != head.size:
            raise VerificationError(f"the key tree has {self.size} leaves, the checkpoint's "
                                    f"key log {head.size}")
        if self.root() != head.root:
            raise RootMismatchError(head.root, self.root())
