"""Ledger exports: a file that an auditor verifies offline, with no server and no account.

Format: JSON lines, UTF-8, one object per line, keys sorted::

    {"checkpoint": "<signed note>", "checkpoints": [{"checkpoint": "<signed note>", "size": k},
     ...], "format": "cadena-ledger-export", "origin": "<origin>", "size": N, "v": 1,
     "verifier_key": "<vkey>"}
    {"entry": "<base64 of the exact entry bytes>", "index": 0}
    ...
    {"entry": "...", "index": N-1}

The first line holds the signed checkpoint (C2SP signed-note) that covers
exactly the N entries that follow, in index order. ``checkpoints`` lists
the signed checkpoints the server listed up to N, smallest first: the
offline check verifies each one's signature, root and key log
(``cadena-key-log``) when the entries reach its size, as the online audit
does. The field was added to version 1 compatibly: older readers ignore it,
and a file without it is checked against the header's checkpoint only.
``verifier_key`` says which key the exporter used; it is *not* trusted when
verifying: the verifier's key comes from the auditor (``--key`` or the
profile's pin). :func:`verify_export` applies the same checks as the online
audit (:class:`client.audit.EntryChain`) and then the signed root and key log.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from client.audit import AuditState, EntryChain, Progress, finish, open_signed
from client.errors import AuditFailure, AuditFault
from client.models import RawEntry
from client.profile import FILE_MODE, sync_directory
from ledger import Checkpoint, NoteVerifier, canonical_json

EXPORT_FORMAT = "cadena-ledger-export"
EXPORT_VERSION = 1


def _line(obj: dict[str, Any]) -> bytes:
    return canonical_json(obj) + b"\n"


class ExportWriter:
    """Writes an export beside ``path`` and moves it into place only when complete."""

    def __init__(self, path: Path) -> None:
        """Prepare to write ``path`` (nothing appears there until :meth:`commit`)."""
        self.path = path
        # Its own staging file: two exports to one name at once (the desk's export clicked
        # twice in a second) must not write into, or empty, each other's.
        self._tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(8)}.partial")
        fd = os.open(self._tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW,
                     FILE_MODE)
        self._file: IO[bytes] = os.fdopen(fd, "wb")
        self.count = 0

    def header(self, note: str, checkpoint: Checkpoint, verifier: NoteVerifier,
               listed: Sequence[tuple[str, Checkpoint]] = ()) -> None:
        """Write the first line: the signed checkpoint the entries will be checked against,
        and the ``listed`` checkpoints (notes, smallest first) checked on the way."""
        self._file.write(_line({"format": EXPORT_FORMAT, "v": EXPORT_VERSION,
                                "origin": checkpoint.origin, "size": checkpoint.size,
                                "checkpoint": note, "verifier_key": str(verifier),
                                "checkpoints": [{"checkpoint": n, "size": cp.size}
                                                for n, cp in listed]}))

    def write(self, index: int, raw: bytes) -> None:
        """Write one entry line."""
        self._file.write(_line({"index": index,
                                "entry": base64.b64encode(raw).decode("ascii")}))
        self.count += 1

    def commit(self, *, replace: bool = True) -> Path:
        """Flush, sync and move the finished file to its name; return where it went.

        ``replace=False`` (the desk): a file already at ``path`` is kept, and the export
        takes the first free name of ``<stem>-2<suffix>``, ``<stem>-3<suffix>``... The
        name is claimed with an exclusive create before the finished file is moved
        onto it, so two exports at once never take one name.
        """
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        if replace:
            os.replace(self._tmp, self.path)
        else:
            claimed = _claim_free_name(self.path)
            try:
                os.replace(self._tmp, claimed)
            except BaseException:
                claimed.unlink(missing_ok=True)  # not an empty file under an export's name
                raise
            self.path = claimed
        sync_directory(self.path.parent, required=False)
        return self.path

    def __enter__(self) -> ExportWriter:
        """Use as a context manager; an exception discards the partial file."""
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        """Discard the partial file unless it was committed."""
        if not self._file.closed:
            self._file.close()
        self._tmp.unlink(missing_ok=True)


MAX_NAME_TRIES = 1000
"""How many ``-N`` names an export without replacing tries before it gives up."""


def _claim_free_name(path: Path) -> Path:
    """Create an empty file at the first free one of ``path``, ``<stem>-2<suffix>``..."""
    for n in range(1, MAX_NAME_TRIES + 1):
        candidate = path if n == 1 else path.with_name(f"{path.stem}-{n}{path.suffix}")
        try:
            fd = os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW,
                         FILE_MODE)
        except FileExistsError:
            continue
        os.close(fd)
        return candidate
    raise FileExistsError(f"{path} and its next {MAX_NAME_TRIES - 1} names are all taken")


def _bad(detail: str, index: int | None = None) -> AuditFailure:
    return AuditFailure(AuditFault.BAD_EXPORT, detail, index)


def _lines(handle: IO[bytes]) -> Iterator[tuple[int, dict[str, Any]]]:
    for number, line in enumerate(handle, 1):
        try:
            obj = json.loads(line)
        except ValueError as exc:
            raise _bad(f"line {number} is not JSON") from exc
        if not isinstance(obj, dict):
            raise _bad(f"line {number} is not a JSON object")
        yield number, obj


def _header(obj: dict[str, Any]) -> tuple[str, int]:
    if obj.get("format") != EXPORT_FORMAT or obj.get("v") != EXPORT_VERSION:
        raise _bad(f"not a version {EXPORT_VERSION} {EXPORT_FORMAT} file")
    note, size = obj.get("checkpoint"), obj.get("size")
    if not isinstance(note, str) or not isinstance(size, int) or isinstance(size, bool):
        raise _bad("the header has no checkpoint note or size")
    return note, size


def _entry(number: int, obj: dict[str, Any]) -> RawEntry:
    try:
        return RawEntry.model_validate(obj)
    except ValueError as exc:
        raise _bad(f"line {number} is not an entry line") from exc


def _listed(obj: dict[str, Any], size: int, verifier: NoteVerifier) -> dict[int, Checkpoint]:
    """The header's ``checkpoints``, each opened with the auditor's key, by size."""
    items = obj.get("checkpoints", [])
    if not isinstance(items, list):
        raise _bad("the header's checkpoints are not a list")
    found: dict[int, Checkpoint] = {}
    for item in items:
        note = item.get("checkpoint") if isinstance(item, dict) else None
        at = item.get("size") if isinstance(item, dict) else None
        if not isinstance(note, str) or not isinstance(at, int) or isinstance(at, bool) \
                or not max(found, default=0) < at <= size:
            raise _bad("the header's checkpoints are not signed notes of ascending sizes "
                       f"up to {size}")
        checkpoint = open_signed(note, verifier)
        if checkpoint.size != at:
            raise _bad(f"a listed checkpoint says size {at} and signs {checkpoint.size}",
                       max(at - 1, 0))
        found[at] = checkpoint
    return found


def verify_export(path: Path, verifier: NoteVerifier, state: AuditState | None = None,
                  progress: Progress | None = None) -> tuple[Checkpoint, AuditState]:
    """Verify an export offline; return its checkpoint and the state it proves.

    ``state`` (the profile's last online audit, same key) is checked too when
    the export covers it: the root at its size must be the one verified then.
    The key log is recomputed from entry 0 and checked at every checkpoint the
    file carries (its header's, and those its ``checkpoints`` list).
    """
    try:
        handle = path.open("rb")
    except OSError as exc:
        raise _bad(f"cannot read {path}: {exc}") from exc
    with handle:
        lines = _lines(handle)
        first = next(lines, None)
        if first is None:
            raise _bad("the file is empty")
        note, size = _header(first[1])
        checkpoint = open_signed(note, verifier)
        if checkpoint.size != size:
            raise _bad(f"the header says {size} entries, its checkpoint signs {checkpoint.size}")
        covered = state is not None and state.size <= size
        chain = EntryChain(None, {state.size: state.root} if state and covered else None)
        listed = _listed(first[1], size, verifier)
        for number, obj in lines:
            item = _entry(number, obj)
            if item.index != chain.size or chain.size >= size:
                raise AuditFailure(AuditFault.INDEX_MISMATCH, f"line {number} holds entry "
                                   f"{item.index} where {chain.size} was due", chain.size)
            chain.add(item.entry)
            if chain.size in listed:
                chain.check(listed[chain.size])
            if progress is not None and chain.size % 1000 == 0:
                progress(chain.size, size)
    if chain.size < size:  # the entries stop early: not a wrong root, a short file
        raise AuditFailure(AuditFault.TRUNCATED, f"the checkpoint signs {size} entries, the "
                           f"file holds {chain.size}", chain.size)
    finish(chain, checkpoint)
    return checkpoint, chain.state(str(verifier), note)
