"""SHA-256 in a worker thread: the same digest as hashlib, however the input is cut."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from crypto import hashing
from crypto.hashing import ThreadedSha256


@given(parts=st.lists(st.binary(max_size=300), max_size=40), threshold=st.integers(1, 200))
def test_digest_equals_hashlib_over_the_same_updates(parts: list[bytes], threshold: int) -> None:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(hashing, "THREAD_THRESHOLD", threshold)  # inline first, then threaded
        with ThreadedSha256(depth=2) as digest:
            for part in parts:
                digest.update(part)
            assert digest.hexdigest() == hashlib.sha256(b"".join(parts)).hexdigest()


def test_large_updates_run_in_a_thread_that_stops_with_the_block() -> None:
    with ThreadedSha256() as digest:
        digest.update(bytes(hashing.THREAD_THRESHOLD))
        thread = digest._thread
        assert thread is not None
        assert thread.is_alive()
    assert not thread.is_alive()
    with pytest.raises(ValueError, match="finished"):
        digest.update(b"late")
