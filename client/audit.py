"""The auditor's incremental verification of the ledger as a server serves it.

One run of :func:`audit_ledger`:

1. fetches the latest checkpoint and opens it with the *pinned* ledger key
   (C2SP signed-note; DESIGN.md trust rule: a size and root are trusted only
   from a signed checkpoint);
2. if an earlier run left an :class:`AuditState` (the checkpoint it verified,
   the tree's right frontier and the last leaf hash), proves the new
   checkpoint extends it: a smaller size is a **rollback**; an equal size
   with another root, a failing RFC 9162 §2.1.4.2 consistency proof, or a
   server that can no longer prove consistency from a size it signed, is a
   **fork**. This happens before anything is downloaded;
3. downloads only the entries after the stored size (all of them with
   ``full=True``), page by page, and for each checks that it parses as a
   canonical entry, that its ``index`` is its position and that its ``prev``
   is the leaf hash of the entry before; the leaf goes into a
   :class:`~ledger.format.merkle.TreeBuilder` resumed from the stored frontier;
4. checks the recomputed RFC 9162 root equals the signed root at its size;
5. recomputes the key log (docs/protocol.md §11.7) from the same entries with
   :class:`~ledger.KeyLogCheck`, the pass the server-side ``ledger verify``
   runs, resumed from the key tree's frontier the state keeps, and checks
   the ``cadena-key-log`` line of every checkpoint it verifies: each one
   the server lists above the stored size (auditors' listing, opened with
   the pinned key, its root checked as the entries reach its size) and the
   latest. A dishonest operator who re-signs a checkpoint over a key log the
   entries do not give is ``key_log_mismatch`` at the checkpoint's last index.

With ``full=True`` and a stored state, the root recomputed at the stored size
must also equal the stored root, so rewriting old entries is caught too. A
state kept before the key log was checked (version 1, no key frontier) makes
the next run a full one, once.
Every fault raises :class:`~client.errors.AuditFailure` (fail closed); the
result of a clean run carries the new state to store for the next run.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from client.errors import (
    AuditFailure,
    AuditFault,
    ClientError,
    NotFound,
    ProfileError,
    ProtocolError,
)
from client.ledger_api import MAX_PAGE, LedgerAPI
from client.models import RefusalDetailRecord
from ledger import (
    DIGEST_FIELD,
    EMPTY_ROOT,
    GENESIS_PREV,
    Checkpoint,
    Entry,
    EntryFormatError,
    KeyLogCheck,
    KeyLogFrontier,
    LedgerError,
    Node,
    NoteVerifier,
    TreeBuilder,
    VerificationError,
    frontier,
    open_checkpoint,
    parse_checkpoint_body,
    parse_entry,
    parse_note,
    verify_consistency,
    verify_inclusion,
    verify_refusal_detail,
)

STATE_VERSION = 2
"""Version 2 adds the key tree's frontier; version 1 is still read."""
Progress = Callable[[int, int], None]
"""Told ``(entries checked so far, entries to check)`` after every page."""


@dataclass(frozen=True)
class AuditState:
    """What a verified run leaves for the next one: the checkpoint and the trees' edges."""

    verifier_key: str
    size: int
    root: bytes
    note: str
    frontier: tuple[bytes, ...]
    last_leaf: bytes
    verified_at: str = ""
    key_size: int | None = None
    """The key log's size at ``size`` entries; ``None`` in a version 1 state."""
    key_frontier: tuple[bytes, ...] = ()
    key_carried: bool = False
    """Whether a verified checkpoint carried a key log (later ones must too)."""

    def key_check(self) -> KeyLogCheck | None:
        """The key-log pass to resume from, or ``None`` if this state has none."""
        if self.key_size is None:
            return None
        return KeyLogCheck(KeyLogFrontier(self.key_size, self.key_frontier),
                           carried=self.key_carried)

    def to_json(self) -> dict[str, Any]:
        """The stored JSON form (hashes in lowercase hex)."""
        return {"v": STATE_VERSION, "verifier_key": self.verifier_key, "size": self.size,
                "root": self.root.hex(), "note": self.note,
                "frontier": [h.hex() for h in self.frontier],
                "last_leaf": self.last_leaf.hex(), "verified_at": self.verified_at,
                "key_log": None if self.key_size is None else {
                    "size": self.key_size, "frontier": [h.hex() for h in self.key_frontier],
                    "carried": self.key_carried}}

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> AuditState:
        """Parse a stored state; raise :class:`ProfileError` if it is damaged."""
        try:
            if obj["v"] not in (1, STATE_VERSION):
                raise ValueError(f"version {obj['v']!r}")
            size = obj["size"]
            if not isinstance(size, int) or size < 1:
                raise ValueError("size")
            keys = obj.get("key_log") if obj["v"] == STATE_VERSION else None
            key_size = None if keys is None else keys["size"]
            if key_size is not None and (not isinstance(key_size, int) or key_size < 0):
                raise ValueError("key log size")
            state = cls(str(obj["verifier_key"]), size, bytes.fromhex(obj["root"]),
                        str(obj["note"]), tuple(bytes.fromhex(h) for h in obj["frontier"]),
                        bytes.fromhex(obj["last_leaf"]), str(obj.get("verified_at", "")),
                        key_size=key_size,
                        key_frontier=tuple(bytes.fromhex(h) for h in keys["frontier"])
                        if keys else (), key_carried=bool(keys and keys["carried"] is True))
            state.key_check()  # the key frontier's shape
        except (KeyError, TypeError, ValueError) as exc:
            raise ProfileError(f"the stored audit state is damaged ({exc}); "
                               "run audit verify --reset") from exc
        if len(state.frontier) != len(frontier(size)) or \
                any(len(h) != 32 for h in (state.root, state.last_leaf, *state.frontier)):
            raise ProfileError("the stored audit state is damaged; run audit verify --reset")
        return state


