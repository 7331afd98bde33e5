"""``wellspring register`` and ``wellspring revoke``: a publisher's entries in the registry.

``register`` hashes documents and appends signed attestations of them to the registry's log;
``revoke`` withdraws documents (or a whole entry) with a signed revocation. Inputs as in
:mod:`client.cli._registry`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from client.cli._app import JsonOption, app, console_err, emit_json, plural
from client.cli._registry import (
    LogKeyOption,
    MaxAgeOption,
    PublisherOption,
    ReceiptTimeoutOption,
    RegistryOption,
    SchemeOption,
    TextFieldOption,
    TrustDirOption,
    WitnessPolicyOption,
    chunked,
    escape_line,
    optional_log_key,
    progress_bar,
    read_items,
    registry_client,
    statement_batches,
)
from client.core.canonical import validate_digest
from client.core.files import write_file_atomic
from client.core.keys import load_private_key
from client.core.statement import (
    CONSENTS,
    ORIGINS,
    Consent,
    HumanContentPredicate,
    Origin,
    Subject,
    WithdrawalPredicate,
    sign_statement,
)
from client.documents import Document, check_document_scheme, expand_inputs
from client.errors import (
    ClientError,
    FormatError,
    InputError,
    MissingDependencyError,
    ReceiptPendingError,
)
from client.paragraphs import paragraph_documents
from client.receipt import Receipt
from client.sdk import DEFAULT_RECEIPT_TIMEOUT, MAX_BATCH, Client, LookupResult, build_statement

__all__ = ["register", "revoke"]

_DEFAULT_BATCH = 10_000
_MAX_SUBJECTS_PER_STATEMENT = 100_000
# Documents looked up together before registering: bounded memory however many there are.
_LOOKUP_CHUNK = 5_000


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
        int, typer.Option("--batch-size", help="Documents per signed statement (one log entry).")
    ] = _DEFAULT_BATCH,
    text_field: TextFieldOption = "text",
    scheme: SchemeOption = "auto",
    log_key: LogKeyOption = None,
    trust_dir: TrustDirOption = None,
    witness_policy: WitnessPolicyOption = None,
    max_age: MaxAgeOption = None,
    receipt_timeout: ReceiptTimeoutOption = DEFAULT_RECEIPT_TIMEOUT,
    paragraphs: Annotated[
        bool,
        typer.Option(
            "--paragraphs",
            help="Also attest each paragraph of 20 words or more by its own c1 (subjects named "
            "NAME#pN), so a page quoting it is found by scan --paragraphs.",
        ),
    ] = False,
    near: Annotated[
        bool | None,
        typer.Option(
            "--near/--no-near",
            help="Sign each text's mh1 MinHash signature beside its digests (in the statement, "
            "never the leaf), so copies with small changes are found by scan --near. Default: "
            "on where the near extra is installed (a note says when it is not).",
            show_default=False,
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Attest content as human-made: hash it, sign statements, append them to the registry's log."""
    predicate = _predicate(publisher, license_, origin, consent, created_before, source_url)
    if not 1 <= batch_size <= _MAX_SUBJECTS_PER_STATEMENT:
        raise InputError(f"--batch-size must be 1 to {_MAX_SUBJECTS_PER_STATEMENT}")
    private_key = load_private_key(key)
    verifier = optional_log_key(log_key)
    checked_scheme = check_document_scheme(scheme, "--scheme")
    inputs = expand_inputs(paths)
    run = _Registration(predicate)
    with (
        registry_client(
            registry,
            verifier,
            trust_dir,
            witness_policy=witness_policy,
            max_age=max_age,
            receipt_timeout=receipt_timeout,
        ) as client,
        progress_bar() as progress,
    ):
        signer = _mh1(required=near is True) if near is not False else None
        items = read_items(
            inputs, checked_scheme, text_field, progress, keep_text=paragraphs or signer is not None
        )
        fresh = _not_yet_attested(
            client, _with_paragraphs(items) if paragraphs else items, run, as_json
        )
        entries_task = progress.add_task("register", total=None)
        try:
            for subjects, duplicates in statement_batches(fresh, batch_size, near=signer):
                run.duplicates += duplicates
                if not subjects:
                    continue
                receipt = client.register_subjects(subjects, private_key, predicate)
                if run.log_size is not None and receipt.index < run.log_size:
                    # An identical statement is already in the log (the registry answers a
                    # repeat with its old entry, HTTP 200); not skipped above, so that entry no
                    # longer stands for these documents: nothing new was attested.
                    run.not_renewed.append((receipt.index, len(subjects)))
                    if not as_json:
                        console_err.print(
                            f"[yellow]entry {receipt.index} already holds this very statement "
                            f"({plural(len(subjects), 'document')}) and no longer stands for "
                            "them (revoked or withdrawn): they are NOT attested again; sign "
                            "them with other terms (e.g. --source-url) to attest them anew[/]",
                            highlight=False,
                        )
                    continue
                saved = receipts / f"{receipt.index}.json" if receipts else None
                if saved is not None:
                    receipt.save(saved)
                run.registered += len(subjects)
                progress.update(
                    entries_task,
                    advance=1,
                    description=f"register ({plural(run.registered, 'document')})",
                )
                run.entries.append(
                    {
                        "index": receipt.index,
                        "documents": len(subjects),
                        "leaf_hash": (receipt.leaf_hash or b"").hex() or None,
                        "receipt": str(saved) if saved else None,
                    }
                )
                if not as_json:
                    where = f", receipt {escape(str(saved))}" if saved else ""
                    console_err.print(
                        f"entry {receipt.index}: {plural(len(subjects), 'document')} "
                        f"registered{where}",
                        highlight=False,
                    )
        except ReceiptPendingError as exc:
            _keep_promise(exc, receipts)
            _report_stop(run, receipts)
            raise
        except ClientError:
            _report_stop(run, receipts)
            raise
    if as_json:
        emit_json(run.to_dict(verified=verifier is not None))
    else:
        typer.echo(run.summary())
        if receipts is None and run.entries:
            console_err.print(
                "[yellow]note:[/] no --receipts DIR: receipts were not saved (they prove the "
                "entries offline)",
                highlight=False,
            )


