"""The route class and the dependency that give an endpoint its unit of work, in one thread.

A request is served by one worker thread holding at most one database
connection, and never waits for a second thread while it holds it (a burst
of ~50 requests once froze the server: each held a connection in the thread
that authenticated it while waiting for another thread for its endpoint).
:class:`UnitOfWorkRoute` runs, in the endpoint's thread: the deferred
dependencies (authentication: :class:`Deferred`), the endpoint, and the end of
the transaction (:func:`settle`): commit before the response is built (a 2xx
means durable) through ``UnitOfWork.commit``, the one commit path, or roll
back; a refusal (``AccessDenied``) is then recorded, on the same unit of work,
in a transaction of its own (:func:`_record_refusal`, or counted into the
ledger's refusal summary, ``app.ledger.summaries``). Coroutine endpoints
(uploads, which stream on the event loop) resolve their deferred dependencies
in one thread that ends its transaction before the endpoint runs, and are
settled after it, through the same :func:`settle`, in a thread of their own.
"""

from __future__ import annotations

import functools
import inspect
import sqlite3
import sys
from collections.abc import Callable
from typing import Annotated, Any, Protocol, runtime_checkable

import anyio
import anyio.to_thread
import structlog
from fastapi import Depends, Request, params
from fastapi import routing as fastapi_routing
from fastapi.routing import APIRoute
from sqlalchemy.exc import DataError, DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import Session, sessionmaker
from starlette.types import Receive, Scope, Send

from app.errors import CadenaError, RuleRefused, Unavailable
from app.fairshare import on_a_fair_thread
from app.ledger.lean import lean_app, lean_for, plan_of
from app.ledger.recording import AccessDenied, Unauthenticated, draft, record, record_refusal
from app.ledger.unit_of_work import (
    GroupCommitFailed,
    GroupCommitter,
    RequestContext,
    UnitOfWork,
    as_unit_of_work,
)
from app.ledger.walflush import WalFlushFailed
from ledger import CorruptLedgerError, EntryDraft

log = structlog.get_logger()


class LedgerDamaged(CadenaError):
    """The ledger's rows contradict each other: no access can be recorded, so none is served."""

    status, code, title = 503, "ledger-damaged", "Ledger unavailable"


class UnstorableValue(CadenaError):
    """The database refused a value the schemas let through (NUL in text on PostgreSQL)."""

    status, code, title = 422, "invalid-request", "Invalid request"


def _sessions(request: Request) -> sessionmaker[UnitOfWork]:
    factory: sessionmaker[UnitOfWork] = request.app.state.sessions
    return factory


# Driver errors are listed too: ``ledger.sql.store`` runs its hot queries on the
# DB-API cursor, where SQLAlchemy does not wrap what the driver raises. psycopg's
# are added once SQLAlchemy has loaded it (a SQLite server never imports it).
_DATABASE_DOWN: tuple[type[BaseException], ...] = (
    OperationalError, DBAPIError, PoolTimeout, sqlite3.OperationalError)


def _database_down() -> tuple[type[BaseException], ...]:
    """The errors that mean "the database is down" (evaluated only as an exception passes)."""
    psycopg = sys.modules.get("psycopg")
    if psycopg is None:
        return _DATABASE_DOWN
    return (*_DATABASE_DOWN, psycopg.OperationalError, psycopg.InterfaceError)


def _rollback(session: UnitOfWork) -> None:
    """Roll back; on a connection already lost the database rolled back by itself."""
    try:
        session.rollback()
    except _database_down():
        log.warning("rollback failed: the database connection is lost")


def _counted(session: UnitOfWork, exc: AccessDenied) -> bool:
    """Count ``exc`` into the refusal summary instead of logging it alone (app.ledger.summaries)."""
    context = session.request
    if context is None or context.summaries is None:
        return False
    summaries, entry = context.summaries, exc.entry
    liaison = entry.actor.liaison if entry.actor is not None else None
    if exc.status == 429:
        subject = ("liaison", liaison) if liaison else ("address", context.address)
    elif exc.status == 401 and not summaries.may_log(context.address):
        subject = ("address", context.address)
    elif exc.status != 401 and liaison and not summaries.may_log_liaison(liaison):
        subject = ("liaison", liaison)
    else:
        return False
    exc.extensions["ledger_summary"] = summaries.count(
        subject_type=subject[0], subject_id=str(subject[1]), reason=exc.code,
        action=entry.action)
    return True


