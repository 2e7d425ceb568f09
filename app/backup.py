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
import hashlib
import io
import json
import os
import re
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
from app.datadir import FILE_MODE, make_private_dir
from app.ledger import make_engine, storage_for
from app.models.packet import PacketStream
from crypto import (
    CryptoError,
    LiaisonKeys,
    LiaisonPublicKeys,
    decrypt_archive,
    digest_stream,
    encrypt_archive,
    is_encrypted_archive,
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


def _ledger_state(conn: Connection) -> LedgerState:
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


def _libpq(url: str) -> tuple[str, dict[str, str]]:
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
                state, blobs = _ledger_state(conn), _referenced_blobs(conn)
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
            state, blobs = _ledger_state(conn), _referenced_blobs(conn)
            target = work / "cadena.pgdump"
            libpq, env = _libpq(database_url)
            done = subprocess.run(  # noqa: S603 (fixed program, arguments not from a shell)
                [_program("pg_dump"), "--format=custom", "--no-owner", "--no-privileges",
                 f"--snapshot={snapshot}", f"--file={target}", f"--dbname={libpq}"],
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


def _private_file(path: Path) -> BinaryIO:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    return cast("BinaryIO", os.fdopen(fd, "wb"))


def _program(name: str) -> str:
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
            with _private_file(tar_path) as raw, tarfile.open(fileobj=raw, mode="w") as tar:
                _add_bytes(tar, MANIFEST, json.dumps(manifest, indent=1,
                                                     sort_keys=True).encode())
                for name, path in files:
                    _add_file(tar, name, path)
        partial = out.with_name(f".{out.name}.partial")
        with _private_file(partial) as sink:
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


def is_encrypted(archive: Path) -> bool:
    """Whether ``archive`` is encrypted to an operator's key."""
    with archive.open("rb") as file:
        return is_encrypted_archive(file.read(64))


def _decrypt(archive: Path, identity: LiaisonKeys, target: Path) -> None:
    try:
        with archive.open("rb") as source, _private_file(target) as sink:
            decrypt_archive(source, sink, identity)
    except CryptoError as exc:
        raise BackupError(f"the archive does not open with this identity, or was altered or "
                          f"truncated: {exc}") from exc


# -- restore -------------------------------------------------------------------


@dataclass(frozen=True)
class Targets:
    """Where restore puts things: the server's own settings for the new data directory."""

    data_dir: Path
    database_url: str
    blob_store: BlobStore
    keys: dict[str, Path]
    """Archive key name → where it belongs (names not listed go into the data directory)."""


def _read_manifest(tar: tarfile.TarFile) -> tuple[tarfile.TarInfo, dict[str, Any]]:
    first = tar.next()
    if first is None or first.name != MANIFEST or not first.isfile():
        raise BackupError("not a Cadena backup: the first member is not manifest.json")
    handle = tar.extractfile(first)
    if handle is None:
        raise BackupError("the manifest cannot be read")
    try:
        manifest: dict[str, Any] = json.loads(handle.read(1 << 24))
    except ValueError as exc:
        raise BackupError(f"the manifest is not JSON: {exc}") from exc
    if manifest.get("format") != FORMAT:
        raise BackupError(f"unknown backup format {manifest.get('format')!r}")
    return first, manifest


_BLOB_NAME = re.compile(r"blobs/([0-9a-f]{2})/([0-9a-f]{2})/(\1\2[0-9a-f]{60})")
_KEY_NAME = re.compile(r"keys/[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


def _safe_name(name: str) -> bool:
    """A member name restore may write: the database, a blob by its digest, a key file."""
    return (name in {SQLITE_MEMBER, POSTGRES_MEMBER} or _BLOB_NAME.fullmatch(name) is not None
            or _KEY_NAME.fullmatch(name) is not None)


def verify_archive(tar_path: Path, unpack: Path) -> dict[str, Any]:
    """Check every member against the manifest while unpacking into ``unpack``.

    Raises :class:`BackupError` on a missing, extra, altered or oddly named
    member; nothing outside ``unpack`` is written.
    """
    try:
        with tarfile.open(tar_path, mode="r:") as tar:
            first, manifest = _read_manifest(tar)
            expected: dict[str, dict[str, Any]] = manifest.get("members", {})
            seen: set[str] = set()
            for member in tar:
                if member is first:
                    continue
                name = member.name
                if not member.isfile() or not _safe_name(name):
                    raise BackupError(f"the archive holds {name!r}, not a file restore may "
                                      "write (tampered?)")
                if name not in expected:
                    raise BackupError(f"the archive holds {name!r}, which the manifest "
                                      "does not name (tampered?)")
                if name in seen:
                    raise BackupError(f"the archive holds {name!r} twice (tampered?)")
                seen.add(name)
                handle = tar.extractfile(member)
                if handle is None:
                    raise BackupError(f"{name} cannot be read")
                target = unpack / name
                target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
                digest = hashlib.sha256()
                with _private_file(target) as sink:
                    while block := handle.read(COPY_CHUNK):
                        digest.update(block)
                        sink.write(block)
                want = expected[name]
                if digest.hexdigest() != want.get("sha256") or target.stat().st_size != want.get(
                        "size"):
                    raise BackupError(f"{name} does not match the manifest's SHA-256 "
                                      "(tampered or corrupt archive)")
    except tarfile.TarError as exc:
        raise BackupError(f"the archive is not a readable tar (truncated?): {exc}") from exc
    missing = sorted(set(expected) - seen)
    if missing:
        raise BackupError(f"the archive lacks {missing[0]} (and {len(missing) - 1} more) that "
                          "the manifest names")
    for name in seen:
        if name.startswith("blobs/") and expected[name]["sha256"] != name.rsplit("/", 1)[1]:
            raise BackupError(f"{name} does not hash to its name")
    return manifest


def _database_empty(url: str) -> bool:
    if url.startswith("sqlite"):
        path = make_url(url).database
        return not path or not Path(path).exists() or Path(path).stat().st_size == 0
    engine = make_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            count = conn.execute(text(
                "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")).scalar_one()
    finally:
        engine.dispose()
    return int(count) == 0


def _data_dir_empty(targets: Targets) -> bool:
    if not targets.data_dir.exists():
        return True
    url = targets.database_url
    db_file = make_url(url).database if url.startswith("sqlite") else None
    for path in targets.data_dir.iterdir():
        if path.name.startswith(".cadena-restore-"):
            continue
        if db_file is not None and path.resolve() == Path(db_file).resolve():
            continue  # judged with the database
        return False
    return True


def _clear_database(url: str) -> None:
    if url.startswith("sqlite"):
        path = make_url(url).database
        for suffix in ("", "-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                Path(f"{path}{suffix}").unlink()
        return
    engine = make_engine(url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(text("DROP SCHEMA public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
    finally:
        engine.dispose()


def _place_database(manifest: dict[str, Any], unpack: Path, url: str) -> None:
    kind = manifest.get("database")
    if url.startswith("sqlite") != (kind == "sqlite"):
        raise BackupError(f"the archive holds a {kind} database; the target is "
                          f"{'SQLite' if url.startswith('sqlite') else 'PostgreSQL'} "
                          "(restore into the same kind of database)")
    if kind == "sqlite":
        path = Path(str(make_url(url).database))
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        with (unpack / SQLITE_MEMBER).open("rb") as source, _private_file(path) as sink:
            shutil.copyfileobj(source, sink, COPY_CHUNK)
            sink.flush()
            os.fsync(sink.fileno())
        return
    libpq, env = _libpq(url)
    done = subprocess.run(  # noqa: S603 (fixed program, arguments not from a shell)
        [_program("pg_restore"), "--no-owner", "--no-privileges", "--exit-on-error",
         "--single-transaction", f"--dbname={libpq}", str(unpack / POSTGRES_MEMBER)],
        env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise BackupError(f"pg_restore failed: {done.stderr.strip()[:500]}")


def _place(source: Path, target: Path, *, force: bool) -> None:
    target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    if force:
        with contextlib.suppress(FileNotFoundError):
            target.unlink()
    with source.open("rb") as src, _private_file(target) as sink:
        shutil.copyfileobj(src, sink, COPY_CHUNK)
        sink.flush()
        os.fsync(sink.fileno())


def open_archive(archive: Path, identity: LiaisonKeys | None, work: Path) -> Path:
    """The plain tar of ``archive`` (decrypted into ``work`` when it is encrypted)."""
    if not is_encrypted(archive):
        return archive
    if identity is None:
        raise BackupError("the archive is encrypted to an operator key: give --identity "
                          "KEY_FILE (the operator's key file)")
    plain = work / "archive.tar"
    _decrypt(archive, identity, plain)
    return plain


def restore(archive: Path, targets: Targets, identity: LiaisonKeys | None = None,
            *, force: bool = False) -> dict[str, Any]:
    """Restore ``archive`` into ``targets``; return its manifest.

    The archive is decrypted and every member checked against the manifest
    before anything is written outside a private scratch directory. The data
    directory and database must be empty unless ``force``.
    """
    targets.data_dir.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    make_private_dir(targets.data_dir)
    if not force and not (_data_dir_empty(targets) and _database_empty(targets.database_url)):
        raise BackupError(f"the data directory {targets.data_dir} or the database is not "
                          "empty: restore into an empty one (or give --force to replace it)")
    with tempfile.TemporaryDirectory(prefix=".cadena-restore-", dir=targets.data_dir) as scratch:
        work = Path(scratch)
        tar_path = open_archive(archive, identity, work)
        unpack = work / "unpacked"
        unpack.mkdir(mode=0o700)
        manifest = verify_archive(tar_path, unpack)
        member = SQLITE_MEMBER if manifest.get("database") == "sqlite" else POSTGRES_MEMBER
        if member not in manifest["members"]:
            raise BackupError(f"the archive holds no {member}")
        key_targets = {name: targets.keys.get(name.split("/", 1)[1],
                                              targets.data_dir / name.split("/", 1)[1])
                       for name in manifest["members"] if name.startswith("keys/")}
        present = [str(path) for path in key_targets.values() if path.exists()]
        if present and not force:
            raise BackupError(f"{present[0]} exists already: restore never overwrites a key "
                              "(give --force to replace it)")
        if force:
            _clear_database(targets.database_url)
        _place_database(manifest, unpack, targets.database_url)
        for name in manifest["members"]:
            if name.startswith("blobs/"):
                sha = name.rsplit("/", 1)[1]
                _place(unpack / name, targets.blob_store.path(sha), force=force)
            elif name in key_targets:
                _place(unpack / name, key_targets[name], force=force)
    return manifest


def restored_ledger(database_url: str) -> LedgerState:
    """The ledger's size, root and latest checkpoint size in the restored database."""
    engine = make_engine(database_url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            return _ledger_state(conn)
    finally:
        engine.dispose()
