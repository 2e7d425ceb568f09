"""A serving process runs two request threads, whatever the machine's cores (ADR 0037)."""

from __future__ import annotations

import os

import anyio.to_thread
import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.settings import REQUEST_THREADS, Settings
from tests.app.conftest import World


@given(cores=st.integers(min_value=1, max_value=512))
def test_the_default_is_two_threads_a_process_whatever_the_cores(cores: int) -> None:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(os, "cpu_count", lambda: cores)
        assert Settings().resolved_request_threads() == REQUEST_THREADS == 2


@given(threads=st.integers(min_value=1, max_value=256))
def test_the_operator_sets_them(threads: int) -> None:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CADENA_REQUEST_THREADS", str(threads))
        assert Settings().resolved_request_threads() == threads


def test_a_served_process_gives_its_requests_that_many_threads(
        world: World) -> None:
    def tokens() -> float:
        return anyio.to_thread.current_default_thread_limiter().total_tokens

    assert world.client.portal is not None
    assert world.client.portal.call(tokens) == REQUEST_THREADS
