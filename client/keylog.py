"""Self-monitoring over the whole key log: the directory's answer about us is complete.

docs/protocol.md §11.8. The directory answers "the key entries of liaison X"
from the server's own index, so it could hide an entry from X while showing
it to X's correspondents. Every checkpoint carries the key log, one short
leaf (liaison, ledger index, ledger leaf hash) per key entry of the whole
ledger (:mod:`ledger.format.keylog`). At each self-check a client:

1. scans every leaf since its last scan (from 0 on a new profile), extending
   the frontier it keeps, and checks the leaves reproduce the key root of the
   checkpoint its directory answer was proven in: it saw *every* key entry,
   and the key log extends the one it scanned before;
2. keeps the leaves under its own liaison (ledger index and leaf hash);
3. requires each of them among the entries the directory proved to it (so
   the chain check of :func:`client.transparency.self_check` judged them).
   One missing is a key entry under its name that the server hid from it:
   :class:`~client.keychain.KeyNotProven` ``hidden-key-entry``.

The scan state lives in ``<profile>/key-log-scan.json`` (0600).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from client.errors import ProfileError, ProtocolError
from client.keychain import KeyNotProven
from client.profile import Profile
from ledger import (
    Checkpoint,
    Entry,
    KeyLogFrontier,
    KeyLogHead,
    LedgerError,
    decode_key_leaf,
    leaf_hash,
)

SCAN_VERSION = 1


@dataclass
class KeyLogScan:
    """How far a liaison's client scanned the key log, and the leaves under its name."""

    liaison_id: str
    size: int = 0
    frontier: list[bytes] = field(default_factory=list)
    own: dict[int, bytes] = field(default_factory=dict)
    """Ledger index -> ledger leaf hash of every leaf under this liaison."""

    def to_json(self) -> dict[str, Any]:
        """The stored form (hashes in lowercase hex)."""
        return {"v": SCAN_VERSION, "liaison": self.liaison_id, "size": self.size,
                "frontier": [h.hex() for h in self.frontier],
                "own": {str(i): h.hex() for i, h in sorted(self.own.items())}}

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> KeyLogScan:
        """Parse the stored form; a damaged one is a :class:`ProfileError`."""
        try:
            if obj["v"] != SCAN_VERSION or not isinstance(obj["size"], int):
                raise ValueError("version or size")
            scan = cls(str(obj["liaison"]), obj["size"],
                       [bytes.fromhex(h) for h in obj["frontier"]],
                       {int(i): bytes.fromhex(h) for i, h in obj["own"].items()})
            KeyLogFrontier(scan.size, scan.frontier)  # the right number of hashes
            return scan
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ProfileError(f"the stored key-log scan is damaged ({exc})") from exc


class ScanStore(Protocol):
    """Keeps a :class:`KeyLogScan` between self-checks."""

    def load(self) -> KeyLogScan | None:
        """The stored scan, if any."""

    def save(self, scan: KeyLogScan) -> None:
        """Keep ``scan``."""


class MemoryScans:
    """A :class:`ScanStore` in memory (tests, benchmarks)."""

    def __init__(self, scan: KeyLogScan | None = None) -> None:
        """Start from ``scan``, if given."""
        self.scan = scan

    def load(self) -> KeyLogScan | None:
        """The stored scan, if any."""
        return self.scan

    def save(self, scan: KeyLogScan) -> None:
        """Keep ``scan``."""
        self.scan = scan


class ProfileScans:
    """A :class:`ScanStore` in ``<profile>/key-log-scan.json`` (0600)."""

    def __init__(self, profile: Profile) -> None:
        """Store in ``profile``."""
        self._profile = profile
        self._path = profile.path / "key-log-scan.json"

    def load(self) -> KeyLogScan | None:
        """The stored scan, if any."""
        data = self._profile.read_json(self._path)
        return None if data is None else KeyLogScan.from_json(data)

    def save(self, scan: KeyLogScan) -> None:
        """Keep ``scan``."""
        self._profile.write_json(self._path, scan.to_json())


class LeafSource(Protocol):
    """Where leaves come from (``client.transparency.DirectoryAPI``)."""

    def key_leaves(self, start: int) -> Any:
        """A page with ``start`` and ``leaves`` (leaf bytes)."""


def scan_key_log(source: LeafSource, store: ScanStore, liaison_id: str,
                 checkpoint: Checkpoint, head: KeyLogHead) -> KeyLogScan:
    """Scan the key log up to ``head`` (carried by ``checkpoint``) from the last scan; keep it.

    Raises :class:`KeyNotProven` ``key-log-fork`` if the scanned leaves do
    not make ``head`` (a leaf hidden from the scan, or a key log rewritten
    since the last scan), ``key-log-rollback`` if ``head`` is smaller than
    what was scanned before.
    """
    scan = store.load()
    if scan is None or scan.liaison_id != liaison_id:
        scan = KeyLogScan(liaison_id)
    if head.size < scan.size:
        raise KeyNotProven("key-log-rollback", f"checkpoint {checkpoint.size} carries a key log "
                           f"of {head.size} leaves; this profile scanned {scan.size} before")
    tree, own = KeyLogFrontier(scan.size, scan.frontier), dict(scan.own)
    # Only leaves under our own id are decoded: the others are hashed, and
    # the key root proves them; a leaf is 41 bytes and the id, so its tail
    # names the liaison (ledger.format.keylog).
    ident = liaison_id.encode("utf-8")
    if not 0 < len(ident) <= 255:  # no key entry can name it (ledger.format.keylog)
        raise ProfileError(f"the liaison id {liaison_id!r} cannot appear in the key log")
    mine = bytes([len(ident)]) + ident
    while tree.size < head.size:
        page = source.key_leaves(tree.size)
        leaves = list(page.leaves)[:head.size - tree.size]
        if page.start != tree.size or not leaves:
            raise ProtocolError(f"the server did not serve key-log leaves from {tree.size}")
        if any(len(raw) < 42 or raw[40] != len(raw) - 41 for raw in leaves):
            raise ProtocolError(f"a key-log leaf from {tree.size} is malformed")
        for raw in leaves:
            if raw[40:] == mine:
                leaf = decode_key_leaf(raw)
                own[leaf.ledger_index] = leaf.ledger_leaf_hash
        tree.extend(map(leaf_hash, leaves))
    try:
        tree.check(head)
    except LedgerError as exc:
        raise KeyNotProven("key-log-fork", f"the key-log leaves scanned do not make the key "
                           f"log of checkpoint {checkpoint.size}: it was rewritten since this "
                           f"profile's last scan, or leaves were withheld ({exc})") from exc
    done = KeyLogScan(liaison_id, tree.size, tree.hashes, own)
    store.save(done)
    return done


def check_complete(scan: KeyLogScan, entries: list[Entry], checkpoint: Checkpoint) -> None:
    """Raise ``hidden-key-entry`` for a leaf under our name the directory did not prove to us."""
    shown = {entry.index: entry.leaf_hash for entry in entries}
    for index, hashed in sorted(scan.own.items()):
        if index >= checkpoint.size:
            continue
        if shown.get(index) != hashed:
            raise KeyNotProven("hidden-key-entry", f"the key log of checkpoint "
                               f"{checkpoint.size} lists ledger entry {index} as a key entry "
                               f"under {scan.liaison_id}, but the directory did not show it to "
                               "this profile: the server hides a key entry in your name from "
                               "you (it may register a key you do not hold)", index)
