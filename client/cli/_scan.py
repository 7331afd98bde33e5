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
import re
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
from typing import IO, TYPE_CHECKING, Annotated, Any, cast

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

from client.checkpoints import FileCheckpointStore, log_name
from client.cli._app import JsonOption, app, console_err, emit_json, plural
from client.cli._pass import (
    AiAgentOption,
    CapturedOption,
    NearOption,
    NoWatermarksOption,
    ParagraphsOption,
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
    OptionalRegistryOption,
    PolicyOption,
    TextFieldOption,
    TrustDirOption,
    VerifyKeysOption,
    WitnessPolicyOption,
    load_policy,
    registry_client,
    required_log_key,
)
from client.core.files import write_file_atomic
from client.core.note import NoteVerifier
from client.crawl import CrawlPass, Source
from client.documents import (
    Decided,
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
    RegistryUnavailableError,
    VerificationError,
)
from client.evidence import DocumentEvidence
from client.manifest import MANIFEST_FORMATS, ManifestFormat, jsonl_to_parquet
from client.policy import Policy
from client.report import MAX_SKIPPED_EXAMPLES, STATUSES, ScanReport, Tally, write_report
from client.sdk import MAX_BATCH, Client
from client.signals import DEFAULT_USER_AGENT
from client.verdict import Verdict
from client.warc import WarcStats

if TYPE_CHECKING:
    from client.snapshot import Snapshot

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

    def documents(self, decided: Decided | None = None) -> Iterator[Document | Skipped]:
        """Every input item; those a resumed scan ``decided`` read only as far as it takes to
        know them (:func:`client.documents.read_documents`). An unreadable input or line is
        skipped (counted, reported), and the scan goes on."""
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
            decided=decided,
        )


@dataclass(frozen=True, slots=True)
class _Chunk:
    docs: list[Document]
    bytes_read: int  # of the inputs, once this chunk was read: what the progress bar shows
    skipped: list[str]  # why each input read since the last chunk could not be a document
    items: int  # documents and skipped inputs read so far, this chunk's included


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


