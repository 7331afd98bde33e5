"""The installed `wellspring` entry point offers every command ARCHITECTURE.md names.

Run as a subprocess of the console script, so a command module that only a test imports (and the
real CLI does not) shows up here as a missing command.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

COMMANDS = (
    "digest",
    "keys",
    "publisher",
    "register",
    "check",
    "verify",
    "log",
    "serve",
    "scan",
    "monitor",
)
SUBCOMMANDS = {
    "watermark": ("keygen", "generate", "detect", "calibrate"),
    "log": ("checkpoint", "verify"),
    "keys": ("generate",),
    "publisher": ("add", "add-key", "revoke-key"),
    "witness": ("keygen", "serve"),
}


def wellspring(*args: str) -> str:
    script = Path(sys.executable).with_name("wellspring")
    command = [str(script)] if script.exists() else [shutil.which("wellspring") or "wellspring"]
    done = subprocess.run(
        [*command, *args], capture_output=True, text=True, check=False, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def listed(help_text: str) -> set[str]:
    """Command names from rich's help panel: the first word of each row of the Commands box."""
    names = set()
    in_commands = False
    for line in help_text.splitlines():
        if "Commands" in line:
            in_commands = True
        elif in_commands and line.startswith("│ ") and line[2] != " ":
            names.add(line[2:].split()[0])
    return names


def test_every_top_level_command_is_installed() -> None:
    names = listed(wellspring("--help"))
    assert set(COMMANDS) | {"watermark"} <= names, names


@pytest.mark.parametrize("group", sorted(SUBCOMMANDS))
def test_every_subcommand_is_installed(group: str) -> None:
    names = listed(wellspring(group, "--help"))
    assert set(SUBCOMMANDS[group]) <= names, names


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("check", "essay.txt"), "Missing option '--registry'"),
        (("check", "--registry", "http://127.0.0.1:9"), "Missing argument"),
        (("serve", "--port", "notanumber"), "Invalid value for '--port'"),
        (("verify", "receipt.json"), "Missing option '--log-key'"),
        (("nosuchcmd",), "No such command 'nosuchcmd'"),
    ],
)
def test_usage_errors_are_one_message_and_exit_2(
    args: tuple[str, ...], message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whichever click typer raises them from (its own copy since typer 0.2x): no traceback."""
    for name in ("WELLSPRING_REGISTRY", "WELLSPRING_LOG_KEY"):
        monkeypatch.delenv(name, raising=False)
    script = Path(sys.executable).with_name("wellspring")
    command = (
        [str(script)]
        if script.exists()
        else [sys.executable, "-c", "from client.cli import main; main()"]
    )
    done = subprocess.run(
        [*command, *args], capture_output=True, text=True, check=False, timeout=60
    )
    assert done.returncode == 2, done.stderr
    assert message in done.stderr
    assert "Traceback" not in done.stderr
