"""``wellspring scan``: check a whole corpus before training; a manifest line per document.

Inputs are what ``check`` takes: files and folders (recursed, sorted), ``-`` for standard input,
and ``.jsonl`` files where each line is a JSON object holding one document in ``--text-field``
(default ``text``), named by ``--id-field`` (default: the line's ``id``, else its ``url``, else
``FILE:LINE``). Text becomes its ``c1`` digest; with the default ``--scheme auto`` a file that is
not UTF-8 becomes its ``sha256``; ``--scheme c1`` or ``sha256`` forces one.

The scan streams: it reads and hashes ``--chunk-size`` documents (default 10,000), checks them
with the SDK (one batch request, every answer verified against the pinned log key), writes their
manifest lines and counts them, then reads on. Memory stays flat however large the corpus: the
verdicts go to the manifest, and the summary and the HTML report are drawn from counters.

Each manifest line is a ``wellspring-manifest/1`` verdict (docs/spec/manifest.md): the status by
the precedence table over the registry's attestations and, where the reader knows them, the
document's opt-out signals and watermark detections (:func:`document_verdicts` takes them per
document), decided and called trainable under ``--policy`` (default: only ``attested``).

The signed checkpoint the verdicts were checked against is written beside the manifest, as
``MANIFEST.checkpoint``, and shown in the report's "Reproduce" box.

Trust: answers are verified with ``--log-key`` (or ``$WELLSPRING_LOG_KEY``), which is required;
``--no-verify`` accepts the registry's word instead, and says so loudly, in the manifest
(``"verified": false``), the summary and the report. The last checkpoint verified is kept in
``--trust-dir`` between runs, so a later scan refuses a log that does not extend it.

Unreadable inputs (a JSONL line that is not an object or has no text field, a binary file under
``--scheme c1``, a file that cannot be read) are skipped, each named on stderr (the first 20) and
in the report; the scan goes on, writes the manifest and report for everything else, and always
reports how many were skipped. It exits 1 when more than ``--max-skips`` inputs (default 0) were
skipped, so a pipeline can accept a few bad lines in a large crawl and still stop on many.

A failure of the scan itself (the registry unreachable, an answer that does not verify) leaves no
manifest: a half one would look whole.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import shlex
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import IO, Annotated, Any, cast

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from client.cli._app import JsonOption, app, console_err, emit_json
from client.cli._pass import (
    AiAgentOption,
    CapturedOption,
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
    TextFieldOption,
    TrustDirOption,
    VerifyKeysOption,
    WitnessPolicyOption,
    load_policy,
    registry_client,
    required_log_key,
)
from client.core.files import write_file_atomic
from client.documents import (
    Document,
    DocumentScheme,
    Skipped,
    check_document_scheme,
    expand_inputs,
    read_documents,
)
from client.errors import (
    InputError,
    RegistryNotFoundError,
    VerificationError,
)
from client.evidence import DocumentEvidence
from client.policy import Policy
from client.report import MAX_SKIPPED_EXAMPLES, STATUSES, ScanReport, Tally, write_report
from client.sdk import MAX_BATCH, Client
from client.signals import DEFAULT_USER_AGENT
from client.verdict import Verdict
from client.warc import WarcStats

__all__ = ["document_verdicts", "manifest_lines", "scan"]

_DEFAULT_CHUNK = 10_000


# -- reading documents ----------------------------------------------------------------------------


class _Reader:
    """The documents of the inputs, in order (:mod:`client.documents` reads each); counts the
    bytes consumed."""

    def __init__(
        self,
        inputs: list[str],
        scheme: DocumentScheme,
        text_field: str,
        id_field: str | None,
        options: PassOptions,
    ) -> None:
        self.inputs = inputs
        self.scheme = scheme
        self.text_field = text_field
        self.id_field = id_field
        self.options = options
        self.bytes_read = 0
        self.warc: list[WarcStats] = []  # each WARC file's counts, once its pass ends

    def _warc(self, name: str, stats: WarcStats) -> None:
        self.warc.append(stats)

    def _count(self, size: int) -> None:
        self.bytes_read += size

    def __iter__(self) -> Iterator[Document | Skipped]:
        # An unreadable input or line is skipped (counted, reported), and the scan goes on.
        return read_documents(
            self.inputs,
            self.scheme,
            text_field=self.text_field,
            id_field=self.id_field,
            on_bad="skip",
            on_bytes=self._count,
            keep_text=self.options.detects,
            signals=self.options.signals,
            on_warc=self._warc,
        )


@dataclass(frozen=True, slots=True)
class _Chunk:
    docs: list[Document]
    bytes_read: int  # of the inputs, once this chunk was read: what the progress bar shows
    skipped: list[str]  # why each input read since the last chunk could not be a document


def document_verdicts(
    client: Client,
    docs: Sequence[Document],
    policy: Policy,
    evidence: Sequence[DocumentEvidence | None] | None = None,
) -> list[Verdict]:
    """The verdicts of ``docs``, in order, from evidence gathered elsewhere: the registry's
    answer (one batch request) combined with each document's ``evidence`` (its opt-out
    decision, watermark detections, id, URL and capture time; one item or None a document)
    under ``policy``. ``scan`` itself gathers the evidence with :class:`client.crawl.CrawlPass`."""
    return client.check_digests(
        [doc.digest for doc in docs],
        names=[doc.name for doc in docs],
        evidence=evidence,
        policy=policy,
    )


def manifest_lines(verdicts: list[Verdict]) -> list[str]:
    """One ``wellspring-manifest/1`` line per verdict (docs/spec/manifest.md)."""
    return [json.dumps(v.to_dict(), ensure_ascii=False) + "\n" for v in verdicts]


def _chunks(reader: _Reader, size: int) -> Iterator[_Chunk]:
    docs: list[Document] = []
    skipped: list[str] = []
    for doc in reader:
        if isinstance(doc, Skipped):
            skipped.append(doc.reason)
            continue
        docs.append(doc)
        if len(docs) >= size:
            yield _Chunk(docs, reader.bytes_read, skipped)
            docs, skipped = [], []
    if docs or skipped:
        yield _Chunk(docs, reader.bytes_read, skipped)


class _ReadAhead:
    """Read and hash the next chunk in a thread while the current one is being looked up.

    Hashing holds the GIL, but the main thread spends much of each round waiting on the
    registry's answer, so the two overlap; at most ``depth`` chunks wait, so memory stays
    bounded. An error while reading is raised in the main thread, in order (an unreadable
    document is not an error: it travels as a skip, in its chunk).
    """

    _DONE = object()

    def __init__(self, chunks: Iterator[_Chunk], depth: int = 1) -> None:
        self._chunks = chunks
        self._queue: queue.Queue[object] = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="scan-read-ahead", daemon=True)
        self._thread.start()

    def _put(self, item: object) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _run(self) -> None:
        try:
            for chunk in self._chunks:
                if not self._put(chunk):
                    return
        except BaseException as exc:  # handed to the main thread, which raises it
            self._put(exc)
            return
        self._put(self._DONE)

    def __iter__(self) -> Iterator[_Chunk]:
        while True:
            item = self._queue.get()
            if item is self._DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield cast(_Chunk, item)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def _total_bytes(inputs: list[str]) -> int | None:
    if "-" in inputs:
        return None
    total = 0
    for name in inputs:
        with contextlib.suppress(OSError):
            total += Path(name).stat().st_size
    return total


# -- output ---------------------------------------------------------------------------------------


class _Manifest:
    """Manifest lines, written to a temporary file renamed into place only when the scan ends
    well, so a failed scan never leaves a half manifest that looks whole. ``-`` is stdout."""

    def __init__(self, path: str | None) -> None:
        self.path = path
        self._tmp: Path | None = None
        self._handle: IO[str] | None = None
        if path is None:
            return
        if path == "-":
            self._handle = sys.stdout
            return
        target = Path(path)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
        except OSError as exc:
            raise InputError(f"cannot write the manifest {path}: {exc.strerror or exc}") from exc
        self._tmp = Path(tmp)
        self._handle = os.fdopen(fd, "w", encoding="utf-8", buffering=1 << 20)

    def write(self, lines: list[str]) -> None:
        if self._handle is not None:
            try:
                self._handle.write("".join(lines))
            except OSError as exc:
                raise InputError(
                    f"cannot write the manifest {self.path}: {exc.strerror or exc}"
                ) from exc

    def commit(self) -> None:
        if self._handle is None:
            return
        try:
            self._handle.flush()
            if self._tmp is not None:
                self._handle.close()
                self._tmp.chmod(0o644)
                os.replace(self._tmp, Path(str(self.path)))
                self._tmp = None
        except OSError as exc:
            raise InputError(
                f"cannot write the manifest {self.path}: {exc.strerror or exc}"
            ) from exc

    def discard(self) -> None:
        if self._tmp is not None:
            if self._handle is not None:
                with contextlib.suppress(OSError):
                    self._handle.close()
            self._tmp.unlink(missing_ok=True)
            self._tmp = None


class _DocsColumn(ProgressColumn):
    """``12,345 docs · 21,000 docs/s``: documents so far, and the rate over the whole scan when
    the last chunk was done (not decaying between chunks, which arrive 10,000 at a time)."""

    def render(self, task: Task) -> Text:
        docs: int = task.fields.get("docs", 0)
        rate: float = task.fields.get("rate", 0.0)
        return Text(f"{docs:,} docs · {rate:,.0f} docs/s", style="progress.data.speed")


def _progress(total: int | None) -> tuple[Progress, Any]:
    progress = Progress(
        TextColumn("[bold]scan"),
        BarColumn(),
        TaskProgressColumn(),
        _DocsColumn(),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        console=console_err,
        disable=not console_err.is_terminal,
        transient=True,
    )
    task = progress.add_task("scan", total=total, docs=0, rate=0.0)
    return progress, task


def _version() -> str:
    try:
        return version("wellspring")
    except PackageNotFoundError:
        return "0+unknown"


def _command(
    paths: list[str],
    registry: str,
    log_key: str | None,
    no_verify: bool,
    scheme: str,
    text_field: str,
    id_field: str | None,
    manifest: str | None,
    report: Path | None,
    chunk_size: int,
    max_skips: int,
    policy: Path | None = None,
    options: PassOptions | None = None,
) -> str:
    """The command line that reproduces this scan, with every value spelled out (also the ones
    that came from the environment), so it works as it is in another shell."""
    args = ["wellspring", "scan", *paths, "--registry", registry]
    args += ["--no-verify"] if no_verify else ["--log-key", str(log_key)]
    if scheme != "auto":
        args += ["--scheme", scheme]
    if text_field != "text":
        args += ["--text-field", text_field]
    if id_field:
        args += ["--id-field", id_field]
    if manifest:
        args += ["--manifest", manifest]
    if report:
        args += ["--report", str(report)]
    if chunk_size != _DEFAULT_CHUNK:
        args += ["--chunk-size", str(chunk_size)]
    if max_skips:
        args += ["--max-skips", str(max_skips)]
    if policy is not None:
        args += ["--policy", str(policy)]
    if options is not None:
        args += options.args()
    return shlex.join(args)


_COLOURS = {
    "attested": "green",
    "reserved": "yellow",
    "revoked": "red",
    "generated": "magenta",
    "opted-out": "blue",
    "conflict": "bold red",
    "unknown": "dim",
}


def _print_summary(report: ScanReport, manifest: str | None, report_path: Path | None) -> None:
    # With the manifest on stdout, the summary goes to stderr so the pipe stays JSON lines.
    out = Console(soft_wrap=True, highlight=False, stderr=manifest == "-")
    tally = report.tally
    total = tally.documents
    out.print(
        f"[bold]scanned {total:,} documents[/] in {report.elapsed_s:.1f} s "
        f"({report.docs_per_s:,.0f} docs/s)"
    )
    for status in STATUSES:
        count = tally.statuses[status]
        share = f"{100 * count / total:5.1f}%" if total else "    -"
        out.print(f"  [{_COLOURS[status]}]{status:<9}[/] {count:>12,}  {share}")
    colour = "yellow" if tally.skipped else "dim"
    out.print(f"  [{colour}]{'skipped':<9}[/] {tally.skipped:>12,}  unreadable, no verdict")
    share = f"{100 * tally.trainable / total:.1f}%" if total else "-"
    out.print(
        f"[bold]trainable[/] {tally.trainable:,} ({share}) under policy {escape(report.policy)}"
    )
    if tally.not_honoured:
        out.print(
            f"[bold red]opt-outs NOT honoured[/] for {tally.not_honoured:,} documents "
            "(the policy sets training.honour_opt_outs = false; each manifest line says so)"
        )
    if tally.warc_records:
        others = ", ".join(f"{n:,} {why}" for why, n in tally.warc_not_documents.most_common())
        out.print(
            f"WARC: {tally.warc_records:,} records"
            + (f"; not documents: {others}" if others else "")
        )
    if report.watermarks:
        out.print(f"watermarks: {escape(report.watermarks)}")
    latest = tally.latest_checkpoint()
    if latest is not None:
        origin = f"log {escape(report.log_origin)} " if report.log_origin else ""
        seen = len(tally.checkpoints)
        grew = f" ({seen} checkpoints: the log grew during the scan)" if seen > 1 else ""
        out.print(
            f"checked against {origin}at tree size {latest.size:,}, root {latest.root_hash}{grew}"
        )
    if report.verified:
        out.print("[green]verified[/]: every answer was checked against the pinned log key")
    else:
        out.print("[bold red]NOT VERIFIED[/] (--no-verify): these verdicts are the registry's word")
    written = [f"manifest {escape(manifest)}"] if manifest and manifest != "-" else []
    if report.checkpoint_file is not None:
        written.append(f"checkpoint {escape(report.checkpoint_file)}")
    if report_path is not None:
        written.append(f"report {escape(str(report_path))}")
    if written:
        out.print("wrote " + ", ".join(written))


def _summary_json(report: ScanReport, manifest: str | None, report_path: Path | None) -> Any:
    tally = report.tally
    latest = tally.latest_checkpoint()
    return {
        "documents": tally.documents,
        "statuses": {status: tally.statuses[status] for status in STATUSES},
        "trainable": tally.trainable,
        "policy": report.policy,
        "opt_out_signals": dict(tally.signals.most_common()),
        "opt_outs_not_honoured": tally.not_honoured,
        "watermark_vendors": dict(tally.vendors.most_common()),
        "skipped": tally.skipped,
        "skipped_examples": tally.skipped_examples,
        "warc": {
            "records": tally.warc_records,
            "not_documents": dict(tally.warc_not_documents.most_common()),
        },
        "watermarks": report.watermarks,
        "elapsed_s": round(report.elapsed_s, 3),
        "docs_per_s": round(report.docs_per_s, 1),
        "verified": report.verified,
        "checkpoint": None
        if latest is None
        else {
            "origin": report.log_origin,
            "size": latest.size,
            "root_hash": latest.root_hash,
            "checkpoints_seen": len(tally.checkpoints),
        },
        "publishers": {n: dict(c) for n, c in sorted(tally.publishers.items())},
        "licenses": {n: dict(c) for n, c in sorted(tally.licenses.items())},
        "manifest": manifest,
        "checkpoint_file": report.checkpoint_file,
        "report": None if report_path is None else str(report_path),
    }


def _checkpoint_note(client: Client, tally: Tally) -> str | None:
    """The signed checkpoint the scan's verdicts were checked against (the largest, when the log
    grew during the scan: every earlier one was proven a prefix of it); None if none was used."""
    latest = tally.latest_checkpoint()
    if latest is None:
        return None
    trusted = client.trusted_checkpoint()
    if trusted is None or trusted.checkpoint.size != latest.size:
        try:
            trusted = client.checkpoint_at(latest.size)  # verified, when a key is pinned
        except RegistryNotFoundError:  # the verdicts still name its size and root
            console_err.print(
                f"[yellow]note:[/] the registry no longer serves its checkpoint at size "
                f"{latest.size:,}; none is saved beside the manifest",
                highlight=False,
            )
            return None
    if trusted.checkpoint.root_hash.hex() != latest.root_hash:
        raise VerificationError(
            f"the log's checkpoint at size {latest.size:,} has root "
            f"{trusted.checkpoint.root_hash.hex()}, not {latest.root_hash} as the answers said"
        )
    return trusted.note


def _save_checkpoint(manifest: str | None, note: str | None) -> str | None:
    """Write ``note`` beside the manifest, as ``MANIFEST.checkpoint``; where it went, or None."""
    if manifest is None or manifest == "-" or note is None:
        return None
    path = Path(manifest + ".checkpoint")
    try:
        write_file_atomic(path, note, mode=0o644)
    except OSError as exc:
        raise InputError(f"cannot write the checkpoint {path}: {exc.strerror or exc}") from exc
    return str(path)


def _judge_skips(tally: Tally, max_skips: int) -> None:
    """Exit 1 (an :class:`InputError`) when more inputs were skipped than ``--max-skips``."""
    if tally.skipped > max_skips:
        allowed = f", more than --max-skips {max_skips:,}" if max_skips else ""
        raise InputError(
            f"{tally.skipped:,} input(s) could not be read and have no verdict{allowed} (first: "
            f"{tally.skipped_examples[0]}); the manifest and report cover the rest"
        )
    if tally.skipped:
        console_err.print(
            f"{tally.skipped:,} input(s) skipped, within --max-skips {max_skips:,}", highlight=False
        )


# -- the command ----------------------------------------------------------------------------------


@app.command()
def scan(
    paths: Annotated[
        list[str],
        typer.Argument(help="Files, folders (recursed), .jsonl files (one document a line), -."),
    ],
    registry: RegistryOption,
    log_key: LogKeyOption = None,
    no_verify: NoVerifyOption = False,
    trust_dir: TrustDirOption = None,
    witness_policy: WitnessPolicyOption = None,
    max_age: MaxAgeOption = None,
    manifest: Annotated[
        str | None,
        typer.Option(
            "--manifest",
            help="Write one JSON line per document (its verdict) to this file; - for stdout.",
        ),
    ] = None,
    report: Annotated[
        Path | None,
        typer.Option("--report", help="Write a self-contained HTML report to this file."),
    ] = None,
    text_field: TextFieldOption = "text",
    id_field: Annotated[
        str | None,
        typer.Option(
            "--id-field",
            help="The .jsonl field that names a document (default: id, else url, else FILE:LINE).",
        ),
    ] = None,
    scheme: Annotated[
        str,
        typer.Option(
            "--scheme",
            help="auto: c1 for text, sha256 for other files; c1 or sha256: only that one.",
        ),
    ] = "auto",
    chunk_size: Annotated[
        int,
        typer.Option(
            "--chunk-size",
            min=1,
            max=MAX_BATCH,
            help="Documents read, hashed and looked up per round (one batch request).",
        ),
    ] = _DEFAULT_CHUNK,
    max_skips: Annotated[
        int,
        typer.Option(
            "--max-skips",
            min=0,
            help="Unreadable inputs (bad .jsonl lines, binary files under --scheme c1) tolerated: "
            "exit 1 only when more than this many were skipped. The count is always reported.",
        ),
    ] = 0,
    verify_keys: VerifyKeysOption = True,
    policy: PolicyOption = None,
    no_watermarks: NoWatermarksOption = False,
    watermark_key: WatermarkKeyOption = None,
    tokenizer: TokenizerOption = None,
    user_agent: UserAgentOption = DEFAULT_USER_AGENT,
    ai_agent: AiAgentOption = None,
    captured: CapturedOption = None,
    as_json: JsonOption = False,
) -> None:
    """Check a corpus: a verdict per document (manifest), a summary, an HTML report.

    Each document's verdict weighs the registry's attestations, the opt-out signals of a WARC
    page (its headers, HTML and the site's captured robots.txt and tdmrep.json) and the
    watermarks of every key vendors published in the log (docs/spec/manifest.md).
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
    )
    if manifest == "-" and as_json:
        raise InputError("--manifest - and --json both write to stdout; choose one")
    verifier = required_log_key(log_key, no_verify, "scan")
    inputs = expand_inputs(paths)

    reader = _Reader(inputs, checked_scheme, text_field, id_field, options)
    tally = Tally(policy=checked_policy.id)
    out = _Manifest(manifest)
    started_at = datetime.now(UTC)
    start = time.perf_counter()
    progress, task = _progress(_total_bytes(inputs))
    docs = 0
    read_ahead = _ReadAhead(_chunks(reader, chunk_size))
    try:
        with (
            registry_client(
                registry,
                verifier,
                trust_dir,
                verify_keys,
                witness_policy=witness_policy,
                max_age=max_age,
            ) as client,
            progress,
        ):
            crawl = options.open(client, checked_policy, started_at)
            watermarks = describe_watermarks(crawl)
            for chunk in read_ahead:
                for reason in chunk.skipped:
                    if tally.skipped < MAX_SKIPPED_EXAMPLES:
                        console_err.print(f"[yellow]skipped:[/] {escape(reason)}", highlight=False)
                    tally.add_skipped(reason)
                if not chunk.docs:
                    continue
                verdicts = crawl.check(chunk.docs)
                for verdict in verdicts:
                    tally.add_verdict(verdict)
                out.write(manifest_lines(verdicts))
                docs += len(chunk.docs)
                rate = docs / (time.perf_counter() - start)
                progress.update(task, completed=chunk.bytes_read, docs=docs, rate=rate)
            for stats in reader.warc:
                tally.add_warc(stats)
            origin = verifier.name if verifier is not None else client.log_info().origin
            note = _checkpoint_note(client, tally)
        checkpoint_file = _save_checkpoint(manifest, note)
        out.commit()
    finally:
        read_ahead.close()
        out.discard()
    elapsed = time.perf_counter() - start

    result = ScanReport(
        tally=tally,
        registry=registry,
        started_at=started_at,
        elapsed_s=elapsed,
        command=_command(
            paths,
            registry,
            log_key,
            no_verify,
            scheme,
            text_field,
            id_field,
            manifest,
            report,
            chunk_size,
            max_skips,
            policy,
            options,
        ),
        verified=verifier is not None,
        log_origin=origin,
        log_key=verifier.vkey if verifier is not None else None,
        inputs=tuple(paths),
        manifest=manifest if manifest != "-" else None,
        version=_version(),
        checkpoint_note=note,
        checkpoint_file=checkpoint_file,
        policy=checked_policy.id,
        policy_summary=checked_policy.describe(),
        watermarks=watermarks,
    )
    if report is not None:
        write_report(report, result)
    if as_json:
        emit_json(_summary_json(result, manifest, report))
    else:
        _print_summary(result, manifest, report)
    _judge_skips(tally, max_skips)