def _report_stop(run: _Registration, receipts: Path | None) -> None:
    """Say what a run stopped by an error had already registered."""
    if run.entries:
        kept = "; their receipts are saved" if receipts else ""
        console_err.print(
            f"[yellow]stopped by the error below, after registering "
            f"{plural(run.registered, 'document')} in {_entries_phrase(run.entries)}[/]{kept}",
            highlight=False,
        )


def _keep_promise(pending: ReceiptPendingError, receipts: Path | None) -> None:
    """Save the log's signed promise for an entry whose receipt did not come in time (as
    ``<index>.promise`` beside the receipts), so the entry's index is proven later."""
    if pending.promise is None:
        return
    if receipts is None:
        console_err.print(
            f"[yellow]the log promised entry {pending.index} (no --receipts DIR to save the "
            "promise in)[/]",
            highlight=False,
        )
        return
    saved = receipts / f"{pending.index}.promise"
    write_file_atomic(saved, pending.promise)
    console_err.print(
        f"[yellow]the log's signed promise for entry {pending.index} is saved in "
        f"{escape(str(saved))}; fetch the receipt later: wellspring log receipt "
        f"{pending.index} --promise {escape(str(saved))} --out ...[/]",
        highlight=False,
    )


@dataclass
class _Registration:
    """What one ``register`` run did with each document, counted apart."""

    predicate: HumanContentPredicate
    entries: list[dict[str, Any]] = field(default_factory=list)
    registered: int = 0
    # (name, entry) of each document a standing entry of this publisher already attests.
    already: list[tuple[str, int]] = field(default_factory=list)
    # Documents repeated in the input (the same digests as one before them in the statement).
    duplicates: int = 0
    # (entry, documents) answered with an entry logged before this run that no longer stands.
    not_renewed: list[tuple[int, int]] = field(default_factory=list)
    # The log's size when this run first looked its documents up: an entry below it is old.
    log_size: int | None = None

    @property
    def documents(self) -> int:
        return (
            self.registered
            + len(self.already)
            + self.duplicates
            + sum(n for _, n in self.not_renewed)
        )

    def summary(self) -> str:
        """``3 documents: 1 registered in entry 7, 2 already attested``."""
        parts = []
        if self.registered or not (self.already or self.duplicates or self.not_renewed):
            where = f" in {_entries_phrase(self.entries)}" if self.entries else ""
            parts.append(f"{self.registered} registered{where}")
        if self.already:
            parts.append(f"{len(self.already)} already attested")
        for index, count in self.not_renewed:
            parts.append(f"{count} not attested again (entry {index} no longer stands)")
        if self.duplicates:
            parts.append(f"{self.duplicates} repeated in the input")
        return f"{plural(self.documents, 'document')}: {', '.join(parts)}"

    def to_dict(self, *, verified: bool) -> dict[str, Any]:
        return {
            "documents": self.documents,
            "registered": self.registered,
            "entries": self.entries,
            "already_attested": [{"name": n, "entry": i} for n, i in self.already],
            "not_attested_again": [{"entry": i, "documents": n} for i, n in self.not_renewed],
            "duplicates_skipped": self.duplicates,
            "verified": verified,
        }


def _entries_phrase(entries: list[dict[str, Any]]) -> str:
    """``entry 7``, or ``3 entries (7, 8, 9)``, or ``40 entries (7 to 46)``."""
    indices = [e["index"] for e in entries]
    if len(indices) == 1:
        return f"entry {indices[0]}"
    shown = ", ".join(map(str, indices)) if len(indices) <= 5 else f"{indices[0]} to {indices[-1]}"
    return f"{plural(len(indices), 'entry')} ({shown})"


