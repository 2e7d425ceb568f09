"""``cadena-server restore``: an archive checked whole, then put in place all at once.

The archive (:mod:`app.backup`) is decrypted with the operator's key when it
is encrypted, and every member checked against ``manifest.json`` (SHA-256,
size, nothing missing or extra, only names restore may write). The new data
directory is built in a private directory beside the old one (PostgreSQL:
the dump loaded in one transaction, the old schema set aside), the caller's
checks run on it (migrations, the ledger against the manifest, ``ledger
verify``, the witnesses: ``app.cli``), and only then does it take the old
one's place, in one rename (:mod:`app.staging`). A fault anywhere before
leaves the data directory and database as they were. They must be empty
unless ``force``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import tarfile
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
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
    private_file,
)
from app.blobs import BlobStore
from app.datadir import make_private_dir
from app.ledger import make_engine
from app.staging import (
    MARKER,
    analyze,
    drop_replaced,
    exchange,
    load_postgres,
    read_marker,
    replaced_name,
    undo_postgres,
    write_marker,
)
from crypto import CryptoError, LiaisonKeys, decrypt_archive, is_encrypted_archive


class BehindError(BackupError):
    """The staged ledger is behind what its witnesses cosigned (``serve`` would refuse)."""


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


def _inside(path: Path, directory: Path) -> Path | None:
    """``path`` relative to ``directory`` when it lies inside it, else ``None``."""
    full, base = Path(os.path.abspath(path)), Path(os.path.abspath(directory))
    return full.relative_to(base) if full.is_relative_to(base) else None


def _private_dirs(path: Path, top: Path) -> None:
    """Create ``path`` and any missing parent up to ``top`` (which exists), each 0700."""
    missing = []
    while path != top and not path.exists():
        missing.append(path)
        path = path.parent
    for directory in reversed(missing):
        make_private_dir(directory)


@dataclass
class _Stage:
    """The new data directory being built beside the old one, and files bound elsewhere."""

    root: Path
    data_dir: Path
    externals: list[tuple[Path, Path]]
    """(temporary file beside its place, its place) for files outside the data directory."""

    def put(self, unpacked: Path, final: Path) -> Path:
        """Move an unpacked member to where it goes in the stage; where that is."""
        relative = _inside(final, self.data_dir)
        if relative is not None:
            staged = self.root / relative
            _private_dirs(staged.parent, self.root)
            os.rename(unpacked, staged)
            return staged
        final.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        staged = final.with_name(f".{final.name}.restoring-{os.urandom(4).hex()}")
        self.externals.append((staged, final))
        with unpacked.open("rb") as source, private_file(staged) as sink:
            shutil.copyfileobj(source, sink, COPY_CHUNK)
            sink.flush()
            os.fsync(sink.fileno())
        return staged

    def discard(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)
        for staged, _ in self.externals:
            with contextlib.suppress(FileNotFoundError):
                staged.unlink()

    def place_externals(self) -> None:
        """Put each file bound outside the data directory in its place (one rename each)."""
        for staged, final in self.externals:
            for suffix in ("-wal", "-shm"):  # an old SQLite journal must not meet a new file
                with contextlib.suppress(FileNotFoundError):
                    Path(f"{final}{suffix}").unlink()
            os.replace(staged, final)


@dataclass(frozen=True)
class Staged:
    """The restored server, complete, before it takes the place of the old one."""

    data_dir: Path
    """The staging directory (the new data directory once in place)."""
    database_url: str
    """The staged SQLite file, or the PostgreSQL database the dump was loaded into."""
    keys: dict[str, Path]
    """Archive key name (``ledger.key``) → its staged file."""
    manifest: dict[str, Any]
    replacing: bool
    """Whether the target held a server (``force``) that this one replaces."""


Check = Callable[[Staged], None]
"""Checks run on the staged server; raising :class:`BackupError` undoes everything."""


@dataclass(frozen=True)
class Restored:
    """A restore in place: the manifest, and where the replaced data directory was kept."""

    manifest: dict[str, Any]
    kept: Path | None


def _database_kind(manifest: dict[str, Any], url: str) -> str:
    kind = str(manifest.get("database"))
    if url.startswith("sqlite") != (kind == "sqlite"):
        raise BackupError(f"the archive holds a {kind} database; the target is "
                          f"{'SQLite' if url.startswith('sqlite') else 'PostgreSQL'} "
                          "(restore into the same kind of database)")
    member = SQLITE_MEMBER if kind == "sqlite" else POSTGRES_MEMBER
    if member not in manifest["members"]:
        raise BackupError(f"the archive holds no {member}")
    return member


def _stage_members(stage: _Stage, archive: Path, targets: Targets, identity: LiaisonKeys | None,
                   work: Path) -> tuple[dict[str, Any], Path, dict[str, Path]]:
    """Check the archive and lay its members out in the stage: (manifest, dump, keys)."""
    tar_path = open_archive(archive, identity, work)
    unpack = work / "unpacked"
    unpack.mkdir(mode=0o700)
    manifest = verify_archive(tar_path, unpack)
    if tar_path != archive:
        tar_path.unlink()  # the decrypted copy: its space is needed for what follows
    member = _database_kind(manifest, targets.database_url)
    dump = unpack / member
    if member == SQLITE_MEMBER:
        dump = stage.put(dump, Path(str(make_url(targets.database_url).database)))
    keys: dict[str, Path] = {}
    for name in manifest["members"]:
        if name.startswith("blobs/"):
            stage.put(unpack / name, targets.blob_store.path(name.rsplit("/", 1)[1]))
        elif name.startswith("keys/"):
            short = name.split("/", 1)[1]
            keys[short] = stage.put(unpack / name, targets.keys.get(
                short, targets.data_dir / short))
    return manifest, dump, keys


def _interrupted(targets: Targets, *, force: bool) -> None:
    """Put back what an interrupted PostgreSQL restore set aside (``force``), or refuse."""
    replaced = read_marker(targets.data_dir)
    if replaced is None:
        return
    if not force:
        raise BackupError(f"an earlier restore into {targets.data_dir} was interrupted: give "
                          "--force to put the previous database back and restore again")
    if replaced and not targets.database_url.startswith("sqlite"):
        undo_postgres(targets.database_url, replaced)
    (targets.data_dir / MARKER).unlink()


def restore(archive: Path, targets: Targets, identity: LiaisonKeys | None = None,
            *, force: bool = False, check: Check | None = None) -> Restored:
    """Restore ``archive`` into ``targets`` all at once, or change nothing.

    The archive is decrypted and checked member by member, the new data
    directory built beside the old one (PostgreSQL: the dump loaded in one
    transaction, :mod:`app.staging`), ``check`` run on it, and only then
    are the two directories exchanged. Any failure before that undoes the
    load and removes the stage: the data directory and database are as they
    were. The data directory and database must be empty unless ``force``;
    a replaced data directory is kept beside it (:attr:`Restored.kept`).
    """
    data_dir, url = targets.data_dir, targets.database_url
    data_dir.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    make_private_dir(data_dir)
    _interrupted(targets, force=force)
    replacing = not (_data_dir_empty(targets) and _database_empty(url))
    if replacing and not force:
        raise BackupError(f"the data directory {data_dir} or the database is not "
                          "empty: restore into an empty one (or give --force to replace it)")
    present = [str(path) for path in targets.keys.values()
               if path.exists() and _inside(path, data_dir) is None]
    if present and not force:
        raise BackupError(f"{present[0]} exists already: restore never overwrites a key "
                          "(give --force to replace it)")
    try:
        root = Path(tempfile.mkdtemp(prefix=f".{data_dir.name}.restoring-", dir=data_dir.parent))
    except OSError as exc:
        raise BackupError(f"cannot stage the restore beside {data_dir} ({exc}): the server's "
                          f"user must be able to create a directory in {data_dir.parent}") from exc
    stage = _Stage(root, data_dir, [])
    replaced: str | None = None
    try:
        work = root / ".work"
        work.mkdir(mode=0o700)
        manifest, dump, keys = _stage_members(stage, archive, targets, identity, work)
        staged_url = f"sqlite:///{os.path.abspath(dump)}"
        if dump.name == Path(POSTGRES_MEMBER).name:
            staged_url, replaced = url, replaced_name()
            write_marker(data_dir, replaced)
            load_postgres(url, dump, work, replaced)
        shutil.rmtree(work)
        if check is not None:
            check(Staged(root, staged_url, keys, manifest, replacing))
        exchange(root, data_dir)
    except BaseException as exc:
        _abandon(stage, url, replaced)
        if isinstance(exc, OSError):  # a full disk, a file too large, a file system refusing
            raise BackupError(f"the restore could not be staged or put in place: {exc}") from exc
        raise
    stage.place_externals()
    if replaced is not None:
        with contextlib.suppress(Exception):  # a schema left over is harmless (operations.md)
            drop_replaced(url, replaced)
        with contextlib.suppress(Exception):  # else autovacuum's next pass gives them
            analyze(url)
    return Restored(manifest, _set_aside(root, data_dir))


def _abandon(stage: _Stage, url: str, replaced: str | None) -> None:
    """Undo a restore that did not reach its place: the old database back, the stage gone."""
    stage.discard()
    if replaced is None:
        return
    try:
        undo_postgres(url, replaced)
    except Exception:  # noqa: BLE001 (the marker stays: serve refuses, the next restore undoes)
        return
    with contextlib.suppress(FileNotFoundError):
        (stage.data_dir / MARKER).unlink()


def _set_aside(old: Path, data_dir: Path) -> Path | None:
    """The replaced data directory (now at ``old``): removed if empty, else kept beside."""
    with contextlib.suppress(FileNotFoundError):
        (old / MARKER).unlink()
    if not any(old.iterdir()):
        old.rmdir()
        return None
    kept = data_dir.with_name(f"{data_dir.name}.replaced-{datetime.now(UTC):%Y%m%dT%H%M%S.%fZ}")
    os.rename(old, kept)
    return kept


def restored_ledger(database_url: str) -> LedgerState:
    """The ledger's size, root and latest checkpoint size in the restored database."""
    engine = make_engine(database_url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            return ledger_state(conn)
    finally:
        engine.dispose()
