"""``cadena-server serve`` imports nothing from the directory it is started in.

``python -m`` and ``python -c`` put the working directory first on
``sys.path``, and uvicorn's command line adds it again (``--app-dir .``):
an operator who starts the server from a directory holding an ``app``
package or a ``uvicorn.py`` (a download, a shared or world-writable
directory) would have run that code as the server, with its keys. The
serving, migrating and worker processes are started with ``-P`` and
uvicorn's ``--app-dir`` is where the installed ``app`` is (app/cli.py).
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from bench._server import serve, server_env
from tests.planted import plant

pytestmark = pytest.mark.timeout(180)


@pytest.mark.parametrize("workers", [1, 2])
def test_serve_runs_the_installed_code_whatever_its_working_directory_holds(
        tmp_path: Path, workers: int, request: pytest.FixtureRequest) -> None:
    marker = tmp_path / "imported-from-cwd"
    # The workers are spawned: a planted ``multiprocessing`` would catch them.
    cwd = plant(tmp_path / "untrusted", marker, ("app", "alembic", "multiprocessing"),
                modules=("uvicorn",))
    extra = {}
    if workers > 1:  # several workers need PostgreSQL
        extra["CADENA_DATABASE_URL"] = request.getfixturevalue("postgres_url")
    env = server_env(tmp_path / "data", extra=extra)
    with serve(env, workers=workers, cwd=cwd) as server:
        assert httpx.get(f"{server.url}/healthz", timeout=10).status_code == 200
    assert not marker.exists(), marker.read_text()
