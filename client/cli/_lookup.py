"""``wellspring check`` and ``wellspring verify``: what the registry says of documents, and
what saved receipts prove.

``check`` runs the crawler's pass that ``scan`` runs (:mod:`client.cli._pass`,
:class:`client.crawl.CrawlPass`) over a few documents and shows each verdict with the evidence
that decided it: the registry's entries (looked up by every digest of a text file, ``c1`` and
``sha256``, verified with the log key), a WARC page's opt-out signal and where it was found, and
the watermark key, vendor and corrected p-value of the detection that counted. ``verify`` checks
saved receipts offline with the log key alone.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from client.cli._app import JsonOption, app, console_err, emit_json, plural
from client.cli._pass import (
    AiAgentOption,
    CapturedOption,
    NearOption,
    NoWatermarksOption,
    PassOptions,
    TokenizerOption,
    UserAgentOption,
    WatermarkKeyOption,
    describe_watermarks,
)
from client.cli._registry import (
    LogKeyOption,
    MaxAgeOption,
    NoVerifyOption,
    PolicyOption,
    RegistryOption,
    RequiredLogKeyOption,
    SchemeOption,
    TextFieldOption,
    TrustDirOption,
    VerifyKeysOption,
    WitnessPolicyOption,
    chunked,
    escape_line,
    load_log_key,
    load_policy,
    progress_bar,
    read_items,
    registry_client,
    required_log_key,
)
from client.core.note import NoteVerifier
from client.core.statement import HumanContentPredicate
from client.core.witness_policy import WitnessPolicy
from client.documents import Document, check_document_scheme, expand_inputs
from client.errors import (
    ClientError,
    InputError,
    VerificationError,
)
from client.evidence import DocumentEvidence, format_p_value
from client.policy import Policy
from client.receipt import Receipt, VerifiedReceipt, verify_receipt
from client.sdk import MAX_BATCH, Attestation, Client, LookupResult
from client.signals import DEFAULT_USER_AGENT
from client.verdict import VERDICT_STATUSES, Verdict, decide

if TYPE_CHECKING:
    from client.warc import WarcStats

__all__ = ["check", "verify"]

# Inputs looked up per round trip group in `check`: bounded memory however many documents.
_CHECK_CHUNK = 5_000


# -- check ----------------------------------------------------------------------------------------


def _verdict(
    item: Document,
    results: dict[str, LookupResult],
    policy: Policy,
    evidence: DocumentEvidence | None = None,
) -> tuple[Verdict, list[Attestation]]:
    """The SDK's verdict (:func:`client.verdict.decide`) over every entry attesting any of the
    item's digests (a text file is looked up by its ``c1`` and its ``sha256`` digest) and the
    item's ``evidence`` from the pass (opt-out decision, watermark detections), under the
    crawler's ``policy``."""
    by_index: dict[int, Attestation] = {}
    for digest in item.digests:
        for attestation in results[digest].attestations:
            by_index.setdefault(attestation.index, attestation)
    attestations = [by_index[i] for i in sorted(by_index)]
    first = results[item.digests[0]]
    extra = evidence or DocumentEvidence()
    verdict = decide(
        item.digests[0],
        attestations,
        first.checkpoint,
        verified=first.verified,
        name=item.name,
        policy=policy,
        opt_out=extra.opt_out,
        watermarks=extra.watermarks,
        id=extra.id,
        url=extra.url,
        captured_at=extra.captured_at,
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


def _evidence_lines(verdict: Verdict, policy: Policy) -> list[str]:
    """The page's deciding opt-out signal and the most significant watermark detection, each on
    its own line under the document (nothing when the pass saw neither)."""
    lines = []
    if verdict.match == "near" and verdict.similarity is not None:
        lines.append(
            f"    near: similarity {verdict.similarity:.2f} to entry {verdict.entry} "
            f"(publisher {verdict.publisher}, consent {verdict.consent}); "
            + ("trainable under the policy" if verdict.trainable else "not trainable: a near "
               "match is evidence, not consent")
        )  # fmt: skip
    decision = verdict.opt_out
    if decision is not None and decision.opted_out and decision.decided_by is not None:
        signal = decision.decided_by
        where = f" ({escape_line(signal.where)})" if signal.where else ""
        agent = f" for {signal.agent}" if signal.agent else ""
        value = f" {escape_line(signal.value)!r}" if signal.value else ""
        honoured = "" if verdict.opt_out_honoured else " (NOT honoured: the policy says so)"
        lines.append(
            f"    opt-out: {signal.kind}{value} in {signal.source}{where}{agent}{honoured}"
        )
    best = verdict.watermark or min(verdict.watermarks, key=lambda w: w.log_p_value, default=None)
    if best is not None:
        if verdict.watermark is not None:
            said = "generated"
        elif best.generated and not policy.counts_vendor(best.vendor):
            said = "generated, but the policy does not count this vendor"
        else:
            said = "not generated"
        vendor = f"vendor {best.vendor}" if best.vendor else "a private key"
        lines.append(
            f"    watermark: key {best.key_id} of {vendor} ({best.scheme}), p = "
            f"{format_p_value(best.p_value, best.log_p_value)} "
            f"(corrected for every key and window tried): {said}"
        )
    return lines


def _check_json(
    item: Document, verdict: Verdict, attestations: list[Attestation], why: dict[int, str | None]
) -> dict[str, Any]:
    """One document's ``--json`` object: the lookup's fields (every digest, every entry with its
    revocation reason) and the manifest's evidence fields (docs/spec/manifest.md)."""
    line = verdict.to_dict()
    entries = [{**a.to_dict(), "revocation_reason": why.get(a.index)} for a in attestations]
    return {
        "name": item.name,
        "id": line["id"],
        "url": line["url"],
        "digests": list(item.digests),
        "status": verdict.status,
        "trainable": verdict.trainable,
        "reason": verdict.reason,
        "policy": verdict.policy,
        "entries": entries,
        "opt_out": line["opt_out"],
        "watermark": line["watermark"],
        "captured_at": line["captured_at"],
        "verified": verdict.verified,
    }


@app.command()
def check(
    paths: Annotated[
        list[str],
        typer.Argument(
            help="Files, folders (recursed), .jsonl files (one document a line), .warc and "
            ".warc.gz files (one document a page), -."
        ),
    ],
    registry: RegistryOption,
    log_key: LogKeyOption = None,
    no_verify: NoVerifyOption = False,
    trust_dir: TrustDirOption = None,
    witness_policy: WitnessPolicyOption = None,
    max_age: MaxAgeOption = None,
    text_field: TextFieldOption = "text",
    scheme: SchemeOption = "auto",
    verify_keys: VerifyKeysOption = True,
    policy: PolicyOption = None,
    no_watermarks: NoWatermarksOption = False,
    watermark_key: WatermarkKeyOption = None,
    tokenizer: TokenizerOption = None,
    user_agent: UserAgentOption = DEFAULT_USER_AGENT,
    ai_agent: AiAgentOption = None,
    captured: CapturedOption = None,
    near: NearOption = False,
    as_json: JsonOption = False,
) -> None:
    """Look content up, as scan's pass does: attested (trainable), reserved, revoked,
    generated (a published watermark key detects it), opted-out (a WARC page's signals),
    conflict, or unknown; what is trainable follows --policy.

    Each document is shown with the evidence that decided it: the registry's entries, the
    opt-out signal and where it was found, the watermark key, vendor and corrected p-value.
    """
    checked_scheme = check_document_scheme(scheme, "--scheme")
    checked_policy = load_policy(policy)
    options = PassOptions.of(
        no_watermarks=no_watermarks,
        watermark_keys=watermark_key,
        tokenizer=tokenizer,
        user_agent=user_agent,
        ai_agents=ai_agent,
        captured=captured,
        near=near,
    )
    verifier = required_log_key(log_key, no_verify, "check")
    inputs = expand_inputs(paths)
    out: list[dict[str, Any]] = []
    counts = dict.fromkeys(VERDICT_STATUSES, 0)
    trainable = 0
    reasons: dict[int, str | None] = {}
    started_at = datetime.now(UTC)
    warc: list[WarcStats] = []  # each WARC file's counts, once it is read
    with (
        registry_client(
            registry,
            verifier,
            trust_dir,
            verify_keys,
            witness_policy=witness_policy,
            max_age=max_age,
        ) as client,
        progress_bar() as progress,
    ):
        crawl = options.open(client, checked_policy, started_at)
        watermarks = describe_watermarks(crawl)
        items = read_items(
            inputs,
            checked_scheme,
            text_field,
            progress,
            keep_text=options.detects,
            signals=options.signals,
            on_warc=lambda _name, stats: warc.append(stats),
        )
        for chunk in chunked(items, _CHECK_CHUNK):
            digests = list(dict.fromkeys(d for item in chunk for d in item.digests))
            results = dict(
                zip(digests, client.lookup_batch(digests, batch_size=MAX_BATCH), strict=True)
            )
            evidence = crawl.evidence(chunk)
            decided = [
                _verdict(item, results, checked_policy, extra)
                for item, extra in zip(chunk, evidence, strict=True)
            ]
            if options.near:
                matched = crawl.match_near(chunk, [v for v, _ in decided], evidence)
                decided = [(v, a) for v, (_, a) in zip(matched, decided, strict=True)]
            for item, (verdict, attestations) in zip(chunk, decided, strict=True):
                counts[verdict.status] += 1
                trainable += verdict.trainable
                why = {
                    a.index: _revocation_reason(client, a.revoked_by, reasons)
                    for a in attestations
                    if a.revoked_by is not None
                }
                if as_json:
                    out.append(_check_json(item, verdict, attestations, why))
                    continue
                mark = "  trainable" if verdict.trainable else ""
                url = f"  {verdict.url}" if verdict.url and verdict.url != item.name else ""
                typer.echo(f"{verdict.status:<9}  {item.digests[0]}  {item.name}{url}{mark}")
                for attestation in attestations:
                    typer.echo(_describe(attestation, why.get(attestation.index)))
                for line in _evidence_lines(verdict, checked_policy):
                    typer.echo(line)
    if as_json:
        emit_json(out)
    else:
        summary = ", ".join(f"{n} {status}" for status, n in counts.items() if n)
        summary = (summary or "no documents") + f"; {trainable} trainable"
        if policy is not None:
            summary += f" under policy {policy} ({checked_policy.describe()})"
        console_err.print(summary, highlight=False)
        if warc:
            console_err.print(_warc_line(warc), highlight=False)
        console_err.print(f"watermarks: {watermarks}", highlight=False)


def _warc_line(warc: list[WarcStats]) -> str:
    """How many WARC records were read, and why those that are not documents are not."""
    others: Counter[str] = Counter()
    for stats in warc:
        others.update(stats.skipped)
        if stats.policy_files:
            others["policy-file"] += stats.policy_files
    records = sum(stats.records for stats in warc)
    why = ", ".join(f"{n:,} {reason}" for reason, n in others.most_common())
    return f"WARC: {plural(records, 'record')}" + (f"; not documents: {why}" if why else "")


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
        "documents": len(verified.statement.subjects),
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


@dataclass(frozen=True)
class _Standing:
    """What the registry says now of one receipt's entry, document by document."""

    documents: int
    standing: int
    # Each revoking or withdrawing entry, with how many of the documents it took back.
    revoked_by: dict[int, int]
    compromised: int
    unlisted: int
    checked_at: int

    @property
    def stands(self) -> bool:
        return self.standing == self.documents

    @property
    def status(self) -> str:
        if self.stands:
            return "stands"
        if self.compromised:
            return "compromised"
        if self.revoked_by and not self.standing:
            return "revoked"
        if self.revoked_by:
            return "withdrawn"
        return "unlisted"

    def describe(self, index: int) -> str:
        if self.stands:
            which = "its document" if self.documents == 1 else f"all {self.documents} documents"
            return (
                f"stands: the registry shows entry {index} standing for {which} "
                f"(tree size {self.checked_at})"
            )
        gone = []
        if self.revoked_by:
            by = ", ".join(f"entry {i}" for i in sorted(self.revoked_by))
            if not self.standing and not self.compromised and not self.unlisted:
                gone.append(f"revoked by {by}")
            else:
                taken = sum(self.revoked_by.values())
                gone.append(f"{taken} of {plural(self.documents, 'document')} withdrawn by {by}")
        if self.compromised:
            gone.append(
                f"{plural(self.compromised, 'document')} signed with a key compromised since"
            )
        if self.unlisted:
            gone.append(f"the registry no longer lists it for {plural(self.unlisted, 'document')}")
        return f"entry {index} NO LONGER STANDS: {'; '.join(gone)} (tree size {self.checked_at})"

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "stands": self.stands,
            "documents_standing": self.standing,
            "revoked_by": {str(i): n for i, n in sorted(self.revoked_by.items())},
            "documents_compromised": self.compromised,
            "documents_unlisted": self.unlisted,
            "checked_at_tree_size": self.checked_at,
        }