class EntrySink(Protocol):
    """Receives each verified entry (the exporter writes them to a file)."""

    def write(self, index: int, raw: bytes) -> None:
        """Take entry ``index`` with its exact bytes."""
        ...


class EntryChain:
    """Checks entries one by one, in order, and rebuilds the RFC 9162 tree over them."""

    def __init__(self, state: AuditState | None = None,
                 expected_roots: Mapping[int, bytes] | None = None) -> None:
        """Start empty, or continue after ``state``; check roots at ``expected_roots`` sizes.

        A ``state`` must carry the key log's frontier (version 2).
        """
        keys = state.key_check() if state else KeyLogCheck()
        if keys is None:
            raise ValueError("this audit state has no key log to continue from")
        self.keys = keys
        size = state.size if state else 0
        hashes = state.frontier if state else ()
        self._stack: list[tuple[Node, bytes]] = list(zip(frontier(size), hashes, strict=True))
        self._builder = TreeBuilder(size, dict(self._stack))
        self.last_leaf = state.last_leaf if state else GENESIS_PREV
        self._expected = dict(expected_roots or {})

    @property
    def size(self) -> int:
        """How many entries the tree holds."""
        return self._builder.size

    def add(self, raw: bytes) -> None:
        """Check the next entry and add its leaf; raise :class:`AuditFailure` if it is bad."""
        p = self.size
        try:
            entry = parse_entry(raw)
        except EntryFormatError as exc:
            raise AuditFailure(AuditFault.MALFORMED_ENTRY, f"entry {p}: {exc}", p) from exc
        if entry.index != p:
            raise AuditFailure(AuditFault.INDEX_MISMATCH,
                               f"the entry at position {p} says index {entry.index} "
                               "(entries missing, reordered or inserted)", p)
        if entry.prev != self.last_leaf:
            raise AuditFailure(AuditFault.MODIFIED_ENTRY,
                               f"entry {p} does not link to entry {p - 1}: entry {p - 1} was "
                               f"changed, or entry {p} was forged", p - 1)
        self.keys.add(p, raw)
        created = self._builder.append(entry.leaf_hash)
        del self._stack[len(self._stack) - (len(created) - 1):]
        self._stack.append(created[-1])
        self.last_leaf = entry.leaf_hash
        want = self._expected.get(self.size)
        if want is not None and self.root() != want:
            raise AuditFailure(AuditFault.FORK,
                               f"the first {self.size} entries no longer give the root "
                               "verified before: history was rewritten", self.size - 1)

    def root(self) -> bytes:
        """The RFC 9162 root of the entries added so far."""
        return self._builder.root() if self.size else EMPTY_ROOT

    def check(self, checkpoint: Checkpoint) -> None:
        """Raise unless the entries added so far give ``checkpoint``'s size, root and key log."""
        root, at = self.root(), max(checkpoint.size - 1, 0)
        if self.size != checkpoint.size or root != checkpoint.root:
            raise AuditFailure(AuditFault.ROOT_MISMATCH, f"the checkpoint signs root "
                               f"{base64.b64encode(checkpoint.root).decode()} for "
                               f"{checkpoint.size} entries; the entries give "
                               f"{base64.b64encode(root).decode()} for {self.size}", at)
        try:
            self.keys.check(checkpoint)
        except VerificationError as exc:
            raise AuditFailure(AuditFault.KEY_LOG_MISMATCH, str(exc), at) from exc

    def state(self, verifier_key: str, note: str) -> AuditState:
        """The state to store after the chain was checked against ``note``'s checkpoint."""
        return AuditState(verifier_key, self.size, self.root(), note,
                          tuple(h for _, h in self._stack), self.last_leaf,
                          datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                          key_size=self.keys.tree.size, key_frontier=tuple(self.keys.tree.hashes),
                          key_carried=self.keys.carried)


