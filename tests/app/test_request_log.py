"""Every answer carries its own request id, and each request is logged once."""

from __future__ import annotations

import re

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
