"""Problem types of the certificate routes (refusals are logged, bad input is not)."""

from __future__ import annotations

from app.errors import CadenaError, RuleRefused
from app.ledger import AccessDenied


class JudicialPermissionRequired(AccessDenied):
    """H1: a certificate for a court needs the originator's recorded permission."""

    status, code, title = 403, "judicial-permission-required", "Judicial use not permitted"


class CertificatesUnavailable(CadenaError):
    """The service cannot seal or prove right now (no ledger key, too few witnesses)."""

    status, code, title = 503, "certificates-unavailable", "Certificates unavailable"


class InvalidRefresh(RuleRefused):
    """The refresh asks for a consistency proof from a size no checkpoint signed."""

    status, code, title = 422, "invalid-refresh", "Invalid refresh"
