"""What a verification found: a clean bill, or the first bad index and the kind of fault."""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = ["Fault", "Finding", "LedgerReport"]


class Fault(enum.Enum):
    """The kind of the first fault found."""

    MODIFIED_ENTRY = "modified_entry"
    MISSING_ENTRY = "missing_entry"
    REORDERED = "reordered"
    INSERTED = "inserted"
    BAD_NODE = "bad_node"
    BAD_CHECKPOINT_SIGNATURE = "bad_checkpoint_signature"
    CHECKPOINT_ROOT_MISMATCH = "checkpoint_root_mismatch"
    FORK = "fork"
    TRUNCATED = "truncated"
    MALFORMED_ENTRY = "malformed_entry"
    BAD_LEAF_HASH = "bad_leaf_hash"
    BAD_HEAD = "bad_head"
    MISSING_CHECKPOINT = "missing_checkpoint"
    KEY_LOG_MISMATCH = "key_log_mismatch"


@dataclass(frozen=True)
class LedgerReport:
    """What the verifier found: a clean bill, or the first bad index and the fault kind."""

    ok: bool
    size: int
    checkpoints: int
    first_bad_index: int | None
    fault: Fault | None
    detail: str


@dataclass(frozen=True)
class Finding:
    """The first fault: where and what (a :class:`LedgerReport` is built from it)."""

    index: int
    fault: Fault
    detail: str
