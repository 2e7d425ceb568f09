"""The FastAPI application factory."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import anyio.to_thread
import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.telemetry import TelemetryConfig
from sqlalchemy import text
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from app.admission import Admission, AdmissionControl
from app.apidocs import install_docs
from app.auth.routes import router as auth_router
from app.blob_db import close_blob_store, make_blob_store
from app.certificates.routes import router as certificates_router
from app.channels.routes import router as channels_router
from app.clearances.routes import router as clearances_router
from app.directory.routes import router as directory_router
from app.errors import PROBLEM_BASE, PROBLEM_MEDIA_TYPE, CadenaError, Unavailable
from app.events.routes import router as events_router
from app.fairshare import FairShare
from app.ledger import (
    Checkpointer,
    HotRoutes,
    LedgerKeyError,
    RefusalSummaries,
    SummaryWriter,
    as_included,
    load_note_signer,
    make_engine,
    make_session_factory,
    wal_flush_of,
)
from app.ledger_api.routes import read_public_checkpoint
from app.ledger_api.routes import router as ledger_router
from app.liaisons.routes import router as liaisons_router
from app.limits import BodySizeLimit
from app.migrate import is_current
from app.openapi import document_problems
from app.ops import OpsListener
from app.packets.routes import blob_router
from app.packets.routes import router as packets_router
from app.request_log import RequestLog
from app.settings import Settings, get_settings
from app.states.routes import router as states_router
from app.witnesses.routes import router as witnesses_router
from app.witnesses.witnessing import Witnessing
from ledger import TreeCache

if TYPE_CHECKING:
    from app.metrics import MetricsServer

log = structlog.get_logger()
_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
HOT_ROUTES = ("packet.submit", "packet.list", "packet.retrieve")
"""Found by method and path before the router walks its routes (app.ledger.lean.HotRoutes)."""


def _problem(status: int, code: str, title: str, detail: str, **ext: Any) -> JSONResponse:
    body = {"type": PROBLEM_BASE + code, "title": title, "status": status, "detail": detail}
    body.update(ext)
    return JSONResponse(body, status_code=status, media_type=PROBLEM_MEDIA_TYPE)


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(CadenaError)
    async def domain_error(request: Request, exc: CadenaError) -> JSONResponse:
        return JSONResponse(exc.problem(instance=request.url.path), status_code=exc.status,
                            media_type=PROBLEM_MEDIA_TYPE)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [{"loc": [str(p) for p in e.get("loc", ())], "msg": str(e.get("msg", ""))}
                  for e in exc.errors()]
        return _problem(422, "invalid-request", "Invalid request", "the request is malformed",
                        errors=errors)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        response = _problem(exc.status_code, f"http-{exc.status_code}", str(exc.detail),
                            str(exc.detail))
        # Headers the error carries belong to the answer (405 must name Allow).
        response.headers.update(exc.headers or {})
        if exc.status_code == 405:
            response.headers["Allow"] = _allowed_methods(request)
        return response


def _allowed_methods(request: Request) -> str:
    """Every method some route of the request's path takes (RFC 9110 §10.2.1 Allow).

    Starlette's 405 names only the first route that matched the path, but the
    service declares one route per method (GET and POST of ``/v1/states``).
    Each method is tried against every route, through the routes' public
    ``matches`` (FastAPI nests included routers, so their routes are not a flat list).
    """
    allowed = [method for method in _METHODS
               if any(route.matches({**request.scope, "method": method})[0] == Match.FULL
                      for route in request.app.router.routes)]
    return ", ".join(allowed)


def _ops_listener(app: FastAPI, settings: Settings) -> OpsListener | None:
    """Start the operations port if one is set (app/ops.py)."""
    if settings.ops_port is None:
        return None
    state = app.state

    def checkpoint() -> str | None:
        cached: tuple[str, float] | None = getattr(state, "public_checkpoint", None)
        return cached[0] if cached is not None else None

    def key() -> str | None:
        verifier: str | None = state.ledger_verifier_key
        return verifier + "\n" if verifier is not None else None

    def refresh() -> None:
        try:
            read_public_checkpoint(state)
        except Unavailable:  # none signed yet
            pass

    ops = OpsListener(settings.ops_host, settings.ops_port, checkpoint=checkpoint, key=key,
                      refresh=refresh, interval=settings.checkpoint_interval)
    try:
        refresh()
    except Exception as exc:  # the database may be down at start: the refresher retries
        log.warning("ops: first checkpoint read failed", error=type(exc).__name__)
    ops.start()
    return ops


def _metrics_server(app: FastAPI, settings: Settings) -> MetricsServer | None:
    """Answer scrapes in this process if a metrics port is set and no supervisor does."""
    if settings.metrics_port is None:
        return None
    from app.metrics import serve_in_process

    return serve_in_process(app.state.engine, settings.metrics_host, settings.metrics_port)


def _lifespan(settings: Settings) -> Callable[[FastAPI], Any]:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        checkpointer = None
        try:
            if not settings.ledger_origin:  # serve has said what to do (app/cli.py)
                raise LedgerKeyError("no ledger origin recorded")
            signer = load_note_signer(settings.resolved_ledger_key_path(), settings.ledger_origin)
        except LedgerKeyError as exc:
            log.warning("no ledger key: checkpoints are not signed until bootstrap",
                        reason=str(exc))
        else:
            app.state.ledger_verifier_key = signer.verifier_key()
            checkpointer = Checkpointer(app.state.sessions, signer, settings.ledger_origin,
                                        settings.checkpoint_interval)
            checkpointer.start()
        witnessing = Witnessing(app.state.sessions, settings.checkpoint_interval)
        witnessing.start()
        app.state.witnessing = witnessing
        limiter = anyio.to_thread.current_default_thread_limiter()
        limiter.total_tokens = settings.resolved_request_threads()
        summary_writer = SummaryWriter(app.state.sessions, app.state.refusal_summaries)
        summary_writer.start()
        ops = _ops_listener(app, settings)
        metrics = _metrics_server(app, settings)
        # Everything made at start-up (modules, the ORM's and pydantic's schemas:
        # ~150,000 objects) lives as long as the process. Frozen out of the
        # collector, a full collection no longer walks them all: it had cost
        # ~40-100 ms, a stall of every request in flight.
        gc.freeze()
        yield
        if metrics is not None:
            metrics.stop()
        if ops is not None:
            ops.stop()
        summary_writer.stop()
        witnessing.stop()
        if checkpointer is not None:
            checkpointer.stop()
        app.state.engine.dispose()
        close_blob_store(app.state.blob_store)

    return lifespan


# FastAPI's own OpenTelemetry spans, metrics and logs carry every request's path
# (packet ids), query and status to whatever provider the process has, and
# ``FASTAPI_OTEL_AUTO_CONFIGURE=true`` in an operator's environment would have it
# set up an exporter: none of it leaves a Cadena server (docs/operations.md). Its
# metrics are Prometheus' (app/metrics.py), on their own port.
NO_TELEMETRY: TelemetryConfig = {"tracing": False, "metrics": False, "logs": False,
                                 "operation_spans": False, "auto_configure": False}


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the Cadena service for ``settings`` (default: from the environment)."""
    settings = settings or get_settings()
    url = settings.resolved_database_url()
    engine = make_engine(url, shared_flush=True, keep_prepared=True)
    app = FastAPI(title="Cadena", version="0.1.0", lifespan=_lifespan(settings),
                  docs_url=None, redoc_url=None,  # app/apidocs.py: served from our own assets
                  telemetry=NO_TELEMETRY,
                  description="Secure case-information exchange with a verifiable audit ledger")
    app.state.settings = settings
    app.state.engine = engine
    app.state.blob_store = make_blob_store(settings)
    cache = TreeCache(settings.ledger_cache_mb * 1024 * 1024) if settings.ledger_cache_mb else None
    app.state.sessions = make_session_factory(engine, tree_cache=cache,
                                              group_commit=settings.group_commit,
                                              timing_dir=settings.kernel_timing_dir)
    app.state.ledger_verifier_key = None
    app.state.admission = Admission(settings)
    app.state.fair_share = FairShare(settings.resolved_request_threads())
    app.state.refusal_summaries = RefusalSummaries(
        interval=settings.refusal_summary_seconds,
        logged_per_interval=settings.refusals_logged_per_interval,
        liaison_logged_per_interval=settings.refusals_logged_per_liaison)
    _install_error_handlers(app)
    app.add_middleware(AdmissionControl, admission=app.state.admission,
                       summaries=app.state.refusal_summaries, share=app.state.fair_share)
    app.add_middleware(RequestLog)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_json_bytes)
    if settings.metrics_port is not None:  # outermost: admission's refusals are counted too
        from app.metrics import RequestMetrics

        app.add_middleware(RequestMetrics)
    document_problems(app)
    install_docs(app)
    @app.get("/healthz", tags=["operations"])
    async def healthz() -> dict[str, str]:
        """The process is alive (on the event loop: it answers however busy the threads are)."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["operations"])
    def readyz() -> dict[str, str]:
        """The database is reachable and at the newest migration."""
        try:
            with engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            current = is_current(engine)
        except Exception as exc:  # any driver error means "not ready"
            raise Unavailable("the database is unreachable") from exc
        if not current:
            raise Unavailable("the database is not at the newest migration")
        flush = wal_flush_of(engine)
        if flush is not None and flush.broken:
            raise Unavailable("the database's log could not be flushed to disk; restart the "
                              "server")
        return {"status": "ready"}

    # Matched in this order, route by route (FastAPI 0.163 walks every included
    # router's routes with their regexes): the hot routes come first. No two
    # routes match the same method and path (tests/app/test_lean_path.py), so
    # the order changes nothing but the cost of finding a route.
    for router in (packets_router, blob_router, auth_router, states_router, liaisons_router,
                   clearances_router, channels_router, ledger_router, witnesses_router,
                   events_router, certificates_router, directory_router):
        app.include_router(router)
    app.router.middleware_stack = HotRoutes(
        app.router, [r for r in as_included(app.router.routes) if r.name in HOT_ROUTES])
    return app
