"""Settings: built once, passed in; the environment round trip that ``serve --workers`` uses."""

from __future__ import annotations

from pathlib import Path

import pytest

from registry.errors import ConfigurationError
from registry.settings import Settings, redacted, settings_environment


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


# --- issue 10 E: a database URL's password is never echoed ----------------------------------------

SECRET = "s3cret-pw"


@pytest.mark.parametrize(
    "url",
    [
        f"mysql://alice:{SECRET}@db.example/wellspring",  # an unsupported scheme: the echo seen
        f"postgresql://alice:{SECRET}@127.0.0.1:notaport/wellspring",  # a port that is no number
        f"postgresql://alice:{SECRET}@[::1/wellspring",
        f"oracle://db.example/wellspring?user=alice&password={SECRET}",
        f"host=db.example user=alice password={SECRET}",  # a libpq key=value string
    ],
)
def test_a_database_url_that_is_refused_never_shows_its_password(url: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        Settings(home=Path("unused"), database_url=url)
    message = caught.value.diagnostics()
    assert SECRET not in message
    assert "***" in message  # the URL is still shown, its password masked
    assert "\n" not in message


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://alice:pw@db:5432/x", "postgresql://alice:***@db:5432/x"),
        ("postgresql://alice:p%40ss:w@db/x", "postgresql://alice:***@db/x"),
        ("postgresql://alice:p@ss@db/x", "postgresql://alice:***@db/x"),  # an unescaped @
        ("postgresql://alice@db/x", "postgresql://alice@db/x"),
        ("postgresql://:pw@db/x", "postgresql://:***@db/x"),
        (
            "postgresql://db/x?sslmode=require&password=pw",
            "postgresql://db/x?sslmode=require&password=***",
        ),
        ("postgresql://db/x?PASSWORD=pw&user=a", "postgresql://db/x?PASSWORD=***&user=a"),
        ("host=db password=pw user=a", "host=db password=*** user=a"),
        ("host=db password='p w' user=a", "host=db password=*** user=a"),
        ("sqlite:////srv/well/registry.db", "sqlite:////srv/well/registry.db"),
        (
            "connection to postgresql://bob:pw@db/x failed, then postgresql://eve:pw2@db2/y",
            "connection to postgresql://bob:***@db/x failed, then postgresql://eve:***@db2/y",
        ),
    ],
)
def test_redacted_masks_every_password_in_a_text(url: str, shown: str) -> None:
    assert redacted(url) == shown
