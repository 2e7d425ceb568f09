"""Refusals of ``add-checkpoint``, each with the HTTP status C2SP tlog-witness gives it.

::

    WitnessError
    ├── MalformedRequest   400  the body is not an add-checkpoint request, or old > size
    ├── BadSignature       403  no signature by a trusted key of that origin verifies
    ├── UnknownLog         404  the checkpoint's origin is not a configured log
    ├── Conflict           409  old size is not the latest cosigned size (body: that size),
    │                           or same size but a different root (a fork)
    ├── BadProof           422  the consistency proof does not verify
    └── TooLarge           413  the body is larger than a checkpoint can be
"""

from __future__ import annotations

from typing import ClassVar


class WitnessError(Exception):
    """A refused submission; ``status`` is the HTTP status to answer with."""

    status: ClassVar[int] = 400

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class MalformedRequest(WitnessError):
    """The body is not a well-formed add-checkpoint request."""

    status = 400


class BadSignature(WitnessError):
    """None of the checkpoint's signatures verifies under a trusted key."""

    status = 403


class UnknownLog(WitnessError):
    """The checkpoint's origin is not one of the witness's logs."""

    status = 404


class Conflict(WitnessError):
    """The request does not start from the latest cosigned checkpoint."""

    status = 409

    def __init__(self, detail: str, latest_size: int) -> None:
        super().__init__(detail)
        self.latest_size = latest_size


class BadProof(WitnessError):
    """The consistency proof from the old size does not verify."""

    status = 422


class TooLarge(WitnessError):
    """The body exceeds the size limit."""

    status = 413
