"""Signs checkpoints on an interval (DESIGN.md: default 1 s, only when the tree grew).

Every API process runs one; they cannot store two inconsistent checkpoints:
the checkpoint is prepared and signed from a plain read of the committed tree
(``ledger.store.presign``: no lock, so appenders never wait for the hashing and
the signature), then stored under the ledger's append lock by a
compare-and-swap on its size (``LedgerStorage.add_checkpoint``). A process
that lost the race drops its signed note unstored.

Each checkpoint carries the key log (``ledger.store.keylog``): the key
entries since the last checkpoint are added to it as the checkpoint is
prepared, and its rows are stored in the checkpoint's transaction under a
compare-and-swap of their own, so a loser leaves no key-log row either.
"""

from __future__ import annotations

import threading

import structlog
from sqlalchemy.orm import sessionmaker

from app.ledger.keylog import key_log_for
from app.ledger.recording import storage_for
from app.ledger.unit_of_work import UnitOfWork, transaction
from ledger import (
    ConflictError,
    CorruptLedgerError,
    NoteSigner,
    StoredCheckpoint,
    prepare_keyed_checkpoint,
)

log = structlog.get_logger()


def sign_once(sessions: sessionmaker[UnitOfWork], signer: NoteSigner,
              origin: str) -> StoredCheckpoint | None:
    """Sign a checkpoint now if the tree grew since the last one; return it.

    The checkpoint carries the key log extended to its size.
    """
    with transaction(sessions) as session:
        storage = storage_for(session)
        candidate = prepare_keyed_checkpoint(storage, storage.head_size(), signer, origin,
                                             key_log_for(session).base())
    if candidate is None:
        return None
    try:
        with transaction(sessions) as session:
            storage_for(session).add_checkpoint(candidate.checkpoint)
            key_log_for(session).store(candidate)
    except ConflictError:  # another process stored this size or a larger one first
        return None
    return candidate.checkpoint


class Checkpointer:
    """A daemon thread that calls :func:`sign_once` every ``interval`` seconds."""

    def __init__(self, sessions: sessionmaker[UnitOfWork], signer: NoteSigner, origin: str,
                 interval: float) -> None:
        self._sessions, self._signer, self._origin = sessions, signer, origin
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="checkpointer", daemon=True)

    def start(self) -> None:
        """Start signing in the background."""
        self._thread.start()

    def stop(self) -> None:
        """Stop and wait for the thread."""
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                checkpoint = sign_once(self._sessions, self._signer, self._origin)
            except CorruptLedgerError as exc:  # not transient: an operator must look
                log.error("checkpoint refused: the stored ledger contradicts itself; "
                          "run cadena-server ledger verify", detail=str(exc))
                continue
            except Exception as exc:  # keep signing after a transient database error
                log.warning("checkpoint failed", error=type(exc).__name__)
                continue
            if checkpoint is not None:
                log.info("checkpoint signed", size=checkpoint.size)
