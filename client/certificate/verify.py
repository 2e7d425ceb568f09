"""Offline verification of a custody certificate: a report for clerks, a fail-closed check.

Nothing here touches the network or a database: the verifier reads the
certificate bytes, the trust material the court gives (:class:`Trust`), and
the SHA-256 digests of any evidence files. Two entry points:

- :func:`check_certificate` runs every check and returns a :class:`Report`:
  each check's name, whether it holds, and why (the list a clerk reads);
- :func:`verify_certificate` returns the parsed bundle or raises
  :class:`CertificateInvalid` naming the first check that fails.

Order of checks (the seal last, so that the first failure names the most
specific fault): format, ledger entries, checkpoint, inclusion proofs,
witnesses, refresh, key enrolments, packet header, receipts, key shares,
custody chain, custody narrative, certificate issue, disclosed statement,
each evidence file, seal.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import ClassVar

from client.certificate import chain, objects, proofs
from client.certificate.context import Context, Failed, Skipped, Trust
from client.certificate.messages import M, Message
from client.errors import EXIT_VERIFICATION, ClientError
from crypto import CryptoError
from custody import Bundle, CertificateFormatError, parse_bundle
from ledger import LedgerError

__all__ = ["Check", "CertificateInvalid", "Message", "Report", "Trust", "check_certificate",
           "verify_certificate"]

FORMAT = "certificate format"
CHECKS: tuple[tuple[str, Callable[[Context], Message]], ...] = (
    ("ledger entries", proofs.check_entries),
    ("checkpoint signature", proofs.check_checkpoint),
    ("inclusion proofs", proofs.check_inclusion),
    ("witness cosignatures", proofs.check_witnesses),
    ("refresh", proofs.check_refresh),
    ("key enrolments", objects.check_keys),
    ("packet header", objects.check_header),
    ("receipts", objects.check_receipts),
    ("key shares", objects.check_shares),
    ("custody chain", chain.check_chain),
    ("custody narrative", chain.check_narrative),
    ("certificate issue", chain.check_issue),
    ("disclosed statement", objects.check_statement),
)
SEAL = "seal"
OPTIONAL = frozenset({"refresh", "disclosed statement"})


class CertificateInvalid(ClientError):
    """A certificate fails verification; ``check`` names the first failing check."""

    exit_code: ClassVar[int] = EXIT_VERIFICATION

    def __init__(self, check: str, detail: str) -> None:
        super().__init__(f"{check}: {detail}")
        self.check = check
        self.detail = detail


@dataclass(frozen=True)
class Check:
    """One check: its name, whether it holds, and why (or why not), as a :class:`Message`."""

    name: str
    ok: bool
    message: Message

    @property
    def detail(self) -> str:
        """Why, in English (what the CLI prints)."""
        return str(self.message)


@dataclass
class Report:
    """Every check of a certificate, and notes on what was trusted without being pinned."""

    checks: list[Check] = field(default_factory=list)
    note_messages: list[Message] = field(default_factory=list)
    bundle: Bundle | None = None

    @property
    def notes(self) -> list[str]:
        """The notes in English (what the CLI prints)."""
        return [str(note) for note in self.note_messages]

    @property
    def ok(self) -> bool:
        """Whether every check holds."""
        return bool(self.checks) and all(c.ok for c in self.checks)

    def failures(self) -> list[Check]:
        """The checks that do not hold."""
        return [c for c in self.checks if not c.ok]


def _run(name: str, check: Callable[[Context], Message], ctx: Context) -> Check | None:
    try:
        return Check(name, True, check(ctx))
    except Skipped as why:
        return None if name in OPTIONAL and not _applies(name, ctx) else Check(
            name, False, M("not checked: %(reason)s", reason=why.message))
    except Failed as why:
        return Check(name, False, why.message)
    except (LedgerError, CryptoError) as exc:  # a malformed object found late
        return Check(name, False, M("%(error)s: %(reason)s", error=type(exc).__name__,
                                    reason=str(exc)))


def _applies(name: str, ctx: Context) -> bool:
    # Whether an optional check applies to this bundle (a refresh or a disclosure is in it).
    if name == "refresh":
        return ctx.bundle.refresh is not None
    return ctx.bundle.disclosure is not None


def _evidence(ctx: Context, name: str, digest: str) -> Message:
    return objects.check_evidence(ctx, name, digest)


def _checks(ctx: Context) -> list[tuple[str, Callable[[Context], Message]]]:
    steps = list(CHECKS)
    for name, digest in sorted(ctx.evidence.items()):
        steps.append((f"evidence {name}", partial(_evidence, name=name, digest=digest)))
    steps.append((SEAL, objects.check_seal))
    return steps


def check_certificate(data: bytes, trust: Trust | None = None,
                      evidence: Mapping[str, str] | None = None) -> Report:
    """Run every check on a certificate file; ``evidence`` maps file names to SHA-256 hex."""
    report = Report()
    try:
        bundle = parse_bundle(data)
    except CertificateFormatError as exc:
        report.checks.append(Check(FORMAT, False, M("%(reason)s", reason=str(exc))))
        return report
    report.bundle = bundle
    report.checks.append(Check(FORMAT, True, M("certificate %(id)s",
                                                id=bundle.certificate.id)))
    ctx = Context(bundle, trust or Trust(), dict(evidence or {}))
    for name, check in _checks(ctx):
        result = _run(name, check, ctx)
        if result is not None:
            report.checks.append(result)
    report.note_messages = ctx.notes
    return report


def verify_certificate(data: bytes, trust: Trust,
                       evidence: Mapping[str, str] | None = None) -> Bundle:
    """Return the verified bundle, or raise :class:`CertificateInvalid` at the first failure.

    ``trust`` must name the seal key: a fail-closed caller decides what it trusts.
    """
    if trust.seal_key is None:
        raise CertificateInvalid(SEAL, "no trusted seal key was given")
    report = check_certificate(data, trust, evidence)
    failures = report.failures()
    if failures or report.bundle is None:
        first = failures[0] if failures else Check(FORMAT, False, M("no certificate"))
        raise CertificateInvalid(first.name, first.detail)
    return report.bundle
