"""Strict, canonical JSON: the one reader and writer of every Cadena JSON format.

Ledger entries, custody certificates and ledger exports use one canonical
form: compact, keys sorted, UTF-8 as is (``ensure_ascii`` off, so only the
escapes JSON requires), no floats, no NaN. One value has exactly one
encoding, so a verifier compares bytes and never re-serializes. The signed
objects of :mod:`crypto` follow the same rules with their own copy
(``crypto.encoding``), because ``crypto`` imports nothing from ``ledger``.

Reading is strict: a duplicate key, a non-integer number (``1.0``, ``1e3``)
or ``NaN``/``Infinity`` is refused with the caller's own error type, so each
core keeps its exception tree (``ledger.errors``, ``crypto.errors``,
``custody``). Whether the bytes were canonical is the caller's check:
re-encode with :func:`canonical_json` and compare, after the format's own
field checks, whose messages say more.
"""

from __future__ import annotations

import json
from typing import Any, NoReturn

__all__ = ["StrictJSON", "canonical_json", "canonical_text"]

# One encoder built once: json.dumps() with keyword arguments builds a new one per call.
_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                            allow_nan=False)


def canonical_text(value: Any) -> str:
    """``value`` as canonical JSON text (compact, keys sorted, no ASCII escaping)."""
    return _ENCODER.encode(value)


def canonical_json(value: Any) -> bytes:
    """``value`` as canonical JSON bytes (UTF-8).

    Raises :class:`UnicodeEncodeError` for a string holding a lone surrogate
    and :class:`ValueError` for a float that is not finite.
    """
    return _ENCODER.encode(value).encode("utf-8")


class StrictJSON:
    """A strict JSON reader that raises ``error`` and no other exception.

    ``not_json`` starts the message for bytes that are not JSON (followed by
    the decoder's own message); ``not_utf8``, if given, is the whole message
    for bytes that are not UTF-8, which otherwise count as not JSON.
    """

    def __init__(self, error: type[Exception], *, not_json: str = "not JSON",
                 not_utf8: str | None = None) -> None:
        """Read with ``error`` as the one exception type raised."""
        self._error = error
        self._not_json = not_json
        self._not_utf8 = not_utf8

        def refuse_number(text: str) -> NoReturn:
            raise error(f"non-integer number {text!r}")

        def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
            out: dict[str, Any] = {}
            for key, value in items:
                if key in out:
                    raise error(f"duplicate key {key!r}")
                out[key] = value
            return out

        self._decoder = json.JSONDecoder(object_pairs_hook=pairs, parse_float=refuse_number,
                                         parse_constant=refuse_number)

    def load(self, data: bytes) -> Any:
        """Decode ``data`` strictly (any JSON value); raise the reader's error otherwise."""
        try:
            return self._decoder.decode(data.decode("utf-8"))
        except UnicodeDecodeError as exc:
            if self._not_utf8 is not None:
                raise self._error(self._not_utf8) from exc
            raise self._error(f"{self._not_json}: {exc}") from exc
        except (ValueError, RecursionError) as exc:
            if isinstance(exc, self._error):
                raise
            raise self._error(f"{self._not_json}: {exc}") from exc