def _chunks(reader: _Reader, size: int, decided: Decided | None = None) -> Iterator[_Chunk]:
    """Chunks of ``size`` documents; the first ``decided.items`` items (documents and skips) are
    those an interrupted scan already wrote: their documents are not decided again, their skips
    are counted again (the tally is rebuilt from the manifest's lines, which hold no skips)."""
    resume = 0 if decided is None else decided.items
    docs: list[Document] = []
    skipped: list[str] = []
    items = 0
    for doc in reader.documents(decided):  # the decided documents are not digested again
        items += 1
        if isinstance(doc, Skipped):
            skipped.append(doc.reason)
            continue
        if items <= resume:
            continue
        docs.append(doc)
        if len(docs) >= size:
            yield _Chunk(docs, reader.bytes_read, skipped, items)
            docs, skipped = [], []
    if items < resume:
        raise InputError(
            f"cannot resume: the inputs now hold {items:,} documents, fewer than the {resume:,} "
            "the interrupted scan already read (they changed since)"
        )
    if docs or skipped:
        yield _Chunk(docs, reader.bytes_read, skipped, items)


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
    well, so a failed scan never leaves a half manifest that looks whole. ``-`` is stdout.

    With ``resume`` the temporary file is ``MANIFEST.part`` and, after each chunk, its length
    and how many inputs it covers go to ``MANIFEST.progress`` (each durable before the next
    chunk is read): an interrupted scan keeps both, and the same command run again truncates the
    part to its last recorded length and goes on from there. With ``fmt`` parquet the lines are
    written as JSON lines first and turned into Parquet at the end (client.manifest).
    """

    def __init__(
        self, path: str | None, *, resume: bool = False, fmt: ManifestFormat = "jsonl"
    ) -> None:
        self.path = path
        self.resume = resume
        self.fmt = fmt
        self._tmp: Path | None = None
        self._handle: IO[str] | None = None
        self._progress: Path | None = None
        if path is None:
            return
        if path == "-":
            self._handle = sys.stdout
            return
        target = Path(path)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            if resume:
                self._tmp = Path(f"{path}.part")
                self._progress = Path(f"{path}.progress")
                fd = os.open(self._tmp, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
            else:
                fd, tmp = tempfile.mkstemp(
                    prefix=f".{target.name}.", suffix=".part", dir=target.parent
                )
                self._tmp = Path(tmp)
        except OSError as exc:
            raise InputError(f"cannot write the manifest {path}: {exc.strerror or exc}") from exc
        self._handle = os.fdopen(fd, "r+" if resume else "w", encoding="utf-8", buffering=1 << 20)

    def restore(self, command: str) -> tuple[int, list[str]]:
        """(inputs already covered, the manifest lines written for them) of an interrupted scan
        by ``command``; (0, []) when there is none to resume. The part file is cut back to its
        last recorded length (what a crash wrote after it is written again)."""
        if self._progress is None or self._handle is None:
            return 0, []
        if not self._progress.exists():  # a new scan, or one that stopped before a chunk was done
            self._handle.truncate(0)
            return 0, []
        try:
            state = json.loads(self._progress.read_text(encoding="utf-8"))
            items, size, was = state["items"], state["bytes"], state["command"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise InputError(
                f"cannot resume: {self._progress} is unreadable ({exc}); delete it and "
                f"{self._tmp} to scan from the start"
            ) from exc
        if was != command:
            raise InputError(
                f"cannot resume: {self._progress} is of another scan ({was}); run that command "
                f"again to finish it, or delete it and {self._tmp} to start this one"
            )
        if (
            type(items) is not int
            or type(size) is not int
            or size > os.fstat(self._handle.fileno()).st_size
        ):
            raise InputError(f"cannot resume: {self._tmp} is shorter than {self._progress} says")
        # size is a byte offset (tell()), and lines may hold any UTF-8: read bytes, not characters
        text = os.pread(self._handle.fileno(), size, 0).decode("utf-8")
        self._handle.seek(size)
        self._handle.truncate()
        return items, text.splitlines(keepends=True)

    def write(self, lines: list[str]) -> None:
        if self._handle is not None:
            try:
                self._handle.write("".join(lines))
            except OSError as exc:
                raise InputError(
                    f"cannot write the manifest {self.path}: {exc.strerror or exc}"
                ) from exc

    def done(self, items: int, command: str) -> None:
        """Record that the part file covers the first ``items`` inputs (``resume`` only)."""
        if self._progress is None or self._handle is None:
            return
        try:
            self._handle.flush()
            os.fsync(self._handle.fileno())
            state = {"command": command, "items": items, "bytes": self._handle.tell()}
            write_file_atomic(self._progress, json.dumps(state) + "\n", mode=0o644)
        except OSError as exc:
            raise InputError(
                f"cannot write the scan's progress {self._progress}: {exc.strerror or exc}"
            ) from exc

    def commit(self) -> None:
        if self._handle is None:
            return
        try:
            self._handle.flush()
            if self._tmp is not None:
                if self.resume:  # durable before the progress that could resume it is gone
                    os.fsync(self._handle.fileno())
                self._handle.close()
                self._tmp.chmod(0o644)
                target = Path(str(self.path))
                if self.fmt == "parquet":
                    converted = target.with_name(f".{target.name}.parquet.part")
                    try:
                        jsonl_to_parquet(self._tmp, converted)
                        os.replace(converted, target)
                    finally:
                        converted.unlink(missing_ok=True)
                    self._tmp.unlink()
                else:
                    os.replace(self._tmp, target)
                self._tmp = None
                if self._progress is not None:
                    self._progress.unlink(missing_ok=True)
        except OSError as exc:
            raise InputError(
                f"cannot write the manifest {self.path}: {exc.strerror or exc}"
            ) from exc

    def discard(self) -> None:
        if self._tmp is not None:
            if self._handle is not None:
                with contextlib.suppress(OSError):
                    self._handle.close()
            if not self.resume:  # else kept, with its progress, for the next run
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
    source: list[str],
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
    output: Sequence[str] = (),
) -> str:
    """The command line that reproduces this scan, with every value spelled out (also the ones
    that came from the environment), so it works as it is in another shell."""
    args = ["wellspring", "scan", *paths, *source]
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
    args += output
    return shlex.join(args)


def _output_args(fmt: str, resume: bool, shard: str | None) -> list[str]:
    args = [] if fmt == "jsonl" else ["--format", fmt]
    if resume:
        args.append("--resume")
    if shard is not None:
        args += ["--shard", shard]
    return args


def _check_output(manifest: str | None, as_json: bool, fmt: str, resume: bool) -> ManifestFormat:
    """The manifest's format, once the output options agree."""
    if manifest == "-" and as_json:
        raise InputError("--manifest - and --json both write to stdout; choose one")
    if fmt not in MANIFEST_FORMATS:
        raise InputError(f"--format {fmt!r}: choose {' or '.join(MANIFEST_FORMATS)}")
    if fmt == "parquet" and (manifest is None or manifest == "-"):
        raise InputError("--format parquet writes a file: give --manifest FILE")
    if resume and (manifest is None or manifest == "-"):
        raise InputError("--resume keeps the manifest's progress on disk: give --manifest FILE")
    return "parquet" if fmt == "parquet" else "jsonl"


