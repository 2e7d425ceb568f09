"""The chunked pass: a whole ledger checked in aligned chunks, in this process or in several.

It only ever answers "clean" (a report) or "not known clean" (``None``); on
any anomaly :func:`ledger.verify.verifier.verify_ledger` runs the exact pass
(:mod:`ledger.verify.walk`), which names the first bad index and the fault kind. So
fault classification is the exact pass's alone, and this pass must accept
nothing the exact pass would refuse.

The work splits as :mod:`ledger.verify.chunk` describes. Chunks check their entries
(canonical, index, ``prev`` within the chunk) and every stored node of level
``<= bits`` ending in them. This process reads the size and the checkpoints
(one snapshot, which bounds the chunks: rows appended later lie beyond them
and are not read), checks every checkpoint's signature, then the links
between chunks, the stored nodes of level ``> bits`` (recomputed from the
chunk roots, compared in storage order as the exact pass compares them), every
checkpoint's root (its cover: the subtrees before its chunk, then those
inside), and what the exact pass checks after the last entry: no checkpoint
beyond the entries, no stored node outside ``[0, size)``; and what
:mod:`ledger.verify.storecheck` checks (each chunk compares its entries' stored leaf
hashes; the head and the checkpoint numbers are checked here).

Workers are forked processes, each reading through its own reader from a
picklable opener (``ledger`` itself opens no database); on PostgreSQL the
opener should begin a ``REPEATABLE READ`` transaction.
"""

from __future__ import annotations

import bisect
import multiprocessing
from binascii import hexlify
from collections.abc import Sequence
from multiprocessing.connection import Connection

from ledger.errors import NoteFormatError, SignatureError
from ledger.format.note import NoteVerifier, open_checkpoint
from ledger.store.storage import LedgerReader, StoredCheckpoint
from ledger.verify.chunk import (
    ChunkSummary,
    ChunkTask,
    ReaderOpener,
    check_chunks,
    check_chunks_in,
    levels,
)
from ledger.verify.chunk import cover as subtree_cover
from ledger.verify.report import LedgerReport
from ledger.verify.storecheck import check_head
from ledger.verify.walk import fold

__all__ = ["CHUNK_BITS", "chunked_report", "plan"]

CHUNK_BITS = 10
"""Chunks of 1,024 leaves (~400 kB of entries: larger ones fall out of the CPU caches)."""
_ZEROS = b"0" * 64
_KEYS = (-(2**63), 2**63 - 1)  # the range of a 64-bit key column


def plan(size: int, checkpoint_sizes: Sequence[int], bits: int) -> list[ChunkTask]:
    """The aligned chunks of a ledger of ``size`` leaves, each with its checkpoint sizes."""
    step = 1 << bits
    ordered = sorted(checkpoint_sizes)
    tasks = []
    for start in range(0, size, step):
        stop = min(start + step, size)
        first, last = bisect.bisect_right(ordered, start), bisect.bisect_right(ordered, stop)
        tasks.append(ChunkTask(start, stop, bits, tuple(ordered[first:last])))
    return tasks


def _signed(stored: list[StoredCheckpoint], size: int, verifier: NoteVerifier) -> bool:
    """Every checkpoint validly signed, agreeing with its columns, ascending, within ``size``."""
    if any(not 0 <= cp.size <= size for cp in stored) or \
            any(a.size >= b.size for a, b in zip(stored, stored[1:], strict=False)):
        return False
    for cp in stored:
        try:
            signed = open_checkpoint(cp.note, verifier)
        except (SignatureError, NoteFormatError):
            return False
        if signed.size != cp.size or signed.root != cp.root:
            return False
    return True


def _share(opener: ReaderOpener, tasks: list[ChunkTask], out: Connection) -> None:
    """A worker process: check its share of the chunks and send the summaries back."""
    try:
        result = check_chunks(opener, tasks)
    except Exception:  # noqa: BLE001 - any failure in a worker: the exact pass decides
        result = None
    out.send(result)
    out.close()


