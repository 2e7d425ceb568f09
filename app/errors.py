"""Domain errors of the service and their RFC 9457 problem responses.

Services raise ``CadenaError`` subclasses; one handler turns each into an
``application/problem+json`` response with a stable ``type`` URI. Nothing
below the route layer raises ``HTTPException``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

PROBLEM_BASE = "https://cadena.example/problems/"
PROBLEM_MEDIA_TYPE = "application/problem+json"


class CadenaError(Exception):
    """Base of the service's domain errors; each maps to one problem type."""

    status: ClassVar[int] = 400
    code: ClassVar[str] = "bad-request"
    title: ClassVar[str] = "Bad request"

    def __init__(self, detail: str, **extensions: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extensions = extensions

    def problem(self, instance: str | None = None) -> dict[str, Any]:
        """The RFC 9457 problem document of this error."""
        body: dict[str, Any] = {
            "type": PROBLEM_BASE + self.code,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
        }
        if instance:
            body["instance"] = instance
        body.update(self.extensions)
        return body


class RuleRefused(CadenaError):
    """A business rule refused the request (a conflict, a shape the rule forbids...).

    Raised by an authenticated caller's request, it is a refusal like any
    other and is recorded in the ledger (DESIGN invariant 2): the unit of
    work (``app.ledger.route``) appends a denied entry for the route's action with
    the problem's code as its reason, and ``subject`` as its subject (by
    default the route). A malformed request (schema validation) is not a
    refusal: it never reaches the service and changes nothing.
    """

    status, code, title = 422, "refused", "Refused"

    def __init__(self, detail: str, *, subject: Mapping[str, str] | None = None,
                 **extensions: Any) -> None:
        super().__init__(detail, **extensions)
        self.subject = dict(subject) if subject is not None else None


class NotFound(RuleRefused):
    """The thing asked for does not exist (or the caller may not know it does)."""

    status, code, title = 404, "not-found", "Not found"


class Unavailable(CadenaError):
    """A dependency (the database, the blob store) is unavailable right now."""

    status, code, title = 503, "unavailable", "Service unavailable"
