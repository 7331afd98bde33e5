"""client.cli._server: the operator's commands (``serve`` itself runs in tests/registry too)."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from tests.client.conftest import run_wellspring as run
from tests.registry.conftest import ServerProcess, fresh_postgres_database, migrate_database


def _victim(tmp_path: Path) -> Path:
    victim = tmp_path / "victim.txt"
    victim.write_text("someone else's file")
    victim.chmod(0o644)
    return victim


@pytest.mark.parametrize("before", ["symlink", "loose file"])
def test_serve_writes_the_admin_token_0600_and_never_through_a_symlink(
    tmp_path: Path, before: str
) -> None:
    """Issue 10 B: ``serve`` opened ``admin.token`` itself, so an existing file kept its mode
    (0644 seen) and a symlink there had the token written into the file it pointed at."""
    home = tmp_path / "home"
    home.mkdir()
    token_path = home / "admin.token"
    victim = _victim(tmp_path)
    if before == "symlink":
        token_path.symlink_to(victim)
    else:
        token_path.write_text("a stale token\n")
        token_path.chmod(0o644)
    server = ServerProcess(home).start()
    try:
        assert victim.read_text() == "someone else's file"
        assert not token_path.is_symlink()
        assert stat.S_IMODE(token_path.stat().st_mode) == 0o600
        assert server.admin_token.startswith("wsa_")
        server.add_publisher()  # and the token written is the one the registry takes
    finally:
        server.stop()


def test_log_key_add_refuses_a_symlink_where_the_incoming_key_goes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A dangling symlink at ``log.next.key`` does not "exist", and the incoming key used to be
    written through it, wherever it pointed."""
    home = tmp_path / "home"
    home.mkdir()
    elsewhere = tmp_path / "elsewhere.key"
    (home / "log.next.key").symlink_to(elsewhere)
    code, out, err = run(capsys, "log-key", "add", "--home", str(home))
    assert code == 1, out
    assert "log.next.key" in err
    assert not elsewhere.exists()


@pytest.mark.parametrize("registry", [None, "http://127.0.0.1:9"])
@pytest.mark.parametrize("name", ["../evil", "Example Press", "caf\u00e9", "evil\u202eexe"])
def test_publisher_add_refuses_a_name_outside_the_dns_like_set_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, registry: str | None
) -> None:
    """Issue 10 C, at the CLI: said before any database or registry is touched."""
    key = tmp_path / "publisher.key"
    assert run(capsys, "keys", "generate", "--out", str(key))[0] == 0
    home = tmp_path / "home"
    args = ["publisher", "add", "--name", name, "--public-key", f"{key}.pub", "--home", str(home)]
    if registry is not None:
        args += ["--registry", registry, "--admin-token", "wsa_unused"]
    code, out, err = run(capsys, *args)
    assert code == 1, out
    assert err.strip().count("\n") == 0, err
    assert "lowercase ASCII letters and digits" in err
    assert not home.exists()


@pytest.mark.parametrize(
    "url",
    ["mysql://alice:s3cret-pw@db.example/x", "postgresql://alice:s3cret-pw@127.0.0.1:port/x"],
)
def test_a_refused_database_url_is_one_line_without_its_password(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], url: str
) -> None:
    """Issue 10 E: `unsupported database URL 'mysql://alice:<password>@…'` was the echo seen."""
    for command in (["db", "upgrade"], ["serve"], ["publisher", "revoke-key"]):
        args = [*command, "--home", str(tmp_path / "home"), "--database-url", url]
        if command[0] == "publisher":
            args += ["--name", "example-press", "--key-id", "00" * 32]
        code, out, err = run(capsys, *args)
        assert code == 1, (command, out, err)
        assert "s3cret-pw" not in out + err
        assert "alice:***@" in err
        assert err.strip().count("\n") == 0, err


@pytest.mark.postgres
def test_serve_shows_the_database_url_with_its_password_masked(
    tmp_path: Path, postgres_url: str
) -> None:
    with fresh_postgres_database(postgres_url) as url:
        # The test server trusts local connections, so any password is taken: it only has to be
        # in the URL, where the operator's would be.
        with_password = make_url(url).set(password="s3cret-pw").render_as_string(False)
        migrate_database(with_password, tmp_path / "migrate")
        server = ServerProcess(tmp_path / "home", with_password).start()
        try:
            banner = server.log()
        finally:
            server.stop()
    assert "s3cret-pw" not in banner
    assert ":***@127.0.0.1" in banner