def _in_workers(opener: ReaderOpener, workers: int,
                tasks: list[ChunkTask]) -> list[ChunkSummary] | None:
    """Chunks dealt round-robin to ``workers`` processes, one share each (even loads)."""
    shares = [tasks[w::workers] for w in range(workers) if tasks[w::workers]]
    # Fork: start-up in milliseconds and no re-import. The children never touch
    # the parent's connections; each opens its own reader. One process per
    # share, not a pool: a pool may hand two shares to one process.
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("fork" if "fork" in methods else None)
    processes, results = [], []
    for share in shares:
        receive, send = context.Pipe(duplex=False)
        process = context.Process(target=_share, args=(opener, share, send), daemon=True)
        process.start()
        send.close()
        processes.append(process)
        results.append(receive)
    parts: list[list[ChunkSummary] | None] = []
    try:
        for receive in results:
            parts.append(receive.recv())
            if parts[-1] is None:
                break  # not clean: the exact pass follows, the other shares are moot
    except (EOFError, OSError):  # a worker died without answering
        parts.append(None)
    finally:
        for process, receive in zip(processes, results, strict=True):
            if None in parts:
                process.terminate()
            process.join()
            receive.close()
    if any(part is None for part in parts):
        return None
    found = [summary for part in parts if part is not None for summary in part]
    return sorted(found, key=lambda summary: summary.start)


def _nodes_outside(reader: LedgerReader, size: int) -> bool:
    """Whether any stored node ends before leaf 0 or at or after leaf ``size``."""
    low, high = _KEYS
    return any(True for _ in reader.node_hashes_ending_between(low, -1)) or \
        any(True for _ in reader.node_hashes_ending_between(size, high))


def _links_and_upper(summaries: list[ChunkSummary], tasks: list[ChunkTask],
                     bits: int) -> list[list[bytes]] | None:
    """Check the chunk links and the stored upper nodes; the tree over the chunk roots."""
    if [(s.start, s.stop) for s in summaries] != [(t.start, t.stop) for t in tasks]:
        return None
    expected_prev = _ZEROS
    for summary in summaries:
        if summary.first_prev != expected_prev:
            return None
        expected_prev = hexlify(summary.last_leaf)
    roots = [s.root for s in summaries if s.root is not None]  # the full chunks
    upper = levels(roots) if roots else [[]]
    for i, summary in enumerate(summaries):
        # The exact pass meets these right after the chunk's own top node: the
        # nodes its root completes, by ascending level (RFC 9162 §2.1.1 order).
        want = []
        level = 1
        while i < len(roots) and level < len(upper) and (i + 1) % (1 << level) == 0:
            want.append(upper[level][((i + 1) >> level) - 1])
            level += 1
        if list(summary.upper) != want:
            return None
    return upper


def _roots_match(summaries: list[ChunkSummary], tasks: list[ChunkTask],
                 upper: list[list[bytes]], stored: list[StoredCheckpoint]) -> bool:
    """Every checkpoint's root equals the one recomputed at its size."""
    roots = {0: fold([])}
    for i, (summary, task) in enumerate(zip(summaries, tasks, strict=True)):
        before = list(subtree_cover(upper, i)) if i else []
        for size, inside in zip(task.sizes, summary.covers, strict=True):
            roots[size] = fold([*before, *inside])
    return all(roots.get(cp.size) == cp.root for cp in stored)


def chunked_report(reader: LedgerReader, verifier: NoteVerifier, *, bits: int = CHUNK_BITS,
                   opener: ReaderOpener | None = None, workers: int = 1,
                   parallel_from: int = 0) -> LedgerReport | None:
    """A clean report if the chunked pass finds the ledger clean, else ``None``.

    With ``opener``, ``workers > 1`` and at least ``parallel_from`` entries,
    the chunks are checked in that many worker processes; otherwise here,
    through ``reader``.
    """
    size = reader.size()
    stored = list(reader.checkpoints())
    if not _signed(stored, size, verifier):
        return None
    tasks = plan(size, [cp.size for cp in stored], bits)
    if opener is not None and workers > 1 and size >= parallel_from:
        summaries = _in_workers(opener, workers, tasks)
    else:
        summaries = check_chunks_in(reader, tasks)
    if summaries is None:
        return None
    upper = _links_and_upper(summaries, tasks, bits)
    if upper is None or not _roots_match(summaries, tasks, upper, stored):
        return None
    if _nodes_outside(reader, size) or check_head(reader, size, stored) is not None:
        return None
    return LedgerReport(True, size, len(stored), None, None,
                        f"{size} entries and {len(stored)} checkpoints verified")
