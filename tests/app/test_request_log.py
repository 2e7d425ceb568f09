"""Every answer carries its own request id, and each request is logged once."""

from __future__ import annotations

import os
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st
from structlog.testing import capture_logs

from tests.app.conftest import World


def test_every_answer_carries_a_fresh_request_id(world: World) -> None:
    answers = [world.client.get("/healthz"),
               world.client.get("/v1/states", headers=world.coordinator.auth),
               world.client.get("/v1/states"),  # a logged 401 problem
               world.client.get("/no/such/route")]
    assert [a.status_code for a in answers] == [200, 200, 401, 404]
    ids = [a.headers["x-request-id"] for a in answers]
    assert all(re.fullmatch(r"[0-9a-f]{32}", rid) for rid in ids)
    assert len(set(ids)) == len(ids)


def test_each_request_is_logged_once_with_method_path_and_status(world: World) -> None:
    with capture_logs() as captured:
        world.client.get("/v1/states")
    lines = [line for line in captured if line["event"] == "request"]
    assert lines == [{"event": "request", "log_level": "info", "method": "GET",
                      "path": "/v1/states", "status": 401}]


def test_a_request_id_costs_no_system_call(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """The id was a ``uuid4``: ``os.urandom`` on the event loop, which lets go of the
    interpreter lock for the system call and must then win it back from the request
    threads. In a burst of a thousand connections that made the loop, and ``/healthz``
    behind it, wait hundreds of milliseconds (bench/api.py --burst-only)."""
    def no(size: int) -> bytes:
        raise AssertionError("os.urandom on the event loop")

    monkeypatch.setattr(os, "urandom", no)
    ids = {world.client.get("/healthz").headers["x-request-id"] for _ in range(50)}
    assert len(ids) == 50
    assert all(re.fullmatch(r"[0-9a-f]{32}", rid) for rid in ids)


@given(st.integers(min_value=1, max_value=2_000))
def test_request_ids_of_one_process_never_repeat(count: int) -> None:
    from app.request_log import next_request_id

    ids = [next_request_id() for _ in range(count)]
    assert len(set(ids)) == count
