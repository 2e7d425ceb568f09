"""Putting a restore in place in one step, or not at all.

A restore builds the whole new data directory in a sibling directory and then
exchanges the two with one ``renameat2(RENAME_EXCHANGE)`` (Linux): a crash
leaves either the old directory or the new one, never a mixture. A
PostgreSQL database cannot be staged on disk, so the dump is loaded in one
transaction that first renames the schema ``public`` to ``cadena_replaced_<time>``
and creates a new ``public`` for the dump: a failed load commits nothing; a
load whose checks fail afterwards is undone by putting the old schema back;
once the data directory is in place the old schema is dropped. Between the
load and the exchange a marker in the data directory (:data:`MARKER`) names
the old schema: ``serve`` refuses to start while it is there, and the next
``restore --force`` puts the old schema back before it begins.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import json
import os
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.pool import NullPool

from app.backup import COPY_CHUNK, BackupError, pg_connection, private_file, program
from app.ledger import make_engine

MARKER = ".cadena-restore-incomplete"
"""In the data directory while a PostgreSQL restore is loaded but not yet in place."""
REPLACED_PREFIX = "cadena_replaced_"
_AT_FDCWD = -100
_RENAME_EXCHANGE = 2


def fsync_dir(path: Path) -> None:
    """Make a rename in ``path`` durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def exchange(staged: Path, target: Path) -> None:
    """Swap the directories ``staged`` and ``target`` (same parent) in one step.

    Linux's ``renameat2(RENAME_EXCHANGE)``; where the C library or the file
    system lacks it, three renames (a crash between them leaves ``target``
    missing, the two directories beside it: named in docs/operations.md).
    """
    renameat2 = getattr(ctypes.CDLL(None, use_errno=True), "renameat2", None)
    if renameat2 is not None:
        done = renameat2(_AT_FDCWD, os.fsencode(staged), _AT_FDCWD, os.fsencode(target),
                         _RENAME_EXCHANGE)
        if done == 0:
            fsync_dir(target.parent)
            return
        code = ctypes.get_errno()
        if code not in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
            raise OSError(code, os.strerror(code), str(target))
    aside = staged.with_name(staged.name + ".swap")
    os.rename(target, aside)
    try:
        os.rename(staged, target)
    except OSError:
        os.rename(aside, target)  # the old directory back where it was
        raise
    os.rename(aside, staged)
    fsync_dir(target.parent)


def write_marker(data_dir: Path, replaced: str) -> None:
    """Say in ``data_dir`` that the database holds a restore not yet in place."""
    path = data_dir / MARKER
    with private_file(path) as sink:
        sink.write(json.dumps({"replaced_schema": replaced,
                               "since": datetime.now(UTC).isoformat()}).encode())
        sink.flush()
        os.fsync(sink.fileno())
    fsync_dir(data_dir)