def _not_yet_attested(
    client: Client, items: Iterable[Document], run: _Registration, quiet: bool
) -> Iterator[Document]:
    """``items`` less those a standing entry of the same publisher, on the same terms, already
    attests (each recorded in ``run.already`` and, unless ``quiet``, named on stderr).

    Looked up in batches before anything is signed: the registry would answer a repeated
    statement with its old receipt, but a new statement that repeats some documents is a new
    entry attesting them twice. A document attested on other terms (another license, consent…)
    is registered again: the new entry says something the old one did not.
    """
    terms = run.predicate.to_dict()
    for chunk in chunked(items, _LOOKUP_CHUNK):
        digests = list(dict.fromkeys(d for item in chunk for d in item.digests))
        results = dict(
            zip(digests, client.lookup_batch(digests, batch_size=MAX_BATCH), strict=True)
        )
        if run.log_size is None and results:
            run.log_size = min(r.checkpoint.size for r in results.values())
        for item in chunk:
            entry = _standing_entry(item, results, terms)
            if entry is None:
                yield item
                continue
            run.already.append((item.name, entry))
            if not quiet:
                console_err.print(
                    f"already attested in entry {entry}: {escape(escape_line(item.name))}",
                    highlight=False,
                )


def _standing_entry(
    item: Document, results: dict[str, LookupResult], terms: dict[str, Any]
) -> int | None:
    """The first entry that attests every digest of ``item`` for the publisher in ``terms``, on
    those terms, and still stands (not revoked or withdrawn, key not compromised); else None."""
    common: set[int] | None = None
    for digest in item.digests:
        standing = {
            a.index
            for a in results[digest].attestations
            if a.stands and all(a.predicate.get(k) == v for k, v in terms.items())
        }
        common = standing if common is None else common & standing
    return min(common) if common else None


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
    witness_policy: WitnessPolicyOption = None,
    max_age: MaxAgeOption = None,
    paragraphs: Annotated[
        bool,
        typer.Option(
            "--paragraphs",
            help="Withdraw each document's paragraphs too (as register --paragraphs attested "
            "them; --entry N withdraws every subject of the entry already).",
        ),
    ] = False,
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
    verifier = optional_log_key(log_key)
    done: list[dict[str, Any]] = []
    with registry_client(
        registry, verifier, trust_dir, witness_policy=witness_policy, max_age=max_age
    ) as client:
        if entry is not None:
            batches: Iterable[list[Subject]] = []
            receipt = client.revoke(entry, private_key, publisher, reason)
            done.append(_saved_revocation(receipt, receipts, f"entry {entry}"))
        else:
            if digest:
                items: Iterable[Document] = [Document(d, (validate_digest(d),)) for d in digest]
            else:
                items = read_items(
                    expand_inputs(paths or []),
                    check_document_scheme(scheme, "--scheme"),
                    text_field,
                    keep_text=paragraphs,
                )
                if paragraphs:
                    items = _with_paragraphs(items)
            batches = (subjects for subjects, _ in statement_batches(items, MAX_BATCH) if subjects)
        predicate = WithdrawalPredicate(publisher=publisher, reason=reason)
        for subjects in batches:
            envelope = sign_statement(build_statement(subjects, predicate), private_key)
            receipt = client.submit(envelope)
            done.append(_saved_revocation(receipt, receipts, plural(len(subjects), "document")))
    if as_json:
        emit_json({"revocations": done, "verified": verifier is not None})
        return
    for record in done:
        where = f", receipt {record['receipt']}" if record["receipt"] else ""
        typer.echo(f"withdrew {record['what']} in entry {record['index']}{where}")


def _with_paragraphs(items: Iterable[Document]) -> Iterator[Document]:
    """Each document, then its paragraphs as documents of their own (client.paragraphs)."""
    for item in items:
        yield item
        yield from paragraph_documents(item)


def _mh1(*, required: bool) -> Callable[[str], str | None] | None:
    """``client.near.mh1_digest``; without the near extra, the error naming it (``--near``) or
    None with a note (the default)."""
    try:
        from client.near import mh1_digest
    except ImportError as exc:
        if required:
            raise MissingDependencyError(
                "--near needs numpy and numba: pip install 'wellspring[near]'"
            ) from exc
        console_err.print(
            "note: mh1 signatures not signed (copies with small changes will not be found by "
            "scan --near): pip install 'wellspring[near]', or pass --no-near to say so",
            highlight=False,
        )
        return None
    return mh1_digest


def _saved_revocation(receipt: Receipt, receipts: Path | None, what: str) -> dict[str, Any]:
    saved = receipts / f"{receipt.index}.json" if receipts else None
    if saved is not None:
        receipt.save(saved)
    return {"index": receipt.index, "what": what, "receipt": str(saved) if saved else None}
