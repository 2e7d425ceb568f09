"""``/docs`` (Swagger UI) and ``/redoc`` from assets the server serves itself.

FastAPI's own pages load their scripts and styles from public CDNs (and ReDoc
its fonts from Google): blank on an air-gapped network, and a request to a
third party from an operator's browser. The assets are vendored in
``app/static/`` with their licences (``app/static/README.md``).
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

STATIC = Path(__file__).parent / "static"
ASSETS = "/docs-assets"


def install_docs(app: FastAPI) -> None:
    """Serve ``/docs`` and ``/redoc`` (the app is made with ``docs_url=None, redoc_url=None``)."""
    openapi_url = app.openapi_url or "/openapi.json"
    favicon = f"{ASSETS}/swagger-ui/favicon-32x32.png"
    app.mount(ASSETS, StaticFiles(directory=STATIC), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi_url, title=f"{app.title} API",
            swagger_js_url=f"{ASSETS}/swagger-ui/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS}/swagger-ui/swagger-ui.css",
            swagger_favicon_url=favicon)

    @app.get("/redoc", include_in_schema=False)
    async def redoc() -> HTMLResponse:
        return get_redoc_html(
            openapi_url=openapi_url, title=f"{app.title} API",
            redoc_js_url=f"{ASSETS}/redoc/redoc.standalone.js",
            redoc_favicon_url=favicon, with_google_fonts=False)
