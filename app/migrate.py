"""Run Alembic migrations programmatically (serve, migrate, tests); check the schema's revision.

Alembic is imported only where migrations run: the serving process checks
its database's revision (``/readyz``) with one plain query against
:data:`SCHEMA_HEAD`, which a test holds equal to Alembic's head.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"
SCHEMA_HEAD = "0013_blob_chunks"
"""The newest migration's revision id (bump it with every new migration)."""


def alembic_config(database_url: str) -> Config:
    """An Alembic config for ``database_url`` that works from any working directory."""
    from alembic.config import Config

    # stdout as it is now: Config's default is the sys.stdout of alembic's first import,
    # which may be a stream closed since (a test runner's capture).
    cfg = Config(stdout=sys.stdout)
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("path_separator", "os")
    cfg.attributes["database_url"] = database_url
    return cfg


def upgrade_to_head(database_url: str) -> None:
    """Apply every migration not yet applied."""
    from alembic import command

    command.upgrade(alembic_config(database_url), "head")


def is_current(engine: Engine) -> bool:
    """Whether the database is at the newest migration (for /readyz)."""
    with engine.connect() as conn:
        try:
            current = conn.execute(text("SELECT version_num FROM alembic_version")).scalars()
            return set(current) == {SCHEMA_HEAD}
        except DBAPIError:  # no alembic_version table: never migrated
            return False
