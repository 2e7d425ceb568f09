"""``cadena-server restore``: an archive checked whole, then put back into an empty place.

The archive (:mod:`app.backup`) is decrypted with the operator's key when it
is encrypted, and every member checked against ``manifest.json`` (SHA-256,
size, nothing missing or extra, only names restore may write) in a private
scratch directory inside the data directory, before anything is written
where the server would read it. The data directory and the database must be
empty unless ``force``. The caller then migrates, compares the ledger with
the manifest, verifies it and asks the witnesses (``app.cli``).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import make_url, text
from sqlalchemy.pool import NullPool

from app.backup import (
    COPY_CHUNK,
    FORMAT,
    MANIFEST,
    POSTGRES_MEMBER,
    SQLITE_MEMBER,
    BackupError,
    LedgerState,
    ledger_state,
    pg_connection,
    private_file,
    program,
)
from app.blobs import BlobStore
from app.datadir import make_private_dir
from app.ledger import make_engine
from crypto import CryptoError, LiaisonKeys, decrypt_archive, is_encrypted_archive


def is_encrypted(archive: Path) -> bool:
    """Whether ``archive`` is encrypted to an operator's key."""
    with archive.open("rb") as file:
        return is_encrypted_archive(file.read(64))


def _decrypt(archive: Path, identity: LiaisonKeys, target: Path) -> None:
    try:
        with archive.open("rb") as source, private_file(target) as sink:
            decrypt_archive(source, sink, identity)
    except CryptoError as exc:
        raise BackupError(f"the archive does not open with this identity, or was altered or "
                          f"truncated: {exc}") from exc


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
                with private_file(target) as sink:
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
        with (unpack / SQLITE_MEMBER).open("rb") as source, private_file(path) as sink:
            shutil.copyfileobj(source, sink, COPY_CHUNK)
            sink.flush()
            os.fsync(sink.fileno())
        return
    dsn, env = pg_connection(url)
    done = subprocess.run(  # noqa: S603 (fixed program, arguments not from a shell)
        [program("pg_restore"), "--no-owner", "--no-privileges", "--exit-on-error",
         "--single-transaction", f"--dbname={dsn}", str(unpack / POSTGRES_MEMBER)],
        env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise BackupError(f"pg_restore failed: {done.stderr.strip()[:500]}")


def _place(source: Path, target: Path, *, force: bool) -> None:
    target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    if force:
        with contextlib.suppress(FileNotFoundError):
            target.unlink()
    with source.open("rb") as src, private_file(target) as sink:
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
            return ledger_state(conn)
    finally:
        engine.dispose()