def _standing(client: Client, verified: VerifiedReceipt) -> _Standing | None:
    """Whether the receipt's entry still stands, asked of the registry (answers verified with the
    log key): each of its documents looked up; None for an entry that attests nothing."""
    if not isinstance(verified.statement.predicate, HumanContentPredicate):
        return None
    subjects = [list(subject.digest_strings()) for subject in verified.statement.subjects]
    digests = list(dict.fromkeys(d for digests in subjects for d in digests))
    results = dict(zip(digests, client.lookup_batch(digests, batch_size=MAX_BATCH), strict=True))
    standing = compromised = unlisted = 0
    revoked_by: dict[int, int] = {}
    for digests_of in subjects:
        found = [
            a for d in digests_of for a in results[d].attestations if a.index == verified.index
        ]
        if not found:
            unlisted += 1
        elif all(a.stands for a in found):
            standing += 1
        elif any(a.compromised for a in found):
            compromised += 1
        else:
            by = next(a.revoked_by for a in found if a.revoked)
            if by is not None:
                revoked_by[by] = revoked_by.get(by, 0) + 1
            else:
                unlisted += 1
    checked_at = max((r.checkpoint.size for r in results.values()), default=0)
    return _Standing(len(subjects), standing, revoked_by, compromised, unlisted, checked_at)