def _record_refusal(session: UnitOfWork, exc: AccessDenied) -> None:
    """Record the refusal on ``session`` (its request's transaction rolled back) and commit."""
    if _counted(session, exc):
        return
    try:
        appended = record_refusal(session, exc)
        session.commit()
    except Exception:
        _rollback(session)
        log.error("refusal could not be recorded", action=exc.entry.action)
        raise
    exc.extensions["ledger_index"] = appended.index
    exc.extensions["ledger_leaf_hash"] = appended.leaf_hash.hex()


def record_refusal_entry(session: Session, entry: EntryDraft) -> dict[str, Any]:
    """Log a refusal answered without an error (a decoy) in the request's transaction.

    The same budget as any unauthenticated refusal (:func:`_counted`): past
    it, the refusal is counted into the summary. Returns the problem
    extension that names where the refusal is recorded.
    """
    refusal = Unauthenticated("", entry)
    if _counted(as_unit_of_work(session), refusal):
        return {"ledger_summary": refusal.extensions["ledger_summary"]}
    appended = record(session, entry)
    return {"ledger_index": appended.index}


def _as_refusal(session: UnitOfWork, error: Exception) -> AccessDenied | None:
    """``error`` as a refusal to record: an AccessDenied, or a rule the caller broke."""
    if isinstance(error, AccessDenied):
        return error
    caller = session.caller
    if isinstance(error, RuleRefused) and caller is not None:
        actor, action = caller
        subject = error.subject or {"type": "route", "id": action}
        return AccessDenied(error.detail, draft(actor, action, subject, reason=error.code))
    return None


def _fail(session: UnitOfWork, error: Exception) -> Exception:
    """Roll back after ``error`` (recording a refusal); the error to answer with."""
    _rollback(session)
    refusal = _as_refusal(session, error)
    if refusal is not None:
        try:
            _record_refusal(session, refusal)
        except _database_down() as down:  # a refusal is never served unrecorded
            mapped: Exception = Unavailable("the database is unavailable; nothing was changed")
            mapped.__cause__ = down
            return mapped
        if refusal is not error and isinstance(error, CadenaError):
            error.extensions.update({k: v for k, v in refusal.extensions.items()
                                     if k.startswith("ledger") or k == "reason"})
        return error
    if isinstance(error, CorruptLedgerError):
        log.error("the ledger's stored rows contradict each other; run cadena-server ledger "
                  "verify", error=str(error))
        return LedgerDamaged("the ledger cannot record this request; nothing was changed "
                             "(the operator has been told)")
    if isinstance(error, WalFlushFailed):
        log.error("the database's write-ahead log could not be flushed; restart the server",
                  error=str(error.__cause__ or error))
        return Unavailable("the database could not make this request durable; it may or may "
                           "not have been kept")
    if isinstance(error, DataError):
        return UnstorableValue("a value in the request cannot be stored; nothing was changed")
    if isinstance(error, _database_down()):
        return Unavailable("the database is unavailable; nothing was changed")
    return error


def settle(session: UnitOfWork, error: Exception | None) -> None:
    """End the request's transaction: commit, or roll back (and record a refusal); close.

    Raises the error to answer with, if any. Runs in the thread that used the session.
    """
    session.settled = True
    try:
        if error is None:
            try:
                session.commit()
                return
            except Exception as exc:
                error = exc
        mapped = _fail(session, error)
        if mapped is error:
            raise error
        raise mapped from (mapped.__cause__ or error)
    finally:
        session.close()


