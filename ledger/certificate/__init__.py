"""Custody certificates: the bundle format, the tlog-policy and the custody narrative.

Pure code shared by the server that issues certificates (``app.certificates``)
and the offline verifier (``client.certificate``). This is the one part of
``ledger`` that reads ``crypto`` (packet headers, key sets, DSSE PAE): a
certificate joins the packet's signed objects to its ledger entries.
``crypto`` never imports ``ledger``.

- :mod:`ledger.certificate.bundle`: :class:`Bundle`, :class:`Certificate`,
  strict :func:`parse_bundle`, :func:`seal_certificate`, :func:`verify_seal`;
- :mod:`ledger.certificate.policy`: C2SP tlog-policy (:func:`parse_policy`,
  :func:`make_policy`, :func:`cosigners`);
- :mod:`ledger.certificate.custody`: :func:`custody_steps`.
"""

from ledger.certificate.bundle import (
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
from ledger.certificate.custody import CENTRE, ISSUE_ACTION, PERMISSION_ACTION, custody_steps
from ledger.certificate.policy import Policy, PolicyError, cosigners, make_policy, parse_policy

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
