"""SHA-256 in a worker thread: the same digest as hashlib, however the input is cut."""

from __future__ import annotations

import hashlib
import io

import pytest
from hypothesis import given
from hypothesis import strategies as st

from crypto.hashing import Sha256
from crypto.stream import decrypt_stream, encrypt_stream
from streamio import hashing
from streamio.hashing import ThreadedSha256


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


@given(parts=st.lists(st.binary(max_size=300), max_size=40))
def test_crypto_inline_sha256_equals_hashlib(parts: list[bytes]) -> None:
    with Sha256() as digest:
        for part in parts:
            digest.update(part)
        assert digest.hexdigest() == hashlib.sha256(b"".join(parts)).hexdigest()


@given(data=st.binary(max_size=5000), chunk_size=st.integers(64, 700),
       threshold=st.integers(1, 2000))
def test_threaded_and_inline_hashers_measure_a_stream_alike(data: bytes, chunk_size: int,
                                                            threshold: int) -> None:
    key = bytes(range(32))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(hashing, "THREAD_THRESHOLD", threshold)  # some chunks threaded
        inline_ct, threaded_ct = io.BytesIO(), io.BytesIO()
        inline = encrypt_stream(key, io.BytesIO(data), inline_ct, chunk_size)
        threaded = encrypt_stream(key, io.BytesIO(data), threaded_ct, chunk_size,
                                  hasher=ThreadedSha256)
        assert threaded == inline
        assert threaded_ct.getvalue() == inline_ct.getvalue()
        opened = decrypt_stream(key, io.BytesIO(threaded_ct.getvalue()), io.BytesIO(),
                                inline.ciphertext, chunk_size, hasher=ThreadedSha256)
        assert opened == inline
