"""The FastAPI application factory."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy import text
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.db import make_engine, make_session_factory
from app.errors import PROBLEM_BASE, PROBLEM_MEDIA_TYPE, CadenaError, Unavailable
from app.migrate import is_current
from app.settings import Settings, get_settings


def _problem(status: int, code: str, title: str, detail: str, **ext: Any) -> JSONResponse:
    body = {"type": PROBLEM_BASE + code, "title": title, "status": status, "detail": detail}
    body.update(ext)
    return JSONResponse(body, status_code=status, media_type=PROBLEM_MEDIA_TYPE)


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(CadenaError)
    async def domain_error(request: Request, exc: CadenaError) -> JSONResponse:
        return JSONResponse(
            exc.problem(instance=request.url.path),
            status_code=exc.status,
            media_type=PROBLEM_MEDIA_TYPE,
        )

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"loc": [str(p) for p in e.get("loc", ())], "msg": str(e.get("msg", ""))}
            for e in exc.errors()
        ]
        return _problem(422, "invalid-request", "Invalid request", "the request is malformed",
                        errors=errors)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return _problem(exc.status_code, f"http-{exc.status_code}", str(exc.detail), str(exc.detail))


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the Cadena service for ``settings`` (default: from the environment)."""
    settings = settings or get_settings()
    url = settings.resolved_database_url()
    engine = make_engine(url)
    app = FastAPI(title="Cadena", version="0.1.0", description="Secure case-information exchange")
    app.state.settings = settings
    app.state.engine = engine
    app.state.sessions = make_session_factory(engine)
    _install_error_handlers(app)

    @app.get("/healthz", tags=["operations"])
    def healthz() -> dict[str, str]:
        """The process is alive."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["operations"])
    def readyz() -> dict[str, str]:
        """The database is reachable and at the newest migration."""
        try:
            with engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            current = is_current(engine, url)
        except Exception as exc:  # any driver error means "not ready"
            raise Unavailable("the database is unreachable") from exc
        if not current:
            raise Unavailable("the database is not at the newest migration")
        return {"status": "ready"}

    return app