def _abandon(session: UnitOfWork) -> None:
    """Roll back and close after a cancellation or exit (nothing to map or record)."""
    try:
        _rollback(session)
    finally:
        session.close()


def _new_session(request: Request) -> UnitOfWork:
    """A unit of work for ``request`` (touches no database: the connection is taken at
    first use)."""
    session = _sessions(request)()
    summaries = getattr(request.app.state, "refusal_summaries", None)
    client = request.client
    session.request = RequestContext(client.host if client else "unknown", summaries)
    return session


async def get_session(request: Request) -> UnitOfWork:
    """The request's session; :class:`UnitOfWorkRoute` ends its transaction.

    Made on the event loop (that touches no database: the connection is taken
    at first use, in the route's thread). A plain coroutine, not a generator:
    FastAPI enters a generator dependency into an exit stack and leaves it in a
    shielded scope, which cost more per request than the rest of dependency
    solving (docs/adr/0027). So the route's own wrapper settles the session
    (:func:`_in_one_thread`, :func:`_authenticated_first`); a session no
    endpoint ran with (a request refused while its parameters were read) took
    no connection and is simply dropped. Only a :class:`UnitOfWorkRoute` may
    hand one out: no other route would end its transaction.
    """
    if not isinstance(request.scope.get("route"), UnitOfWorkRoute):
        raise TypeError("a SessionDep needs a route of class UnitOfWorkRoute")
    return _new_session(request)


async def _settle_elsewhere(session: UnitOfWork, error: Exception | None) -> None:
    """Settle ``session`` from the event loop, in a worker thread not counted
    against the thread pool (its own limiter): with every pool thread waiting
    for a connection, the holder must still be able to give it back. Shielded:
    a cancelled request still ends its transaction."""
    if session.settled or (error is None and not session.in_transaction()):
        session.close()  # no transaction left: touches no database
        if error is not None:
            raise error
        return
    with anyio.CancelScope(shield=True):
        await anyio.to_thread.run_sync(settle, session, error, limiter=anyio.CapacityLimiter(1))


async def _abandon_elsewhere(session: UnitOfWork) -> None:
    with anyio.CancelScope(shield=True):
        await anyio.to_thread.run_sync(_abandon, session, limiter=anyio.CapacityLimiter(1))


@runtime_checkable
class Deferred(Protocol):
    """A dependency resolved in the request's thread, on its session (authentication)."""

    def resolve(self, session: Session) -> Any:
        """The dependency's value, read through ``session``."""


# ``isinstance`` against a runtime-checkable protocol inspects the value's
# attributes on every call (a few per cent of a submit's CPU, ADR 0026): the
# answer is remembered by type, which is what the structural check depends on.
_DEFERRED_TYPES: dict[type, bool] = {}


def is_deferred(value: object) -> bool:
    """Whether ``value`` is a :class:`Deferred` (its type's answer, worked out once)."""
    kind = type(value)
    known = _DEFERRED_TYPES.get(kind)
    if known is None:
        known = _DEFERRED_TYPES[kind] = isinstance(value, Deferred)
    return known


def _resolve_deferred(session: UnitOfWork | None, kwargs: dict[str, Any]) -> None:
    for name, value in list(kwargs.items()):
        if is_deferred(value):
            if session is None:
                raise TypeError("a route with a deferred dependency needs a SessionDep")
            kwargs[name] = value.resolve(session)


def _session_of(kwargs: dict[str, Any]) -> UnitOfWork | None:
    return next((v for v in kwargs.values() if isinstance(v, UnitOfWork)), None)


