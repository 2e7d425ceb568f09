"""Canonical encodings shared by every format in :mod:`crypto`.

Signed objects are compact, sorted-key UTF-8 JSON (no insignificant
whitespace, no floats, optional fields omitted rather than ``null``). Parsing
is strict: duplicate keys, unknown keys, wrong types and any byte string that
does not re-encode to itself are refused, so one value has exactly one
encoding and a verifier never has to re-serialize.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import struct
from collections.abc import Iterable, Mapping
from typing import Any, NoReturn

from crypto.errors import FormatError, UnknownVersion

_HEX64 = re.compile(r"[0-9a-f]{64}")


def canonical_json(value: Mapping[str, Any]) -> bytes:
    """Encode ``value`` as compact, sorted-key UTF-8 JSON."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False)
    return text.encode("utf-8")


def _no_float(text: str) -> NoReturn:
    raise FormatError(f"non-integer number {text!r}")


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, item in pairs:
        if key in out:
            raise FormatError(f"duplicate key {key!r}")
        out[key] = item
    return out


def parse_canonical(data: bytes, *, max_size: int = 1 << 20) -> dict[str, Any]:
    """Parse canonical JSON bytes into a dict, refusing anything non-canonical."""
    if len(data) > max_size:
        raise FormatError(f"object of {len(data)} bytes exceeds {max_size}")
    try:
        value = json.loads(data.decode("utf-8"), object_pairs_hook=_pairs,
                           parse_float=_no_float, parse_constant=_no_float)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        if isinstance(exc, FormatError):
            raise
        raise FormatError(f"not valid JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise FormatError("top level is not an object")
    try:
        again = canonical_json(value)
    except UnicodeEncodeError as exc:
        raise FormatError("string is not valid Unicode") from exc
    if again != data:
        raise FormatError("not in canonical form")
    return value


def check_keys(obj: Mapping[str, Any], required: Iterable[str],
               optional: Iterable[str] = ()) -> None:
    """Raise :class:`FormatError` unless ``obj`` has every required and only known keys."""
    required_set = set(required)
    missing = required_set - obj.keys()
    unknown = obj.keys() - required_set - set(optional)
    if missing:
        raise FormatError(f"missing fields {sorted(missing)}")
    if unknown:
        raise FormatError(f"unknown fields {sorted(unknown)}")


def check_version(obj: Mapping[str, Any], version: int) -> None:
    """Raise :class:`UnknownVersion` unless ``obj["v"]`` equals ``version``."""
    if obj.get("v") != version or isinstance(obj.get("v"), bool):
        raise UnknownVersion(f"version {obj.get('v')!r} is not {version}")


def get_str(obj: Mapping[str, Any], key: str) -> str:
    """Return ``obj[key]`` if it is a string, else raise :class:`FormatError`."""
    value = obj[key]
    if not isinstance(value, str):
        raise FormatError(f"{key} is not a string")
    return value


def get_int(obj: Mapping[str, Any], key: str, low: int = 0, high: int = 2**63 - 1) -> int:
    """Return ``obj[key]`` if it is an integer in [low, high], else raise."""
    value = obj[key]
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise FormatError(f"{key} is not an integer in [{low}, {high}]")
    return value


def get_list(obj: Mapping[str, Any], key: str) -> list[Any]:
    """Return ``obj[key]`` if it is a list, else raise :class:`FormatError`."""
    value = obj[key]
    if not isinstance(value, list):
        raise FormatError(f"{key} is not a list")
    return value


def get_obj(obj: Mapping[str, Any], key: str) -> dict[str, Any]:
    """Return ``obj[key]`` if it is an object, else raise :class:`FormatError`."""
    value = obj[key]
    if not isinstance(value, dict):
        raise FormatError(f"{key} is not an object")
    return value


def get_hex256(obj: Mapping[str, Any], key: str) -> str:
    """Return ``obj[key]`` if it is 64 lowercase hex digits (a SHA-256 digest)."""
    value = get_str(obj, key)
    if not _HEX64.fullmatch(value):
        raise FormatError(f"{key} is not 64 lowercase hex digits")
    return value


def b64encode(data: bytes) -> str:
    """Standard base64 with padding."""
    return base64.b64encode(data).decode("ascii")


def b64decode(text: str, field: str, length: int | None = None) -> bytes:
    """Decode canonical standard base64; raise :class:`FormatError` on anything else."""
    try:
        data = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError) as exc:
        raise FormatError(f"{field} is not base64") from exc
    if b64encode(data) != text:
        raise FormatError(f"{field} is not canonical base64")
    if length is not None and len(data) != length:
        raise FormatError(f"{field} is {len(data)} bytes, expected {length}")
    return data


def get_b64(obj: Mapping[str, Any], key: str, length: int | None = None) -> bytes:
    """Return the bytes of the base64 string ``obj[key]``."""
    return b64decode(get_str(obj, key), key, length)


def bind(*parts: bytes) -> bytes:
    """Unambiguous concatenation: each part prefixed by its 4-byte big-endian length.

    Used for key-derivation inputs and associated data, so that no two
    different tuples of parts give the same bytes.
    """
    return b"".join(struct.pack(">I", len(p)) + p for p in parts)