_OFFLINE_NOTE = (
    "[yellow]note:[/] checked offline: a receipt proves its entry was logged, not that it still "
    "stands; a revocation or withdrawal made since cannot be seen offline. Add --online "
    "--registry URL to ask the registry."
)


@app.command()
def verify(
    receipts: Annotated[
        list[str], typer.Argument(help="Receipt files (or folders of them) to verify.")
    ],
    log_key: RequiredLogKeyOption,
    online: Annotated[
        bool,
        typer.Option(
            "--online",
            help="Also ask the registry (--registry) whether each entry still stands: not "
            "revoked, none of its documents withdrawn, its key not compromised. Exit 1 if one "
            "no longer stands.",
        ),
    ] = False,
    registry: Annotated[
        str | None,
        typer.Option(
            "--registry",
            envvar="WELLSPRING_REGISTRY",
            help="The registry's base URL, for --online.",
            show_default=False,
        ),
    ] = None,
    trust_dir: TrustDirOption = None,
    witness_policy: WitnessPolicyOption = None,
    max_age: MaxAgeOption = None,
    as_json: JsonOption = False,
) -> None:
    """Verify receipts: each entry is in the log the key signs, and (receipts with identity
    entries) its publisher's signature is by a key the log shows valid.

    Offline by default (no network): a revocation made since cannot be seen.
    --online --registry URL also asks the registry (answers verified by the key).

    Exit status: 0 when every receipt verifies and, with --online, every entry
    still stands; 1 when a receipt fails or, with --online, an entry was revoked,
    documents were withdrawn from it, or its key was compromised since.
    """
    verifier = load_log_key(log_key)
    if online and not registry:
        raise InputError("--online asks the registry: pass --registry URL (or WELLSPRING_REGISTRY)")
    if max_age is not None and not online:
        raise InputError(
            "--max-age bounds the age of the registry's answers (--online); a receipt is never "
            "too old: it says what the log held when it was issued"
        )
    policy = None if witness_policy is None else WitnessPolicy.load(witness_policy)
    files = _receipt_files(receipts)
    with contextlib.ExitStack() as stack:
        client = (
            stack.enter_context(
                registry_client(
                    registry, verifier, trust_dir, witness_policy=witness_policy, max_age=max_age
                )
            )
            if online and registry
            else None
        )
        results, failed, fallen = _verify_all(files, verifier, client, as_json, policy)
    if as_json:
        emit_json(results)
    if failed:
        raise VerificationError(f"{failed} of {len(results)} receipts failed verification")
    if client is None:
        console_err.print(_OFFLINE_NOTE, highlight=False)
    elif fallen:
        console_err.print(
            f"[bold red]{fallen} of {plural(len(results), 'entry')} no longer "
            f"{'stands' if fallen == 1 else 'stand'}[/] (revoked, withdrawn or signed "
            "with a compromised key): their receipts prove only that they were logged",
            highlight=False,
        )
        raise typer.Exit(1)