def _in_one_thread(endpoint: Callable[..., Any]) -> Callable[..., Any]:
    """``endpoint`` with its authentication and its commit in its own (one) thread."""

    def serve(session: UnitOfWork | None, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        try:
            _resolve_deferred(session, kwargs)
            result = endpoint(*args, **kwargs)
        except Exception as exc:
            if session is None:
                raise
            settle(session, exc)
            raise  # not reached: settle raised
        if session is not None:
            settle(session, None)
        return result

    def grouped(session: UnitOfWork, committer: GroupCommitter, args: tuple[Any, ...],
                kwargs: dict[str, Any]) -> Any:
        try:  # a savepoint of the group's transaction, answered after its COMMIT
            with committer.member(session):
                return serve(session, args, kwargs)
        except GroupCommitFailed as exc:
            log.error("a group commit failed: its requests are answered 503",
                      error=type(exc.__cause__ or exc).__name__)
            raise Unavailable("the database could not commit this request; nothing was "
                              "changed") from exc

    @functools.wraps(endpoint)
    def run(*args: Any, **kwargs: Any) -> Any:
        session = _session_of(kwargs)
        if session is None:
            return serve(session, args, kwargs)
        try:
            if session.committer is None:
                return serve(session, args, kwargs)
            return grouped(session, session.committer, args, kwargs)
        except Exception as exc:
            if not session.settled:  # failed before the endpoint (joining a group)
                settle(session, exc)
            raise

    return run


def _on_a_request_thread(run: Callable[..., Any]) -> Callable[..., Any]:
    """``run`` in a request thread, as a coroutine to FastAPI.

    FastAPI runs a synchronous endpoint in a thread and then checks the
    model it returned in another one; a coroutine's model is checked on the
    event loop: one thread hop per request, not two. The thread is taken by
    the caller's fair share of the process's threads (``app.fairshare``).
    """
    return on_a_fair_thread(run)


_REQUEST = "_cadena_request"
"""The parameter a synchronous endpoint's wrapper adds to get the request, if it has none."""


def _is_session_dep(annotation: Any) -> bool:
    return any(isinstance(m, params.Depends) and m.dependency is get_session
               for m in getattr(annotation, "__metadata__", ()))


def _session_given(run: Callable[..., Any], endpoint: Callable[..., Any]) -> Callable[..., Any]:
    """``run`` given its endpoint's :data:`SessionDep` by the route itself, in its thread.

    FastAPI solves each dependency with a walk of its own parameters (a few
    per cent of a request's CPU, issue 21); the session needs none of it. So
    the signature FastAPI reads (``__signature__``) leaves the session out and
    takes the request instead, and the session is made in the request's
    thread, once the parameters have been read (a request refused on them
    makes none). ``run`` is returned as it is when the endpoint takes no
    session, or its annotations cannot be read here.
    """
    try:
        typed = inspect.signature(endpoint, eval_str=True)
    except NameError:
        return run
    names = [n for n, p in typed.parameters.items() if _is_session_dep(p.annotation)]
    if len(names) != 1:
        return run
    session_name = names[0]
    given = next((n for n, p in typed.parameters.items() if p.annotation is Request), None)
    raw = inspect.signature(endpoint)
    kept = [p for n, p in raw.parameters.items() if n != session_name]
    if given is None:
        kept.append(inspect.Parameter(_REQUEST, inspect.Parameter.KEYWORD_ONLY,
                                      annotation=Request))
    request_name = given or _REQUEST

    @functools.wraps(run)
    def with_session(*args: Any, **kwargs: Any) -> Any:
        request = kwargs[request_name] if given else kwargs.pop(_REQUEST)
        kwargs[session_name] = _new_session(request)
        return run(*args, **kwargs)

    with_session.__signature__ = raw.replace(parameters=kept)  # type: ignore[attr-defined]
    return with_session


def _no_session_in_dependencies(route: APIRoute) -> None:
    """Refuse a dependency that takes a :data:`SessionDep`: the route gives the session to
    its endpoint, not to FastAPI's solver, so a dependency would get another one."""
    todo = list(route.dependant.dependencies)
    while todo:
        dependant = todo.pop()
        if dependant.call is get_session:
            raise TypeError(f"{route.path}: a dependency takes a SessionDep; only the "
                            "endpoint may (the route gives it its session)")
        todo += dependant.dependencies


def _authenticated_first(endpoint: Callable[..., Any]) -> Callable[..., Any]:
    """A coroutine ``endpoint`` whose deferred dependencies are resolved in one thread first.

    That thread ends its transaction (a read) before the endpoint runs, so a
    long upload holds no connection and, on SQLite, no lock.
    """

    def resolve(session: UnitOfWork | None, kwargs: dict[str, Any]) -> None:
        try:
            _resolve_deferred(session, kwargs)
        except Exception as exc:
            if session is None:
                raise
            settle(session, exc)
        if session is not None:
            _rollback(session)

    @functools.wraps(endpoint)
    async def run(*args: Any, **kwargs: Any) -> Any:
        session = _session_of(kwargs)
        try:
            if any(is_deferred(v) for v in kwargs.values()):
                await anyio.to_thread.run_sync(resolve, session, kwargs)
            result = await endpoint(*args, **kwargs)
        except Exception as exc:
            if session is None:
                raise
            await _settle_elsewhere(session, exc)
            raise  # not reached: settling an error raises it
        except BaseException:
            if session is not None:
                await _abandon_elsewhere(session)
            raise
        if session is not None:
            await _settle_elsewhere(session, None)
        return result

    return run


class UnitOfWorkRoute(APIRoute):
    """A route served in one thread: authentication, endpoint and commit (module docstring)."""

    lean: Callable[[Scope, Receive, Send], Any] | None = None
    """The route's lean ASGI application (app.ledger.lean), if its dependencies allow one
    (an inclusion of the route has its own: :meth:`get_route_handler`)."""
    endpoint_is_sync = False

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        """Wrap ``endpoint`` (FastAPI reads its signature through ``__wrapped__``)."""
        self.endpoint_is_sync = not inspect.iscoroutinefunction(endpoint)
        if not self.endpoint_is_sync:
            endpoint = _authenticated_first(endpoint)
            super().__init__(path, endpoint, **kwargs)
            return
        run_endpoint = _in_one_thread(endpoint)
        given = _session_given(run_endpoint, endpoint)
        hop = _on_a_request_thread(given)
        if given is not run_endpoint:
            hop.__signature__ = given.__signature__  # type: ignore[attr-defined]
        super().__init__(path, hop, **kwargs)
        if given is not run_endpoint:
            _no_session_in_dependencies(self)

    def get_route_handler(self) -> Callable[[Request], Any]:
        """FastAPI's handler, and the lean application (app.ledger.lean) of the route as
        FastAPI sees it here: the route itself, or the route as an inclusion makes it
        (its prefix, and any dependencies the inclusion adds), which is kept on that."""
        effective = _effective_route(self)
        if self.endpoint_is_sync:
            plan = plan_of(effective.dependant)
            effective.lean = lean_app(effective, plan) if plan is not None else None
        return super().get_route_handler()

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The lean application where it serves the request (``lean_for``); FastAPI's
        handling otherwise."""
        lean = lean_for(_scope_route(scope, self), scope)
        if lean is not None:
            await lean(scope, receive, send)
            return
        await super().handle(scope, receive, send)


# FastAPI 0.163 makes an included route's handler once per inclusion, on an
# object of its own (``_EffectiveRouteContext``: the route with the inclusion's
# prefix and dependencies), which it names while it makes the handler and puts
# in the request's scope once matched. Read through these two functions only;
# tests/app/test_lean_route.py fails if a FastAPI release moves them.
def _effective_route(route: UnitOfWorkRoute) -> Any:
    """The route FastAPI is making a handler for: ``route`` or one inclusion of it."""
    var = getattr(fastapi_routing, "_effective_route_context_var", None)
    context = var.get() if var is not None else None
    return context if getattr(context, "original_route", None) is route else route


def _scope_route(scope: Scope, route: UnitOfWorkRoute) -> Any:
    """The route a request matched: ``route`` or the inclusion of it it came through."""
    find = getattr(fastapi_routing, "_get_scope_effective_route_context", None)
    context = find(scope) if find is not None else None
    if getattr(context, "original_route", None) is route:
        return context
    return route


SessionDep = Annotated[UnitOfWork, Depends(get_session)]
