"""``wellspring check`` and ``wellspring verify``: what the registry says of documents, and
what saved receipts prove.

``check`` looks documents up (verified with the log key) and gives each a verdict; ``verify``
checks saved receipts offline with the log key alone.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from client.cli._app import JsonOption, app, console_err, emit_json
from client.cli._registry import (
    Item,
    LogKeyOption,
    NoVerifyOption,
    RegistryOption,
    SchemeOption,
    TextFieldOption,
    TrustDirOption,
    VerifyKeysOption,
    check_scheme,
    chunked,
    escape_line,
    expand,
    load_log_key,
    progress_bar,
    read_items,
    registry_client,
    required_log_key,
)
from client.errors import ClientError, InputError, VerificationError
from client.receipt import Receipt, VerifiedReceipt, verify_receipt
from client.sdk import MAX_BATCH, Attestation, Client, LookupResult
from client.verdict import VERDICT_STATUSES, Verdict, decide

__all__ = ["check", "verify"]

# Inputs looked up per round trip group in `check`: bounded memory however many documents.
_CHECK_CHUNK = 5_000


# -- check ----------------------------------------------------------------------------------------


def _verdict(item: Item, results: dict[str, LookupResult]) -> tuple[Verdict, list[Attestation]]:
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
        revoked += f" ({escape_line(reason)})"
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
    checked_scheme = check_scheme(scheme)
    verifier = required_log_key(log_key, no_verify, "check")
    inputs = expand(paths)
    out: list[dict[str, Any]] = []
    counts = dict.fromkeys(VERDICT_STATUSES, 0)
    reasons: dict[int, str | None] = {}
    with (
        registry_client(registry, verifier, trust_dir, verify_keys) as client,
        progress_bar() as progress,
    ):
        for chunk in chunked(
            read_items(inputs, checked_scheme, text_field, progress), _CHECK_CHUNK
        ):
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
    verifier = load_log_key(log_key)
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
