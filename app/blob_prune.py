"""Pruning the blob store: ciphertext no packet references, past a grace period.

A client uploads the streams of a large packet (``PUT /v1/blobs/{sha256}``)
before it submits the envelope; one that gives up in between leaves blobs that
no packet names, and they would fill the disk. ``cadena-server blobs prune``
removes those stored longer than a grace period (default 24 h; uploading a
stored blob again restarts it), with one ledger entry per blob, ``blob.prune``
by the system, in the transaction that decides it. A blob any packet names
(active or withdrawn) is never pruned, nor are inline streams (they are rows).

A submission in flight must never commit a packet whose blob is gone. Each
batch therefore takes the ledger head lock before it reads which blobs packets
reference, and moves the unreferenced ones aside (``<hex>.pruned``, a rename)
before it commits; a submission checks its uploaded streams again after its
own ledger append, under the same lock (``app.packets.submission``). Either
the submission commits first, and the batch sees its stream rows, or the batch
does, and the submission finds the blob missing and is refused (422,
``missing-stream``) with nothing kept. On SQLite every transaction holds the
write lock from ``BEGIN IMMEDIATE``, which serializes them the same way.

After the commit the moved files are deleted; if the batch fails they are
moved back. Files a crash left moved aside are moved back when the next run
starts and considered again, so a crash between a commit and the deletion can
log a blob's pruning twice, never lose one. Temporary files of uploads that a
crash interrupted (``.upload-*``) past the grace period are deleted too.

The database store (``app.blob_db``) is pruned the same way, in rows: each
batch locks the head, reads the references, locks the candidates' ``blobs``
rows (an upload again meanwhile restarts the grace period), deletes their
rows and chunks and appends their entries, all in one transaction. Nothing is
moved aside, and an interrupted upload leaves nothing to delete (its
transaction rolled back).
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from app.blob_db import DatabaseBlobStore, delete_blobs
from app.blobs import SHA256_PATTERN, BlobStorage, BlobStore
from app.ledger import UnitOfWork, draft, now, record_many, storage_for, transaction
from app.models.blob import Blob
from app.models.packet import PacketStream

PRUNED_SUFFIX = ".pruned"
UPLOAD_PREFIX = ".upload-"
BATCH = 64
"""Blobs decided per transaction (the ledger head stays locked until its commit)."""
ACTION = "blob.prune"
_BLOB_NAME = re.compile(SHA256_PATTERN)


@dataclass(frozen=True)
class Candidate:
    """A stored blob old enough to prune, if no packet references it."""

    sha256: str
    size: int
    last_upload: datetime


@dataclass
class PruneReport:
    """What a run found and did."""

    examined: int = 0
    referenced: int = 0
    recent: int = 0
    pruned: list[Candidate] = field(default_factory=list)
    restored: int = 0
    partial_uploads: int = 0

    @property
    def bytes_freed(self) -> int:
        """The size of the pruned blobs."""
        return sum(c.size for c in self.pruned)


def _files(store: BlobStore) -> Iterator[tuple[Path, os.stat_result]]:
    """Every regular file two levels down (``ab/cd/<name>``), with its one ``stat``."""
    if not store.root.is_dir():
        return
    for path in store.root.glob("??/??/*"):
        try:
            info = path.stat()
        except FileNotFoundError:  # pruned or renamed meanwhile
            continue
        if stat.S_ISREG(info.st_mode):
            yield path, info


def _mtime(path: Path) -> datetime | None:
    try:
        return datetime.fromtimestamp(path.stat().st_mtime, UTC)
    except FileNotFoundError:
        return None


def restore_moved(store: BlobStore) -> int:
    """Move back blobs a crashed run left aside; the number moved back."""
    restored = 0
    for path, _ in _files(store):
        if not path.name.endswith(PRUNED_SUFFIX):
            continue
        target = path.with_name(path.name.removesuffix(PRUNED_SUFFIX))
        if target.exists():  # uploaded again since: the same bytes
            path.unlink(missing_ok=True)
        else:
            os.replace(path, target)
        restored += 1
    return restored


def scan(store: BlobStore, grace: timedelta, moment: datetime, report: PruneReport, *,
         delete_partial: bool) -> Iterator[Candidate]:
    """Blobs stored for at least ``grace``, lazily (a walk of the store in constant memory);
    stale partial uploads are counted (and deleted)."""
    for path, info in _files(store):
        since = datetime.fromtimestamp(info.st_mtime, UTC)
        if path.name.startswith(UPLOAD_PREFIX):
            if moment - since >= grace:
                if delete_partial:
                    path.unlink(missing_ok=True)
                report.partial_uploads += 1
            continue
        if not _BLOB_NAME.fullmatch(path.name):
            continue
        report.examined += 1
        if moment - since < grace:
            report.recent += 1
            continue
        yield Candidate(path.name, info.st_size, since)


def _batches(candidates: Iterator[Candidate]) -> Iterator[list[Candidate]]:
    batch: list[Candidate] = []
    for candidate in candidates:
        batch.append(candidate)
        if len(batch) == BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


def referenced(session: Session, digests: Sequence[str]) -> set[str]:
    """Those of ``digests`` that some packet's stream names."""
    rows = session.execute(select(PacketStream.sha256).distinct()
                           .where(PacketStream.sha256.in_(list(digests))))
    return set(rows.scalars())


