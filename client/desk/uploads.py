"""Multipart forms read as a stream: each file goes to a sink as it arrives, never to disk.

A framework's form parser spools large files to a temporary file; a file
that holds plaintext must not leave a copy there. :func:`stream_form`
parses the body as it arrives (python-multipart's streaming parser) and hands
each file's bytes to the sink its page chose: kept in memory up to a bound
(:class:`MemorySink`), only hashed (:class:`DigestSink`), or encrypted as it
arrives (the compose page's). Plain fields are small and returned as text.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import Request

from client.errors import UsageError

FIELD_LIMIT = 64 << 10
"""Largest plain (non-file) field."""


class TooLarge(UsageError):
    """A form or one of its files is larger than its page accepts."""


class Sink(Protocol):
    """Where one uploaded file's bytes go, chunk by chunk."""

    def write(self, data: bytes) -> None:
        """Take the next chunk (raise :class:`TooLarge` to stop the upload)."""

    def close(self) -> None:
        """The file is complete."""


class MemorySink:
    """Keeps a file in memory, up to ``limit`` bytes."""

    def __init__(self, limit: int) -> None:
        """An empty buffer that refuses more than ``limit`` bytes."""
        self.limit = limit
        self.data = bytearray()

    def write(self, data: bytes) -> None:
        """Append ``data``."""
        if len(self.data) + len(data) > self.limit:
            raise TooLarge(f"the file is larger than {self.limit} bytes")
        self.data += data

    def close(self) -> None:
        """Nothing to finish."""


class DigestSink:
    """Keeps only a file's SHA-256 and size: its bytes are hashed and dropped."""

    def __init__(self) -> None:
        """A fresh digest."""
        self._hash = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> None:
        """Hash ``data``."""
        self._hash.update(data)
        self.size += len(data)

    def close(self) -> None:
        """Nothing to finish."""

    def hexdigest(self) -> str:
        """The SHA-256 of what was written, lowercase hex."""
        return self._hash.hexdigest()


SinkFor = Callable[[str, str], Sink | None]
"""Chooses the sink of a file field: (field name, file name) -> sink, or None to drop it."""


@dataclass
class _Part:
    headers: dict[bytes, bytes] = field(default_factory=dict)
    header: bytes = b""
    value: bytes = b""
    name: str = ""
    filename: str | None = None
    sink: Sink | None = None


@dataclass
class _State:
    sink_for: SinkFor
    fields: dict[str, list[str]] = field(default_factory=dict)
    part: _Part = field(default_factory=_Part)


def _callbacks(state: _State) -> dict[str, Callable[..., None]]:
    def part_begin() -> None:
        state.part = _Part()

    def header_field(data: bytes, start: int, end: int) -> None:
        state.part.header += data[start:end]

    def header_value(data: bytes, start: int, end: int) -> None:
        state.part.value += data[start:end]

    def header_end() -> None:
        part = state.part
        part.headers[part.header.lower()] = part.value
        part.header = part.value = b""

    def headers_finished() -> None:
        part = state.part
        _, options = parse_options_header(part.headers.get(b"content-disposition", b""))
        part.name = options.get(b"name", b"").decode("utf-8", errors="replace")
        raw = options.get(b"filename")
        part.filename = None if raw is None else raw.decode("utf-8", errors="replace")
        if part.filename:
            part.sink = state.sink_for(part.name, part.filename)

    def part_data(data: bytes, start: int, end: int) -> None:
        part = state.part
        if part.filename is None:
            part.value += data[start:end]
            if len(part.value) > FIELD_LIMIT:
                raise TooLarge(f"the field {part.name!r} is too long")
        elif part.sink is not None:
            part.sink.write(bytes(data[start:end]))

    def part_end() -> None:
        part = state.part
        if part.filename is None:
            state.fields.setdefault(part.name, []).append(
                part.value.decode("utf-8", errors="replace"))
        elif part.sink is not None:
            part.sink.close()

    return {"on_part_begin": part_begin, "on_header_field": header_field,
            "on_header_value": header_value, "on_header_end": header_end,
            "on_headers_finished": headers_finished, "on_part_data": part_data,
            "on_part_end": part_end}


async def stream_form(request: Request, sink_for: SinkFor, *,
                      limit: int) -> dict[str, list[str]]:
    """Parse a multipart POST as it arrives; files go to their sinks, fields are returned.

    Raises :class:`TooLarge` past ``limit`` bytes in all, and :class:`UsageError`
    for a body that is not a multipart form.
    """
    kind, options = parse_options_header(request.headers.get("content-type", ""))
    boundary = options.get(b"boundary")
    if kind != b"multipart/form-data" or not boundary:
        raise UsageError("the form was not sent as multipart/form-data")
    state = _State(sink_for)
    parser = MultipartParser(boundary, _callbacks(state))  # type: ignore[arg-type]
    received = 0
    try:
        async for chunk in request.stream():
            received += len(chunk)
            if received > limit:
                raise TooLarge(f"the upload is larger than {limit} bytes")
            parser.write(chunk)
        parser.finalize()
    except FormParserError as exc:
        raise UsageError(f"the form could not be read: {exc}") from exc
    return state.fields
