"""The one type of every point in time the API accepts (queries and bodies).

An aware time such as ``0001-01-01T00:00:00+14:00`` parses, but has no UTC
form: normalised it falls before year 1 (or, with a negative offset, after
9999), and Python raises ``OverflowError`` the moment anything compares or
stores it. ``UTCTimestamp`` refuses such times during validation, so they
get the 422 problem of any malformed input instead of a 500.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from pydantic import AfterValidator, AwareDatetime


def _in_utc(value: datetime) -> datetime:
    try:
        return value.astimezone(UTC)
    except OverflowError:
        # pydantic turns a ValueError into a validation error (422).
        raise ValueError("the time is out of range once converted to UTC") from None


UTCTimestamp = Annotated[AwareDatetime, AfterValidator(_in_utc)]
"""A timezone-aware time with a UTC form, given back in UTC."""