def _decide(session: Session, store: BlobStore, batch: Sequence[Candidate], grace: timedelta,
            *, report: PruneReport, moved: list[tuple[Path, Path]]) -> list[Candidate]:
    storage_for(session).lock_head()  # before reading references: see the module docstring
    named = referenced(session, [c.sha256 for c in batch])
    pruned = []
    moment = now()
    for candidate in batch:
        if candidate.sha256 in named:
            report.referenced += 1
            continue
        path = store.path(candidate.sha256)
        since = _mtime(path)
        if since is None:  # gone meanwhile
            continue
        if moment - since < grace:  # uploaded again meanwhile
            report.recent += 1
            continue
        aside = path.with_name(path.name + PRUNED_SUFFIX)
        os.replace(path, aside)
        moved.append((aside, path))
        pruned.append(candidate)
    _record(session, pruned, grace)
    return pruned


def _record(session: Session, pruned: Sequence[Candidate], grace: timedelta) -> None:
    # One append for the batch: the head stays locked until the commit, for every process.
    record_many(session, [draft(None, ACTION, {"type": "blob", "id": c.sha256},
                                details={"size": c.size, "last_upload": c.last_upload.isoformat(),
                                         "grace_seconds": int(grace.total_seconds())})
                          for c in pruned])


def prune(factory: sessionmaker[UnitOfWork], store: BlobStorage, grace: timedelta, *,
          dry_run: bool = False) -> PruneReport:
    """Prune unreferenced blobs stored for at least ``grace``; ``dry_run``: only report."""
    if isinstance(store, DatabaseBlobStore):
        return _prune_rows(factory, grace, dry_run=dry_run)
    if not isinstance(store, BlobStore):
        raise TypeError(f"cannot prune a {type(store).__name__}")
    report = PruneReport()
    if dry_run:
        for batch in _batches(scan(store, grace, now(), report, delete_partial=False)):
            with transaction(factory) as session:
                named = referenced(session, [c.sha256 for c in batch])
            report.referenced += len(named)
            report.pruned += [c for c in batch if c.sha256 not in named]
        return report
    report.restored = restore_moved(store)
    for batch in _batches(scan(store, grace, now(), report, delete_partial=True)):
        moved: list[tuple[Path, Path]] = []
        try:
            with transaction(factory) as session:
                done = _decide(session, store, batch, grace, report=report, moved=moved)
        except BaseException:
            for aside, path in moved:
                os.replace(aside, path)
            raise
        for aside, _ in moved:
            aside.unlink(missing_ok=True)
        report.pruned.extend(done)
    return report


def _stale_rows(factory: sessionmaker[UnitOfWork], before: datetime,
                after: str) -> list[Candidate]:
    """The next :data:`BATCH` blobs (by digest, past ``after``) last uploaded by ``before``."""
    with transaction(factory) as session:
        rows = session.execute(select(Blob.sha256, Blob.size, Blob.stored_at)
                               .where(Blob.stored_at <= before, Blob.sha256 > after)
                               .order_by(Blob.sha256).limit(BATCH))
        return [Candidate(r.sha256, r.size, r.stored_at) for r in rows]


def _decide_rows(session: Session, batch: Sequence[Candidate], grace: timedelta,
                 report: PruneReport) -> list[Candidate]:
    storage_for(session).lock_head()  # before reading references: see the module docstring
    digests = [c.sha256 for c in batch]
    named = referenced(session, digests)
    stored = {r.sha256: r.stored_at for r in session.execute(
        select(Blob.sha256, Blob.stored_at).where(Blob.sha256.in_(digests)).with_for_update())}
    moment = now()
    pruned = []
    for candidate in batch:
        if candidate.sha256 in named:
            report.referenced += 1
        elif candidate.sha256 not in stored:  # gone meanwhile
            continue
        elif moment - stored[candidate.sha256] < grace:  # uploaded again meanwhile
            report.recent += 1
        else:
            pruned.append(candidate)
    delete_blobs(session, [c.sha256 for c in pruned])
    _record(session, pruned, grace)
    return pruned


def _prune_rows(factory: sessionmaker[UnitOfWork], grace: timedelta, *,
                dry_run: bool) -> PruneReport:
    """:func:`prune` for the database store."""
    report = PruneReport()
    before = now() - grace
    with transaction(factory) as session:
        report.examined = session.execute(select(func.count()).select_from(Blob)).scalar_one()
        old = session.execute(select(func.count()).select_from(Blob)
                              .where(Blob.stored_at <= before)).scalar_one()
    report.recent = report.examined - old
    after = ""
    while batch := _stale_rows(factory, before, after):
        after = batch[-1].sha256
        with transaction(factory) as session:
            if dry_run:
                named = referenced(session, [c.sha256 for c in batch])
                report.referenced += len(named)
                report.pruned += [c for c in batch if c.sha256 not in named]
            else:
                report.pruned += _decide_rows(session, batch, grace, report)
    return report
