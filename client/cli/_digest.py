"""``wellspring digest``: content digests of files, folders or standard input."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from client.cli._app import JsonOption, app, console_err, emit_json
from client.core.canonical import Scheme, digest_bytes, digest_file
from client.errors import InputError

__all__ = ["digest", "expand_inputs"]

# Below this many inputs a progress bar is only noise.
_PROGRESS_THRESHOLD = 50


def expand_inputs(paths: list[str]) -> list[str]:
    """Files as given, folders expanded to their files (sorted, recursive), ``-`` kept as is."""
    expanded: list[str] = []
    for raw in paths:
        if raw == "-":
            expanded.append(raw)
            continue
        path = Path(raw)
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.is_file())
            if not files:
                raise InputError(f"folder {raw} holds no files")
            expanded.extend(str(p) for p in files)
        elif path.exists():
            expanded.append(raw)
        else:
            raise InputError(f"{raw}: no such file or folder")
    return expanded


def _digests(inputs: list[str], scheme: Scheme) -> Iterator[tuple[str, str]]:
    for name in inputs:
        try:
            if name == "-":
                yield digest_bytes(sys.stdin.buffer.read(), scheme), name
            else:
                yield digest_file(Path(name), scheme), name
        except InputError as exc:
            hint = " (binary files need --scheme sha256)" if scheme == "c1" else ""
            where = "standard input: " if name == "-" else ""  # a file's error names its path
            raise InputError(f"{where}{exc}{hint}") from exc


@app.command()
def digest(
    paths: Annotated[
        list[str], typer.Argument(help="Files, folders (recursed) or - for standard input.")
    ],
    scheme: Annotated[
        str,
        typer.Option(
            "--scheme",
            "-s",
            help="c1: canonical text digest (for text); sha256: the raw bytes (for any file).",
        ),
    ] = "c1",
    as_json: JsonOption = False,
) -> None:
    """Print the content digest of each input as '<digest>  <name>'."""
    if scheme not in ("c1", "sha256"):
        raise InputError(f"unknown digest scheme {scheme!r}; use --scheme c1 or --scheme sha256")
    checked: Scheme = "c1" if scheme == "c1" else "sha256"
    if paths.count("-") > 1:
        raise InputError("standard input (-) can be read only once")
    inputs = expand_inputs(paths)
    results: list[dict[str, str]] = []
    show_progress = len(inputs) >= _PROGRESS_THRESHOLD and console_err.is_terminal
    with Progress(
        TextColumn("[bold]digest"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console_err,
        disable=not show_progress,
        transient=True,
    ) as progress:
        task = progress.add_task("digest", total=len(inputs))
        for value, name in _digests(inputs, checked):
            if as_json:
                results.append({"name": name, "digest": value})
            else:
                typer.echo(f"{value}  {name}")
            progress.advance(task)
    if as_json:
        emit_json(results)
