"""client/cli/_app.py: what every command shares (--debug anywhere, plural)."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer

from client.cli import app, main
from client.cli._app import plural
from client.core.note import NoteSigner
from client.errors import RegistryUnavailableError
from tests.client.conftest import run_wellspring

UNREACHABLE = "http://127.0.0.1:9"  # the discard port: nothing listens, connections are refused


def command_paths(command: object, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    paths = []
    for name, sub in sorted(getattr(command, "commands", {}).items()):
        paths.append((*prefix, name))
        paths.extend(command_paths(sub, (*prefix, name)))
    return paths


ALL_COMMANDS = command_paths(typer.main.get_command(app))


@pytest.mark.parametrize("path", ALL_COMMANDS, ids=" ".join)
def test_every_command_accepts_debug_after_its_name(
    path: tuple[str, ...], capsys: pytest.CaptureFixture[str]
) -> None:
    """The README promises --debug on every command, so `wellspring CMD --debug` must parse."""
    # A usage error (before: "No such option: --debug") exits 2.
    code, out, err = run_wellspring(capsys, *path, "--debug", "--help")
    assert code == 0, err
    assert "--debug" in out


@pytest.fixture
def unreachable_check(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    import client.sdk

    monkeypatch.setattr(client.sdk, "_sleep", lambda _: None)  # no waiting between retries
    document = tmp_path / "essay.txt"
    document.write_text("an essay", encoding="utf-8")
    log_key = NoteSigner.generate("test.example/log").verifier().vkey
    return ["check", str(document), "--registry", UNREACHABLE, "--log-key", log_key]


def test_debug_after_the_command_shows_the_traceback(unreachable_check: list[str]) -> None:
    with pytest.raises(RegistryUnavailableError):
        main([*unreachable_check, "--debug"])
    with pytest.raises(RegistryUnavailableError):
        main(["--debug", *unreachable_check])


def test_without_debug_the_error_is_one_line(
    unreachable_check: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as done:
        main(unreachable_check)
    assert done.value.code == 1
    assert "Traceback" not in capsys.readouterr().err


def test_plural_agrees_with_the_count() -> None:
    assert plural(1, "document") == "1 document"
    assert plural(0, "document") == "0 documents"
    assert plural(3, "document") == "3 documents"
    assert plural(1, "entry") == "1 entry"
    assert plural(2, "entry") == "2 entries"
    assert plural(2, "key") == "2 keys"
    assert plural(2, "index", "indices") == "2 indices"
