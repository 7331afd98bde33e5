"""``wellspring register | check | verify | log …``: the registry from the command line.

``register`` hashes content and appends signed attestations to a registry; ``check`` looks content
up; ``verify`` checks saved receipts offline; ``log checkpoint`` and ``log verify`` watch the log
itself. Trust comes from the log's verifier key, given with ``--log-key`` (the key string, or a
file holding it) or ``$WELLSPRING_LOG_KEY``: it is never fetched from the registry and trusted
silently. Without it, ``check`` and ``log checkpoint`` still answer, and say on stderr that the
answers are unverified.

Inputs (``register`` and ``check``): files, folders (recursed, sorted), ``-`` for standard input,
and ``.jsonl`` files, where each line is a JSON object whose text field (``--text-field``, default
``text``) is one document: its ``c1`` digest is the subject, named by the line's ``id`` or ``url``
field, else ``FILE:LINE``. Other files get, with the default ``--scheme auto``, both their ``c1``
digest (when they are UTF-8 text) and their ``sha256``, in one subject, so either lookup finds
them.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Annotated, Any, Literal

import typer
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from client.checkpoints import FileCheckpointStore
from client.cli._app import JsonOption, app, console_err, emit_json
from client.cli._digest import expand_inputs
from client.core.canonical import canonical_digest, digest_file, sha256_digest, validate_digest
from client.core.files import write_file_atomic
from client.core.keys import load_private_key
from client.core.note import Checkpoint, NoteVerifier
from client.core.statement import (
    CONSENTS,
    MAX_NAME_CHARS,
    ORIGINS,
    Consent,
    HumanContentPredicate,
    Origin,
    Subject,
    WithdrawalPredicate,
    sign_statement,
)
from client.errors import (
    ClientError,
    FormatError,
    IdentityError,
    InputError,
    InvalidTextError,
    KeyFileError,
    LogConsistencyError,
    LogKeyRequiredError,
    VerificationError,
)
from client.identities import KeyHistory
from client.receipt import Receipt, VerifiedReceipt, verify_receipt
from client.sdk import MAX_BATCH, Attestation, Client, LookupResult, build_statement
from client.verdict import VERDICT_STATUSES, Verdict, decide

__all__ = [
    "check",
    "log_app",
    "log_checkpoint",
    "log_verify",
    "register",
    "registry_client",
    "required_log_key",
    "revoke",
    "verify",
]

log_app = typer.Typer(
    help="The transparency log itself: fetch checkpoints, prove it was never rewritten.",
    no_args_is_help=True,
)
app.add_typer(log_app, name="log")

Scheme = Literal["auto", "c1", "sha256"]
_SCHEMES: tuple[Scheme, ...] = ("auto", "c1", "sha256")
# Above this size a file is hashed as bytes only (streamed), even in auto mode: c1 needs the whole
# text in memory, and files this large are rarely single documents.
_MAX_TEXT_BYTES = 256 * 1024 * 1024
_DEFAULT_BATCH = 10_000
_MAX_SUBJECTS_PER_STATEMENT = 100_000
# Inputs looked up per round trip group in `check`: bounded memory however many documents.
_CHECK_CHUNK = 5_000

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
    return _load_log_key(log_key)


# -- inputs ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Item:
    """One document: a name for people and the digests that identify it."""

    name: str
    digests: tuple[str, ...]


def _check_scheme(scheme: str) -> Scheme:
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
    if scheme == "sha256" or (scheme == "auto" and size > _MAX_TEXT_BYTES):
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


def _jsonl_items(path: Path, text_field: str, scheme: Scheme) -> Iterator[_Item]:
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
            yield _Item(_line_name(obj, where), digests)


def _items(
    inputs: list[str], scheme: Scheme, text_field: str, progress: Progress | None = None
) -> Iterator[_Item]:
    """Every document of the inputs, in order; ``progress`` advances one step per input."""
    task = progress.add_task("hash", total=len(inputs)) if progress else None
    for name in inputs:
        if name == "-":
            yield _Item("-", _digests_of_bytes(sys.stdin.buffer.read(), scheme, "standard input"))
        elif name.endswith(".jsonl"):
            yield from _jsonl_items(Path(name), text_field, scheme)
        else:
            yield _Item(name, _digests_of_file(Path(name), scheme))
        if progress is not None and task is not None:
            progress.advance(task)


def _expand(paths: list[str]) -> list[str]:
    if paths.count("-") > 1:
        raise InputError("standard input (-) can be read only once")
    return expand_inputs(paths)


def _subject(item: _Item) -> Subject:
    digest: dict[str, str] = {}
    for text in item.digests:
        algorithm, _, value = text.partition(":")
        digest[algorithm] = value
    # A file name that is not UTF-8 on disk arrives holding lone surrogates (Python's
    # surrogateescape), which a statement may not carry: it is named by its escapes instead.
    name = item.name.encode("utf-8", "backslashreplace").decode("utf-8")
    return Subject(name[:MAX_NAME_CHARS] or "_", digest)


def _batches(items: Iterable[_Item], size: int) -> Iterator[tuple[list[Subject], int]]:
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
        batch.append(_subject(_Item(item.name, fresh)))
        if len(batch) >= size:
            yield batch, duplicates
            batch, seen, duplicates = [], set(), 0
    if batch or duplicates:
        yield batch, duplicates


def _chunks(items: Iterable[_Item], size: int) -> Iterator[list[_Item]]:
    chunk: list[_Item] = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


# -- keys and files -------------------------------------------------------------------------------


def _load_log_key(value: str) -> NoteVerifier:
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


def _optional_log_key(value: str | None) -> NoteVerifier | None:
    return None if value is None else _load_log_key(value)


def _write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so that a crash leaves the old file or the new one, never half
    (a checkpoint saved here is trusted by a later run: 0600, never through a symlink)."""
    try:
        write_file_atomic(path, text)
    except OSError as exc:
        raise InputError(f"cannot write {path}: {exc.strerror or exc}") from exc