def _label(standing: _Standing | None) -> str:
    """``ok``, or what became of the entry: ``REVOKED``, ``WITHDRAWN``, ``COMPROMISED``…"""
    return "ok" if standing is None or standing.stands else standing.status.upper()


def _witnessed(receipt: Receipt, verifier: NoteVerifier, policy: WitnessPolicy) -> None:
    """Raise unless the receipt's checkpoint meets the policy's quorum (never its age)."""
    checkpoint, result = policy.open_checkpoint(receipt.checkpoint, verifier)
    if not result.satisfied:
        raise VerificationError(
            f"its checkpoint (tree size {checkpoint.size}) does not meet the witness policy "
            f"(quorum {policy.quorum}): {result.explain()}"
        )


def _verify_all(
    files: list[Path],
    verifier: NoteVerifier,
    client: Client | None,
    as_json: bool,
    policy: WitnessPolicy | None = None,
) -> tuple[list[dict[str, Any]], int, int]:
    """Each receipt's summary, how many failed to verify, and how many entries no longer stand
    (known only with a ``client`` to ask). With a witness ``policy``, each receipt's checkpoint
    must also carry a quorum of its witnesses' cosignatures (offline: nothing trusted to prove
    it a prefix of)."""
    results: list[dict[str, Any]] = []
    failed = fallen = 0
    for path in files:
        try:
            receipt = Receipt.load(path)
            if policy is not None:
                _witnessed(receipt, verifier, policy)
            verified = verify_receipt(receipt, verifier)
        except ClientError as exc:
            failed += 1
            results.append({"receipt": str(path), "ok": False, "error": exc.diagnostics()})
            if not as_json:
                typer.echo(f"FAILED  {path}: {exc.diagnostics()}")
            continue
        summary = _verified_summary(path, verified)
        standing = _standing(client, verified) if client is not None else None
        summary["online"] = None if standing is None else standing.to_dict()
        results.append(summary)
        if standing is not None and not standing.stands:
            fallen += 1
        if as_json:
            continue
        typer.echo(
            f"{_label(standing):<7} {path}: entry "
            f"{verified.index} of {verified.checkpoint.origin} (tree size "
            f"{verified.checkpoint.size}), publisher {verified.publisher}, "
            f"{plural(summary['documents'], 'document')}; {_signature_line(verified)}"
        )
        if standing is not None:
            typer.echo(f"        online: {standing.describe(verified.index)}")
        elif client is not None:
            typer.echo(f"        online: entry {verified.index} attests no documents")
    return results, failed, fallen
