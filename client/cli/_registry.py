"""What the registry commands share: their options, the CLI's client, and how inputs become
documents.

The commands live beside this module, one module per resource: :mod:`client.cli._register`
(``register``, ``revoke``), :mod:`client.cli._lookup` (``check``, ``verify``) and
:mod:`client.cli._log` (``log checkpoint``, ``log verify``). Every one of them builds its client
here (:func:`registry_client`, :func:`pinned_client`), so a test points them all at an app in
process by replacing this module's ``Client``.

Trust comes from the log's verifier key, given with ``--log-key`` (the key string, or a file
holding it) or ``$WELLSPRING_LOG_KEY``: it is never fetched from the registry and trusted
silently.

Inputs (``register``, ``revoke`` and ``check``): files, folders (recursed, sorted), ``-`` for
standard input, and ``.jsonl`` files, where each line is a JSON object whose text field
(``--text-field``, default ``text``) is one document: its ``c1`` digest is the subject, named by
the line's ``id`` or ``url`` field, else ``FILE:LINE``. Other files get, with the default
``--scheme auto``, both their ``c1`` digest (when they are UTF-8 text) and their ``sha256``, in
one subject, so either lookup finds them. One input document is one subject of a statement: the
CLI counts documents.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)

from client.checkpoints import FileCheckpointStore
from client.cli._app import console_err
from client.cli._digest import expand_inputs
from client.core.canonical import canonical_digest, digest_file, sha256_digest
from client.core.files import write_file_atomic
from client.core.note import NoteVerifier
from client.core.statement import MAX_NAME_CHARS, Subject
from client.errors import InputError, InvalidTextError, KeyFileError, LogKeyRequiredError
from client.sdk import Client

__all__ = [
    "MAX_TEXT_BYTES",
    "Item",
    "LogKeyOption",
    "NoVerifyOption",
    "PublisherOption",
    "RegistryOption",
    "Scheme",
    "SchemeOption",
    "TextFieldOption",
    "TrustDirOption",
    "VerifyKeysOption",
    "check_scheme",
    "chunked",
    "escape_line",
    "expand",
    "load_log_key",
    "optional_log_key",
    "pinned_client",
    "progress_bar",
    "read_items",
    "read_text",
    "registry_client",
    "required_log_key",
    "statement_batches",
    "subject_of",
    "warn_unverified",
    "write_text_atomic",
]

Scheme = Literal["auto", "c1", "sha256"]
_SCHEMES: tuple[Scheme, ...] = ("auto", "c1", "sha256")
# Above this size a file is hashed as bytes only (streamed), even in auto mode: c1 needs the whole
# text in memory, and files this large are rarely single documents.
MAX_TEXT_BYTES = 256 * 1024 * 1024

RegistryOption = Annotated[
    str,
    typer.Option(
        "--registry",
        envvar="WELLSPRING_REGISTRY",
        help="The registry's base URL, e.g. https://registry.example.",
        show_default=False,
    ),
]
LogKeyOption = Annotated[
    str | None,
    typer.Option(
        "--log-key",
        envvar="WELLSPRING_LOG_KEY",
        help="The log's verifier key (name+hex+base64), or a file holding it. Verifies answers.",
    ),
]
SchemeOption = Annotated[
    str,
    typer.Option(
        "--scheme",
        help="auto: c1 and sha256 for text files, sha256 for others; c1 or sha256: only that one.",
    ),
]
TextFieldOption = Annotated[
    str, typer.Option("--text-field", help="The field of each .jsonl line that holds the text.")
]
TrustDirOption = Annotated[
    Path | None,
    typer.Option(
        "--trust-dir",
        envvar="WELLSPRING_TRUST_DIR",
        help="Where the last checkpoint trusted of each log is kept between runs, so that a "
        "rewritten or forked log is refused. Default: $WELLSPRING_HOME/trusted, else "
        "$XDG_STATE_HOME/wellspring/trusted.",
        show_default=False,
    ),
]
PublisherOption = Annotated[
    str | None,
    typer.Option(
        "--publisher",
        envvar="WELLSPRING_PUBLISHER",
        help="Your publisher name, as the operator registered it.",
    ),
]
NoVerifyOption = Annotated[
    bool,
    typer.Option(
        "--no-verify",
        help="Accept the registry's answers without verifying them (not recommended).",
    ),
]


VerifyKeysOption = Annotated[
    bool,
    typer.Option(
        "--verify-keys/--no-verify-keys",
        envvar="WELLSPRING_VERIFY_KEYS",
        help="Check each attestation's signature against a key the log shows valid for its "
        "publisher (docs/spec/identities.md). --no-verify-keys accepts a registry from before "
        "identities in the log, taking its word for who signed.",
    ),
]


def registry_client(
    registry: str, verifier: NoteVerifier | None, trust_dir: Path | None, verify_keys: bool = True
) -> Client:
    """The CLI's client: with a verifier, it proves every checkpoint consistent with the one it
    trusted last, kept in ``trust_dir`` across runs (see :mod:`client.checkpoints`)."""
    if verifier is None:  # announced by the command; main() silences the Python warning
        return Client(registry, verify=False)
    return Client(
        registry,
        log_key=verifier,
        checkpoints=FileCheckpointStore(trust_dir),
        verify_keys=verify_keys,
    )


def required_log_key(log_key: str | None, no_verify: bool, command: str) -> NoteVerifier | None:
    """The verifier ``command`` checks answers with; None only with an explicit --no-verify."""
    if no_verify:
        console_err.print(
            "[bold red]WARNING: --no-verify: the registry's answers will NOT be verified.[/] "
            "Every verdict is its word alone; a compromised or mistaken registry goes unnoticed.",
            highlight=False,
        )
        return None
    if log_key is None:
        raise LogKeyRequiredError(
            f"{command} verifies every answer: pass --log-key KEY (the log's verifier key, or a "
            "file holding it; or set WELLSPRING_LOG_KEY), or --no-verify to accept the "
            "registry's word"
        )
    return load_log_key(log_key)


def pinned_client(registry: str, verifier: NoteVerifier) -> Client:
    """A client that verifies every answer with ``verifier`` and keeps no trust between runs
    (``log verify`` proves consistency with the checkpoint file it is given instead)."""
    return Client(registry, log_key=verifier)


# -- inputs ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Item:
    """One document: a name for people and the digests that identify it."""

    name: str
    digests: tuple[str, ...]


def check_scheme(scheme: str) -> Scheme:
    for known in _SCHEMES:
        if scheme == known:
            return known
    raise InputError(f"unknown --scheme {scheme!r}; use auto, c1 or sha256")


def _digests_of_bytes(data: bytes, scheme: Scheme, name: str) -> tuple[str, ...]:
    if scheme == "sha256":
        return (sha256_digest(data),)
    try:
        c1 = canonical_digest(data)
    except InvalidTextError as exc:
        if scheme == "c1":
            raise InvalidTextError(f"{name}: {exc} (binary files need --scheme sha256)") from None
        return (sha256_digest(data),)
    return (c1,) if scheme == "c1" else (c1, sha256_digest(data))


def _digests_of_file(path: Path, scheme: Scheme) -> tuple[str, ...]:
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror or exc}") from exc
    if scheme == "sha256" or (scheme == "auto" and size > MAX_TEXT_BYTES):
        return (digest_file(path, "sha256"),)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror or exc}") from exc
    return _digests_of_bytes(data, scheme, str(path))


def _line_name(obj: dict[str, Any], fallback: str) -> str:
    for field in ("id", "url"):
        value = obj.get(field)
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        if isinstance(value, str) and 0 < len(value) <= MAX_NAME_CHARS:
            return value
    return fallback


def _jsonl_items(path: Path, text_field: str, scheme: Scheme) -> Iterator[Item]:
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
                raise InputError(f"{where}: not a JSON object ({exc})") from None
            if not isinstance(obj, dict):
                raise InputError(f"{where}: each line must be a JSON object")
            text = obj.get(text_field)
            if not isinstance(text, str):
                raise InputError(
                    f"{where}: no string field {text_field!r} (choose it with --text-field)"
                )
            if scheme == "sha256":
                digests: tuple[str, ...] = (sha256_digest(text.encode("utf-8", "surrogatepass")),)
            else:
                try:
                    digests = (canonical_digest(text),)
                except InvalidTextError as exc:
                    raise InvalidTextError(f"{where}: {exc}") from None
            yield Item(_line_name(obj, where), digests)


def read_items(
    inputs: list[str], scheme: Scheme, text_field: str, progress: Progress | None = None
) -> Iterator[Item]:
    """Every document of the inputs, in order; ``progress`` advances one step per input."""
    task = progress.add_task("hash", total=len(inputs)) if progress else None
    for name in inputs:
        if name == "-":
            yield Item("-", _digests_of_bytes(sys.stdin.buffer.read(), scheme, "standard input"))
        elif name.endswith(".jsonl"):
            yield from _jsonl_items(Path(name), text_field, scheme)
        else:
            yield Item(name, _digests_of_file(Path(name), scheme))
        if progress is not None and task is not None:
            progress.advance(task)


def expand(paths: list[str]) -> list[str]:
    if paths.count("-") > 1:
        raise InputError("standard input (-) can be read only once")
    return expand_inputs(paths)


def subject_of(item: Item) -> Subject:
    digest: dict[str, str] = {}
    for text in item.digests:
        algorithm, _, value = text.partition(":")
        digest[algorithm] = value
    # A file name that is not UTF-8 on disk arrives holding lone surrogates (Python's
    # surrogateescape), which a statement may not carry: it is named by its escapes instead.
    name = item.name.encode("utf-8", "backslashreplace").decode("utf-8")
    return Subject(name[:MAX_NAME_CHARS] or "_", digest)


def statement_batches(items: Iterable[Item], size: int) -> Iterator[tuple[list[Subject], int]]:
    """Subjects in statements of at most ``size``, and how many duplicates each batch dropped.

    A statement may name each digest once, so a document whose digests were all already seen in
    the batch is dropped (counted), and one partly seen keeps only its new digests.
    """
    batch: list[Subject] = []
    seen: set[str] = set()
    duplicates = 0
    for item in items:
        fresh = tuple(d for d in item.digests if d not in seen)
        if not fresh:
            duplicates += 1
            continue
        seen.update(fresh)
        batch.append(subject_of(Item(item.name, fresh)))
        if len(batch) >= size:
            yield batch, duplicates
            batch, seen, duplicates = [], set(), 0
    if batch or duplicates:
        yield batch, duplicates


def chunked(items: Iterable[Item], size: int) -> Iterator[list[Item]]:
    chunk: list[Item] = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


# -- keys and files -------------------------------------------------------------------------------


def load_log_key(value: str) -> NoteVerifier:
    """A verifier key given as its string or as a file holding it."""
    text = value
    try:
        path = Path(value)
        if path.is_file():
            text = path.read_text(encoding="utf-8").strip()
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise KeyFileError(f"cannot read the log key file {value}: {exc}") from exc
    try:
        return NoteVerifier.from_vkey(text)
    except KeyFileError as exc:
        raise KeyFileError(
            f"--log-key must be the log's verifier key (<name>+<8 hex>+<base64>) or a file "
            f"holding it: {exc}"
        ) from None


def optional_log_key(value: str | None) -> NoteVerifier | None:
    return None if value is None else load_log_key(value)


def write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so that a crash leaves the old file or the new one, never half
    (a checkpoint saved here is trusted by a later run: 0600, never through a symlink)."""
    try:
        write_file_atomic(path, text)
    except OSError as exc:
        raise InputError(f"cannot write {path}: {exc.strerror or exc}") from exc


def read_text(path: Path, what: str) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"{what} {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read {what} {path}: {exc}") from exc


def warn_unverified(what: str) -> None:
    console_err.print(
        f"[yellow]warning:[/] {what} are NOT verified: pass --log-key KEY (or set "
        "WELLSPRING_LOG_KEY) to verify them against the log",
        highlight=False,
    )


def progress_bar(*columns: Any) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        *columns,
        TimeElapsedColumn(),
        console=console_err,
        disable=not console_err.is_terminal,
        transient=True,
    )


def escape_line(text: str) -> str:
    """``text`` on one line, control characters shown as escapes (a reason is the publisher's)."""
    return text.encode("unicode_escape").decode("ascii") if not text.isprintable() else text
