"""Key transparency: a key is used only if the witnessed ledger proves it (DESIGN.md inv. 7).

Before the client encrypts to a liaison or verifies their signature, it
reads their key entries from the directory (``GET /v1/directory/{id}``) and
checks, failing closed with a :class:`~client.keychain.KeyNotProven` that
names why:

1. the checkpoint note is signed by the ledger key of the profile's trust
   roots (C2SP signed-note) and cosigned by a quorum of its witnesses (C2SP
   tlog-cosignature; the roots make a C2SP tlog-policy);
2. it extends the newest checkpoint this profile verified before: a smaller
   size is a rollback, an equal size with another root or a failing RFC 9162
   §2.1.4 consistency proof a fork (the server shows two views; witnesses
   that check consistency cosign only one);
3. every entry is included in that checkpoint's tree (RFC 9162 §2.1.3), and
   its key-log leaf (liaison, index, leaf hash) in the key log the checkpoint
   carries (docs/protocol.md §11.7), whose key log extends the one this
   profile saw before (a rewritten key log is refused, naming both);
4. the entries form the liaison's key chain (:mod:`client.keychain`: one
   enrolment naming the keys, each rotation signed by the key in force);
5. the key is one the chain registered (for encryption: the one in force).

Verified checkpoints and key histories are cached for the life of the
object (one command): a sender pays the proof checks once per recipient.
Then the profile's pins (:mod:`client.contacts`) follow proven rotations.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import quote

from client.contacts import ContactBook
from client.errors import NotFound, ProfileError, ProtocolError
from client.keychain import KeyHistory, KeyNotProven, key_history
from client.keylog import ScanStore, check_complete, scan_key_log
from client.models import DirectoryItem, DirectoryPage, KeyLeavesPage, parse
from client.profile import Profile
from client.session import ApiSession
from client.trust import TrustRoots
from crypto import CryptoError, LiaisonPublicKeys
from custody import cosigners
from ledger import (
    Checkpoint,
    Entry,
    KeyLeaf,
    KeyLogHead,
    LedgerError,
    key_log_head,
    leaf_hash,
    open_checkpoint,
    parse_entry,
    verify_consistency,
    verify_inclusion,
)

STATE_VERSION = 2
"""Version 1 (before the key log) is still read: it holds no key log."""
DIRECTORY_PAGE = 1000
"""The most key entries the directory returns per answer; a full answer means more follow."""


@dataclass(frozen=True)
class SeenCheckpoint:
    """The newest checkpoint a profile verified: what the next one must extend."""

    size: int
    root: bytes
    note: str
    key_log: KeyLogHead | None = None
    """The key log the checkpoint carries (``None``: a checkpoint from before it)."""

    def to_json(self) -> dict[str, Any]:
        """The stored form (roots in lowercase hex)."""
        out: dict[str, Any] = {"v": STATE_VERSION, "size": self.size, "root": self.root.hex(),
                               "note": self.note}
        if self.key_log is not None:
            out["key_size"], out["key_root"] = self.key_log.size, self.key_log.root.hex()
        return out

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> SeenCheckpoint:
        """Parse the stored form; a damaged one is a :class:`ProfileError`."""
        try:
            if obj["v"] not in (1, STATE_VERSION) or not isinstance(obj["size"], int):
                raise ValueError("version or size")
            key_log = None
            if "key_size" in obj:
                if not isinstance(obj["key_size"], int):
                    raise ValueError("key_size")
                key_log = KeyLogHead(obj["key_size"], bytes.fromhex(obj["key_root"]))
            return cls(obj["size"], bytes.fromhex(obj["root"]), str(obj["note"]), key_log)
        except (KeyError, TypeError, ValueError) as exc:
            raise ProfileError(f"the stored directory checkpoint is damaged ({exc})") from exc


class CheckpointStore(Protocol):
    """Keeps the newest verified checkpoint between commands."""

    def load(self) -> SeenCheckpoint | None:
        """The stored checkpoint, if any."""

    def save(self, seen: SeenCheckpoint) -> None:
        """Keep ``seen`` (only ever a newer one)."""


class MemoryCheckpoints:
    """A :class:`CheckpointStore` in memory (the SDK without a profile, tests, benchmarks)."""

    def __init__(self, seen: SeenCheckpoint | None = None) -> None:
        """Start from ``seen``, if given."""
        self.seen = seen

    def load(self) -> SeenCheckpoint | None:
        """The stored checkpoint, if any."""
        return self.seen

    def save(self, seen: SeenCheckpoint) -> None:
        """Keep ``seen``."""
        self.seen = seen


class ProfileCheckpoints:
    """A :class:`CheckpointStore` in ``<profile>/directory-state.json`` (0600)."""

    def __init__(self, profile: Profile) -> None:
        """Store in ``profile``."""
        self._profile = profile
        self._path = profile.path / "directory-state.json"

    def load(self) -> SeenCheckpoint | None:
        """The stored checkpoint, if any."""
        data = self._profile.read_json(self._path)
        return None if data is None else SeenCheckpoint.from_json(data)

    def save(self, seen: SeenCheckpoint) -> None:
        """Keep ``seen``."""
        self._profile.write_json(self._path, seen.to_json())


class DirectoryAPI:
    """``/v1/directory``: a liaison's key entries with their proofs (fetch only)."""

    def __init__(self, session: ApiSession) -> None:
        """Use ``session`` for every call."""
        self._s = session

    def read(self, liaison_id: str, *, start: int = 0, since: int | None = None,
             witnessed: int = 0, key_since: int | None = None) -> DirectoryPage:
        """The key entries of ``liaison_id`` from ``start``, as served (unverified).

        ``since``: a size verified before (a consistency proof from it is
        added), ``key_since`` a key-log size (likewise); ``witnessed``: ask for
        the newest checkpoint with that many cosignatures (witnesses cosign a
        moment after the log signs).
        """
        params: dict[str, int] = {"start": start, "witnessed": witnessed}
        if since is not None:
            params["since"] = since
        if key_since is not None:
            params["key_since"] = key_since
        return parse(DirectoryPage, self._s.get_json(f"/v1/directory/{quote(liaison_id, safe='')}",
                                                     params))

    def key_leaves(self, start: int) -> KeyLeavesPage:
        """Key-log leaves from ``start`` (at most the server's page), as served (unverified)."""
        return parse(KeyLeavesPage, self._s.get_json("/v1/directory/key-log/leaves",
                                                     {"start": start}))


