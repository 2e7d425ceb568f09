"""A log double for witness tests: real keys, real RFC 9162 trees, forks on demand.

Roots and proofs come from the naive reference in ``tests.ledger.reference``,
so the witness's checks are tested against code they share nothing with.
"""

from __future__ import annotations

import base64
import socket
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import uvicorn
from nacl.signing import SigningKey
from starlette.types import ASGIApp

from ledger import Checkpoint, CosignatureSigner, NoteSigner, sign_checkpoint
from tests.ledger import reference

ORIGIN = "log.example/test"
LOG_SEED = bytes(range(32))
WITNESS_NAME = "witness.example/w1"
WITNESS_SEED = bytes(range(32, 64))


def witness_signer(name: str = WITNESS_NAME, seed: bytes = WITNESS_SEED) -> CosignatureSigner:
    """The cosigner the tests' witness signs with."""
    return CosignatureSigner(name, SigningKey(seed))


class FakeLog:
    """An append-only list of leaf hashes that signs checkpoints like the ledger does."""

    def __init__(self, signer: NoteSigner | None = None, leaves: Sequence[bytes] = ()) -> None:
        self.signer = signer or NoteSigner(ORIGIN, SigningKey(LOG_SEED))
        self.origin = self.signer.name
        self.leaves = list(leaves)

    def grow(self, count: int, tag: str = "honest") -> FakeLog:
        """Append ``count`` leaves (their content depends on ``tag`` and position)."""
        for _ in range(count):
            data = f"{tag}:{len(self.leaves)}".encode()
            self.leaves.append(reference.leaf(data))
        return self

    def fork(self, at: int, size: int, tag: str = "fork") -> FakeLog:
        """A log with the same key that shares the first ``at`` leaves, then diverges."""
        return FakeLog(self.signer, self.leaves[:at]).grow(size - at, tag)

    def root(self, size: int) -> bytes:
        """RFC 9162 MTH of the first ``size`` leaves."""
        return reference.mth(self.leaves[:size])

    def checkpoint(self, size: int) -> Checkpoint:
        """The checkpoint of the first ``size`` leaves."""
        return Checkpoint(self.origin, size, self.root(size))

    def note(self, size: int) -> str:
        """The signed note of the checkpoint of ``size``."""
        return sign_checkpoint(self.checkpoint(size), self.signer)

    def proof(self, old: int, new: int) -> list[bytes]:
        """RFC 9162 PROOF(old, D[new]); empty from 0 (C2SP tlog-witness) or unless old < new."""
        return [] if old == 0 or old >= new else reference.proof(old, self.leaves[:new])

    def request(self, old: int, new: int, proof: Sequence[bytes] | None = None,
                note: str | None = None) -> bytes:
        """An add-checkpoint body from ``old`` to ``new`` (an honest proof by default)."""
        hashes = self.proof(old, new) if proof is None else proof
        lines = [f"old {old}", *(base64.b64encode(h).decode() for h in hashes)]
        return ("".join(line + "\n" for line in lines) + "\n"
                + (note or self.note(new))).encode()


@contextmanager
def serving(app: ASGIApp) -> Iterator[str]:
    """Serve ``app`` with uvicorn on a free loopback port in a thread; yield its URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, lifespan="off", ws="none", log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        while not server.started:
            if not thread.is_alive():
                raise RuntimeError("the witness server did not start")
            threading.Event().wait(0.01)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


@contextmanager
def blackhole() -> Iterator[str]:
    """A loopback port that accepts connections into its backlog and never answers."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        sock.close()