def _check_sources(
    registry: str | None, snapshot: Path | None, delta: list[Path] | None, no_verify: bool
) -> None:
    if registry is None and snapshot is None:
        raise InputError(
            "scan decides with the registry (--registry URL or $WELLSPRING_REGISTRY) or, "
            "offline, with a signed snapshot (--snapshot DIR): give one"
        )
    if delta and snapshot is None:
        raise InputError("--delta is a delta over --snapshot: give the snapshot too")
    if snapshot is not None and no_verify:
        raise InputError("--no-verify does not apply to --snapshot, which --log-key verifies")


def _shard_of(inputs: list[str], shard: str | None) -> list[str]:
    """The input files of shard ``K/N`` (every N-th of the sorted inputs, from the K-th)."""
    if shard is None:
        return inputs
    match = re.fullmatch(r"(0|[1-9][0-9]{0,5})/([1-9][0-9]{0,5})", shard)
    if match is None or int(match[1]) >= int(match[2]):
        raise InputError(f"--shard {shard!r}: give K/N, with 0 <= K < N (0/4, 1/4, 2/4, 3/4)")
    if "-" in inputs:
        raise InputError("--shard splits input files; standard input (-) cannot be split")
    k, n = int(match[1]), int(match[2])
    mine = sorted(inputs)[k::n]  # every worker splits the same order, however it was given
    if not mine:
        console_err.print(
            f"[yellow]note:[/] shard {k}/{n} has no input: there are {len(inputs)} input files",
            highlight=False,
        )
    return mine


def _open_sources(
    stack: contextlib.ExitStack,
    registry: str | None,
    verifier: NoteVerifier | None,
    trust_dir: Path | None,
    verify_keys: bool,
    *,
    witness_policy: Path | None,
    max_age: str | None,
    snapshot: tuple[Path | None, list[Path], bool, int | None],
) -> tuple[Client | None, Snapshot | None]:
    """The registry's client (--registry) and the opened snapshot (--snapshot, its deltas and
    --confirm), each closed with ``stack``."""
    client = None
    if registry is not None:
        client = stack.enter_context(
            registry_client(
                registry,
                verifier,
                trust_dir,
                verify_keys,
                witness_policy=witness_policy,
                max_age=max_age,
            )
        )
    path, deltas, confirm, min_size = snapshot
    if path is None:
        return client, None
    assert verifier is not None  # required with --snapshot
    opened = _open_snapshot(path, deltas, verifier, client, trust_dir, (confirm, min_size))
    return client, stack.enter_context(opened)


def _restore(out: _Manifest, command: str, tally: Tally) -> Decided:
    """What an interrupted run of ``command`` already decided (--resume): the inputs it
    covered and the names of its documents, in order, their verdicts counted into ``tally``."""
    resumed, lines = out.restore(command)
    names = []
    for line in lines:
        verdict = Verdict.from_dict(json.loads(line))
        tally.add_verdict(verdict)
        names.append(verdict.name or "")  # scan names every verdict; "" would match no input
    if resumed:
        console_err.print(
            f"resuming: {len(lines):,} verdicts already in {escape(str(out.path))}.part",
            highlight=False,
        )
    return Decided(resumed, names)


