"""Custody certificates: issuing, judicial-use permission (H1), the seal key, refresh.

Import the submodules directly; this package imports nothing, so that
``app.audit`` can use :mod:`app.certificates.repository` without a cycle.
"""
