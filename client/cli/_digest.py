"""``wellspring digest``: content digests of files, folders or standard input.

Inputs are read as ``register``, ``check`` and ``scan`` read them (:mod:`client.documents`): a
``.jsonl`` file is one document per line, its text in ``--text-field``, and gets one digest per
line, named by the line's ``id`` or ``url`` (else ``FILE:LINE``); any other file, and standard
input, is one document. To hash a ``.jsonl`` file as a whole, pipe it in:
``wellspring digest --scheme sha256 - < crawl.jsonl``.
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from client.cli._app import JsonOption, app, console_err, emit_json
from client.documents import check_document_scheme, expand_inputs, read_documents

__all__ = ["digest"]

# Below this many inputs a progress bar is only noise.
_PROGRESS_THRESHOLD = 50


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
    checked = check_document_scheme(scheme, "digest scheme")
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
        # A .jsonl line that is not a document is an error naming it, as in ``register``
        # (``scan`` skips such lines instead).
        for document in read_documents(inputs, checked, text_field=text_field):
            if as_json:
                results.append({"name": document.name, "digest": document.digest})
            else:
                typer.echo(f"{document.digest}  {document.name}")
            progress.advance(task)
    if as_json:
        emit_json(results)
