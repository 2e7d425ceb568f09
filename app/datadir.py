"""The data directory and what the server writes in it: its user's alone.

Files are 0600 and directories 0700: the SQLite database and its ``-wal``
and ``-shm``, the blobs and their directories, upload temporaries, the
ledger and seal keys. Two layers keep it so. The server's entry points set
the process umask to 077 (:func:`restrict_umask`), so nothing they create
can be wider; and each writer also asks for the mode itself (``mkdir`` with
0700, keys opened 0600, the database file chmod-ed on connect, see
:mod:`app.ledger.engine`), so a process started some other way stays private too.
A data directory other users may enter is refused, not silently kept.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

PRIVATE_UMASK = 0o077
DIR_MODE = 0o700
FILE_MODE = 0o600


class UnsafeDataDir(Exception):
    """The data directory is open to other users, or not a directory."""


def restrict_umask() -> None:
    """From now on this process creates files 0600 and directories 0700 at most."""
    os.umask(PRIVATE_UMASK)


def open_data_dir(path: Path, *, create: bool = True) -> Path:
    """``path``, made 0700 if missing (with ``create``); :class:`UnsafeDataDir` if too open.

    An existing directory keeps its mode: if group or others have any access,
    the operator is told the ``chmod`` to run, rather than the server quietly
    changing a directory someone set up on purpose.
    """
    if not path.exists():
        if create:
            path.mkdir(parents=True, mode=DIR_MODE)
            path.chmod(DIR_MODE)  # exact, whatever the umask of the caller
        return path
    if not path.is_dir():
        raise UnsafeDataDir(f"the data directory {path} is not a directory")
    bits = stat.S_IMODE(path.stat().st_mode)
    if bits & 0o077:
        raise UnsafeDataDir(
            f"the data directory {path} is open to other users (mode {bits:04o}); "
            f"make it private with: chmod 700 {path}")
    return path


def make_private_dir(path: Path) -> None:
    """Create the directory ``path`` (its parent exists) as 0700; fine if it exists."""
    try:
        path.mkdir(mode=DIR_MODE)
    except FileExistsError:
        return
    path.chmod(DIR_MODE)


def make_private(path: Path) -> None:
    """Narrow the existing file ``path`` to 0600 if it is wider; nothing if it is missing."""
    try:
        bits = stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        return
    if bits & ~FILE_MODE:
        path.chmod(FILE_MODE)
