"""``/v1/ledger``: the signed checkpoint and verifier key (public), entries, checkpoints, proofs.

This module only fetches; :mod:`client.audit` decides what to trust. Proofs
come back as bytes, ready for :func:`ledger.format.proof.verify_consistency` and
:func:`ledger.format.proof.verify_inclusion`.
"""

from __future__ import annotations

from client.errors import ProtocolError
from client.models import (
    CheckpointPage,
    EntryPage,
    HashProof,
    RawEntry,
    RefusalDetailRecord,
    SignedCheckpointRecord,
    parse,
)
from client.session import ApiSession
from ledger import NoteFormatError, parse_checkpoint_body, parse_note

MAX_PAGE = 1000
"""The most entries the server returns per page."""


class LedgerAPI:
    """Reads the audit ledger (entries and proofs need the auditor role)."""

    def __init__(self, session: ApiSession) -> None:
        """Use ``session`` for every call."""
        self._s = session

    def checkpoint(self) -> str:
        """The latest signed checkpoint note, exactly as served (unverified)."""
        return self._s.get_text("/v1/ledger/checkpoint")

    def checkpoint_size(self) -> int:
        """The tree size of the latest checkpoint, read without verifying it.

        Only a hint (where to start an event stream, say): what is trusted comes
        from a verified checkpoint (:mod:`client.audit`).
        """
        try:
            return parse_checkpoint_body(parse_note(self.checkpoint()).text_body).size
        except NoteFormatError as exc:
            raise ProtocolError(f"the server's checkpoint does not parse: {exc}") from exc

    def verifier_key(self) -> str:
        """The ledger's note verifier key string, as the server announces it (unverified)."""
        return self._s.get_text("/v1/ledger/key").strip()

    def entries(self, start: int, limit: int = MAX_PAGE) -> list[RawEntry]:
        """Up to ``limit`` entries from index ``start``; fewer (or none) at the end."""
        data = self._s.get_json("/v1/ledger/entries", {"start": start, "limit": limit})
        page = parse(EntryPage, data).entries
        if len(page) > limit:
            raise ProtocolError(f"asked for {limit} entries, got {len(page)}")
        return page

    def checkpoints(self, after: int = 0, limit: int = MAX_PAGE) -> CheckpointPage:
        """One page of signed checkpoints of size above ``after``, oldest first (auditors).

        As served, unverified: open each note with the pinned key
        (:func:`client.audit.open_signed`) before trusting its size or root.
        """
        data = self._s.get_json("/v1/ledger/checkpoints", {"after": after, "limit": limit})
        page = parse(CheckpointPage, data)
        sizes = [cp.size for cp in page.checkpoints]
        if len(sizes) > limit or any(s <= after for s in sizes) or sizes != sorted(set(sizes)):
            raise ProtocolError(f"the checkpoints page after {after} is not ascending above it")
        return page

    def all_checkpoints(self, after: int = 0) -> list[SignedCheckpointRecord]:
        """Every signed checkpoint of size above ``after``, oldest first, page by page."""
        found: list[SignedCheckpointRecord] = []
        while True:
            page = self.checkpoints(after)
            found += page.checkpoints
            if page.next is None or not page.checkpoints:
                return found
            if page.next <= after:
                raise ProtocolError("the checkpoints listing does not move forward")
            after = page.next

    def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        """RFC 9162 inclusion proof of entry ``index`` in the signed tree of ``size``."""
        data = self._s.get_json("/v1/ledger/proofs/inclusion", {"index": index, "size": size})
        return parse(HashProof, data).hashes()

    def consistency_proof(self, old_size: int, new_size: int) -> list[bytes]:
        """RFC 9162 consistency proof between two signed tree sizes."""
        data = self._s.get_json("/v1/ledger/proofs/consistency",
                                {"from": old_size, "to": new_size})
        return parse(HashProof, data).hashes()

    def refusal_detail(self, index: int) -> RefusalDetailRecord:
        """The auditor-only detail of refusal entry ``index``, as served (unverified:
        :func:`client.audit.fetch_refusal_detail` checks it against the entry)."""
        data = self._s.get_json(f"/v1/ledger/refusals/{index}")
        return parse(RefusalDetailRecord, data)
