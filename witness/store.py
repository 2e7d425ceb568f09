"""The witness's state: the latest cosigned checkpoint per log, and fork evidence.

One SQLite file (stdlib ``sqlite3``, WAL, ``synchronous=FULL``). Every
submission runs its check and its write in one ``BEGIN IMMEDIATE``
transaction, so two submissions for the same log are serialized and a
smaller checkpoint can never overwrite a larger one (C2SP tlog-witness: "checking
the old size against the latest checkpoint and persisting the new checkpoint
must be performed atomically"). The commit is durable before the witness
answers.

Tables:

- ``latest``: per origin, the size, root and full signed note of the latest
  checkpoint the witness cosigned, and when;
- ``evidence``: pairs of log-signed checkpoints that conflict: the one the
  witness had cosigned and the one submitted against it, with the old size and
  proof that came with it. ``kind`` is ``fork`` (same size, different root:
  proof on its own that the log signed two trees) or ``inconsistent`` (the
  consistency proof between them did not verify: a fork unless the log can
  produce a valid proof). One row per distinct conflicting note.
"""

from __future__ import annotations

import base64
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS latest (
    origin TEXT PRIMARY KEY,
    size INTEGER NOT NULL CHECK (size >= 0),
    root BLOB NOT NULL,
    note TEXT NOT NULL,
    cosigned_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS evidence (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    origin TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('fork', 'inconsistent')),
    cosigned_note TEXT NOT NULL,
    conflicting_note TEXT NOT NULL,
    old_size INTEGER NOT NULL,
    proof TEXT NOT NULL,
    seen_at INTEGER NOT NULL,
    UNIQUE (origin, kind, conflicting_note)
);
"""


class WitnessStoreError(Exception):
    """The state file cannot be opened or is not a witness state file."""


@dataclass(frozen=True)
class Cosigned:
    """The latest checkpoint cosigned for a log: size, root and the note as submitted."""

    origin: str
    size: int
    root: bytes
    note: str
    cosigned_at: int


@dataclass(frozen=True)
class Evidence:
    """Two log-signed checkpoints that cannot both be honest (see the module docstring)."""

    origin: str
    kind: str
    cosigned_note: str
    conflicting_note: str
    old_size: int
    proof: tuple[bytes, ...]
    seen_at: int


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, timeout=30, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    return conn


class StoreTransaction:
    """Reads and writes inside one ``BEGIN IMMEDIATE`` transaction."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def latest(self, origin: str) -> Cosigned | None:
        """The latest cosigned checkpoint of ``origin``, if any."""
        row = self._conn.execute(
            "SELECT size, root, note, cosigned_at FROM latest WHERE origin = ?", (origin,)
        ).fetchone()
        if row is None:
            return None
        return Cosigned(origin, int(row[0]), bytes(row[1]), str(row[2]), int(row[3]))

    def set_latest(self, cosigned: Cosigned) -> None:
        """Record ``cosigned`` as the latest checkpoint of its origin."""
        self._conn.execute(
            "INSERT INTO latest (origin, size, root, note, cosigned_at) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (origin) DO UPDATE SET size = excluded.size, root = excluded.root, "
            "note = excluded.note, cosigned_at = excluded.cosigned_at",
            (cosigned.origin, cosigned.size, cosigned.root, cosigned.note, cosigned.cosigned_at),
        )

    def keep_evidence(self, evidence: Evidence) -> None:
        """Keep a conflicting pair (once per distinct conflicting note)."""
        proof = "".join(base64.b64encode(h).decode("ascii") + "\n" for h in evidence.proof)
        self._conn.execute(
            "INSERT OR IGNORE INTO evidence (origin, kind, cosigned_note, conflicting_note, "
            "old_size, proof, seen_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (evidence.origin, evidence.kind, evidence.cosigned_note, evidence.conflicting_note,
             evidence.old_size, proof, evidence.seen_at),
        )


class WitnessStore:
    """The witness's state file; creates it (and its schema) when missing."""

    def __init__(self, path: Path) -> None:
        """Open (or create) the state file at ``path``."""
        self.path = path
        try:
            conn = _connect(path)
        except sqlite3.Error as exc:
            raise WitnessStoreError(f"cannot open the witness state {path}: {exc}") from exc
        try:
            version = int(conn.execute("PRAGMA user_version").fetchone()[0])
            if version not in (0, SCHEMA_VERSION):
                raise WitnessStoreError(f"{path} has state schema {version}, not {SCHEMA_VERSION}")
            conn.executescript(_SCHEMA)
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        except sqlite3.DatabaseError as exc:
            raise WitnessStoreError(f"{path} is not a witness state file: {exc}") from exc
        finally:
            conn.close()

    @contextmanager
    def transaction(self) -> Iterator[StoreTransaction]:
        """One write transaction, taken up front; committed (durably) unless it raises."""
        conn = _connect(self.path)
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield StoreTransaction(conn)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        finally:
            conn.close()

    def latest(self, origin: str) -> Cosigned | None:
        """The latest cosigned checkpoint of ``origin`` (a read on its own)."""
        with self.transaction() as tx:
            return tx.latest(origin)

    def evidence(self) -> list[Evidence]:
        """Every conflicting pair kept, oldest first."""
        conn = _connect(self.path)
        try:
            rows = conn.execute(
                "SELECT origin, kind, cosigned_note, conflicting_note, old_size, proof, seen_at "
                "FROM evidence ORDER BY id").fetchall()
        finally:
            conn.close()
        return [Evidence(str(r[0]), str(r[1]), str(r[2]), str(r[3]), int(r[4]),
                         tuple(base64.b64decode(line) for line in str(r[5]).splitlines()),
                         int(r[6])) for r in rows]
