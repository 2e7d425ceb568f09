"""``cadena-server backup`` and ``restore``: a consistent archive of a running server.

An archive is a tar holding ``manifest.json`` first, then ``database/...``
(the SQLite file made by the sqlite3 online-backup API, or a ``pg_dump``
custom-format dump taken under a snapshot exported from a ``REPEATABLE READ``
transaction), ``blobs/ab/cd/<hex>`` (the blobs that snapshot's packets
reference; blobs are immutable and content-addressed, so they are copied after
the snapshot) and ``keys/<name>`` (the ledger key, its origin file, the
certificate seal key and any other ``*.key`` in the data directory). The
manifest names the SHA-256 and size of every other member and the ledger's
size and root at the snapshot; restore checks all of it before it writes
anything (docs/adr: backup-archive-and-witnesses).

The archive file is written 0600. With a recipient (an operator's public key
set, ``cadena keys show --json``) the tar is encrypted to it with the packet
cryptography (:mod:`crypto`): a fresh content key, wrapped to the operator's
X25519 key and used through the chunked STREAM construction, so a stolen
archive reveals nothing and a truncated or altered one fails to open.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import sqlite3
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO, cast

from sqlalchemy import make_url, select, text
from sqlalchemy.engine import Connection
from sqlalchemy.pool import NullPool

from app.blobs import BlobStore
from app.datadir import FILE_MODE
from app.ledger import make_engine, storage_for
from app.models.packet import PacketStream
from crypto import (
    LiaisonPublicKeys,
    digest_stream,
    encrypt_archive,
)
from ledger import Ledger

FORMAT = "cadena-backup/1"
MANIFEST = "manifest.json"
SQLITE_MEMBER = "database/cadena.db"
POSTGRES_MEMBER = "database/cadena.pgdump"
COPY_CHUNK = 1 << 20


class BackupError(Exception):
    """The backup or restore cannot go on; the message says why and what to do."""


@dataclass(frozen=True)
class LedgerState:
    """The ledger at the snapshot: entries, RFC 9162 root, latest signed checkpoint size."""

    size: int
    root: str
    checkpoint_size: int


@dataclass(frozen=True)
class BackupReport:
    """What a backup holds."""

    path: Path
    ledger: LedgerState
    blobs: int
    keys: tuple[str, ...]
    encrypted: bool


@dataclass(frozen=True)
class Sources:
    """Where the server keeps what a backup covers."""

    database_url: str
    blob_store: BlobStore
    keys: dict[str, Path]
    """Archive name (``ledger.key``) → file; only files that exist are archived."""


LEDGER_KEY, LEDGER_ORIGIN, SEAL_KEY = "ledger.key", "ledger.key.origin", "certificate-seal.key"
"""The archive's names of the keys with a role, wherever the settings put them."""


def key_files(data_dir: Path, ledger_key: Path, seal_key: Path) -> dict[str, Path]:
    """The keys a backup covers (archive name → file), or a restore writes.

    The ledger key, its origin and the seal key under their role's name
    (their settings may place them anywhere), then any other ``*.key`` file
    in the data directory under its own name.
    """
    roles = {LEDGER_KEY: ledger_key, LEDGER_ORIGIN: ledger_key.with_name(
        ledger_key.name + ".origin"), SEAL_KEY: seal_key}
    found = dict(roles)
    taken = {path.resolve() for path in roles.values()}
    if data_dir.is_dir():
        for path in sorted(data_dir.glob("*.key")):
            if path.resolve() not in taken and path.name not in found:
                found[path.name] = path
    return found


def _sha256_file(path: Path) -> tuple[str, int]:
    with path.open("rb") as file:
        digest = digest_stream(file)
    return digest.sha256, digest.length


def ledger_state(conn: Connection) -> LedgerState:
    from sqlalchemy.orm import Session

    with Session(bind=conn) as session:
        storage = storage_for(session)
        size = storage.size()
        root = Ledger(storage).root(size)
        latest = storage.latest_checkpoint()
    return LedgerState(size, root.hex(), latest.size if latest is not None else 0)


def _referenced_blobs(conn: Connection) -> list[str]:
    # Inline streams live in their row (content not null): no blob behind them.
    rows = conn.execute(select(PacketStream.sha256).distinct()
                        .where(PacketStream.content.is_(None)))
    return sorted(rows.scalars())


def pg_connection(url: str) -> tuple[str, dict[str, str]]:
    """A libpq URL without the password, and the environment carrying it (not in ``ps``)."""
    parsed = make_url(url)
    env = dict(os.environ)
    if parsed.password is not None:
        env["PGPASSWORD"] = str(parsed.password)
    plain = parsed.set(drivername="postgresql", password=None)
    return plain.render_as_string(hide_password=False), env


