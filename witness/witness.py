"""The witness's rules for ``add-checkpoint`` (C2SP tlog-witness), apart from HTTP.

In the order the spec gives them:

1. the body parses (400), the origin is a configured log (404), and a trusted
   key of that log signed the checkpoint (403; signatures by unknown keys are
   ignored, a known key whose signature fails refuses the note);
2. the old size is at most the checkpoint size (400);
3. under the state file's write lock: the old size is the size last cosigned
   for that log, 0 if none (409, answering that size); the proof is empty from
   size 0, and otherwise is an RFC 6962 consistency proof from the last
   cosigned checkpoint (422); at equal sizes the roots are equal (409);
4. the new checkpoint is recorded and cosigned before the lock is released.

A checkpoint of the size last cosigned but with another root is a fork: both
signed notes are kept as evidence, whatever old size came with it. A proof
that fails between two log-signed checkpoints keeps both too. Nothing that
fails a check is ever cosigned, so the witness never cosigns two checkpoints
that are not consistent.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

from ledger import (
    Checkpoint,
    CosignatureSigner,
    NoteFormatError,
    NoteVerifier,
    SignatureError,
    VerificationError,
    open_checkpoint,
    parse_checkpoint_body,
    parse_note,
    verify_consistency,
)
from witness.errors import BadProof, BadSignature, Conflict, MalformedRequest, UnknownLog
from witness.errors import WitnessError as WitnessError
from witness.store import Cosigned, Evidence, StoreTransaction, WitnessStore
from witness.submission import AddCheckpoint, parse_add_checkpoint


def _now() -> int:
    return int(time.time())


class Witness:
    """Checks submitted checkpoints against the stored state and cosigns them."""

    def __init__(self, signer: CosignatureSigner, logs: Mapping[str, tuple[NoteVerifier, ...]],
                 store: WitnessStore, clock: Callable[[], int] = _now) -> None:
        """Cosign with ``signer`` the checkpoints of ``logs`` (origin → trusted keys)."""
        self.signer = signer
        self._logs = logs
        self.store = store
        self._clock = clock

    def verifier_key(self) -> str:
        """The witness's verifier key ``<name>+<hex key id>+<base64(0x04 || key)>``."""
        return self.signer.verifier_key()

    def open(self, note: str) -> Checkpoint:
        """Verify a checkpoint note under its log's trusted keys; return the checkpoint."""
        try:
            parsed = parse_note(note)
            origin = parse_checkpoint_body(parsed.text_body).origin
        except NoteFormatError as exc:
            raise MalformedRequest(f"the checkpoint is malformed: {exc}") from exc
        keys = self._logs.get(origin)
        if not keys:
            raise UnknownLog(f"{origin!r} is not a log this witness follows")
        opened = None
        for key in keys:
            if not any(key.matches(s) for s in parsed.signatures):
                continue  # C2SP signed-note: signatures by unknown keys are ignored
            try:
                opened = open_checkpoint(note, key)
            except SignatureError as exc:
                raise BadSignature(f"a signature by {key.name} does not verify") from exc
        if opened is None:
            raise BadSignature(f"no trusted key of {origin} signed the checkpoint")
        return opened

    def add_checkpoint(self, body: bytes) -> str:
        """Handle an add-checkpoint body: return the cosignature line(s) or raise."""
        request = parse_add_checkpoint(body)
        checkpoint = self.open(request.note)
        if request.old_size > checkpoint.size:
            raise MalformedRequest(
                f"old size {request.old_size} exceeds the checkpoint size {checkpoint.size}")
        with self.store.transaction() as tx:
            latest = tx.latest(checkpoint.origin)
            # Never date a cosignature before the previous one, even if the clock steps back.
            now = max(self._clock(), latest.cosigned_at if latest else 0)
            refusal = _check(tx, latest, request, checkpoint, now=now)
            if refusal is None:
                tx.set_latest(Cosigned(checkpoint.origin, checkpoint.size, checkpoint.root,
                                       request.note, now))
                return self.signer.cosign(checkpoint, now)
        raise refusal  # after the commit, so the evidence is kept


def _evidence(kind: str, latest: Cosigned, request: AddCheckpoint, now: int) -> Evidence:
    return Evidence(latest.origin, kind, latest.note, request.note, request.old_size,
                    request.proof, now)


def _check(tx: StoreTransaction, latest: Cosigned | None, request: AddCheckpoint,
           checkpoint: Checkpoint, *, now: int) -> WitnessError | None:
    """The refusal for ``request`` against ``latest``, keeping evidence; ``None`` to cosign."""
    latest_size = latest.size if latest is not None else 0
    if latest is not None and checkpoint.size == latest.size and checkpoint.root != latest.root:
        tx.keep_evidence(_evidence("fork", latest, request, now))
        return Conflict(f"a different root was cosigned at size {latest.size}", latest_size)
    if request.old_size != latest_size:
        return Conflict(f"the latest cosigned size is {latest_size}", latest_size)
    if latest is None or latest.size == 0 or checkpoint.size == latest.size:
        if request.proof:
            return BadProof("the consistency proof must be empty from size 0 or to the same size")
        return None
    try:
        verify_consistency(latest.size, checkpoint.size, latest.root, checkpoint.root,
                           proof=request.proof)
    except VerificationError as exc:
        tx.keep_evidence(_evidence("inconsistent", latest, request, now))
        return BadProof(f"the consistency proof does not verify: {exc}")
    return None
