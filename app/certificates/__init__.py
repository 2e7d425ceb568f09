"""Custody certificates: issuing, sealing on collection, re-issue, H1 permission, the seal key.

Import the submodules directly; this package imports nothing, so that
``app.ledger.recording`` can use :mod:`app.certificates.repository` without a cycle.
"""