def wait_until_proven(api: DirectoryAPI, liaison_id: str, *, entries: int = 1,
                      witnessed: int = 0, timeout: float = 30.0) -> None:
    """Wait until a signed checkpoint covers ``entries`` key entries of ``liaison_id``.

    The server signs checkpoints every few seconds; a key enrolled or rotated
    a moment ago is not yet provable (``witnessed``: in a checkpoint with that many
    cosignatures). For set-up scripts (the demo, benchmarks):
    raises :class:`ProtocolError` if ``timeout`` seconds pass first.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            if len(api.read(liaison_id, witnessed=witnessed).entries) >= entries:
                return
        except NotFound:
            pass  # no checkpoint signed yet; any other refusal will not go away by waiting
        if time.monotonic() > deadline:
            raise ProtocolError(f"no signed checkpoint proved {liaison_id}'s key entries "
                                f"within {timeout:g} s")
        time.sleep(0.2)


def _hashes(hexes: Iterable[str]) -> list[bytes]:
    try:
        out = [bytes.fromhex(h) for h in hexes]
    except ValueError as exc:
        raise ProtocolError("a proof hash is not hex") from exc
    if any(len(h) != 32 for h in out):
        raise ProtocolError("a proof hash is not 32 bytes")
    return out


def verify_checkpoint(note: str, roots: TrustRoots) -> Checkpoint:
    """Open ``note`` with the ledger key and check the witness quorum (C2SP tlog-cosignature)."""
    try:
        checkpoint = open_checkpoint(note, roots.ledger)
    except LedgerError as exc:
        raise KeyNotProven("no-checkpoint-signature", "the directory's checkpoint is not "
                           f"signed by the trusted ledger key {roots.ledger}: {exc}") from exc
    policy = roots.policy()
    try:
        names = cosigners(policy, checkpoint, note)
    except LedgerError as exc:
        raise KeyNotProven("quorum", f"a witness cosignature does not verify: {exc}") from exc
    if not policy.holds(names):
        raise KeyNotProven("quorum", f"checkpoint {checkpoint.size} is cosigned by "
                           f"{', '.join(names) or 'no trusted witness'}; the trust roots need "
                           f"{roots.quorum} of {len(roots.witnesses)}")
    return checkpoint


def check_extends(seen: SeenCheckpoint | None, checkpoint: Checkpoint,
                  proof: list[bytes] | None) -> None:
    """Raise unless ``checkpoint`` extends ``seen`` (RFC 9162 §2.1.4.2): no rollback, no fork."""
    if seen is None:
        return
    if checkpoint.size < seen.size:
        raise KeyNotProven("rollback", f"the directory shows checkpoint {checkpoint.size}, "
                           f"older than checkpoint {seen.size} this profile verified")
    if checkpoint.size == seen.size:
        if checkpoint.root != seen.root:
            raise KeyNotProven("fork", f"two signed checkpoints of size {seen.size} have "
                               "different roots: the ledger shows two views")
        return
    try:
        verify_consistency(seen.size, checkpoint.size, seen.root, checkpoint.root,
                           proof=proof or [])
    except LedgerError as exc:
        raise KeyNotProven("fork", f"checkpoint {checkpoint.size} is not consistent with "
                           f"checkpoint {seen.size} verified before: {exc}") from exc


def carried_key_log(checkpoint: Checkpoint) -> KeyLogHead:
    """The key log ``checkpoint`` carries; refused without it (its answer cannot be complete)."""
    try:
        head = key_log_head(checkpoint)
    except LedgerError as exc:
        raise KeyNotProven("no-key-log", f"checkpoint {checkpoint.size} carries a malformed "
                           f"key-log line: {exc}") from exc
    if head is None:
        raise KeyNotProven("no-key-log", f"checkpoint {checkpoint.size} carries no key log "
                           "(cadena-key-log line), so no key can be proven complete: refused")
    return head


def check_key_log_extends(seen: SeenCheckpoint | None, checkpoint: Checkpoint,
                          head: KeyLogHead, proof: list[bytes] | None) -> None:
    """Raise unless ``checkpoint``'s key log extends the one of ``seen`` (RFC 9162 §2.1.4.2).

    The key log is the server's derivation of the ledger; witnesses cosign it
    but do not recompute it. A rewritten key log would let a server show
    each client a different set of key entries: refused, naming both checkpoints.
    """
    old = seen.key_log if seen is not None else None
    if seen is None or old is None or old.size == 0:
        return
    why = ""
    if head.size < old.size:
        why = "it is smaller"
    elif head.size == old.size and head.root != old.root:
        why = "same size, another root"
    elif head.size > old.size:
        try:
            verify_consistency(old.size, head.size, old.root, head.root, proof=proof or [])
        except LedgerError as exc:
            why = str(exc)
    if why:
        raise KeyNotProven("key-log-fork", f"the key log of checkpoint {checkpoint.size} "
                           f"(size {head.size}) does not extend the key log of checkpoint "
                           f"{seen.size} (size {old.size}) this profile verified: {why}")


def proven_entries(page: DirectoryPage, checkpoint: Checkpoint,
                   head: KeyLogHead | None = None) -> list[Entry]:
    """The page's entries, each checked in ``checkpoint``'s tree (RFC 9162 §2.1.3).

    With ``head`` (the key log the checkpoint carries), each entry's key-log
    leaf under the page's liaison must be in it too.
    """
    out = []
    for item in page.entries:
        try:
            verify_inclusion(leaf_hash(item.entry), item.index, checkpoint.size,
                             _hashes(item.proof), root=checkpoint.root)
            entry = parse_entry(item.entry)
        except (LedgerError, ProtocolError) as exc:
            raise KeyNotProven("bad-inclusion", f"directory entry {item.index} is not proven "
                               f"in checkpoint {checkpoint.size}: {exc}", item.index) from exc
        if head is not None:
            _in_key_log(page.liaison_id, item, checkpoint, head)
        if entry.index != item.index:
            raise KeyNotProven("bad-inclusion", f"entry {item.index} says index {entry.index}",
                               item.index)
        out.append(entry)
    return out


def _in_key_log(liaison_id: str, item: DirectoryItem, checkpoint: Checkpoint,
                head: KeyLogHead) -> None:
    try:
        leaf = KeyLeaf(liaison_id, item.index, leaf_hash(item.entry)).hash()
        if item.key_log_index is None or item.key_log_proof is None:
            raise ProtocolError("served without a key-log leaf")
        verify_inclusion(leaf, item.key_log_index, head.size,
                         _hashes(item.key_log_proof), root=head.root)
    except (LedgerError, ProtocolError, ValueError) as exc:  # ValueError: an id of > 255 bytes
        raise KeyNotProven("not-in-key-log", f"directory entry {item.index} of {liaison_id} "
                           f"is not in the key log of checkpoint {checkpoint.size}: {exc}",
                           item.index) from exc


def _served_keys(page: DirectoryPage) -> dict[str, LiaisonPublicKeys]:
    found: dict[str, LiaisonPublicKeys] = {}
    for item in page.entries:
        if item.key is None:
            continue
        try:
            keys = LiaisonPublicKeys(signing=base64.b64decode(item.key.signing_public),
                                     encryption=base64.b64decode(item.key.encryption_public))
        except (CryptoError, ValueError):
            continue  # unusable: only the entry's own keys or digest count
        found[keys.key_id] = keys
    return found


class KeyTransparency:
    """Checks every key against the witnessed ledger, then the profile's pins.

    Implements :class:`client.resources.KeyPins`. ``warn`` is told, once,
    that a quorum of 0 means trusting the operator alone.
    """

    def __init__(self, api: DirectoryAPI, roots: TrustRoots, store: CheckpointStore, *,
                 pins: ContactBook | None = None, warn: Callable[[str], None] | None = None
                 ) -> None:
        """Check keys served by ``api`` against ``roots``; keep checkpoints in ``store``."""
        self._api, self._roots, self._store, self._pins = api, roots, store, pins
        self._notes: dict[str, tuple[Checkpoint, KeyLogHead]] = {}
        self._histories: dict[str, KeyHistory] = {}
        self._proven: dict[str, tuple[Checkpoint, KeyLogHead, list[Entry]]] = {}
        if roots.quorum == 0 and warn is not None:
            warn("the trust roots ask for no witness (quorum 0): you trust the operator alone "
                 "(cadena trust set --witness ... --quorum N)")

    def _checkpoint(self, page: DirectoryPage) -> tuple[Checkpoint, KeyLogHead]:
        cached = self._notes.get(page.checkpoint)
        if cached is not None:
            return cached
        checkpoint = verify_checkpoint(page.checkpoint, self._roots)
        head = carried_key_log(checkpoint)
        seen = self._store.load()
        proof = None if page.consistency is None else _hashes(page.consistency)
        check_extends(seen, checkpoint, proof)
        key_proof = None if page.key_consistency is None else _hashes(page.key_consistency)
        check_key_log_extends(seen, checkpoint, head, key_proof)
        if seen is None or checkpoint.size > seen.size or seen.key_log is None:
            self._store.save(SeenCheckpoint(checkpoint.size, checkpoint.root, page.checkpoint,
                                            head))
        self._notes[page.checkpoint] = (checkpoint, head)
        return checkpoint, head

    @property
    def api(self) -> DirectoryAPI:
        """The directory this object reads."""
        return self._api

    def proven(self, liaison_id: str) -> tuple[Checkpoint, KeyLogHead, list[Entry]]:
        """The checkpoint, its key log and the entries :meth:`history` last proved."""
        if liaison_id not in self._proven:
            self.history(liaison_id)
        return self._proven[liaison_id]

    def history(self, liaison_id: str, *, fresh: bool = False) -> KeyHistory:
        """``liaison_id``'s key history, proven in a verified checkpoint (cached per command)."""
        if not fresh and liaison_id in self._histories:
            return self._histories[liaison_id]
        entries: list[Entry] = []
        known: dict[str, LiaisonPublicKeys] = {}
        origin, start = self._roots.ledger.name, 0
        while True:  # pages of DIRECTORY_PAGE entries; each proven in a verified checkpoint
            page = self._page(liaison_id, start)
            checkpoint, head = self._checkpoint(page)
            entries += proven_entries(page, checkpoint, head)
            known.update(_served_keys(page))
            origin = checkpoint.origin
            if len(page.entries) < DIRECTORY_PAGE:
                break
            start = entries[-1].index + 1
        history = key_history(liaison_id, entries, origin, known=known)
        self._histories[liaison_id] = history
        self._proven[liaison_id] = (checkpoint, head, entries)
        return history

    def _page(self, liaison_id: str, start: int) -> DirectoryPage:
        seen = self._store.load()
        key_since = seen.key_log.size if seen and seen.key_log and seen.key_log.size else None
        page = self._api.read(liaison_id, start=start, since=seen.size if seen else None,
                              witnessed=self._roots.quorum, key_since=key_since)
        if page.liaison_id != liaison_id:
            raise ProtocolError(f"asked for {liaison_id}'s keys, got {page.liaison_id}'s")
        if any(item.index < start for item in page.entries):
            raise ProtocolError(f"asked for entries from {start}, got earlier ones")
        return page

    def check(self, liaison_id: str, keys: LiaisonPublicKeys, *, current: bool = False) -> None:
        """Accept ``keys`` for ``liaison_id`` only if the ledger proves them (then the pins).

        ``current``: the key set must be the one in force (to encrypt to it).
        """
        history = self.history(liaison_id)
        proven = history.find(keys.key_id)
        if proven is None or proven.keys != keys:
            raise KeyNotProven("not-in-ledger", f"the key {keys.key_id} served for "
                               f"{liaison_id} has no enrolment or rotation entry in the "
                               "witnessed ledger: refused")
        if current and history.current is not proven:
            raise KeyNotProven("stale-key", f"the key {keys.key_id} of {liaison_id} was "
                               f"replaced in the ledger at entry {history.keys[-1].index}")
        if current and proven.revoked_at_index is not None:
            raise KeyNotProven("revoked-key", f"the key {keys.key_id} of {liaison_id} was "
                               f"revoked in the ledger at entry {proven.revoked_at_index}")
        if self._pins is not None:
            self._pins.follow(liaison_id, keys, history)


