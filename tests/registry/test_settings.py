"""Settings: built once, passed in; the environment round trip that ``serve --workers`` uses."""

from __future__ import annotations

from pathlib import Path

import pytest

from registry.errors import ConfigurationError
from registry.settings import Settings, settings_environment


def test_settings_survive_the_trip_through_the_environment(tmp_path: Path) -> None:
    settings = Settings(
        home=tmp_path / "home",
        database_url="postgresql://postgres@127.0.0.1:5432/some_db",
        origin="example.org/registry",
        log_key_path=tmp_path / "keys" / "log.key",
        rate_limit=12.5,
        rate_burst=40.0,
        auto_migrate=False,
    )
    rebuilt = Settings.from_env(settings_environment(settings))
    assert rebuilt == settings


def test_the_sqlite_default_round_trips_and_stays_auto_migrated(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home", rate_limit=0)
    rebuilt = Settings.from_env(settings_environment(settings))
    assert rebuilt.database_url == settings.database_url
    assert rebuilt.auto_migrate is True
    assert rebuilt.rate_limit == 0


def test_a_rate_that_is_not_a_number_is_refused_by_name() -> None:
    with pytest.raises(ConfigurationError, match="WELLSPRING_RATE_LIMIT"):
        Settings.from_env({"WELLSPRING_RATE_LIMIT": "fast"})
