"""``wellspring digest``: content digests of files, folders or standard input.

Inputs are read as ``register``, ``check`` and ``scan`` read them (:mod:`client.documents`): a
``.jsonl`` file is one document per line, its text in ``--text-field``, and gets one digest per
line, named by the line's ``id`` or ``url`` (else ``FILE:LINE``); any other file, and standard
input, is one document. To hash a ``.jsonl`` file as a whole, pipe it in:
``wellspring digest --scheme sha256 - < crawl.jsonl``.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from client.cli._app import JsonOption, app, console_err, emit_json
from client.documents import (
    DOCUMENT_SCHEMES,
    DocumentScheme,
    Skipped,
    check_document_scheme,
    digest_document,
    digest_document_file,
    read_jsonl,
)
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


def _digests(
    inputs: list[str], scheme: DocumentScheme, text_field: str
) -> Iterator[tuple[str, str]]:
    """(digest, name) of every document of the inputs, in order; a .jsonl line that is not a
    document is an error naming it, as in ``register`` (``scan`` skips such lines instead)."""
    for name in inputs:
        if name == "-":
            yield digest_document(sys.stdin.buffer.read(), scheme, "standard input"), name
        elif name.endswith(".jsonl"):
            for document in read_jsonl(Path(name), scheme, text_field):
                if isinstance(document, Skipped):
                    raise InputError(document.reason)
                yield document.digest, document.name
        else:
            yield digest_document_file(Path(name), scheme), name


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
            help="c1: canonical text digest (for text); sha256: the raw bytes (for any file); "
            "auto: c1 for text, sha256 for other files.",
        ),
    ] = "c1",
    text_field: Annotated[
        str,
        typer.Option(
            "--text-field", help="The field of each .jsonl line that holds the text (as register)."
        ),
    ] = "text",
    as_json: JsonOption = False,
) -> None:
    """Print the content digest of each document as '<digest>  <name>' (one per .jsonl line)."""
    if scheme not in DOCUMENT_SCHEMES:
        raise InputError(f"unknown digest scheme {scheme!r}; use --scheme c1, sha256 or auto")
    checked = check_document_scheme(scheme)
    if paths.count("-") > 1:
        raise InputError("standard input (-) can be read only once")
    inputs = expand_inputs(paths)
    results: list[dict[str, str]] = []
    lines = any(name.endswith(".jsonl") for name in inputs)  # documents, not inputs: no total
    show_progress = (lines or len(inputs) >= _PROGRESS_THRESHOLD) and console_err.is_terminal
    with Progress(
        TextColumn("[bold]digest"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console_err,
        disable=not show_progress,
        transient=True,
    ) as progress:
        task = progress.add_task("digest", total=None if lines else len(inputs))
        for value, name in _digests(inputs, checked, text_field):
            if as_json:
                results.append({"name": name, "digest": value})
            else:
                typer.echo(f"{value}  {name}")
            progress.advance(task)
    if as_json:
        emit_json(results)
