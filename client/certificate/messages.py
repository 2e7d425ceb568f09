"""What the verifier says, as message ids with parameters: English for the CLI, any language
for the desk.

Every detail, failure reason and note of :mod:`client.certificate.verify` is a
:class:`Message`: its ``id`` is the English text with ``%(name)s``
placeholders (the gettext convention: the id is the English, so the CLI
prints ``str(message)`` unchanged), and ``params`` fill them. Parameters are
facts, not words: digests, ids, counts (``int``, so a reader's locale can
group them), names as the certificate spells them, another :class:`Message`
(a reason nested in a sentence), a tuple of messages (a list, joined by
commas), or a :class:`Time` (a moment as the certificate writes it, which a
reader's locale may write its own way). A text that comes from
elsewhere (a parser's or a library's exception) is a ``str`` parameter and
stays as that code wrote it.

Messages are made only with :func:`M` and a literal id, so that the ids can be
enumerated from the source (the desk's catalog test does this, and fails
while a language lacks one).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["M", "Message", "Param", "Time"]


@dataclass(frozen=True)
class Time:
    """A moment as the certificate or the ledger writes it (RFC 3339, UTC ``Z``)."""

    text: str

    def __str__(self) -> str:
        """The text as written (what the CLI prints)."""
        return self.text


@dataclass(frozen=True)
class Message:
    """A message id (the English, with ``%(name)s`` placeholders) and its parameters."""

    id: str
    params: Mapping[str, Param] = field(default_factory=dict)

    def __str__(self) -> str:
        """The English text (what the CLI prints)."""
        if not self.params:
            return self.id
        return self.id % {k: _english(v) for k, v in self.params.items()}

    def as_json(self) -> dict[str, Any]:
        """``{"id": ..., "params": {...}}``, nested messages as the same shape."""
        return {"id": self.id, "params": {k: _json(v) for k, v in self.params.items()}}


Param = str | int | Time | Message | tuple[Message, ...]
"""A parameter: a fact (text, count or time), a nested message, or a list of messages."""


def _english(value: Param) -> str:
    if isinstance(value, tuple):
        return ", ".join(str(item) for item in value)
    return str(value)


def _json(value: Param) -> Any:
    if isinstance(value, tuple):
        return [item.as_json() for item in value]
    if isinstance(value, Time):
        return value.text
    return value.as_json() if isinstance(value, Message) else value


def M(message_id: str, /, **params: Param) -> Message:  # noqa: N802 - a marker
    """The message ``message_id`` with ``params`` (call it with a literal id)."""
    return Message(message_id, dict(params))
