"""Custody certificates: the bundle format, the tlog-policy and the custody narrative.

Pure code shared by the server that issues certificates (``app.certificates``)
and the offline verifier (``client.certificate``). A certificate joins the
packet's signed objects (``crypto``: headers, key sets, DSSE PAE) to its
ledger entries (``ledger``), so this core reads both; neither reads it, and
``ledger`` does not read ``crypto``.

- :mod:`custody.bundle`: :class:`Bundle`, :class:`Certificate`,
  strict :func:`parse_bundle`, :func:`seal_certificate`, :func:`verify_seal`;
- :mod:`custody.policy`: C2SP tlog-policy (:func:`parse_policy`,
  :func:`make_policy`, :func:`cosigners`);
- :mod:`custody.steps`: :func:`custody_steps`.
"""

from custody.bundle import (
    CERTIFICATE_TYPE,
    Bundle,
    Certificate,
    CertificateFormatError,
    CustodyStep,
    Disclosure,
    KeyRecord,
    LoggedEntry,
    Person,
    Refresh,
    Seal,
    Signed,
    parse_bundle,
    seal_certificate,
    seal_key,
    seal_verifier_key,
    verify_seal,
)
from custody.policy import Policy, PolicyError, cosigners, make_policy, parse_policy
from custody.steps import CENTRE, ISSUE_ACTION, PERMISSION_ACTION, custody_steps

__all__ = [
    "CENTRE",
    "CERTIFICATE_TYPE",
    "ISSUE_ACTION",
    "PERMISSION_ACTION",
    "Bundle",
    "Certificate",
    "CertificateFormatError",
    "CustodyStep",
    "Disclosure",
    "KeyRecord",
    "LoggedEntry",
    "Person",
    "Policy",
    "PolicyError",
    "Refresh",
    "Seal",
    "Signed",
    "cosigners",
    "custody_steps",
    "make_policy",
    "parse_bundle",
    "parse_policy",
    "seal_certificate",
    "seal_key",
    "seal_verifier_key",
    "verify_seal",
]
