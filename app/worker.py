"""The application factory of one ``cadena-server serve`` worker process.

Kept apart from :mod:`app.cli` so that a serving process imports neither
typer nor rich: ``serve`` hands its process over to uvicorn (``exec``) with
this factory once the migrations ran.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fastapi import FastAPI


def worker_app() -> FastAPI:
    """The application of one ``serve`` worker process, with logging configured in it.

    With ``--workers N > 1`` uvicorn starts each worker with multiprocessing's
    *spawn*: a fresh interpreter that never ran ``serve``'s set-up, so without
    this every worker logged at debug level in console format, ignoring
    ``CADENA_LOG_LEVEL`` and ``CADENA_LOG_JSON`` (and paying for it per request).
    """
    from app.datadir import restrict_umask
    from app.logging import configure_logging
    from app.main import create_app
    from app.settings import get_settings

    restrict_umask()  # also when uvicorn runs this factory without cadena-server serve
    settings = get_settings()
    configure_logging(json=settings.log_json, level=settings.log_level)
    # A request that appended to the ledger holds the head's lock, which every
    # appender in every process waits for, until it commits; each answer from
    # the database then has to win the GIL back from the other request threads.
    # Python's default of 5 ms between forced switches made that wait, not the
    # database, the larger part of the lock's time under load.
    sys.setswitchinterval(settings.gil_switch_interval_ms / 1000)
    return create_app(settings)