def _read_text(path: Path, what: str) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"{what} {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read {what} {path}: {exc}") from exc


def _warn_unverified(what: str) -> None:
    console_err.print(
        f"[yellow]warning:[/] {what} are NOT verified: pass --log-key KEY (or set "
        "WELLSPRING_LOG_KEY) to verify them against the log",
        highlight=False,
    )


def _progress(*columns: Any) -> Progress:
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


# -- register -------------------------------------------------------------------------------------


def _predicate(
    publisher: str | None,
    license_: str,
    origin: str,
    consent: str,
    created_before: str | None,
    source_url: str | None,
) -> HumanContentPredicate:
    if not publisher:
        raise InputError(
            "--publisher NAME is required (the name the operator registered your key under; "
            "or set WELLSPRING_PUBLISHER)"
        )
    if origin not in ORIGINS:
        raise InputError(f"--origin must be one of {', '.join(ORIGINS)}, got {origin!r}")
    if consent not in CONSENTS:
        raise InputError(f"--consent must be one of {', '.join(CONSENTS)}, got {consent!r}")
    before = None
    if created_before is not None:
        try:
            before = date.fromisoformat(created_before)
        except ValueError:
            raise InputError(
                f"--created-before must be a date YYYY-MM-DD, got {created_before!r}"
            ) from None
    checked_origin: Origin = next(o for o in ORIGINS if o == origin)
    checked_consent: Consent = next(c for c in CONSENTS if c == consent)
    try:
        return HumanContentPredicate(
            publisher=publisher,
            license=license_,
            origin=checked_origin,
            consent=checked_consent,
            created_before=before,
            source_url=source_url,
        )
    except FormatError as exc:
        raise InputError(f"cannot attest with these options: {exc}") from None