@dataclass(frozen=True)
class AuditResult:
    """A clean run: what was verified and the state to keep."""

    checkpoint: Checkpoint
    previous_size: int | None
    start: int
    downloaded: int
    state: AuditState

    @property
    def consistency_checked(self) -> bool:
        """Whether the run proved the new checkpoint extends a stored one."""
        return self.previous_size is not None


def open_signed(note: str, verifier: NoteVerifier) -> Checkpoint:
    """Open a checkpoint note with the pinned key; a bad one is an :class:`AuditFailure`.

    The failure's index is the last entry the note claims to sign (its size
    read without trusting it, as the verifier's fault rules report checkpoint
    faults), or 0 if the note does not even parse.
    """
    try:
        return open_checkpoint(note, verifier)
    except LedgerError as exc:
        raise AuditFailure(AuditFault.BAD_CHECKPOINT_SIGNATURE,
                           f"the checkpoint does not verify with the pinned ledger key "
                           f"{verifier.name}+{verifier.key_id.hex()}: {exc}",
                           _claimed_last(note)) from exc


def _claimed_last(note: str) -> int:
    try:
        return max(parse_checkpoint_body(parse_note(note).text_body).size - 1, 0)
    except LedgerError:
        return 0


def check_extends(api: LedgerAPI, state: AuditState, checkpoint: Checkpoint) -> None:
    """Raise unless ``checkpoint`` extends the stored one (no rollback, no fork)."""
    old, new = state.size, checkpoint.size
    if new < old:
        raise AuditFailure(AuditFault.ROLLBACK,
                           f"the latest signed checkpoint has size {new}, but size {old} was "
                           "verified before: the ledger was rolled back", new)
    if new == old:
        if checkpoint.root != state.root:
            raise AuditFailure(AuditFault.FORK, f"two signed checkpoints of size {new} have "
                               "different roots: the ledger was forked", new - 1)
        return
    try:
        proof = api.consistency_proof(old, new)
    except NotFound as exc:
        raise AuditFailure(AuditFault.FORK, f"the server cannot prove consistency from size "
                           f"{old}, which it signed before ({exc.detail})", old - 1) from exc
    try:
        verify_consistency(old, new, state.root, checkpoint.root, proof=proof)
    except VerificationError as exc:
        raise AuditFailure(AuditFault.FORK, f"checkpoint {new} is not consistent with "
                           f"checkpoint {old} verified before: {exc}", old - 1) from exc


def _blame_link(api: LedgerAPI, checkpoint: Checkpoint, broken: AuditFailure,
                leaf_before: bytes) -> AuditFailure:
    """Which side of a broken link changed: entry ``p - 1``, or ``p``'s own ``prev``?

    The chain alone cannot tell (it reports ``p - 1``). If the signed tree
    proves entry ``p - 1`` as received (RFC 9162 inclusion proof), it is
    intact and entry ``p`` was modified; otherwise entry ``p - 1`` was.
    """
    before = broken.index
    if before is None or before < 0:
        return broken
    try:
        proof = api.inclusion_proof(before, checkpoint.size)
        verify_inclusion(leaf_before, before, checkpoint.size, proof, root=checkpoint.root)
    except (ClientError, LedgerError):
        return broken
    return AuditFailure(AuditFault.MODIFIED_ENTRY,
                        f"entry {before + 1} does not link to entry {before}, which the "
                        f"signed checkpoint proves intact: entry {before + 1} was changed",
                        before + 1)


Listed = dict[int, list[tuple[str, Checkpoint]]]
"""Signed checkpoints by size: each note as served, opened with the pinned key."""
OnCheckpoint = Callable[[str, Checkpoint, list[tuple[str, Checkpoint]]], None]
"""Told the latest checkpoint's note, and the listed checkpoints, smallest first."""


def listed_checkpoints(api: LedgerAPI, verifier: NoteVerifier, after: int,
                       latest: Checkpoint) -> Listed:
    """The checkpoints the server lists above ``after``, up to ``latest``, each opened.

    A note that does not open with the pinned key is an :class:`AuditFailure`
    (``bad_checkpoint_signature``).
    """
    found: Listed = {}
    for record in api.all_checkpoints(after):
        if record.size > latest.size:
            break
        found.setdefault(record.size, []).append((record.note,
                                                  open_signed(record.note, verifier)))
    return found


