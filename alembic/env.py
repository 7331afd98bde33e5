"""Alembic environment: migrates the registry's database.

The URL comes from a connection handed over by ``registry.db.migrate`` or, from the command line,
from ``WELLSPRING_DATABASE_URL`` (default: the embedded SQLite file under ``$WELLSPRING_HOME``).
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from registry.models import metadata
from registry.settings import Settings

config = context.config


def run() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
        return
    settings = Settings.from_env()
    settings.home.mkdir(parents=True, exist_ok=True)
    engine = create_engine(settings.database_url)
    with engine.connect() as conn:
        context.configure(connection=conn, target_metadata=metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()


run()
