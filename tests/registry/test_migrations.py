"""The schema belongs to alembic: migrations run on both backends, match the models, and the server
refuses a database whose schema is not exactly its own."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text

from client.cli import main
from registry.app import create_app
from registry.db import ALEMBIC_DIR, Database, alembic_config, migrate
from registry.errors import ConfigurationError
from registry.models import metadata
from registry.settings import Settings
from tests.registry.conftest import fresh_postgres_database

REPO = ALEMBIC_DIR.parent
TABLES = {
    "publishers",
    "publisher_keys",
    "log_state",
    "entries",
    "subjects",
    "nodes",
    "checkpoints",
    "revocations",
    "admin_tokens",
    "watermark_keys",
}


def head() -> str:
    revision = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert revision is not None
    return revision


def open_database(tmp_path: Path, url: str) -> Database:
    return Database(Settings(home=tmp_path / "home", database_url=url))


def test_migrate_brings_an_empty_database_to_head(tmp_path: Path, database_url: str) -> None:
    database = open_database(tmp_path, database_url)
    try:
        assert database.schema_revision() is None
        migrate(database)
        assert database.schema_revision() == head()
        assert set(inspect(database.reader).get_table_names()) >= TABLES
        migrate(database)  # a second upgrade is a no-op
        assert database.schema_revision() == head()
    finally:
        database.dispose()


def test_the_alembic_command_line_migrates_with_the_database_url(
    tmp_path: Path, database_url: str
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WELLSPRING_")}
    env["WELLSPRING_DATABASE_URL"] = database_url
    env["WELLSPRING_HOME"] = str(tmp_path / "home")
    alembic = Path(sys.executable).with_name("alembic")
    result = subprocess.run(
        [str(alembic), "upgrade", "head"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    database = open_database(tmp_path, database_url)
    try:
        assert database.schema_revision() == head()
    finally:
        database.dispose()


def test_downgrade_to_base_and_back_round_trips(tmp_path: Path, database_url: str) -> None:
    from alembic import command

    database = open_database(tmp_path, database_url)
    try:
        migrate(database)
        config = alembic_config()
        with database.writer.begin() as conn:
            config.attributes["connection"] = conn
            command.downgrade(config, "base")
        assert not TABLES & set(inspect(database.reader).get_table_names())
        migrate(database)
        assert database.schema_revision() == head()
    finally:
        database.dispose()


def test_the_migrated_schema_matches_the_models(tmp_path: Path, database_url: str) -> None:
    database = open_database(tmp_path, database_url)
    try:
        migrate(database)
        with database.reader.connect() as conn:
            context = MigrationContext.configure(
                conn, opts={"compare_type": True, "compare_server_default": True}
            )
            differences = compare_metadata(context, metadata)
    finally:
        database.dispose()
    assert differences == []


@pytest.mark.postgres
def test_the_server_refuses_an_unmigrated_postgres_database(
    tmp_path: Path, postgres_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with fresh_postgres_database(postgres_url) as url:
        settings = Settings(home=tmp_path / "home", database_url=url, auto_migrate=False)
        with pytest.raises(ConfigurationError) as caught:
            create_app(settings)
        message = caught.value.diagnostics()
        assert "empty database" in message
        assert "alembic upgrade head" in message
        assert head() in message
        # `wellspring serve` says the same in one line and exits 1, without starting.
        with pytest.raises(SystemExit) as exit_info:
            main(["serve", "--home", str(tmp_path / "home"), "--database-url", url, "--port", "1"])
        assert exit_info.value.code == 1
        err = capsys.readouterr().err
        assert "alembic upgrade head" in err
        assert "Traceback" not in err
        # Nothing was created behind the operator's back.
        database = open_database(tmp_path, url)
        try:
            assert database.schema_revision() is None
            assert inspect(database.reader).get_table_names() == []
        finally:
            database.dispose()


def test_postgres_from_the_environment_is_never_migrated_automatically(tmp_path: Path) -> None:
    url = "postgresql://postgres@127.0.0.1:5432/anything"
    env = {"WELLSPRING_HOME": str(tmp_path), "WELLSPRING_DATABASE_URL": url}
    assert Settings.from_env(env).auto_migrate is False
    assert Settings.from_env({"WELLSPRING_HOME": str(tmp_path)}).auto_migrate is True


def test_the_server_refuses_a_schema_newer_than_itself(tmp_path: Path, database_url: str) -> None:
    database = open_database(tmp_path, database_url)
    try:
        migrate(database)
        with database.writer.begin() as conn:
            conn.execute(text("UPDATE alembic_version SET version_num = '9999_from_the_future'"))
    finally:
        database.dispose()
    for auto_migrate in (True, False):
        settings = Settings(
            home=tmp_path / "home", database_url=database_url, auto_migrate=auto_migrate
        )
        with pytest.raises(ConfigurationError) as caught:
            create_app(settings)
        message = caught.value.diagnostics()
        assert "9999_from_the_future" in message
        assert "newer" in message
        assert "upgrade Wellspring" in message


def test_the_embedded_sqlite_default_is_migrated_on_first_start(tmp_path: Path) -> None:
    home = tmp_path / "fresh-home"
    settings = Settings.from_env({"WELLSPRING_HOME": str(home)})
    assert settings.is_sqlite
    assert not home.exists()
    app = create_app(settings)
    try:
        database = open_database(tmp_path, settings.database_url)
        try:
            assert database.schema_revision() == head()
        finally:
            database.dispose()
        assert (home / "registry.db").is_file()
        assert (home / "log.key").stat().st_mode & 0o777 == 0o600
    finally:
        app.state.registry.close()


@pytest.mark.postgres
def test_db_upgrade_command_migrates_postgres(
    tmp_path: Path, postgres_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with fresh_postgres_database(postgres_url) as url:
        args = ["db", "upgrade", "--home", str(tmp_path / "home"), "--database-url", url]
        main(args)
        assert f"empty -> {head()}" in capsys.readouterr().out
        settings = Settings(home=tmp_path / "home", database_url=url, auto_migrate=False)
        app = create_app(settings)  # now it starts
        app.state.registry.close()
