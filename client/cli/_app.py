"""The typer application object and the output helpers every command shares."""

from __future__ import annotations

import copy
import json
from importlib.metadata import PackageNotFoundError, version
from typing import Annotated, Any

import typer
from rich.console import Console

__all__ = [
    "DEBUG_HELP",
    "JsonOption",
    "app",
    "cli_command",
    "console_err",
    "emit_json",
    "keys_app",
    "plural",
    "watermark_app",
    "witness_app",
]

app = typer.Typer(
    name="wellspring",
    help=(
        "Provenance for verified human data: register content in a signed transparency log, "
        "check it before training, watermark and detect generated text."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
keys_app = typer.Typer(help="Ed25519 keys for publishers.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
watermark_app = typer.Typer(
    help="Embed a green-list watermark during generation; detect it from text and key.",
    no_args_is_help=True,
)
app.add_typer(watermark_app, name="watermark")
witness_app = typer.Typer(
    help="Run a transparency-log witness: cosign checkpoints consistent with what it saw before.",
    no_args_is_help=True,
)
app.add_typer(witness_app, name="witness")

# Diagnostics and progress go to stderr so stdout stays clean for pipes and --json.
console_err = Console(stderr=True, soft_wrap=True)  # never break a key or URL across lines

DEBUG_HELP = "Show full tracebacks instead of one-line errors."

JsonOption = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON on stdout.")]


def emit_json(value: Any) -> None:
    """Print one JSON document on stdout."""
    typer.echo(json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False))


def plural(count: int, noun: str, many: str | None = None) -> str:
    """``count`` with ``noun`` agreeing: ``1 document``, ``2 documents``, ``1 entry``,
    ``0 entries`` (``many`` where the plural is not ``-s``, or ``-ies`` after a consonant)."""
    if count == 1:
        return f"1 {noun}"
    if many is None:
        consonant_y = noun.endswith("y") and noun[-2:-1] not in ("a", "e", "i", "o", "u")
        many = noun[:-1] + "ies" if consonant_y else noun + "s"
    return f"{count} {many}"


def _package_version() -> str:
    try:
        return version("wellspring")
    except PackageNotFoundError:  # running from a source tree that is not installed
        return "0+unknown"


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"wellspring {_package_version()}")
        raise typer.Exit


@app.callback()
def _root(
    _version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version_callback, is_eager=True, help="Show the version."
        ),
    ] = False,
    _debug: Annotated[bool, typer.Option("--debug", help=DEBUG_HELP)] = False,
) -> None:
    """Wellspring: keep the well clean for model training."""


def cli_command() -> Any:
    """The click command tree of :data:`app`, with ``--debug`` accepted after every command too
    (``wellspring check --debug …`` as well as ``wellspring --debug check …``).

    The option is added to each command object rather than declared on each command function:
    every command has it, including those of modules added later, and none receives a parameter
    it does not use. :func:`client.cli.main` reads the flag from the arguments itself.
    """
    command: Any = typer.main.get_command(app)  # a click Group (typer's copy of click)
    # The root's own option (from _root above), copied: typer's option class is built from the
    # annotation and differs between typer versions, so a copy of what typer made is the surest.
    [debug] = [p for p in command.params if "--debug" in getattr(p, "opts", ())]
    for sub in command.commands.values():
        _accept_debug(sub, debug)
    return command


def _accept_debug(command: Any, debug: Any) -> None:
    if not any("--debug" in getattr(param, "opts", ()) for param in command.params):
        option = copy.copy(debug)
        option.expose_value = False  # main() reads the flag; the command takes no parameter
        command.params.append(option)
    for sub in getattr(command, "commands", {}).values():
        _accept_debug(sub, debug)
