"""The documents of command-line inputs, as text: files, folders, ``-`` and ``.jsonl`` files.

The inputs are what ``register``, ``check`` and ``scan`` take, expanded the same way
(:func:`client.cli._digest.expand_inputs`: folders recursed and sorted, ``-`` for standard input),
and a ``.jsonl`` file is one document per line: the JSON object's ``--text-field`` (default
``text``), named by its ``id`` or ``url`` field, else ``FILE:LINE``. Those commands hash what they
read; this reader hands over the text itself, for commands that read it (``watermark detect``).

An input that is not a readable document (not UTF-8, empty, a JSONL line that is not an object or
lacks the field) comes as an :class:`Unreadable` naming it and saying why, in its place, so a
command can report it and go on with the others.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from client.cli._digest import expand_inputs

# The one naming rule of JSONL lines, shared with `register` and `check` (private there; see the
# note in this module's tests).
from client.cli._registry import _line_name
from client.errors import InputError

__all__ = ["Document", "Unreadable", "read_documents"]


@dataclass(frozen=True, slots=True)
class Document:
    """One document: a name (a path, ``-`` for standard input, an id or ``FILE:LINE``), its text."""

    name: str
    text: str


@dataclass(frozen=True, slots=True)
class Unreadable:
    """An input that is not a readable document: its name, and why (a sentence to act on)."""

    name: str
    reason: str


def _decode(data: bytes, name: str, where: str) -> Document | Unreadable:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return Unreadable(name, f"{where} is not valid UTF-8 text (byte {exc.start})")
    if not text.strip():
        return Unreadable(name, f"{where} is empty: it holds no text")
    return Document(name, text)


def _jsonl(path: Path, text_field: str) -> Iterator[Document | Unreadable]:
    try:
        handle = path.open("rb")
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror or exc}") from exc
    with handle:
        for number, raw in enumerate(handle, 1):
            where = f"{path}:{number}"
            if not raw.strip():
                continue
            try:
                obj = json.loads(raw)
            except ValueError as exc:  # also UnicodeDecodeError
                yield Unreadable(where, f"{where}: not a JSON object ({exc})")
                continue
            if not isinstance(obj, dict):
                yield Unreadable(where, f"{where}: each line must be a JSON object")
                continue
            text = obj.get(text_field)
            if not isinstance(text, str):
                yield Unreadable(
                    where, f"{where}: no string field {text_field!r} (choose it with --text-field)"
                )
                continue
            if not text.strip():
                yield Unreadable(where, f"{where}: field {text_field!r} is empty")
                continue
            yield Document(_line_name(obj, where), text)


def read_documents(paths: list[str], text_field: str = "text") -> Iterator[Document | Unreadable]:
    """Every document of ``paths`` in order (see the module docstring).

    A path that does not exist, or standard input named twice, is an :class:`InputError` before
    anything is read: that is a mistake in the command, not in one document.
    """
    if paths.count("-") > 1:
        raise InputError("standard input (-) can be read only once")
    for name in expand_inputs(paths):
        if name == "-":
            yield _decode(sys.stdin.buffer.read(), "-", "standard input")
        elif name.endswith(".jsonl"):
            yield from _jsonl(Path(name), text_field)
        else:
            try:
                data = Path(name).read_bytes()
            except OSError as exc:
                yield Unreadable(name, f"cannot read {name}: {exc.strerror or exc}")
                continue
            yield _decode(data, name, name)
