"""What the certificate checks share: the parsed bundle and what earlier checks established.

Each check in :mod:`client.certificate.checks` reads the fields it needs and
fills the ones it establishes; a check whose inputs an earlier failure left
unset is reported as not checked (:class:`Skipped`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from client.certificate.messages import M, Message
from crypto import PacketHeader, Receipt, Statement
from custody import Bundle, KeyRecord, Policy
from ledger import Checkpoint, Entry, NoteVerifier, TlogProof


class Failed(Exception):
    """A check does not hold; the message says why, for a clerk."""

    def __init__(self, message: Message) -> None:
        super().__init__(message)
        self.message = message


class Skipped(Exception):
    """A check cannot run because a check it needs failed."""

    def __init__(self, message: Message) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class Trust:
    """Trust material given by the verifying party (a court), not taken from the file.

    ``seal_key``: the centre's published seal key; ``None`` uses the key the
    certificate names (reported, since anyone can make a self-consistent file).
    ``policy``: the court's tlog-policy (logs, witnesses, quorum); ``None``
    uses the certificate's own, which the seal covers.
    """

    seal_key: NoteVerifier | None = None
    policy: Policy | None = None


@dataclass
class Context:
    """The bundle under verification and the facts established so far."""

    bundle: Bundle
    trust: Trust
    evidence: Mapping[str, str]
    events: list[Entry] | None = None
    indices: list[int] = field(default_factory=list)
    proofs: list[TlogProof] = field(default_factory=list)
    enrolments: dict[int, Entry] | None = None
    policy: Policy | None = None
    checkpoint: Checkpoint | None = None
    log: NoteVerifier | None = None
    header: PacketHeader | None = None
    keys: dict[str, KeyRecord] = field(default_factory=dict)
    receipts: list[Receipt] = field(default_factory=list)
    statement: Statement | None = None
    notes: list[Message] = field(default_factory=list)

    def need_events(self) -> list[Entry]:
        """The parsed events, or :class:`Skipped`."""
        if self.events is None:
            raise Skipped(M("needs the ledger entries"))
        return self.events

    def need_header(self) -> PacketHeader:
        """The verified packet header, or :class:`Skipped`."""
        if self.header is None:
            raise Skipped(M("needs the verified packet header"))
        return self.header

    def need_log(self) -> tuple[Checkpoint, Policy, NoteVerifier]:
        """The verified checkpoint, the policy and the log key, or :class:`Skipped`."""
        if self.checkpoint is None or self.policy is None or self.log is None:
            raise Skipped(M("needs the verified checkpoint"))
        return self.checkpoint, self.policy, self.log
