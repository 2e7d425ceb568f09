"""Schemathesis hooks for ``test_schemathesis.py`` (loaded through ``SCHEMATHESIS_HOOKS``).

- :class:`RoleTokens` authenticates every generated request with a real bearer
  token of the role the route is for (prosecutor for packets and blobs,
  auditor for ledger entries and proofs, coordinator for the rest), so the
  generated data reaches the handlers instead of stopping at the 401. Tokens
  come from the JSON file named by ``CADENA_ST_TOKENS``.
- :func:`errors_are_problems` checks that every 4xx and 5xx is an RFC 9457
  ``application/problem+json`` document whose ``status`` is the HTTP status.
- :class:`CountRequests` appends one line per response to the file named by
  ``CADENA_ST_COUNT``, so the test can assert the request budget was spent.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any

import schemathesis

_PROSECUTOR_PREFIXES = ("/v1/packets", "/v1/blobs", "/v1/events", "/v1/certificates")
_AUDITOR_PREFIXES = ("/v1/ledger/entries", "/v1/ledger/proofs")


def _role(path: str) -> str:
    if path.startswith(_PROSECUTOR_PREFIXES):
        return "prosecutor"
    if path.startswith(_AUDITOR_PREFIXES):
        return "auditor"
    return "coordinator"


@schemathesis.auth(refresh_interval=None)
class RoleTokens:
    """A bearer token chosen by the operation's path."""

    def __init__(self) -> None:
        self.tokens: dict[str, str] = json.loads(
            Path(os.environ["CADENA_ST_TOKENS"]).read_text(encoding="utf-8"))

    def get(self, case: Any, context: Any) -> str:
        """The token for this operation's role."""
        return self.tokens[_role(str(context.operation.path))]

    def set(self, case: Any, data: str, context: Any) -> None:
        """Put it in the Authorization header."""
        case.headers = case.headers or {}
        case.headers["Authorization"] = f"Bearer {data}"


@schemathesis.check
def errors_are_problems(ctx: Any, response: Any, case: Any) -> None:
    """Every error answer is an RFC 9457 problem document."""
    if response.status_code < 400:
        return None
    media_type = response.headers.get("content-type", [""])
    media_type = media_type[0] if isinstance(media_type, list) else media_type
    if not str(media_type).startswith("application/problem+json"):
        raise AssertionError(f"{response.status_code} answered as {media_type!r}, "
                             "not application/problem+json")
    body = json.loads(response.content)
    for member in ("type", "title", "status", "detail"):
        if member not in body:
            raise AssertionError(f"problem document without {member!r}")
    if body["status"] != response.status_code:
        raise AssertionError(f"problem status {body['status']} != HTTP {response.status_code}")
    return None


_count_lock = threading.Lock()


@schemathesis.check
def count_requests(ctx: Any, response: Any, case: Any) -> None:
    """Record one line per response (the test reads how many requests were made)."""
    with _count_lock, Path(os.environ["CADENA_ST_COUNT"]).open("a", encoding="utf-8") as out:
        out.write(f"{case.operation.method.upper()} {case.operation.path} "
                  f"{response.status_code}\n")
    return None