def _download(api: LedgerAPI, chain: EntryChain, checkpoint: Checkpoint, page_size: int,
              *, listed: Listed, progress: Progress | None, sink: EntrySink | None) -> None:
    start, size = chain.size, checkpoint.size
    while chain.size < size:
        position = chain.size
        page = api.entries(position, min(page_size, size - position))
        if not page:
            raise AuditFailure(AuditFault.TRUNCATED, f"the checkpoint signs {size} entries, "
                               f"the server serves only {position}", position)
        for item in page:
            if item.index != chain.size or chain.size >= size:
                raise AuditFailure(AuditFault.INDEX_MISMATCH, f"the server sent entry "
                                   f"{item.index} where {chain.size} was due", chain.size)
            leaf_before = chain.last_leaf
            try:
                chain.add(item.entry)
            except AuditFailure as exc:
                if exc.fault is not AuditFault.MODIFIED_ENTRY or exc.index != chain.size - 1:
                    raise
                raise _blame_link(api, checkpoint, exc, leaf_before) from exc
            if sink is not None:
                sink.write(item.index, item.entry)
            for _, signed in listed.get(chain.size, ()):
                chain.check(signed)
        if progress is not None:
            progress(chain.size - start, size - start)


def audit_ledger(api: LedgerAPI, verifier: NoteVerifier, state: AuditState | None, *,
                 full: bool = False, page_size: int = MAX_PAGE,
                 progress: Progress | None = None, sink: EntrySink | None = None,
                 on_checkpoint: OnCheckpoint | None = None) -> AuditResult:
    """Verify the served ledger up to its latest checkpoint (see the module docstring).

    ``on_checkpoint`` sees the latest checkpoint note and the listed ones,
    opened, before the download (the exporter writes its header then).
    Raises :class:`AuditFailure`.
    """
    note = api.checkpoint()
    checkpoint = open_signed(note, verifier)
    if state is not None:
        check_extends(api, state, checkpoint)
    if full or state is None or state.key_size is None:
        chain = EntryChain(None, {state.size: state.root} if state else None)
    else:
        chain = EntryChain(state)
    start = chain.size
    listed = listed_checkpoints(api, verifier, start, checkpoint)
    if on_checkpoint is not None:
        on_checkpoint(note, checkpoint, [item for size in sorted(listed)
                                         for item in listed[size]])
    _download(api, chain, checkpoint, page_size, listed=listed, progress=progress, sink=sink)
    finish(chain, checkpoint)
    return AuditResult(checkpoint, state.size if state else None, start, chain.size - start,
                       chain.state(str(verifier), note))


def finish(chain: EntryChain, checkpoint: Checkpoint) -> None:
    """Raise unless the entries give the checkpoint's size, signed root and key log."""
    chain.check(checkpoint)


@dataclass(frozen=True)
class RefusalDetail:
    """A refusal's auditor-only detail, checked against the digest its entry carries."""

    index: int
    reason: str
    detail: str


def check_refusal_detail(entry: Entry, record: RefusalDetailRecord) -> RefusalDetail:
    """Check a served refusal detail against its ``entry`` (``ledger.format.refusal``).

    The digest is recomputed from the record's salt and text and compared
    with the one in the entry; the digest the server sent is not trusted.
    Raises :class:`~client.errors.AuditFailure` (``refusal_detail_mismatch``).
    """
    fault = AuditFault.REFUSAL_DETAIL_MISMATCH
    if record.index != entry.index:
        raise AuditFailure(fault, f"the server answered for entry {record.index}", entry.index)
    try:
        verify_refusal_detail(entry, record.salt_bytes(), record.detail)
    except (VerificationError, ProtocolError) as exc:
        raise AuditFailure(fault, str(exc), entry.index) from exc
    if record.digest != entry.details.get(DIGEST_FIELD):
        raise AuditFailure(fault, "the server's digest differs from the entry's", entry.index)
    return RefusalDetail(entry.index, entry.reason or "", record.detail)


def fetch_refusal_detail(api: LedgerAPI, entry_bytes: bytes) -> RefusalDetail:
    """Fetch the auditor-only detail of the refusal ``entry_bytes`` and check it.

    ``entry_bytes`` should be bytes the auditor verified (by :func:`audit_ledger`
    or an inclusion proof against a signed checkpoint): the detail is only as
    trustworthy as the entry whose digest it matches.
    """
    try:
        entry = parse_entry(entry_bytes)
    except EntryFormatError as exc:
        raise AuditFailure(AuditFault.MALFORMED_ENTRY, str(exc)) from exc
    return check_refusal_detail(entry, api.refusal_detail(entry.index))
