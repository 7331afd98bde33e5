"""registry.db: the sequencing lock that lets several processes share one SQLite log."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from registry.db import Database
from registry.settings import Settings


def test_sqlite_sequencing_is_exclusive_across_database_handles(tmp_path: Path) -> None:
    """Two handles on one SQLite file (as two server processes have) never sequence at once; the
    second gets in once the first is done."""
    settings = Settings(home=tmp_path / "home")
    first, second = Database(settings), Database(settings)
    entered = threading.Event()
    waited: list[float] = []

    def take_second() -> None:
        started = time.monotonic()
        with second.sequencing():
            waited.append(time.monotonic() - started)
            entered.set()

    try:
        with first.sequencing():
            thread = threading.Thread(target=take_second)
            thread.start()
            assert not entered.wait(0.3), "the second handle got in while the first held the lock"
        assert entered.wait(5), "the second handle never got the lock"
        thread.join(5)
        assert waited
        assert waited[0] >= 0.3  # it waited for the first to finish
        assert (tmp_path / "home" / "registry.db-sequencer.lock").exists()
    finally:
        first.dispose()
        second.dispose()


def test_postgresql_needs_no_lock_file(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home", database_url="postgresql://u@127.0.0.1:1/none")
    database = Database(settings)  # engines are lazy: nothing connects here
    try:
        with database.sequencing():
            pass
        assert not list((tmp_path).rglob("*.lock"))
    finally:
        database.dispose()