class NoTrustRoots:
    """The :class:`client.resources.KeyPins` of a profile without trust roots: no key is used.

    A contact's key is trusted only if the witnessed ledger proves it, even at
    first contact (DESIGN.md invariant 7), and that proof needs the ledger's
    key, the witnesses' keys and the quorum fixed out of band. Without them
    the client refuses to encrypt to or verify anyone, and says how to set them.
    """

    def __init__(self, profile_name: str) -> None:
        """Refuse on behalf of ``profile_name`` (named in the message)."""
        self._profile = profile_name

    def check(self, liaison_id: str, keys: LiaisonPublicKeys, *, current: bool = False) -> None:
        """Always refuse: nothing can prove ``keys`` without trust roots."""
        raise ProfileError(
            f"profile {self._profile!r} has no trust roots, so the key of {liaison_id} cannot "
            "be proven in the witnessed ledger and is not used. Ask the centre for the "
            "ledger's key and the witnesses' keys (read their fingerprints out of band), "
            f"then run: cadena trust set --profile {self._profile} --ledger-key VKEY "
            "--witness VKEY --quorum N")


def self_check(kt: KeyTransparency, liaison_id: str, held: Iterable[LiaisonPublicKeys], *,
               served: Iterable[LiaisonPublicKeys] = (), scans: ScanStore | None = None
               ) -> KeyHistory:
    """Check every key entry under ``liaison_id`` names a key set this liaison holds.

    DESIGN.md invariant 7: each client watches its own liaison's entries. The
    entries are proven in a verified, witnessed checkpoint that extends every
    one this profile saw (so a view shown to others cannot be hidden from it
    without a fork). Raises :class:`KeyNotProven` (``rogue-key``, or a broken
    chain under this name) when the ledger carries a key this liaison does
    not hold: then someone else can read what is sent to them and sign as them.
    ``served`` are the key sets the server's directory lists under this name
    (``/v1/liaisons/{id}/keys``): one not held is reported too, though senders
    that check the ledger refuse it.

    With ``scans``, the whole key log is scanned from the last scan
    (:mod:`client.keylog`): a key entry under this name that the directory
    did not show is ``hidden-key-entry``, a key log that does not extend the
    one scanned before ``key-log-fork``.
    """
    history = kt.history(liaison_id, fresh=True)
    if scans is not None:
        checkpoint, head, entries = kt.proven(liaison_id)
        scan = scan_key_log(kt.api, scans, liaison_id, checkpoint, head)
        check_complete(scan, entries, checkpoint)
    mine = {keys.key_id for keys in held}
    for proven in history.keys:
        if proven.keys.key_id not in mine:
            raise KeyNotProven("rogue-key", f"entry {proven.index} of the ledger registers key "
                               f"{proven.keys.key_id} (fingerprint {proven.keys.fingerprint}) "
                               f"under {liaison_id}, and this profile does not hold it",
                               proven.index)
    for keys in served:
        if keys.key_id not in mine:
            raise KeyNotProven("rogue-key", f"the server lists key {keys.key_id} (fingerprint "
                               f"{keys.fingerprint}) under {liaison_id} with no ledger entry, "
                               "and this profile does not hold it")
    return history