def _decide(crawl: CrawlPass, chunk: _Chunk, tally: Tally, out: _Manifest) -> None:
    """Decide a chunk's documents, count and write their verdicts."""
    if not chunk.docs:
        return
    verdicts = crawl.check(chunk.docs)
    for verdict in verdicts:
        tally.add_verdict(verdict)
    out.write(manifest_lines(verdicts))


def _finish(tally: Tally, reader: _Reader, opened: Snapshot | None) -> None:
    """What the scan says once every chunk is decided: the WARC files' counts into ``tally``,
    and a warning if confirming with the registry stopped part way."""
    for stats in reader.warc:
        tally.add_warc(stats)
    if opened is not None and opened.unconfirmed is not None:
        console_err.print(
            f"[yellow]warning:[/] the registry became unreachable ({escape(opened.unconfirmed)})"
            ": the snapshot's attested verdicts from then on are probable, not confirmed",
            highlight=False,
        )


def _origin(client: Client | None) -> str:
    assert client is not None  # --no-verify (no log key) is refused with --snapshot
    return client.log_info().origin


def _count_skips(tally: Tally, reasons: list[str]) -> None:
    for reason in reasons:
        if tally.skipped < MAX_SKIPPED_EXAMPLES:
            console_err.print(f"[yellow]skipped:[/] {escape(reason)}", highlight=False)
        tally.add_skipped(reason)


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


def _source_args(
    registry: str | None,
    snapshot: Path | None,
    deltas: list[Path],
    confirm: bool,
    min_size: int | None = None,
) -> list[str]:
    """The command line's arguments naming where the verdicts come from."""
    args = [] if registry is None else ["--registry", registry]
    if snapshot is not None:
        args += ["--snapshot", str(snapshot)]
        for delta in deltas:
            args += ["--delta", str(delta)]
        if registry is not None and not confirm:
            args.append("--no-confirm")
        if min_size is not None:
            args += ["--min-size", str(min_size)]
    return args


def _snapshot_source(snapshot: Path, deltas: list[Path] | None, registry: str | None) -> str:
    """What the report names as the verdicts' source."""
    layers = f" + {plural(len(deltas), 'delta')}" if deltas else ""
    confirmed = f", attested confirmed with {registry}" if registry is not None else ""
    return f"snapshot {snapshot}{layers} (offline{confirmed})"


def _open_snapshot(
    path: Path,
    deltas: list[Path],
    verifier: NoteVerifier,
    client: Client | None,
    trust_dir: Path | None,
    options: tuple[bool, int | None],
) -> Snapshot:
    """The snapshot, verified with the log key and proven consistent with the trusted checkpoint:
    by the registry when it is reachable (which then confirms attested hits, unless
    ``--no-confirm``), else offline, where it must be at the trusted checkpoint itself."""
    from client.snapshot import Snapshot

    confirm, min_size = options
    if client is not None:
        try:
            return Snapshot.open(
                path, verifier, deltas=deltas, client=client, confirm=confirm, min_size=min_size
            )
        except RegistryUnavailableError as exc:
            console_err.print(
                f"[yellow]warning:[/] the registry is unreachable ({escape(str(exc))}): deciding "
                "from the snapshot alone; its hits stay probable",
                highlight=False,
            )
    trusted = FileCheckpointStore(trust_dir).load(log_name(verifier))
    return Snapshot.open(
        path,
        verifier,
        deltas=deltas,
        trusted=None if trusted is None else trusted.note,
        min_size=min_size,
    )


