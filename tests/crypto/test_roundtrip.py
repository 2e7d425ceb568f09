"""Round trips: every recipient opens what was sealed; nobody else does."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from crypto import (
    InvalidArgument,
    NotARecipient,
    open_packet,
    seal_packet,
)
from crypto.statement import check_attachment_name
from tests.crypto.conftest import (
    CHUNK,
    META,
    OUTSIDER,
    RECIPIENTS,
    SENDER,
    publics,
    seal,
)

EDGE_SIZES = [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK, 3 * CHUNK + 7]


def _is_valid_name(name: str) -> bool:
    try:
        check_attachment_name(name)
    except InvalidArgument:
        return False
    return True


names = st.text(min_size=1, max_size=12).filter(_is_valid_name)


@st.composite
def contents(draw: st.DrawFn) -> tuple[bytes, list[tuple[str, bytes]]]:
    """A message and attachments whose sizes favour the chunk boundaries."""
    message = draw(st.binary(max_size=4 * CHUNK))
    sizes = draw(st.lists(st.sampled_from(EDGE_SIZES) | st.integers(0, 5 * CHUNK), max_size=4))
    attachment_names = draw(st.lists(names, min_size=len(sizes), max_size=len(sizes),
                                     unique=True))
    return message, [(n, draw(st.binary(min_size=s, max_size=s)))
                     for n, s in zip(attachment_names, sizes, strict=True)]


@given(content=contents(), count=st.integers(1, 10))
def test_every_recipient_opens_what_was_sealed(
        content: tuple[bytes, list[tuple[str, bytes]]], count: int) -> None:
    message, attachments = content
    ids = [f"r{i}" for i in range(count)]
    sealed = seal_packet(SENDER, "sender", publics(ids), META, message, attachments,
                         chunk_size=CHUNK)
    for rid in ids:
        opened = open_packet(sealed, SENDER.public, rid, RECIPIENTS[rid])
        assert opened.message == message
        assert opened.attachments == dict(attachments)
        assert opened.opened.header.recipient_ids == tuple(sorted(ids))


@given(count=st.integers(1, 9))
def test_a_non_recipient_cannot_open(count: int) -> None:
    sealed = seal(recipients=[f"r{i}" for i in range(count)])
    with pytest.raises(NotARecipient):
        open_packet(sealed, SENDER.public, "outsider", OUTSIDER)
    with pytest.raises(NotARecipient):
        open_packet(sealed, SENDER.public, "r9", RECIPIENTS["r9"])


def test_a_recipient_id_with_someone_elses_key_is_refused() -> None:
    sealed = seal(recipients=["r0", "r1"])
    with pytest.raises(NotARecipient):
        open_packet(sealed, SENDER.public, "r0", RECIPIENTS["r1"])


@pytest.mark.parametrize("size", EDGE_SIZES)
def test_attachment_sizes_around_the_chunk_size_round_trip(size: int) -> None:
    data = bytes(range(256)) * (size // 256 + 1)
    sealed = seal(attachments=[("a.bin", data[:size])])
    assert open_packet(sealed, SENDER.public, "r0", RECIPIENTS["r0"]).attachments == {
        "a.bin": data[:size]}