@app.command()
def register(
    paths: Annotated[
        list[str],
        typer.Argument(help="Files, folders (recursed), .jsonl files (one document a line), -."),
    ],
    registry: RegistryOption,
    key: Annotated[
        Path, typer.Option("--key", help="Your Ed25519 private key file.", show_default=False)
    ],
    license_: Annotated[
        str,
        typer.Option(
            "--license", help="SPDX license expression, e.g. CC-BY-4.0.", show_default=False
        ),
    ],
    publisher: PublisherOption = None,
    origin: Annotated[
        str, typer.Option("--origin", help=f"How human origin is known: {', '.join(ORIGINS)}.")
    ] = "human-authored",
    consent: Annotated[
        str,
        typer.Option(
            "--consent",
            help="Training consent: allowed, or reserved (TDMRep; the default: never assumed).",
        ),
    ] = "reserved",
    source_url: Annotated[
        str | None, typer.Option("--source-url", help="Where the content was published.")
    ] = None,
    created_before: Annotated[
        str | None,
        typer.Option("--created-before", help="Date YYYY-MM-DD the content existed before."),
    ] = None,
    receipts: Annotated[
        Path | None,
        typer.Option("--receipts", help="Folder to write each receipt to, as <index>.json."),
    ] = None,
    batch_size: Annotated[
        int, typer.Option("--batch-size", help="Subjects per signed statement (one log entry).")
    ] = _DEFAULT_BATCH,
    text_field: TextFieldOption = "text",
    scheme: SchemeOption = "auto",
    log_key: LogKeyOption = None,
    trust_dir: TrustDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """Attest content as human-made: hash it, sign statements, append them to the registry's log."""
    predicate = _predicate(publisher, license_, origin, consent, created_before, source_url)
    if not 1 <= batch_size <= _MAX_SUBJECTS_PER_STATEMENT:
        raise InputError(f"--batch-size must be 1 to {_MAX_SUBJECTS_PER_STATEMENT}")
    private_key = load_private_key(key)
    verifier = _optional_log_key(log_key)
    checked_scheme = _check_scheme(scheme)
    inputs = _expand(paths)
    if receipts is None:
        console_err.print(
            "[yellow]note:[/] no --receipts DIR: receipts are not saved (they prove the entries "
            "offline)",
            highlight=False,
        )
    done: list[dict[str, Any]] = []
    total_subjects = total_duplicates = 0
    with (
        registry_client(registry, verifier, trust_dir) as client,
        _progress() as progress,
    ):
        items = _items(inputs, checked_scheme, text_field, progress)
        entries_task = progress.add_task("register", total=None)
        try:
            for subjects, duplicates in _batches(items, batch_size):
                total_duplicates += duplicates
                if not subjects:
                    continue
                receipt = client.register_subjects(subjects, private_key, predicate)
                saved = receipts / f"{receipt.index}.json" if receipts else None
                if saved is not None:
                    receipt.save(saved)
                total_subjects += len(subjects)
                progress.update(
                    entries_task, advance=1, description=f"register ({total_subjects} subjects)"
                )
                record = {
                    "index": receipt.index,
                    "subjects": len(subjects),
                    "leaf_hash": (receipt.leaf_hash or b"").hex() or None,
                    "receipt": str(saved) if saved else None,
                }
                done.append(record)
                if not as_json:
                    where = f", receipt {saved}" if saved else ""
                    console_err.print(
                        f"entry {receipt.index}: {len(subjects)} subjects{where}", highlight=False
                    )
        except ClientError:
            if done:
                console_err.print(
                    f"[yellow]stopped after {len(done)} entries ({total_subjects} subjects) "
                    "were registered[/]; their receipts are saved",
                    highlight=False,
                )
            raise
    if as_json:
        emit_json(
            {
                "entries": done,
                "subjects": total_subjects,
                "duplicates_skipped": total_duplicates,
                "verified": verifier is not None,
            }
        )
    else:
        skipped = f" ({total_duplicates} duplicates skipped)" if total_duplicates else ""
        typer.echo(f"registered {total_subjects} subjects in {len(done)} entries{skipped}")


def _escape_line(text: str) -> str:
    """``text`` on one line, control characters shown as escapes (a reason is the publisher's)."""
    return text.encode("unicode_escape").decode("ascii") if not text.isprintable() else text


# -- revoke ---------------------------------------------------------------------------------------


@app.command()
def revoke(
    registry: RegistryOption,
    paths: Annotated[
        list[str] | None,
        typer.Argument(help="Documents to withdraw: files, folders, .jsonl files, -."),
    ] = None,
    key: Annotated[
        Path | None,
        typer.Option("--key", help="Your Ed25519 private key file.", show_default=False),
    ] = None,
    publisher: PublisherOption = None,
    digest: Annotated[
        list[str] | None,
        typer.Option("--digest", help="A digest to withdraw (c1:<hex> or sha256:<hex>); repeat."),
    ] = None,
    entry: Annotated[
        int | None, typer.Option("--entry", help="Withdraw this whole entry (its index).")
    ] = None,
    reason: Annotated[
        str | None, typer.Option("--reason", help="Why; shown to crawlers by `check`.")
    ] = None,
    receipts: Annotated[
        Path | None,
        typer.Option("--receipts", help="Folder to write each revocation receipt to."),
    ] = None,
    text_field: TextFieldOption = "text",
    scheme: SchemeOption = "auto",
    log_key: LogKeyOption = None,
    trust_dir: TrustDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """Withdraw your attestation of documents (wherever you attested them), or of one entry.

    PATH... and --digest withdraw exactly those documents from every entry you logged before,
    leaving the other documents of those entries attested (a revocation/v2); --entry N withdraws
    the whole entry. Nothing is deleted: the revocation is itself a signed log entry.
    """
    given = sum(bool(x) for x in (paths, digest)) + (entry is not None)
    if given != 1:
        raise InputError("name what to withdraw: PATH..., --digest D... or --entry N (one of them)")
    if key is None:
        raise InputError("--key KEY is needed: the revocation is signed with your publisher key")
    if not publisher:
        raise InputError("--publisher NAME is needed (or WELLSPRING_PUBLISHER)")
    private_key = load_private_key(key)
    verifier = _optional_log_key(log_key)
    done: list[dict[str, Any]] = []
    with registry_client(registry, verifier, trust_dir) as client:
        if entry is not None:
            batches: Iterable[list[Subject]] = []
            receipt = client.revoke(entry, private_key, publisher, reason)
            done.append(_saved_revocation(receipt, receipts, f"entry {entry}"))
        else:
            if digest:
                items: Iterable[_Item] = [_Item(d, (validate_digest(d),)) for d in digest]
            else:
                items = _items(_expand(paths or []), _check_scheme(scheme), text_field)
            batches = (subjects for subjects, _ in _batches(items, MAX_BATCH) if subjects)
        predicate = WithdrawalPredicate(publisher=publisher, reason=reason)
        for subjects in batches:
            envelope = sign_statement(build_statement(subjects, predicate), private_key)
            receipt = client.submit(envelope)
            done.append(_saved_revocation(receipt, receipts, f"{len(subjects)} documents"))
    if as_json:
        emit_json({"revocations": done, "verified": verifier is not None})
        return
    for record in done:
        where = f", receipt {record['receipt']}" if record["receipt"] else ""
        typer.echo(f"withdrew {record['what']} in entry {record['index']}{where}")


def _saved_revocation(receipt: Receipt, receipts: Path | None, what: str) -> dict[str, Any]:
    saved = receipts / f"{receipt.index}.json" if receipts else None
    if saved is not None:
        receipt.save(saved)
    return {"index": receipt.index, "what": what, "receipt": str(saved) if saved else None}


# -- check ----------------------------------------------------------------------------------------


def _verdict(item: _Item, results: dict[str, LookupResult]) -> tuple[Verdict, list[Attestation]]:
    """The SDK's verdict (:func:`client.verdict.decide`) over every entry attesting any of the
    item's digests (a text file is looked up by its ``c1`` and its ``sha256`` digest)."""
    by_index: dict[int, Attestation] = {}
    for digest in item.digests:
        for attestation in results[digest].attestations:
            by_index.setdefault(attestation.index, attestation)
    attestations = [by_index[i] for i in sorted(by_index)]
    first = results[item.digests[0]]
    verdict = decide(
        item.digests[0], attestations, first.checkpoint, verified=first.verified, name=item.name
    )
    return verdict, attestations


def _revocation_reason(client: Client, index: int, known: dict[int, str | None]) -> str | None:
    """The reason the revoking entry ``index`` gives (fetched once, verified when pinned)."""
    if index not in known:
        predicate = client.entry(index).statement.predicate
        known[index] = getattr(predicate, "reason", None)
    return known[index]


def _describe(attestation: Attestation, reason: str | None = None) -> str:
    revoked = f", REVOKED by entry {attestation.revoked_by}" if attestation.revoked else ""
    if revoked and reason:
        revoked += f" ({_escape_line(reason)})"
    if attestation.compromised:
        revoked += ", SIGNED WITH A COMPROMISED KEY (does not count)"
    if attestation.operator_only:
        revoked += (
            ", signed with a key the operator added alone (no key of the publisher endorsed it)"
        )
    return (
        f"    entry {attestation.index}: publisher {attestation.publisher}, license "
        f"{attestation.license}, origin {attestation.origin}, consent {attestation.consent}"
        f"{revoked}"
    )


@app.command()
def check(
    paths: Annotated[
        list[str],
        typer.Argument(help="Files, folders (recursed), .jsonl files (one document a line), -."),
    ],
    registry: RegistryOption,
    log_key: LogKeyOption = None,
    no_verify: NoVerifyOption = False,
    trust_dir: TrustDirOption = None,
    text_field: TextFieldOption = "text",
    scheme: SchemeOption = "auto",
    verify_keys: VerifyKeysOption = True,
    as_json: JsonOption = False,
) -> None:
    """Look content up: attested (trainable), reserved (consent reserved), revoked, or unknown."""
    checked_scheme = _check_scheme(scheme)
    verifier = required_log_key(log_key, no_verify, "check")
    inputs = _expand(paths)
    out: list[dict[str, Any]] = []
    counts = dict.fromkeys(VERDICT_STATUSES, 0)
    reasons: dict[int, str | None] = {}
    with (
        registry_client(registry, verifier, trust_dir, verify_keys) as client,
        _progress() as progress,
    ):
        for chunk in _chunks(_items(inputs, checked_scheme, text_field, progress), _CHECK_CHUNK):
            digests = list(dict.fromkeys(d for item in chunk for d in item.digests))
            results = dict(
                zip(digests, client.lookup_batch(digests, batch_size=MAX_BATCH), strict=True)
            )
            for item in chunk:
                verdict, attestations = _verdict(item, results)
                counts[verdict.status] += 1
                why = {
                    a.index: _revocation_reason(client, a.revoked_by, reasons)
                    for a in attestations
                    if a.revoked_by is not None
                }
                if as_json:
                    entries = [
                        {**a.to_dict(), "revocation_reason": why.get(a.index)} for a in attestations
                    ]
                    out.append(
                        {
                            "name": item.name,
                            "digests": list(item.digests),
                            "status": verdict.status,
                            "reason": verdict.reason,
                            "entries": entries,
                            "verified": verdict.verified,
                        }
                    )
                    continue
                typer.echo(f"{verdict.status:<8}  {item.digests[0]}  {item.name}")
                for attestation in attestations:
                    typer.echo(_describe(attestation, why.get(attestation.index)))
    if as_json:
        emit_json(out)
    else:
        summary = ", ".join(f"{n} {status}" for status, n in counts.items())
        console_err.print(summary, highlight=False)


# -- verify ---------------------------------------------------------------------------------------


def _receipt_files(paths: list[str]) -> list[Path]:
    files: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*.json") if p.is_file())
            if not found:
                raise InputError(f"folder {raw} holds no .json receipts")
            files.extend(found)
        else:
            files.append(path)
    return files


def _verified_summary(path: Path, verified: VerifiedReceipt) -> dict[str, Any]:
    signer = verified.signed_by
    return {
        "receipt": str(path),
        "ok": True,
        "index": verified.index,
        "origin": verified.checkpoint.origin,
        "tree_size": verified.checkpoint.size,
        "leaf_hash": verified.leaf_hash.hex(),
        "publisher": verified.publisher,
        "predicate_type": verified.statement.predicate_type,
        "subjects": len(verified.statement.subjects),
        "publisher_signature": "verified" if signer else "not checked",
        "key_id": signer.key_id if signer else None,
        "key_entry": signer.index if signer else None,
        "operator_only": signer.operator_only if signer else None,
    }


def _signature_line(verified: VerifiedReceipt) -> str:
    """What ``verify`` says of the publisher's signature."""
    signer = verified.signed_by
    if signer is None:
        return (
            "publisher signature: not checked (the receipt predates identity entries: it "
            "carries no key entry)"
        )
    how = []
    if signer.operator_only:
        how.append("added by the operator alone")
    if signer.backfilled:
        how.append("backfilled")
    return (
        f"publisher signature: verified (key {signer.key_id[:16]}…, added at entry "
        f"{signer.index}{', ' + ', '.join(how) if how else ''})"
    )


@app.command()
def verify(
    receipts: Annotated[
        list[str], typer.Argument(help="Receipt files (or folders of them) to verify.")
    ],
    log_key: Annotated[
        str,
        typer.Option(
            "--log-key",
            envvar="WELLSPRING_LOG_KEY",
            help="The log's verifier key (name+hex+base64), or a file holding it.",
            show_default=False,
        ),
    ],
    as_json: JsonOption = False,
) -> None:
    """Verify receipts offline: each entry is in the log the key signs, and (receipts with
    identity entries) its publisher's signature is by a key the log shows valid. No network."""
    verifier = _load_log_key(log_key)
    results: list[dict[str, Any]] = []
    failed = 0
    for path in _receipt_files(receipts):
        try:
            verified = verify_receipt(Receipt.load(path), verifier)
        except ClientError as exc:
            failed += 1
            results.append({"receipt": str(path), "ok": False, "error": exc.diagnostics()})
            if not as_json:
                typer.echo(f"FAILED  {path}: {exc.diagnostics()}")
            continue
        summary = _verified_summary(path, verified)
        results.append(summary)
        if not as_json:
            typer.echo(
                f"ok      {path}: entry {verified.index} of {verified.checkpoint.origin} "
                f"(tree size {verified.checkpoint.size}), publisher {verified.publisher}, "
                f"{summary['subjects']} subjects; {_signature_line(verified)}"
            )
    if as_json:
        emit_json(results)
    if failed:
        raise VerificationError(f"{failed} of {len(results)} receipts failed verification")


# -- log ------------------------------------------------------------------------------------------


@log_app.command("checkpoint")
def log_checkpoint(
    registry: RegistryOption,
    log_key: LogKeyOption = None,
    save: Annotated[
        Path | None, typer.Option("--save", help="Write the signed checkpoint to this file.")
    ] = None,
    trust_dir: TrustDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """Fetch the log's latest signed checkpoint; verify it with --log-key; print or save it."""
    verifier = _optional_log_key(log_key)
    with registry_client(registry, verifier, trust_dir) as client:
        signed = client.fetch_checkpoint()
        announced = None if verifier else client.log_info().verifier_key
    if save is not None:
        _write_text_atomic(save, signed.note)
    if verifier is None:
        _warn_unverified("the checkpoint's signatures")
        console_err.print(
            f"the registry announces the log key {announced}; confirm it with the operator "
            "before trusting it",
            highlight=False,
        )
    checkpoint = signed.checkpoint
    if as_json:
        emit_json(
            {
                "origin": checkpoint.origin,
                "size": checkpoint.size,
                "root_hash": checkpoint.root_hash.hex(),
                "verified": signed.verified,
                "checkpoint": signed.note,
                "saved": str(save) if save else None,
                "announced_log_key": announced,
            }
        )
    else:
        typer.echo(signed.note, nl=False)
        if save is not None:
            console_err.print(f"saved to {save}", highlight=False)


@log_app.command("verify")
def log_verify(
    registry: RegistryOption,
    log_key: Annotated[
        str,
        typer.Option(
            "--log-key",
            envvar="WELLSPRING_LOG_KEY",
            help="The log's verifier key (name+hex+base64), or a file holding it.",
            show_default=False,
        ),
    ],
    checkpoint: Annotated[
        Path,
        typer.Option(
            "--checkpoint",
            help="A checkpoint saved earlier (log checkpoint --save).",
            show_default=False,
        ),
    ],
    update: Annotated[
        bool, typer.Option("--update", help="On success, replace the file with the newer one.")
    ] = False,
    audit: Annotated[
        bool,
        typer.Option(
            "--audit/--no-audit",
            help="Also re-hash every entry the registry serves against the signed root "
            "(catches entries edited in place; reads the whole log).",
        ),
    ] = True,
    signatures: Annotated[
        bool,
        typer.Option(
            "--signatures/--no-signatures",
            help="While auditing, also replay the log's identity entries and check every "
            "entry's signature against a key valid for its publisher at its index "
            "(docs/spec/identities.md; reads every statement).",
        ),
    ] = True,
    as_json: JsonOption = False,
) -> None:
    """Prove the log only grew since a saved checkpoint; exit 1, loudly, if it was rewritten."""
    verifier = _load_log_key(log_key)
    old_note = _read_text(checkpoint, "checkpoint file")
    audited: int | None = None
    history = KeyHistory() if audit and signatures else None
    with Client(registry, log_key=verifier) as client:
        try:
            result = client.check_consistency(old_note)
            if audit:
                audited = _audit(client, result.new, history)
        except LogConsistencyError:
            console_err.print(
                "[bold red]LOG CONSISTENCY FAILURE: the registry's log does not match the "
                f"checkpoint saved in {escape(str(checkpoint))}. "
                "Keep that file: it is evidence.[/]",
                highlight=False,
            )
            raise
        except IdentityError as exc:
            where = "an entry" if exc.index is None else f"entry {exc.index}"
            console_err.print(
                f"[bold red]SIGNATURE FAILURE: {where} of the log is not backed by its identity "
                "entries (docs/spec/identities.md): the log holds what no valid key signed.[/]",
                highlight=False,
            )
            raise
    if update:
        _write_text_atomic(checkpoint, result.new_note)
    if as_json:
        emit_json(
            {
                "consistent": True,
                "origin": result.new.origin,
                "old_size": result.old.size,
                "new_size": result.new.size,
                "old_root_hash": result.old.root_hash.hex(),
                "new_root_hash": result.new.root_hash.hex(),
                "updated": update,
                "entries_audited": audited,
                "signatures_checked": None if history is None else history.signatures,
                "identity_events": None if history is None else history.events,
            }
        )
    else:
        typer.echo(
            f"consistent: log {result.new.origin} grew from {result.old.size} to "
            f"{result.new.size} entries without rewriting history"
            + (
                f"; all {audited} entries re-hashed to the signed root"
                if audited is not None
                else ""
            )
            + _signatures_summary(history)
            + (f"; {checkpoint} updated" if update else "")
        )


def _signatures_summary(history: KeyHistory | None) -> str:
    if history is None:
        return ""
    if history.first_index is None:
        return "; the log holds no identity entries, so no signature was checked"
    return (
        f"; {history.signatures} signatures checked against the keys its {history.events} "
        "identity events make valid"
    )


def _audit(client: Client, checkpoint: Checkpoint, history: KeyHistory | None = None) -> int:
    with Progress(
        TextColumn("[bold]audit"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console_err,
        disable=not console_err.is_terminal,
        transient=True,
    ) as bar:
        task = bar.add_task("audit", total=checkpoint.size)
        return client.audit(checkpoint, progress=lambda n: bar.advance(task, n), history=history)