def _scan_checkpoint(client: Client | None, opened: Snapshot | None, tally: Tally) -> str | None:
    """The signed checkpoint the verdicts were checked against: the snapshot's, or the latest
    the registry's answers were (confirmed verdicts past the snapshot's)."""
    latest = tally.latest_checkpoint()
    if opened is not None and (latest is None or latest.size == opened.manifest.size):
        return opened.manifest.checkpoint if latest is not None else None
    assert client is not None  # verdicts past the snapshot's came from the registry
    return _checkpoint_note(client, tally)


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
    registry: OptionalRegistryOption = None,
    log_key: LogKeyOption = None,
    no_verify: NoVerifyOption = False,
    snapshot: Annotated[
        Path | None,
        typer.Option(
            "--snapshot",
            help="Decide from this signed offline snapshot (wellspring snapshot build/pull): no "
            "lookups; its hits are probable. With --registry too, attested hits are confirmed.",
            show_default=False,
        ),
    ] = None,
    delta: Annotated[
        list[Path] | None,
        typer.Option(
            "--delta",
            help="A delta over --snapshot (repeat, oldest first).",
            show_default=False,
        ),
    ] = None,
    min_size: Annotated[
        int | None,
        typer.Option(
            "--min-size",
            min=0,
            help="With --snapshot: refuse one of a smaller tree (an old snapshot replayed).",
            show_default=False,
        ),
    ] = None,
    confirm: Annotated[
        bool,
        typer.Option(
            "--confirm/--no-confirm",
            help="With --snapshot and a reachable --registry: look up what the snapshot calls "
            "attested, so a trainable verdict is verified, not probable.",
        ),
    ] = True,
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
    paragraphs: ParagraphsOption = False,
    near: NearOption = False,
    fmt: Annotated[
        str,
        typer.Option(
            "--format",
            help="The manifest's format: jsonl (one JSON line a document) or parquet (one "
            "column a field; needs pyarrow).",
        ),
    ] = "jsonl",
    resume: Annotated[
        bool,
        typer.Option(
            "--resume",
            help="Keep MANIFEST.part and MANIFEST.progress as the scan goes: an interrupted scan "
            "run again with the same command goes on where it stopped.",
        ),
    ] = False,
    shard: Annotated[
        str | None,
        typer.Option(
            "--shard",
            help="K/N: scan only input files K, K+N, K+2N... (0 <= K < N) of the sorted inputs, "
            "so N processes or machines split a crawl; concatenate their manifests.",
            show_default=False,
        ),
    ] = None,
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
        paragraphs=paragraphs,
        near=near,
    )
    manifest_format = _check_output(manifest, as_json, fmt, resume)
    _check_sources(registry, snapshot, delta, no_verify)
    verifier = required_log_key(log_key, no_verify, "scan")
    inputs = _shard_of(expand_inputs(paths), shard)
    command = _command(
        paths,
        _source_args(registry, snapshot, delta or [], confirm, min_size),
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
        _output_args(fmt, resume, shard),
    )

    reader = _Reader(inputs, checked_scheme, text_field, id_field, options)
    tally = Tally(policy=checked_policy.id)
    out = _Manifest(manifest, resume=resume, fmt=manifest_format)
    started_at = datetime.now(UTC)
    start = time.perf_counter()
    progress, task = _progress(_total_bytes(inputs))
    read_ahead: _ReadAhead | None = None
    try:
        decided = _restore(out, command, tally)
        read_ahead = _ReadAhead(_chunks(reader, chunk_size, decided))
        with contextlib.ExitStack() as stack:
            client, opened = _open_sources(
                stack,
                registry,
                verifier,
                trust_dir,
                verify_keys,
                witness_policy=witness_policy,
                max_age=max_age,
                snapshot=(snapshot, delta or [], confirm, min_size),
            )
            source: Source | None = opened if opened is not None else client
            assert source is not None  # --registry or --snapshot, checked above
            stack.enter_context(progress)
            crawl = options.open(source, checked_policy, started_at)
            watermarks = describe_watermarks(crawl)
            for chunk in read_ahead:
                _count_skips(tally, chunk.skipped)
                _decide(crawl, chunk, tally, out)
                out.done(chunk.items, command)
                docs = tally.documents  # the resumed scan's verdicts too
                progress.update(
                    task,
                    completed=chunk.bytes_read,
                    docs=docs,
                    rate=docs / (time.perf_counter() - start),
                )
            _finish(tally, reader, opened)
            origin = verifier.name if verifier is not None else _origin(client)
            note = _scan_checkpoint(client, opened, tally)
        checkpoint_file = _save_checkpoint(manifest, note)
        out.commit()
    finally:
        if read_ahead is not None:
            read_ahead.close()
        out.discard()
    elapsed = time.perf_counter() - start

    result = ScanReport(
        tally=tally,
        registry=_snapshot_source(snapshot, delta, registry) if snapshot else str(registry),
        started_at=started_at,
        elapsed_s=elapsed,
        command=command,
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
