"""The body of a C2SP tlog-witness ``add-checkpoint`` request.

::

    old <size>\\n
    <base64 hash>\\n        zero to 63 consistency proof lines (RFC 6962 §2.1.2)
    \\n
    <signed checkpoint note>

The old size is an ASCII decimal with no leading zeros. Parsing is strict:
anything else is a :class:`~witness.errors.MalformedRequest` (400).
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass

from ledger import HASH_SIZE, MAX_TREE_SIZE, NoteFormatError
from ledger import note_b64decode as b64decode
from witness.errors import MalformedRequest

MAX_PROOF_LINES = 63  # C2SP tlog-witness: "MUST NOT send more than 63"
MAX_BODY_BYTES = 64 * 1024
_OLD = re.compile(r"old (0|[1-9][0-9]{0,18})")


@dataclass(frozen=True)
class AddCheckpoint:
    """A parsed add-checkpoint request: old size, consistency proof, checkpoint note."""

    old_size: int
    proof: tuple[bytes, ...]
    note: str

    def body(self) -> bytes:
        """The request body (the inverse of :func:`parse_add_checkpoint`)."""
        lines = [f"old {self.old_size}"]
        lines += [base64.b64encode(h).decode("ascii") for h in self.proof]
        return ("".join(line + "\n" for line in lines) + "\n" + self.note).encode("utf-8")


def _hash(line: str) -> bytes:
    try:
        value = b64decode(line, "consistency proof line")
    except NoteFormatError as exc:
        raise MalformedRequest(str(exc)) from exc
    if len(value) != HASH_SIZE:
        raise MalformedRequest(f"a consistency proof line is not a {HASH_SIZE}-byte hash")
    return value


def parse_add_checkpoint(body: bytes) -> AddCheckpoint:
    """Parse an add-checkpoint body; raise :class:`MalformedRequest` if it is not one."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MalformedRequest("the body is not UTF-8") from exc
    head, sep, note = text.partition("\n\n")
    if not sep:
        raise MalformedRequest("no empty line between the proof and the checkpoint")
    lines = head.split("\n")
    match = _OLD.fullmatch(lines[0])
    if match is None or int(match[1]) > MAX_TREE_SIZE:
        raise MalformedRequest("the first line is not 'old <size>'")
    if len(lines) - 1 > MAX_PROOF_LINES:
        raise MalformedRequest(f"more than {MAX_PROOF_LINES} consistency proof lines")
    return AddCheckpoint(int(match[1]), tuple(_hash(line) for line in lines[1:]), note)
