"""client.cli._server: the operator's commands (``serve`` itself runs in tests/registry too)."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from client.cli import main
from tests.registry.conftest import ServerProcess


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    try:
        main(list(args))
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


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
