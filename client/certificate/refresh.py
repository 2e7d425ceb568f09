"""Amending a certificate without the centre's seal: a refresh, a recipient's disclosure.

Both parts sit outside the seal because each authenticates itself, and both
are checked here before they are attached (fail closed):

- :func:`refresh_bundle` attaches a newer checkpoint signed by the same log
  and the RFC 9162 consistency proof from the certificate's checkpoint, so
  the certificate stays provable as the ledger grows, and picks up witness
  cosignatures made after it was issued;
- :func:`disclose_statement` attaches the sender-signed inner statement
  (plaintext SHA-256 digests), which only a recipient holds; the server never
  sees it. It must verify with the sender's key and be bound by the
  discloser's signed receipt in the certificate.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace

from client.certificate.context import Context, Failed, Skipped, Trust
from client.certificate.messages import Message
from client.certificate.objects import check_header, check_keys, check_receipts, check_statement
from client.certificate.proofs import check_checkpoint, check_entries, check_refresh
from client.certificate.verify import CertificateInvalid
from custody import Bundle, Disclosure, Refresh, Signed
from ledger import LedgerError, parse_tlog_proof


def certificate_size(bundle: Bundle) -> int:
    """The tree size of the checkpoint the certificate's proofs are against."""
    note = parse_tlog_proof(bundle.certificate.events[0].proof).note
    return int(note.split("\n")[1])


def _must(ctx: Context, name: str, *checks: Callable[[Context], Message]) -> None:
    for check in checks:
        try:
            check(ctx)
        except (Failed, Skipped, LedgerError) as exc:
            raise CertificateInvalid(name, str(exc)) from None


def refresh_bundle(bundle: Bundle, checkpoint: str, consistency: Sequence[bytes]) -> Bundle:
    """The bundle with ``refresh`` set to the newer checkpoint; checked before it is kept."""
    refreshed = replace(bundle, refresh=Refresh(checkpoint, tuple(consistency)))
    ctx = Context(refreshed, Trust(), {})
    _must(ctx, "refresh", check_entries, check_checkpoint, check_refresh)
    return refreshed


def disclose_statement(bundle: Bundle, statement: bytes, signature: bytes,
                       recipient_id: str) -> Bundle:
    """The bundle with the recipient's disclosed statement; checked before it is kept."""
    disclosed = replace(bundle, disclosure=Disclosure(Signed(statement, signature),
                                                      recipient_id))
    ctx = Context(disclosed, Trust(), {})
    _must(ctx, "disclosed statement", check_entries, check_keys, check_header, check_receipts,
          check_statement)
    return disclosed
