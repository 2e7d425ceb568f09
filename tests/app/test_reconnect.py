"""PostgreSQL: connections the server dropped (a restart, an administrator) are replaced.

The pool must never hand a request a connection the server already closed:
every request after the drop is answered as if nothing happened.
"""

from __future__ import annotations

import os
import resource

import psycopg
from sqlalchemy import make_url

from tests.app.conftest import World


def _drop_every_other_connection(url: str) -> int:
    """What a restart does to the pool: the server ends each backend of the database.

    Each termination is waited for (up to 5 s), as a restart would be: the
    call alone only signals the backend, which may not yet have told its
    client (CI once saw the next request get 503 in that window).
    """
    dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(dsn, autocommit=True) as conn:
        rows = conn.execute("SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity "
                            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                            ).fetchall()
    assert all(done for (done,) in rows), "a backend outlived its termination"
    return len(rows)


def test_requests_after_the_server_dropped_every_connection_succeed(
        postgres_world: World) -> None:
    world = postgres_world
    auth = world.coordinator.auth
    assert world.client.get("/v1/states", headers=auth).status_code == 200
    assert _drop_every_other_connection(world.settings.resolved_database_url()) >= 1
    answers = [world.client.get("/v1/states", headers=auth).status_code for _ in range(3)]
    assert answers == [200, 200, 200]
    assert world.last_entry().action == "state.list"


def test_a_connection_above_descriptor_1023_is_checked_out(postgres_world: World) -> None:
    """A burst of a thousand client sockets pushes new database sockets past select()'s limit."""
    world = postgres_world
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 4096), max(hard, 4096)))
    world.client.app.state.engine.dispose()  # type: ignore[attr-defined]
    held = [os.open(os.devnull, os.O_RDONLY) for _ in range(1100)]  # the low descriptors
    try:
        answers = [world.client.get("/v1/states", headers=world.coordinator.auth).status_code
                   for _ in range(2)]
    finally:
        for fd in held:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert answers == [200, 200]
