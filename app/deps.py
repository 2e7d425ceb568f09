"""Request dependencies: the unit of work and the authenticated caller.

``get_session`` is the one place that commits: once, after the route returned
and before the response is sent (``scope="function"``), so a 2xx answer means
the action and its ledger entry are durable. A refusal (``AccessDenied``)
rolls everything back and then records the refusal alone, in its own
transaction; any other error rolls back and records nothing.
"""

from __future__ import annotations

import functools
import inspect
import sqlite3
import sys
from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any

import anyio
import anyio.to_thread
import structlog
from fastapi import Depends, Request
from fastapi.routing import APIRoute
from sqlalchemy.exc import DataError, DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import Session, sessionmaker

from app.audit import AccessDenied, record_refusal
from app.errors import CadenaError, Unavailable
from app.settings import Settings

log = structlog.get_logger()


class UnstorableValue(CadenaError):
    """The database refused a value the schemas let through (NUL in text on PostgreSQL)."""

    status, code, title = 422, "invalid-request", "Invalid request"


def _sessions(request: Request) -> sessionmaker[Session]:
    factory: sessionmaker[Session] = request.app.state.sessions
    return factory


# Driver errors are listed too: ``ledger.sqlstore`` runs its hot queries on the
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


def _rollback(session: Session) -> None:
    """Roll back; on a connection already lost the database rolled back by itself."""
    try:
        session.rollback()
    except _database_down():
        log.warning("rollback failed: the database connection is lost")


def _record_refusal(factory: sessionmaker[Session], exc: AccessDenied) -> None:
    session = factory()
    try:
        appended = record_refusal(session, exc)
        session.commit()
    except Exception:
        _rollback(session)
        log.error("refusal could not be recorded", action=exc.entry.action)
        raise
    finally:
        session.close()
    exc.extensions["ledger_index"] = appended.index
    exc.extensions["ledger_leaf_hash"] = appended.leaf_hash.hex()


def _settle(factory: sessionmaker[Session], session: Session, error: Exception | None) -> None:
    """End the request's transaction: commit, or roll back (and record a refusal)."""
    try:
        if error is not None:
            raise error
        session.commit()
    except AccessDenied as exc:
        _rollback(session)
        try:
            _record_refusal(factory, exc)
        except _database_down() as down:  # a refusal is never served unrecorded
            raise Unavailable("the database is unavailable; nothing was changed") from down
        raise
    except DataError as exc:
        _rollback(session)
        raise UnstorableValue("a value in the request cannot be stored; nothing was changed") \
            from exc
    except _database_down() as exc:
        _rollback(session)
        raise Unavailable("the database is unavailable; nothing was changed") from exc
    except Exception:
        _rollback(session)
        raise
    finally:
        session.close()


def _abandon(session: Session) -> None:
    """Roll back and close after a cancellation or exit (nothing to map or record)."""
    try:
        _rollback(session)
    finally:
        session.close()


async def get_session(request: Request) -> AsyncIterator[Session]:
    """One transaction per request: commit on success, roll back on error.

    The session is made on the event loop (that touches no database: the
    connection is taken at first use, in the route's thread), and ended in a
    worker thread. That thread is not counted against the thread pool (its own
    limiter, as FastAPI does for the exit of sync dependencies): with every pool
    thread waiting for SQLite's one connection, the holder must still be able
    to commit and give it back. Shielded: a cancelled request still ends its
    transaction.
    """
    factory = _sessions(request)
    session = factory()
    error: Exception | None = None
    try:
        yield session
    except Exception as exc:
        error = exc
    except BaseException:
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(_abandon, session, limiter=anyio.CapacityLimiter(1))
        raise
    if error is None and not session.in_transaction():  # committed by a CommittingRoute
        session.close()  # no transaction: touches no database
        return
    with anyio.CancelScope(shield=True):
        await anyio.to_thread.run_sync(_settle, factory, session, error,
                                       limiter=anyio.CapacityLimiter(1))
    if error is not None:  # not reached: _settle raised it, or the error it maps to
        raise error


def _committing(endpoint: Callable[..., Any]) -> Callable[..., Any]:
    """``endpoint``, committing its request's session in its own thread once it returned.

    Unchanged otherwise: same signature (FastAPI reads it through
    ``__wrapped__``), and an endpoint that raises leaves its transaction to
    :func:`get_session` (rollback, refusal recorded).
    """

    @functools.wraps(endpoint)
    def run(*args: Any, **kwargs: Any) -> Any:
        result = endpoint(*args, **kwargs)
        for value in kwargs.values():
            if isinstance(value, Session) and value.in_transaction():
                value.commit()  # a failure goes to get_session as the endpoint's error
        return result

    return run


class CommittingRoute(APIRoute):
    """A route whose synchronous endpoint commits in its own thread, before the response.

    The ledger append holds the ledger head's lock (on PostgreSQL, for every
    process) until the transaction ends. Committed by :func:`get_session`'s
    exit, it would wait for the endpoint's return to the event loop and a
    hop to another thread; committed here it ends as soon as the action is
    done. A 2xx still means committed: the response is built afterwards.
    """

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        """Wrap a synchronous ``endpoint`` (coroutines are left as they are)."""
        if not inspect.iscoroutinefunction(endpoint):
            endpoint = _committing(endpoint)
        super().__init__(path, endpoint, **kwargs)


async def get_settings_dep(request: Request) -> Settings:
    """The settings the application was built with."""
    settings: Settings = request.app.state.settings
    return settings


SessionDep = Annotated[Session, Depends(get_session, scope="function")]
SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
