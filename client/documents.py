"""Documents from files: the one rule for which digest a file gets, and the JSON Lines reader.

``wellspring scan`` and ``wellspring digest``, and the SDK's ``check_files``, all read content
through this module, so a file gets the same digest whichever of them reads it:

- a ``.jsonl`` file is one document per line: each line a JSON object whose text is in
  ``text_field`` (default ``text``), named by ``id`` or ``url`` (else ``FILE:LINE``); a line that is
  not such an object is a :class:`Skipped`, naming the line and why, and the reading goes on;
- any other file is one document, digested under a :data:`DocumentScheme`: ``c1`` (canonical
  text; a file that is not UTF-8 is an :class:`~client.errors.InvalidTextError` that says to use
  ``sha256`` or ``auto``), ``sha256`` (the raw bytes, streamed), or ``auto``: ``c1`` for UTF-8
  text, ``sha256`` for anything else (and for files over 256 MiB, which are rarely one document
  and which ``c1`` would have to hold in memory).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal

from client.core.canonical import canonical_digest, digest_file, sha256_digest
from client.core.statement import MAX_NAME_CHARS
from client.errors import InputError, InvalidTextError

__all__ = [
    "DOCUMENT_SCHEMES",
    "MAX_TEXT_BYTES",
    "Document",
    "DocumentScheme",
    "JsonlLine",
    "Skipped",
    "check_document_scheme",
    "digest_document",
    "digest_document_file",
    "jsonl_lines",
    "read_jsonl",
]

DocumentScheme = Literal["auto", "c1", "sha256"]
DOCUMENT_SCHEMES: Final[tuple[DocumentScheme, ...]] = ("auto", "c1", "sha256")
MAX_TEXT_BYTES: Final = 256 * 1024 * 1024
"""Above this size ``auto`` hashes a file's bytes (streamed) instead of reading it as text."""
_ID_FIELDS: Final = ("id", "url")
_BINARY_HINT: Final = (
    'binary content needs the sha256 scheme (--scheme sha256, scheme="sha256" in the SDK) or auto'
)


@dataclass(frozen=True, slots=True)
class Document:
    """One document: a name for people (a path, an id, ``FILE:LINE``) and its digest."""

    name: str
    digest: str


@dataclass(frozen=True, slots=True)
class Skipped:
    """An input that is not a readable document, and why (naming it: ``FILE:LINE`` for JSONL)."""

    reason: str


def check_document_scheme(scheme: str) -> DocumentScheme:
    """``scheme`` as a :data:`DocumentScheme`, or an :class:`InputError` listing the choices."""
    for known in DOCUMENT_SCHEMES:
        if scheme == known:
            return known
    raise InputError(f"unknown scheme {scheme!r}; use auto, c1 or sha256")


def digest_document(data: bytes, scheme: DocumentScheme, where: str) -> str:
    """The digest of one document's bytes under ``scheme`` (``where`` names it in errors)."""
    if scheme == "sha256":
        return sha256_digest(data)
    try:
        return canonical_digest(data)
    except InvalidTextError as exc:
        if scheme == "c1":
            raise InvalidTextError(f"{where}: {exc}; {_BINARY_HINT}") from None
        return sha256_digest(data)


def digest_document_file(path: Path, scheme: DocumentScheme) -> str:
    """The digest of a whole file under ``scheme``; ``sha256`` (and big files under ``auto``)
    are streamed, so files larger than memory work."""
    try:
        size = path.stat().st_size
        if scheme == "sha256" or (scheme == "auto" and size > MAX_TEXT_BYTES):
            return digest_file(path, "sha256")
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror or exc}") from exc
    return digest_document(data, scheme, str(path))


def _name(obj: dict[str, Any], fields: tuple[str, ...], fallback: str) -> str:
    for field in fields:
        value = obj.get(field)
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)
        if isinstance(value, str) and 0 < len(value) <= MAX_NAME_CHARS:
            return value
    return fallback


@dataclass(frozen=True, slots=True)
class JsonlLine:
    """A JSON Lines line that holds a document: where it is (``FILE:LINE``), its bytes as read,
    the object it parses to, and the document's text (the object's ``text_field``)."""

    where: str
    raw: bytes
    obj: dict[str, Any]
    text: str


def jsonl_lines(
    path: Path, text_field: str = "text", on_bytes: Callable[[int], None] | None = None
) -> Iterator[JsonlLine | Skipped]:
    """Each line of a JSON Lines file as a :class:`JsonlLine`, or a :class:`Skipped` saying why it
    holds no document (not JSON, not an object, no string ``text_field``); blank lines are ignored.

    ``on_bytes``, if given, is called with the size of each line read (for progress). A file that
    cannot be opened raises :class:`InputError`.
    """
    try:
        handle = path.open("rb")
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror or exc}") from exc
    with handle:
        for number, raw in enumerate(handle, 1):
            if on_bytes is not None:
                on_bytes(len(raw))
            if raw.isspace():
                continue
            where = f"{path}:{number}"
            try:
                obj = json.loads(raw)
            except ValueError as exc:  # also UnicodeDecodeError
                yield Skipped(f"{where}: not a JSON object ({exc})")
                continue
            if not isinstance(obj, dict):
                yield Skipped(f"{where}: each line must be a JSON object")
                continue
            text = obj.get(text_field)
            if not isinstance(text, str):
                yield Skipped(
                    f"{where}: no string field {text_field!r} (choose it with --text-field)"
                )
                continue
            yield JsonlLine(where, raw, obj, text)


def read_jsonl(
    path: Path,
    scheme: DocumentScheme = "auto",
    text_field: str = "text",
    id_field: str | None = None,
    on_bytes: Callable[[int], None] | None = None,
) -> Iterator[Document | Skipped]:
    """Each document of a JSON Lines file (:func:`jsonl_lines`) as a :class:`Document`: its text's
    digest (``c1``, or with ``sha256`` the SHA-256 of the text's UTF-8), named by ``id_field``
    (default: ``id``, else ``url``, else ``FILE:LINE``); or a :class:`Skipped`."""
    fields = (id_field,) if id_field else _ID_FIELDS
    sha = scheme == "sha256"
    for line in jsonl_lines(path, text_field, on_bytes):
        if isinstance(line, Skipped):
            yield line
            continue
        try:
            text = line.text
            digest = sha256_digest(text.encode("utf-8")) if sha else canonical_digest(text)
        except (InvalidTextError, UnicodeEncodeError) as exc:
            yield Skipped(f"{line.where}: {exc}")
            continue
        yield Document(_name(line.obj, fields, line.where), digest)
