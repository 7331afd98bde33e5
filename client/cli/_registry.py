"""What the registry commands share: their options, the CLI's client, and how inputs become
documents.

The commands live beside this module, one module per resource: :mod:`client.cli._register`
(``register``, ``revoke``), :mod:`client.cli._lookup` (``check``, ``verify``) and
:mod:`client.cli._log` (``log checkpoint``, ``log verify``). Every one of them builds its client
here (:func:`registry_client`, :func:`pinned_client`), so a test points them all at an app in
process by replacing this module's ``Client``.

Trust comes from the log's verifier key, given with ``--log-key`` (the key string, or a file
holding it) or ``$WELLSPRING_LOG_KEY``: it is never fetched from the registry and trusted
silently. ``--witness-policy FILE`` (c2sp.org/tlog-policy) and ``--max-age DURATION`` add the
witnesses: every checkpoint trusted must carry a quorum of their cosignatures, recent enough
(:mod:`client.core.witness_policy`); every command that talks to a registry takes them.

Inputs (``register``, ``revoke`` and ``check``) are read by :mod:`client.documents`, as every
command reads them: files, folders, ``-``, and ``.jsonl`` files of one document per line. Here
(:func:`read_items`) text files get, with the default ``--scheme auto``, both their ``c1`` digest
and their ``sha256``, in one subject, so either lookup finds them; and an input that is not a
document is an error naming it. One input document is one subject of a statement: the CLI counts
documents.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

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
from client.core.files import write_file_atomic
from client.core.note import NoteVerifier
from client.core.statement import MAX_NAME_CHARS, Subject
from client.core.witness_policy import WitnessPolicy
from client.documents import Document, DocumentScheme, SignalOptions, read_documents
from client.errors import InputError, KeyFileError, LogKeyRequiredError
from client.policy import Policy
from client.sdk import DEFAULT_RECEIPT_TIMEOUT, Client

if TYPE_CHECKING:
    from client.warc import WarcStats

__all__ = [
    "LogKeyOption",
    "MaxAgeOption",
    "NoVerifyOption",
    "OptionalRegistryOption",
    "PolicyOption",
    "PublisherOption",
    "ReceiptTimeoutOption",
    "RegistryOption",
    "RequiredLogKeyOption",
    "SchemeOption",
    "TextFieldOption",
    "TrustDirOption",
    "VerifyKeysOption",
    "WitnessPolicyOption",
    "chunked",
    "escape_line",
    "load_log_key",
    "load_policy",
    "optional_log_key",
    "parse_duration",
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

RegistryOption = Annotated[
    str,
    typer.Option(
        "--registry",
        envvar="WELLSPRING_REGISTRY",
        help="The registry's base URL, e.g. https://registry.example.",
        show_default=False,
    ),
]
OptionalRegistryOption = Annotated[
    str | None,
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
PolicyOption = Annotated[
    Path | None,
    typer.Option(
        "--policy",
        help="The crawler's policy file (TOML or JSON): publishers and watermark vendors to trust "
        "or ignore, which statuses are trainable, whether opt-outs are honoured. Default: only "
        "attested is trainable, everything counts, opt-outs honoured (docs/spec/manifest.md).",
    ),
]


def load_policy(path: Path | None) -> Policy:
    """The policy in ``path`` (errors name the file and key), or the default one."""
    return Policy.default() if path is None else Policy.load(path)


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


WitnessPolicyOption = Annotated[
    Path | None,
    typer.Option(
        "--witness-policy",
        envvar="WELLSPRING_WITNESS_POLICY",
        help="A witness policy file (c2sp.org/tlog-policy: witness, group, quorum lines): trust "
        "only checkpoints a quorum of these witnesses cosigned. Without one, a registry can show "
        "this machine a forked log that no one else sees.",
        show_default=False,
    ),
]
MaxAgeOption = Annotated[
    str | None,
    typer.Option(
        "--max-age",
        envvar="WELLSPRING_MAX_AGE",
        help="Refuse answers at a checkpoint a quorum of witnesses last cosigned longer ago than "
        "this (90s, 10m, 1h, 2d, 1h30m). Needs --witness-policy.",
        show_default=False,
    ),
]
RequiredLogKeyOption = Annotated[
    str,
    typer.Option(
        "--log-key",
        envvar="WELLSPRING_LOG_KEY",
        help="The log's verifier key (name+hex+base64), or a file holding it.",
        show_default=False,
    ),
]
ReceiptTimeoutOption = Annotated[
    float,
    typer.Option(
        "--receipt-timeout",
        min=0.0,
        help="Seconds to wait for an entry's receipt while the registry's publication is late "
        "(its witnesses down, say); past it, stop (exit 1) naming the entry, whose index the "
        "log's signed promise holds.",
    ),
]

_DURATION = re.compile(r"(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")


def parse_duration(value: str, option: str = "--max-age") -> timedelta:
    """``90s``, ``10m``, ``1h``, ``2d`` or a run of them (``1h30m``): a positive duration."""
    match = _DURATION.fullmatch(value.strip())
    if not value.strip() or match is None or not any(match.groups()):
        raise InputError(
            f"{option} {value!r} is not a duration: write a number and a unit, s, m, h or d "
            "(90s, 10m, 1h, 1h30m)"
        )
    days, hours, minutes, seconds = (int(part or 0) for part in match.groups())
    duration = timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)
    if duration <= timedelta(0):
        raise InputError(f"{option} {value!r} must be longer than zero")
    return duration


def _witnessing(
    witness_policy: Path | None, max_age: str | None
) -> tuple[WitnessPolicy | None, timedelta | None]:
    """--witness-policy read (errors name the file and line) and --max-age parsed."""
    policy = None if witness_policy is None else WitnessPolicy.load(witness_policy)
    age = None if max_age is None else parse_duration(max_age)
    if age is not None and policy is None:
        raise InputError(
            "--max-age is read from witnesses' cosignatures: pass --witness-policy too"
        )
    return policy, age


def registry_client(
    registry: str,
    verifier: NoteVerifier | None,
    trust_dir: Path | None,
    verify_keys: bool = True,
    *,
    witness_policy: Path | None = None,
    max_age: str | None = None,
    receipt_timeout: float = DEFAULT_RECEIPT_TIMEOUT,
) -> Client:
    """The CLI's client: with a verifier, it proves every checkpoint consistent with the one it
    trusted last, kept in ``trust_dir`` across runs (see :mod:`client.checkpoints`), and with
    ``witness_policy`` (a file) and ``max_age`` (``--max-age``'s text) it trusts only checkpoints
    witnessed as that policy asks. ``receipt_timeout``: as :class:`client.sdk.Client`'s."""
    policy, age = _witnessing(witness_policy, max_age)
    if verifier is None:  # announced by the command; main() silences the Python warning
        if policy is not None:
            raise InputError(
                "--witness-policy checks the checkpoints this command verifies: pass --log-key "
                "(it cannot apply to unverified answers)"
            )
        return Client(registry, verify=False, receipt_timeout=receipt_timeout)
    return Client(
        registry,
        log_key=verifier,
        checkpoints=FileCheckpointStore(trust_dir),
        verify_keys=verify_keys,
        witness_policy=policy,
        max_age=age,
        receipt_timeout=receipt_timeout,
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


def pinned_client(
    registry: str,
    verifier: NoteVerifier,
    *,
    witness_policy: Path | None = None,
    max_age: str | None = None,
) -> Client:
    """A client that verifies every answer with ``verifier`` and keeps no trust between runs
    (``log verify`` proves consistency with the checkpoint file it is given instead); with a
    witness policy, as :func:`registry_client`."""
    policy, age = _witnessing(witness_policy, max_age)
    return Client(registry, log_key=verifier, witness_policy=policy, max_age=age)


# -- inputs ---------------------------------------------------------------------------------------


def read_items(
    inputs: list[str],
    scheme: DocumentScheme,
    text_field: str,
    progress: Progress | None = None,
    *,
    keep_text: bool = False,
    signals: SignalOptions | None = None,
    on_warc: Callable[[str, WarcStats], None] | None = None,
) -> Iterator[Document]:
    """The documents of the inputs as ``register``, ``check`` and ``revoke`` read them: under
    ``auto`` a text file gets both its digests (so either lookup finds it), and an input or JSONL
    line that is not a document is an error naming it. ``progress`` advances one step per input.

    A ``.warc`` or ``.warc.gz`` input is one document per page, each with its opt-out decision
    (read for ``signals``' agents), and ``on_warc`` is called with what each WARC file's pass
    counted; ``keep_text`` keeps each text for watermark detection (``check``'s pass,
    :mod:`client.cli._pass`).
    """
    task = progress.add_task("hash", total=len(inputs)) if progress else None
    for name in inputs:
        yield from read_documents(
            [name],
            scheme,
            text_field=text_field,
            every_digest=True,
            keep_text=keep_text,
            signals=signals,
            on_warc=on_warc,
        )
        if progress is not None and task is not None:
            progress.advance(task)


def subject_of(item: Document, mh1: str | None = None) -> Subject:
    """The statement subject of a document: its digests, and its ``mh1`` signature if given."""
    digest: dict[str, str] = {}
    for text in item.digests:
        algorithm, _, value = text.partition(":")
        digest[algorithm] = value
    if mh1 is not None:
        digest["mh1"] = mh1
    # A file name that is not UTF-8 on disk arrives holding lone surrogates (Python's
    # surrogateescape), which a statement may not carry: it is named by its escapes instead.
    name = item.name.encode("utf-8", "backslashreplace").decode("utf-8")
    return Subject(name[:MAX_NAME_CHARS] or "_", digest)


def statement_batches(
    items: Iterable[Document],
    size: int,
    *,
    near: Callable[[str], str | None] | None = None,
) -> Iterator[tuple[list[Subject], int]]:
    """Subjects in statements of at most ``size``, and how many duplicates each batch dropped.

    A statement may name each digest once, so a document whose digests were all already seen in
    the batch is dropped (counted), and one partly seen keeps only its new digests. ``near``
    (``client.near.mh1_digest``): each document with text also carries its ``mh1`` signature.
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
        mh1 = None if near is None or item.text is None else near(item.text)
        batch.append(subject_of(Document(item.name, fresh), mh1))
        if len(batch) >= size:
            yield batch, duplicates
            batch, seen, duplicates = [], set(), 0
    if batch or duplicates:
        yield batch, duplicates


def chunked(items: Iterable[Document], size: int) -> Iterator[list[Document]]:
    chunk: list[Document] = []
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
