"""Errors of the Cadena client: one tree, and the exit code each maps to.

::

    ClientError                         exit 4 unless a subclass says otherwise
    ├── UsageError                      exit 2: the local set-up is incomplete or wrong
    │   ├── ProfileError                a profile, its config or its key file is unusable
    │   └── NotLoggedIn                 the call needs credentials and there are none
    ├── ProblemError                    the server answered with an RFC 9457 problem
    │   ├── RefusedError                exit 3: 4xx, the server refused the request
    │   │   ├── InvalidRequest          400, 422
    │   │   ├── Unauthenticated         401 (after one re-login)
    │   │   ├── Forbidden               403
    │   │   ├── NotFound                404
    │   │   └── Conflict                409
    │   └── ServerError                 exit 4: 5xx
    ├── NetworkError                    exit 4: the server could not be reached
    ├── ProtocolError                   exit 4: the server's answer is not what the API promises
    │   └── BadChallenge                a login challenge that must not be signed
    └── AuditFailure                    exit 1: the ledger (or an export) does not verify

Every :class:`ProblemError` carries the problem's ``type``, ``title``,
``status``, ``detail`` and its extension members (``ledger_index`` of a
logged refusal, ``errors`` of a validation problem...).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any, ClassVar

EXIT_OK = 0
EXIT_VERIFICATION = 1
EXIT_USAGE = 2
EXIT_REFUSED = 3
EXIT_SERVER = 4


class ClientError(Exception):
    """Base of every error the client raises on purpose."""

    exit_code: ClassVar[int] = EXIT_SERVER


class UsageError(ClientError):
    """The local set-up is incomplete or wrong (a profile, a key, an option)."""

    exit_code: ClassVar[int] = EXIT_USAGE


class ProfileError(UsageError):
    """A profile directory, its configuration or its key file is unusable."""


class NotLoggedIn(UsageError):
    """A call needs credentials, and the client was given none."""


class NetworkError(ClientError):
    """The server could not be reached, or the connection broke."""


class ProtocolError(ClientError):
    """The server answered something the API does not allow."""


class BadChallenge(ProtocolError):
    """A login challenge that is not for us, not a login, or expired: never signed."""


class ProblemError(ClientError):
    """The server answered with an RFC 9457 problem document."""

    def __init__(self, type_: str, title: str, status: int, detail: str,
                 *, extensions: Mapping[str, Any] | None = None) -> None:
        """Keep the problem's members; ``extensions`` holds every other member."""
        super().__init__(f"{title} ({status}): {detail}")
        self.type = type_
        self.title = title
        self.status = status
        self.detail = detail
        self.extensions: dict[str, Any] = dict(extensions or {})

    @property
    def code(self) -> str:
        """The last path segment of the problem type (``forbidden``, ``not-found``...)."""
        return self.type.rstrip("/").rsplit("/", 1)[-1]

    @property
    def ledger_index(self) -> int | None:
        """The ledger entry that recorded a refusal, when the server says so."""
        value = self.extensions.get("ledger_index")
        return value if isinstance(value, int) and not isinstance(value, bool) else None


class RefusedError(ProblemError):
    """A 4xx problem: the server refused the request."""

    exit_code: ClassVar[int] = EXIT_REFUSED


class InvalidRequest(RefusedError):
    """400 or 422: the request is malformed or breaks a rule."""


class Unauthenticated(RefusedError):
    """401: no valid credentials, even after logging in again."""


class Forbidden(RefusedError):
    """403: the caller may not do this (role, clearance, membership)."""


class NotFound(RefusedError):
    """404: no such thing (or the caller may not know it exists)."""


class Conflict(RefusedError):
    """409: the thing exists already or its state forbids the change."""


class ServerError(ProblemError):
    """A 5xx problem: the server failed or a dependency is unavailable."""


_BY_STATUS: dict[int, type[RefusedError]] = {
    400: InvalidRequest, 422: InvalidRequest, 401: Unauthenticated, 403: Forbidden,
    404: NotFound, 409: Conflict,
}


def problem_class(status: int) -> type[ProblemError]:
    """The exception class for an HTTP error ``status``."""
    if status >= 500:
        return ServerError
    return _BY_STATUS.get(status, RefusedError)


class AuditFault(enum.Enum):
    """What kind of fault an audit found."""

    BAD_CHECKPOINT_SIGNATURE = "bad_checkpoint_signature"
    MALFORMED_ENTRY = "malformed_entry"
    INDEX_MISMATCH = "index_mismatch"
    MODIFIED_ENTRY = "modified_entry"
    ROOT_MISMATCH = "root_mismatch"
    TRUNCATED = "truncated"
    ROLLBACK = "rollback"
    FORK = "fork"
    BAD_EXPORT = "bad_export"
    REFUSAL_DETAIL_MISMATCH = "refusal_detail_mismatch"
    KEY_LOG_MISMATCH = "key_log_mismatch"


class AuditFailure(ClientError):
    """The ledger, as served or exported, does not verify: the first fault found."""

    exit_code: ClassVar[int] = EXIT_VERIFICATION

    def __init__(self, fault: AuditFault, detail: str, index: int | None = None) -> None:
        """Record the fault kind, a sentence for people and the first bad index, if any."""
        where = f" at index {index}" if index is not None else ""
        super().__init__(f"{fault.value}{where}: {detail}")
        self.fault = fault
        self.detail = detail
        self.index = index
