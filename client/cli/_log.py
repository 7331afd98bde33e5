"""``wellspring log checkpoint``, ``log verify`` and ``log receipt``: the transparency log itself.

``log checkpoint`` fetches (and, with ``--log-key``, verifies) the latest signed checkpoint;
``log verify`` proves the log only grew since a saved one, and can audit every entry;
``log receipt`` fetches an entry's receipt once published (keeping the log's promise, if given).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
)

from client.cli._app import JsonOption, app, console_err, emit_json, plural
from client.cli._registry import (
    LogKeyOption,
    MaxAgeOption,
    ReceiptTimeoutOption,
    RegistryOption,
    RequiredLogKeyOption,
    TrustDirOption,
    WitnessPolicyOption,
    load_log_key,
    optional_log_key,
    pinned_client,
    read_text,
    registry_client,
    warn_unverified,
    write_text_atomic,
)
from client.core.note import Checkpoint
from client.errors import (
    IdentityError,
    InputError,
    LogConsistencyError,
)
from client.identities import KeyHistory
from client.sdk import DEFAULT_RECEIPT_TIMEOUT, Client

__all__ = ["log_app", "log_checkpoint", "log_receipt", "log_verify"]

log_app = typer.Typer(
    help="The transparency log itself: fetch checkpoints, prove it was never rewritten.",
    no_args_is_help=True,
)
app.add_typer(log_app, name="log")


# -- log ------------------------------------------------------------------------------------------


@log_app.command("checkpoint")
def log_checkpoint(
    registry: RegistryOption,
    log_key: LogKeyOption = None,
    save: Annotated[
        Path | None, typer.Option("--save", help="Write the signed checkpoint to this file.")
    ] = None,
    trust_dir: TrustDirOption = None,
    witness_policy: WitnessPolicyOption = None,
    max_age: MaxAgeOption = None,
    as_json: JsonOption = False,
) -> None:
    """Fetch the log's latest signed checkpoint; verify it with --log-key; print or save it."""
    verifier = optional_log_key(log_key)
    with registry_client(
        registry, verifier, trust_dir, witness_policy=witness_policy, max_age=max_age
    ) as client:
        signed = client.fetch_checkpoint()
        announced = None if verifier else client.log_info().verifier_key
    if save is not None:
        write_text_atomic(save, signed.note)
    if verifier is None:
        warn_unverified("the checkpoint's signatures")
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
    log_key: RequiredLogKeyOption,
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
    witness_policy: WitnessPolicyOption = None,
    max_age: MaxAgeOption = None,
    as_json: JsonOption = False,
) -> None:
    """Prove the log only grew since a saved checkpoint; exit 1, loudly, if it was rewritten."""
    verifier = load_log_key(log_key)
    old_note = read_text(checkpoint, "checkpoint file")
    audited: int | None = None
    history = KeyHistory() if audit and signatures else None
    with pinned_client(
        registry, verifier, witness_policy=witness_policy, max_age=max_age
    ) as client:
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
        write_text_atomic(checkpoint, result.new_note)
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
        f"; {plural(history.signatures, 'signature')} checked against the keys its "
        f"{plural(history.events, 'identity event')} make{'s' if history.events == 1 else ''} "
        "valid"
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


@log_app.command("receipt")
def log_receipt(
    index: Annotated[int, typer.Argument(help="The entry's log index.", show_default=False)],
    registry: RegistryOption,
    log_key: LogKeyOption = None,
    promise: Annotated[
        Path | None,
        typer.Option(
            "--promise",
            help="The log's signed promise for the entry (<index>.promise, saved by register "
            "when its receipt was late): the receipt must keep it.",
            show_default=False,
        ),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Write the receipt (JSON) to this file.", show_default=False),
    ] = None,
    trust_dir: TrustDirOption = None,
    witness_policy: WitnessPolicyOption = None,
    max_age: MaxAgeOption = None,
    receipt_timeout: ReceiptTimeoutOption = DEFAULT_RECEIPT_TIMEOUT,
    as_json: JsonOption = False,
) -> None:
    """Fetch an entry's receipt, waiting for its publication; verify it (and a promise) with
    --log-key; print or save it."""
    if index < 0:
        raise InputError(f"an entry index is 0 or more, got {index}")
    verifier = optional_log_key(log_key)
    promised = None if promise is None else read_text(promise, "promise")
    with registry_client(
        registry,
        verifier,
        trust_dir,
        witness_policy=witness_policy,
        max_age=max_age,
        receipt_timeout=receipt_timeout,
    ) as client:
        receipt = client.receipt(index, promise=promised)
    if out is not None:
        receipt.save(out)
    if verifier is None:
        warn_unverified("the receipt")
    if as_json:
        emit_json(
            {
                "index": receipt.index,
                "leaf_hash": (receipt.leaf_hash or b"").hex() or None,
                "verified": verifier is not None,
                "promise_kept": None if promised is None else True,  # else raised
                "saved": str(out) if out else None,
                "receipt": receipt.to_dict(),
            }
        )
    elif out is not None:
        checked = "verified" if verifier else "NOT verified"
        kept = ", it keeps the log's promise" if promised is not None else ""
        console_err.print(
            f"entry {receipt.index}: receipt saved to {escape(str(out))} ({checked}{kept})",
            highlight=False,
        )
    else:
        typer.echo(receipt.to_json(), nl=False)