def read_marker(data_dir: Path) -> str | None:
    """The old schema an interrupted restore left aside, or ``None`` (no marker)."""
    try:
        data = json.loads((data_dir / MARKER).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except ValueError:
        return ""
    name = data.get("replaced_schema") if isinstance(data, dict) else None
    return name if isinstance(name, str) else ""


def _schema_exists(conn: Connection, name: str) -> bool:
    query = text("SELECT count(*) FROM pg_namespace WHERE nspname = :n")
    return bool(conn.execute(query, {"n": name}).scalar_one())


def _checked_schema(name: str) -> str:
    if not (name.startswith(REPLACED_PREFIX) and name[len(REPLACED_PREFIX):].isdigit()):
        raise BackupError(f"{name!r} is not a schema a restore set aside")
    return name


def undo_postgres(url: str, replaced: str) -> bool:
    """Put the schema ``replaced`` back as ``public`` (dropping the restored one), if it exists."""
    engine = make_engine(url, poolclass=NullPool)
    try:
        with engine.begin() as conn:
            if not _schema_exists(conn, _checked_schema(replaced)):
                return False
            conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
            conn.execute(text(f"ALTER SCHEMA {replaced} RENAME TO public"))
            return True
    finally:
        engine.dispose()


def drop_replaced(url: str, replaced: str) -> None:
    """Drop the old schema once the restore is in place."""
    engine = make_engine(url, poolclass=NullPool)
    try:
        with engine.begin() as conn:
            conn.execute(text(f"DROP SCHEMA IF EXISTS {_checked_schema(replaced)} CASCADE"))
    finally:
        engine.dispose()


def analyze(url: str) -> None:
    """Give the planner statistics for the restored tables.

    A loaded dump has none until autovacuum's next pass, up to a minute after the
    server starts; planned without them, a listing reads every packet of a channel
    instead of the newest 50 (bench/_serverbound.py measured a list's database CPU
    at 3-4x).
    """
    engine = make_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            conn.execute(text("ANALYZE"))
            conn.commit()
    finally:
        engine.dispose()


def _prologue(replaced: str) -> bytes:
    # ``replaced`` passed _checked_schema: a fixed prefix and digits, nothing to escape.
    return ("BEGIN;\n"  # noqa: S608
            "DO $$ BEGIN IF EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = 'public') THEN "
            f"ALTER SCHEMA public RENAME TO {replaced}; END IF; END $$;\n"
            "CREATE SCHEMA public;\n").encode()


def replaced_name() -> str:
    """A new name for the schema a restore sets aside."""
    return REPLACED_PREFIX + datetime.now(UTC).strftime("%Y%m%d%H%M%S%f")


def load_postgres(url: str, dump: Path, work: Path, replaced: str) -> None:
    """Load the custom-format ``dump`` into ``url`` in one transaction, ``public`` set aside.

    ``pg_restore`` writes the SQL and ``psql`` runs it inside a transaction
    this function opens; ``COMMIT`` is sent only once ``pg_restore`` has
    exited 0, so a dump that fails to read, or SQL that fails, commits
    nothing (``psql`` is killed, and the server rolls back).
    """
    dsn, env = pg_connection(url)
    with (work / "pg_restore.err").open("w+b") as dump_err, \
            (work / "psql.err").open("w+b") as sql_err:
        reader = subprocess.Popen(  # noqa: S603 (fixed program, arguments not from a shell)
            [program("pg_restore"), "--no-owner", "--no-privileges", "--file=-", str(dump)],
            stdout=subprocess.PIPE, stderr=dump_err, env=env)
        writer = subprocess.Popen(  # noqa: S603 (fixed program, arguments not from a shell)
            [program("psql"), "--no-psqlrc", "--quiet", "--set=ON_ERROR_STOP=1",
             f"--dbname={dsn}", "--file=-"],
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=sql_err, env=env)
        assert reader.stdout is not None  # noqa: S101 (PIPE)
        assert writer.stdin is not None  # noqa: S101 (PIPE)
        read_ok = False
        try:
            writer.stdin.write(_prologue(_checked_schema(replaced)))
            shutil.copyfileobj(reader.stdout, writer.stdin, COPY_CHUNK)
            read_ok = reader.wait() == 0
            if read_ok:
                writer.stdin.write(b"COMMIT;\n")
                writer.stdin.close()
        except BrokenPipeError:
            pass  # psql stopped at an error: its stderr says which
        finally:
            if not read_ok:
                writer.kill()
                reader.kill()
            with contextlib.suppress(BrokenPipeError):
                writer.stdin.close()
            reader.stdout.close()
            reader.wait()
            committed = writer.wait() == 0 and read_ok
        if not committed:
            dump_err.seek(0)
            sql_err.seek(0)
            why = (dump_err.read().decode(errors="replace").strip()
                   or sql_err.read().decode(errors="replace").strip())
            raise BackupError(f"the database dump does not load (pg_restore/psql): {why[:500]}")
