"""A method a path does not have answers 405 with the ``Allow`` header (RFC 9110 §15.5.6)."""

from __future__ import annotations

import pytest

from tests.app.conftest import World
from tests.app.test_packets_support import assert_problem


@pytest.mark.parametrize(("method", "path", "allowed"), [
    ("DELETE", "/v1/states", {"GET", "POST"}),
    ("PUT", "/v1/states/CO", {"PATCH"}),
    ("POST", "/healthz", {"GET"}),
])
def test_method_not_allowed_names_the_allowed_methods(world: World, method: str, path: str,
                                                      allowed: set[str]) -> None:
    response = world.client.request(method, path, headers=world.coordinator.auth)
    assert_problem(response, 405, "http-405")
    assert {m.strip() for m in response.headers["allow"].split(",")} == allowed
