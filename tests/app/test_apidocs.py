"""``/docs`` and ``/redoc`` work offline: every asset they load is served by the server itself."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from app.settings import Settings

# Where a page names something the browser loads: src/href attributes, ReDoc's
# spec-url, and the OpenAPI url that Swagger UI's inline start-up script fetches.
REFERENCE = re.compile(r"""(?:src|href|spec-url)\s*=\s*["']([^"']+)["']|url:\s*'([^']+)'""")


@pytest.fixture
def client(tmp_path: Path) -> TestClient:
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    app = create_app(Settings(data_dir=data, ledger_origin="test.cadena/ledger"))
    return TestClient(app)  # no lifespan: the pages need no database


def _references(html: str) -> list[str]:
    return [a or b for a, b in REFERENCE.findall(html)]


@pytest.mark.parametrize(("page", "expected"), [
    ("/docs", {"/docs-assets/swagger-ui/swagger-ui-bundle.js",
               "/docs-assets/swagger-ui/swagger-ui.css", "/openapi.json"}),
    ("/redoc", {"/docs-assets/redoc/redoc.standalone.js", "/openapi.json"}),
])
def test_a_docs_page_loads_only_what_this_server_serves(
        client: TestClient, page: str, expected: set[str]) -> None:
    answer = client.get(page)
    assert answer.status_code == 200
    html = answer.text
    assert "http://" not in html
    assert "https://" not in html
    references = _references(html)
    assert expected <= set(references)
    for reference in references:
        assert re.fullmatch(r"/[^/].*", reference), reference  # same origin: a path
        asset = client.get(reference)
        assert asset.status_code == 200, reference
        assert asset.content, reference


def test_the_vendored_assets_carry_their_licences() -> None:
    static = Path(__file__).parents[2] / "app" / "static"
    assert "Apache License" in (static / "swagger-ui" / "LICENSE").read_text()
    assert "MIT License" in (static / "redoc" / "LICENSE").read_text()
    for directory in ("swagger-ui", "redoc"):
        assert directory in (static / "README.md").read_text()


def test_the_asset_directory_lists_nothing_and_serves_no_path_outside_it(
        client: TestClient) -> None:
    assert client.get("/docs-assets/").status_code == 404
    assert client.get("/docs-assets/../settings.py").status_code == 404
    assert client.get("/docs-assets/%2e%2e/settings.py").status_code == 404
