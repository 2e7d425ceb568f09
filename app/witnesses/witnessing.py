"""Submits each new checkpoint to the registered witnesses and keeps their cosignatures.

A daemon thread, apart from the checkpointer, wakes every ``interval``
seconds. Each round reads, in one short transaction, the latest checkpoint
and every active witness behind it, with the RFC 9162 consistency proof from
the size that witness last cosigned; the requests (C2SP tlog-witness
``POST <url>/add-checkpoint``) then run in a thread pool, one in flight per
witness, with short timeouts. So a slow or unreachable witness holds up
neither checkpoints nor the other witnesses; it is retried on a later round,
backing off while it keeps failing.

Answers: 200 — the cosignature lines are verified under the witness's
registered key (lines by other keys are ignored, C2SP tlog-witness) and
stored, and merged into the checkpoint's note; 409 — the body is the size
the witness last cosigned: it is recorded and the request is made once more
with a proof from that size; anything else is logged and retried later.
"""

from __future__ import annotations

import base64
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import TYPE_CHECKING

import structlog
from sqlalchemy.orm import sessionmaker

from app.ledger import UnitOfWork, transaction
from app.witnesses import service
from app.witnesses.service import Submission
from ledger import LedgerError, NoteVerifier, verify_cosignature
from ledger import note_b64decode as b64decode

if TYPE_CHECKING:
    import httpx

log = structlog.get_logger()

TIMEOUT_SECONDS, CONNECT_TIMEOUT_SECONDS = 5.0, 2.0
MAX_BACKOFF = 60.0
SIZE_MEDIA_TYPE = "text/x.tlog.size"


class WitnessFailure(Exception):
    """A witness did not return a usable cosignature this time."""


@dataclass
class _Backoff:
    failures: int = 0
    not_before: float = 0.0


def request_body(submission: Submission) -> bytes:
    """The add-checkpoint body: old size, proof lines, an empty line, the note."""
    lines = [f"old {submission.old_size}"]
    lines += [base64.b64encode(h).decode("ascii") for h in submission.proof]
    return ("".join(line + "\n" for line in lines) + "\n" + submission.note).encode("utf-8")


def cosignature_from(submission: Submission, body: str) -> tuple[str, int]:
    """The first line of ``body`` that is a cosignature by the witness's registered key.

    Lines by other keys are ignored; a line by that key that does not verify
    fails the whole answer. Returns the line and its timestamp.
    """
    verifier = NoteVerifier.from_string(submission.verifier_key)
    prefix = f"\u2014 {verifier.name} "
    for line in body.splitlines():
        if not line.startswith(prefix):
            continue
        try:
            if b64decode(line[len(prefix):], "cosignature")[:4] != verifier.key_id:
                continue
            return line, verify_cosignature(submission.checkpoint, line, verifier)
        except LedgerError as exc:
            raise WitnessFailure(f"invalid cosignature: {exc}") from exc
    raise WitnessFailure("no cosignature by the registered key in the answer")


def witness_size(response: httpx.Response) -> int:
    """The size in a 409 answer (``text/x.tlog.size``: a decimal and a newline)."""
    text = response.text
    if not text.endswith("\n") or not text[:-1].isdigit() or len(text) > 21:
        raise WitnessFailure(f"409 without a tree size: {text[:40]!r}")
    return int(text[:-1])


class Witnessing:
    """The background collector of cosignatures (see the module docstring)."""

    def __init__(self, sessions: sessionmaker[UnitOfWork], interval: float, *,
                 client: httpx.Client | None = None, workers: int = 8) -> None:
        """Collect every ``interval`` seconds, over ``client`` (default: short timeouts)."""
        self._sessions = sessions
        self._interval = interval
        self._client = client  # made on first use: httpx stays out of a server with no witness
        self._owns_client = client is None
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="witness")
        self._lock = threading.Lock()
        self._in_flight: set[int] = set()
        self._backoff: dict[int, _Backoff] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="witnessing", daemon=True)

    def start(self) -> None:
        """Start collecting in the background."""
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread; requests in flight finish on their own (short timeouts)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        self._pool.shutdown(wait=False, cancel_futures=True)
        if self._owns_client and self._client is not None:
            self._client.close()

    def run_once(self) -> list[Future[None]]:
        """Start one round; return the futures of the requests it started."""
        with transaction(self._sessions) as session:
            submissions, failures = service.pending(session)
        for name, reason in failures:
            log.error("no consistency proof for witness", witness=name, reason=reason)
        started: list[Future[None]] = []
        now = time.monotonic()
        with self._lock:
            for submission in submissions:
                backoff = self._backoff.get(submission.witness_id)
                if submission.witness_id in self._in_flight or (
                        backoff is not None and backoff.not_before > now):
                    continue
                self._in_flight.add(submission.witness_id)
                started.append(self._pool.submit(self._serve, submission))
        return started

    def run_round(self, timeout: float | None = None) -> None:
        """Run one round and wait for its requests (for tests and operators)."""
        wait(self.run_once(), timeout=timeout)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self.run_once()
            except Exception as exc:  # keep going after a transient database error
                log.warning("witnessing round failed", error=type(exc).__name__)

    def _serve(self, submission: Submission) -> None:
        key = submission.witness_id
        try:
            self._submit(submission, retry=True)
        except Exception as exc:  # network, protocol or database: retried later
            with self._lock:
                backoff = self._backoff.setdefault(key, _Backoff())
                backoff.failures += 1
                delay = min(MAX_BACKOFF, 2.0 ** (backoff.failures - 1))
                backoff.not_before = time.monotonic() + delay
            log.warning("witness failed", witness=submission.name, size=submission.checkpoint.size,
                        error=f"{type(exc).__name__}: {exc}", retry_in=delay)
        else:
            with self._lock:
                self._backoff.pop(key, None)
        finally:
            with self._lock:
                self._in_flight.discard(key)

    def _http(self) -> httpx.Client:
        with self._lock:
            if self._client is None:
                import httpx

                self._client = httpx.Client(
                    timeout=httpx.Timeout(TIMEOUT_SECONDS, connect=CONNECT_TIMEOUT_SECONDS))
            return self._client

    def _submit(self, submission: Submission, *, retry: bool) -> None:
        response = self._http().post(submission.url + "/add-checkpoint",
                                     content=request_body(submission),
                                     headers={"Content-Type": "text/plain; charset=utf-8"})
        size = submission.checkpoint.size
        if response.status_code == 200:
            line, timestamp = cosignature_from(submission, response.text)
            with transaction(self._sessions) as session:
                service.keep_cosignature(session, submission.witness_id, size, line,
                                         timestamp=timestamp)
            log.info("witness cosigned", witness=submission.name, size=size)
            return
        if response.status_code == 409 and retry:
            known = witness_size(response)
            with transaction(self._sessions) as session:
                service.note_witness_size(session, submission.witness_id, known)
            with transaction(self._sessions) as session:
                again = service.resubmission(session, submission.witness_id, known)
            if again is not None:
                self._submit(again, retry=False)
            elif known > size:
                raise WitnessFailure(f"the witness cosigned size {known}, beyond ours ({size})")
            return
        detail = response.text[:200].strip()
        if response.status_code == 409:
            detail += " (a different root at that size: a fork?)"
        raise WitnessFailure(f"HTTP {response.status_code}: {detail}")