@contextlib.contextmanager
def _snapshot(database_url: str, work: Path) -> Iterator[tuple[Path, str, LedgerState, list[str]]]:
    """Take the database snapshot into ``work``: (file, member name, ledger, blobs)."""
    if database_url.startswith("sqlite"):
        source = make_url(database_url).database
        if not source or not Path(source).exists():
            raise BackupError(f"no SQLite database at {source}")
        target = work / "cadena.db"
        # The online backup API copies a consistent image page by page while
        # writers carry on (WAL included); read the snapshot, not the live file.
        src = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
        dst = sqlite3.connect(target)
        try:
            src.backup(dst)
        finally:
            src.close()
            dst.close()
        engine = make_engine(f"sqlite:///{target}", poolclass=NullPool)
        try:
            with engine.connect() as conn:
                state, blobs = ledger_state(conn), _referenced_blobs(conn)
        finally:
            engine.dispose()
        yield target, SQLITE_MEMBER, state, blobs
        return
    engine = make_engine(database_url, poolclass=NullPool, isolation_level="REPEATABLE READ")
    try:
        with engine.connect() as conn:
            # The snapshot is fixed by the first statement and exported; pg_dump
            # reads exactly it while this transaction stays open.
            snapshot = conn.execute(text("SELECT pg_export_snapshot()")).scalar_one()
            state, blobs = ledger_state(conn), _referenced_blobs(conn)
            target = work / "cadena.pgdump"
            dsn, env = pg_connection(database_url)
            done = subprocess.run(  # noqa: S603 (fixed program, arguments not from a shell)
                [program("pg_dump"), "--format=custom", "--no-owner", "--no-privileges",
                 f"--snapshot={snapshot}", f"--file={target}", f"--dbname={dsn}"],
                env=env, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                raise BackupError(f"pg_dump failed: {done.stderr.strip()[:500]}")
            conn.rollback()
        yield target, POSTGRES_MEMBER, state, blobs
    finally:
        engine.dispose()


def _add_file(tar: tarfile.TarFile, name: str, path: Path) -> None:
    info = tarfile.TarInfo(name)
    info.size = path.stat().st_size
    info.mode = FILE_MODE
    with path.open("rb") as file:
        tar.addfile(info, file)


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = FILE_MODE
    tar.addfile(info, io.BytesIO(data))


def private_file(path: Path) -> BinaryIO:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    return cast("BinaryIO", os.fdopen(fd, "wb"))


def program(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise BackupError(f"{name} is not installed (PostgreSQL's client programs: "
                          "postgresql-client)")
    return found


def backup(sources: Sources, out: Path, recipient: LiaisonPublicKeys | None = None) -> BackupReport:
    """Write a consistent archive of ``sources`` to ``out`` (0600, never overwriting)."""
    if out.exists():
        raise BackupError(f"{out} exists already; a backup never overwrites a file")
    with tempfile.TemporaryDirectory(prefix=".cadena-backup-", dir=out.parent) as scratch:
        work = Path(scratch)  # 0700, beside the archive: the snapshot never leaves its disk
        with _snapshot(sources.database_url, work) as (db_file, db_member, state, blobs):
            members: dict[str, dict[str, Any]] = {}
            files: list[tuple[str, Path]] = [(db_member, db_file)]
            if not sources.blob_store.in_database:
                for sha in blobs:
                    path = sources.blob_store.path(sha)
                    if not path.is_file():
                        raise BackupError(f"blob {sha} referenced by a packet is missing from "
                                          f"{sources.blob_store.root}")
                    files.append((f"blobs/{sha[:2]}/{sha[2:4]}/{sha}", path))
            for name, path in sources.keys.items():
                if path.is_file():
                    files.append((f"keys/{name}", path))
            for name, path in files:
                digest, size = _sha256_file(path)
                if name.startswith("blobs/") and digest != name.rsplit("/", 1)[1]:
                    raise BackupError(f"blob {name} does not hash to its name")
                members[name] = {"sha256": digest, "size": size}
            manifest = {"format": FORMAT, "created_at": datetime.now(UTC).isoformat(),
                        "database": "sqlite" if db_member == SQLITE_MEMBER else "postgresql",
                        "ledger": {"size": state.size, "root": state.root,
                                   "checkpoint_size": state.checkpoint_size},
                        "blobs_in_database": sources.blob_store.in_database,
                        "members": members}
            tar_path = work / "archive.tar"
            with private_file(tar_path) as raw, tarfile.open(fileobj=raw, mode="w") as tar:
                _add_bytes(tar, MANIFEST, json.dumps(manifest, indent=1,
                                                     sort_keys=True).encode())
                for name, path in files:
                    _add_file(tar, name, path)
        partial = out.with_name(f".{out.name}.partial")
        with private_file(partial) as sink:
            if recipient is None:
                with tar_path.open("rb") as source:
                    shutil.copyfileobj(source, sink, COPY_CHUNK)
            else:
                with tar_path.open("rb") as source:
                    encrypt_archive(source, sink, recipient)
            sink.flush()
            os.fsync(sink.fileno())
        partial.rename(out)
    keys = tuple(sorted(name for name, path in sources.keys.items() if path.is_file()))
    return BackupReport(out, state, len(blobs), keys, recipient is not None)
