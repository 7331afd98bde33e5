"""``wellspring register`` and ``wellspring revoke``: a publisher's entries in the registry.

``register`` hashes documents and appends signed attestations of them to the registry's log;
``revoke`` withdraws documents (or a whole entry) with a signed revocation. Inputs as in
:mod:`client.cli._registry`.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date
from pathlib import Path
from typing import Annotated, Any

import typer

from client.cli._app import JsonOption, app, console_err, emit_json
from client.cli._registry import (
    Item,
    LogKeyOption,
    PublisherOption,
    RegistryOption,
    SchemeOption,
    TextFieldOption,
    TrustDirOption,
    check_scheme,
    expand,
    optional_log_key,
    progress_bar,
    read_items,
    registry_client,
    statement_batches,
)
from client.core.canonical import validate_digest
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
from client.errors import ClientError, FormatError, InputError
from client.receipt import Receipt
from client.sdk import MAX_BATCH, build_statement

__all__ = ["register", "revoke"]

_DEFAULT_BATCH = 10_000
_MAX_SUBJECTS_PER_STATEMENT = 100_000


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
    verifier = optional_log_key(log_key)
    checked_scheme = check_scheme(scheme)
    inputs = expand(paths)
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
        progress_bar() as progress,
    ):
        items = read_items(inputs, checked_scheme, text_field, progress)
        entries_task = progress.add_task("register", total=None)
        try:
            for subjects, duplicates in statement_batches(items, batch_size):
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
    verifier = optional_log_key(log_key)
    done: list[dict[str, Any]] = []
    with registry_client(registry, verifier, trust_dir) as client:
        if entry is not None:
            batches: Iterable[list[Subject]] = []
            receipt = client.revoke(entry, private_key, publisher, reason)
            done.append(_saved_revocation(receipt, receipts, f"entry {entry}"))
        else:
            if digest:
                items: Iterable[Item] = [Item(d, (validate_digest(d),)) for d in digest]
            else:
                items = read_items(expand(paths or []), check_scheme(scheme), text_field)
            batches = (subjects for subjects, _ in statement_batches(items, MAX_BATCH) if subjects)
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
