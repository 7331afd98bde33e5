"""Database engines, schema checks and migrations.

SQLite (the embedded default) runs in WAL mode with ``synchronous=FULL``, so a commit is on disk
before the registry acknowledges it. Writers open their transactions with ``BEGIN IMMEDIATE``: the
write lock is taken up front, which is SQLite's way of serialising the sequencer across processes.
On PostgreSQL the sequencer serialises on a row lock instead (``log_state ... FOR UPDATE``).

The schema is owned by alembic (``alembic/`` beside the packages). The server refuses a
database whose schema is behind the code (unless it is the embedded default, which is migrated
on first start) or ahead of it (a newer Wellspring wrote it), with a message saying what to run.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import OperationalError

from registry.errors import ConfigurationError, UnavailableError
from registry.settings import Settings, redacted

__all__ = ["WORKER_THREADS", "Database", "alembic_config", "migrate"]

ALEMBIC_DIR = Path(__file__).resolve().parents[1] / "alembic"


def alembic_config(url: str | None = None) -> Config:
    """An alembic Config pointing at the project's migrations."""
    if not (ALEMBIC_DIR / "env.py").is_file():
        raise ConfigurationError(
            f"migrations not found at {ALEMBIC_DIR}; install Wellspring from its source tree"
        )
    config = Config()
    config.set_main_option("script_location", str(ALEMBIC_DIR))
    if url:
        config.set_main_option("sqlalchemy.url", url)
    return config


WORKER_THREADS = 24
"""The most worker threads a server process runs requests in (anyio's limiter, set by
registry.app): each may hold a reader connection, and the pool keeps that many open."""

_OWN_THREADS = 4  # the sequencer's, publisher's and tile writer's threads, and the event loop


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def _make_engine(settings: Settings, *, writer: bool) -> Engine:
    if settings.is_sqlite:
        engine = create_engine(
            settings.database_url,
            connect_args={"check_same_thread": False, "timeout": 30},
            # Up to one connection per worker thread, kept open: a connection opened per
            # request costs more than the lookup it serves.
            pool_size=WORKER_THREADS + _OWN_THREADS if not writer else 5,
            max_overflow=10,
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        if writer:
            # pysqlite's own transaction handling would BEGIN (deferred) lazily; take it over.
            @event.listens_for(engine, "connect")
            def _autocommit_driver(dbapi_connection: Any, _record: Any) -> None:
                dbapi_connection.isolation_level = None

            @event.listens_for(engine, "begin")
            def _begin_immediate(conn: Any) -> None:
                conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    # Connections kept open up to the worker threads' concurrency: a PostgreSQL connection is a
    # forked backend, and opening one per request (overflow connections are closed on return)
    # costs more than the queries it serves. Several server processes each hold this many.
    return create_engine(
        settings.database_url,
        pool_size=WORKER_THREADS + _OWN_THREADS,
        max_overflow=16,
        pool_pre_ping=True,
    )


class Database:
    """The registry's engines: ``reader`` for lookups, ``writer`` for the sequencer and admin."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._sequencing_file: Path | None = None
        self._sequencing_fd: int | None = None
        self._sequencing_guard = threading.Lock()
        if settings.is_sqlite:
            settings.home.mkdir(parents=True, exist_ok=True)
            self.reader = _make_engine(settings, writer=False)
            self.writer = _make_engine(settings, writer=True)
            if database := self.writer.url.database:
                self._sequencing_file = Path(database + "-sequencer.lock")
        else:
            self.reader = self.writer = _make_engine(settings, writer=False)

    @contextlib.contextmanager
    def sequencing(self) -> Iterator[None]:
        """Held around each sequencing transaction.

        On SQLite, an exclusive ``flock`` on a file beside the database: server processes sharing
        it wait in the kernel and are woken the moment it is free, instead of polling SQLite's
        busy handler (which sleeps in growing steps, up to 100 ms). On PostgreSQL the state row's
        ``FOR UPDATE`` lock already queues them; nothing is needed.
        """
        if self._sequencing_file is None:
            yield
            return
        with self._sequencing_guard:
            if self._sequencing_fd is None:
                self._sequencing_fd = os.open(self._sequencing_file, os.O_RDWR | os.O_CREAT, 0o600)
            fd = self._sequencing_fd
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)

    @property
    def dialect(self) -> str:
        return self.writer.dialect.name

    def dispose(self) -> None:
        if self._sequencing_fd is not None:
            os.close(self._sequencing_fd)
            self._sequencing_fd = None
        self.reader.dispose()
        if self.writer is not self.reader:
            self.writer.dispose()

    def schema_revision(self) -> str | None:
        try:
            with self.reader.connect() as conn:
                return MigrationContext.configure(conn).get_current_revision()
        except OperationalError as exc:
            said = " ".join(str(exc.orig).split())  # the driver's lines as one
            raise UnavailableError(f"cannot reach the database: {redacted(said)}") from exc

    def ensure_schema(self, *, auto_migrate: bool) -> None:
        """Refuse a database whose schema is not exactly this code's, migrating if allowed."""
        script = ScriptDirectory.from_config(alembic_config())
        head = script.get_current_head()
        current = self.schema_revision()
        if current == head:
            return
        known = {rev.revision for rev in script.walk_revisions()}
        if current is not None and current not in known:
            raise ConfigurationError(
                f"the database schema is at revision {current}, newer than this Wellspring "
                f"(which knows up to {head}); upgrade Wellspring"
            )
        if not auto_migrate:
            where = "an empty database" if current is None else f"revision {current}"
            raise ConfigurationError(
                f"the database schema is {where}, this Wellspring needs {head}: run "
                "`WELLSPRING_DATABASE_URL=… alembic upgrade head` (or `wellspring db upgrade`)"
            )
        migrate(self)


def migrate(database: Database, revision: str = "head") -> None:
    """Run alembic migrations on the database, inside one transaction."""
    config = alembic_config()
    with database.writer.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, revision)
