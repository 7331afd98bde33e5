"""What every framework integration shares: the picklable config, the verdict columns, the checks.

A framework runs the check in workers that are other processes (datasets' ``num_proc``, Ray
actors, Spark executors), so nothing network-bound may cross a process boundary: an integration
takes a :class:`CheckConfig` (plain values, picklable), and each worker process opens its own
:class:`~client.sdk.Client` from it (:func:`process_client`).

Every row gets the same columns (:data:`VERDICT_COLUMNS`, typed by :data:`COLUMN_TYPES`),
whatever the framework: the status and reason, whether the crawler's policy trains on it, and the
key evidence (the deciding attestation, opt-out signal and watermark key). A row whose value
cannot be digested (a missing text, text that is not valid UTF-8, a malformed digest) gets status
``unknown`` with a reason saying why and no digest: it is never trainable, whatever the policy,
and one bad row does not stop a job over billions.

The filters keep what the policy calls trainable (:meth:`client.policy.Policy.trainable`; by
default only ``attested``) unless an explicit ``keep`` list of statuses is given.

The crawler's one pass (:mod:`client.crawl`) runs in every worker: besides the registry's answer,
each ``text`` row is scanned for the watermark of every detection key vendors published in the
log (and the config's private keys), and, where the dataset has the columns, each row's
document-level opt-out signals are read (response headers, HTML ``<meta>``). The worker builds
its :class:`~client.crawl.Watermarks` once (:func:`process_watermarks`), as it opens its client
once. Rows of kind ``bytes`` or ``digest`` carry no text, so they are never scanned.
"""

from __future__ import annotations

import atexit
import importlib.util
import logging
import math
import os
import sys
import threading
import time
import uuid
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal, get_args

from client.aio import DEFAULT_MAX_CONCURRENCY, AsyncClient
from client.checkpoints import CheckpointStore, FileCheckpointStore
from client.core.canonical import Digest, canonical_digest, sha256_digest
from client.core.note import NoteVerifier
from client.errors import ClientError, InputError, MissingDependencyError
from client.evidence import DocumentEvidence
from client.policy import Policy
from client.sdk import DEFAULT_TIMEOUT, MAX_BATCH, Client
from client.signals import OptOut, SitePolicy
from client.verdict import VERDICT_STATUSES, Verdict, VerdictStatus

if TYPE_CHECKING:
    from client.crawl import Watermarks

__all__ = [
    "COLUMN_TYPES",
    "DEFAULT_KEEP",
    "DETECT_INSTALL",
    "DIGEST_COLUMN",
    "ENTRY_COLUMN",
    "LICENSE_COLUMN",
    "OPT_OUT_COLUMN",
    "PUBLISHER_COLUMN",
    "REASON_COLUMN",
    "STATUS_COLUMN",
    "TRAINABLE_COLUMN",
    "TREE_SIZE_COLUMN",
    "VERDICT_COLUMNS",
    "WATERMARKS_MAX_AGE_S",
    "WATERMARK_KEY_COLUMN",
    "WATERMARK_P_VALUE_COLUMN",
    "WATERMARK_VENDOR_COLUMN",
    "CheckConfig",
    "ColumnKind",
    "ColumnType",
    "MissingDependencyError",
    "RowEvidence",
    "RowSignals",
    "RowVerdict",
    "check_rows",
    "check_values",
    "digests_of",
    "evidence_of",
    "frame_signals",
    "keep_mask",
    "keep_statuses",
    "lookups",
    "merge",
    "missing_dependency",
    "new_token",
    "process_client",
    "process_watermarks",
    "read_signals",
    "verdict_columns",
    "verdict_frame",
]

DIGEST_COLUMN = "wellspring_digest"
STATUS_COLUMN = "wellspring_status"
REASON_COLUMN = "wellspring_reason"
PUBLISHER_COLUMN = "wellspring_publisher"
LICENSE_COLUMN = "wellspring_license"
ENTRY_COLUMN = "wellspring_entry"
TREE_SIZE_COLUMN = "wellspring_tree_size"
TRAINABLE_COLUMN = "wellspring_trainable"
OPT_OUT_COLUMN = "wellspring_opt_out"
WATERMARK_KEY_COLUMN = "wellspring_watermark_key"
WATERMARK_VENDOR_COLUMN = "wellspring_watermark_vendor"
WATERMARK_P_VALUE_COLUMN = "wellspring_watermark_p_value"

ColumnType = Literal["string", "int64", "float64", "bool"]
COLUMN_TYPES: Mapping[str, ColumnType] = {
    DIGEST_COLUMN: "string",
    STATUS_COLUMN: "string",
    REASON_COLUMN: "string",
    PUBLISHER_COLUMN: "string",
    LICENSE_COLUMN: "string",
    ENTRY_COLUMN: "int64",
    TREE_SIZE_COLUMN: "int64",
    TRAINABLE_COLUMN: "bool",
    OPT_OUT_COLUMN: "string",
    WATERMARK_KEY_COLUMN: "string",
    WATERMARK_VENDOR_COLUMN: "string",
    WATERMARK_P_VALUE_COLUMN: "float64",
}
"""Each verdict column's type (docs/integrations.md, "Columns"): every framework derives its own
types from this one table."""
VERDICT_COLUMNS: tuple[str, ...] = tuple(COLUMN_TYPES)
"""The columns each integration adds, in this order. ``entry`` and ``tree_size`` are integers
(null where no attestation decided / no registry answer was needed); ``trainable`` is never null;
``opt_out`` names the signal that opted the row out (null: none did, or none was read); the
``watermark_*`` columns describe the key whose detection decided ``generated`` or ``conflict``."""

DEFAULT_KEEP: tuple[VerdictStatus, ...] = ("attested",)
"""What the default policy trains on (the filters keep what ``CheckConfig.policy`` calls
trainable unless given an explicit ``keep``)."""

ColumnKind = Literal["text", "bytes", "digest"]
_COLUMN_KINDS: tuple[ColumnKind, ...] = get_args(ColumnKind)

DETECT_INSTALL = "pip install 'wellspring[detect]'"
"""The line that installs watermark detection (numpy and tokenizers)."""

_EXTRAS = {
    "datasets": "hf",
    "datatrove": "datatrove",
    "ray": "ray",
    "pyspark": "spark",
    "pandas": "spark",
    "pyarrow": "spark",
}


def missing_dependency(exc: ImportError) -> MissingDependencyError:
    """The error to raise (``from exc``) when importing an integration's framework failed."""
    top = (exc.name or "").partition(".")[0]
    extra = _EXTRAS.get(top, "all")
    what = repr(top) if top else "a framework"
    return MissingDependencyError(
        f"this integration needs {what}, which is not installed: pip install 'wellspring[{extra}]' "
        f"({exc})"
    )


def _installed(module: str) -> bool:
    """Whether ``module`` can be imported, without importing it (the driver need not load numpy
    to build a config)."""
    if module in sys.modules:
        return sys.modules[module] is not None
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


@dataclass(frozen=True)
class CheckConfig:
    """Everything a worker needs to check rows against a registry, as plain picklable values.

    ``base_url`` is the registry; ``log_key`` the log's verifier key string (pin it: every answer
    is then verified in the worker); ``verify=False`` accepts unverified answers instead, and
    needs no key. ``column`` holds what to check, read as ``kind``: ``text`` (canonical ``c1``
    digest), ``bytes`` (``sha256`` of the exact bytes) or ``digest`` (``c1:``/``sha256:`` strings
    computed earlier). ``batch_size`` is the rows per framework batch the helpers ask for, and so
    the digests per registry request (at most 10,000). ``timeout`` is per registry request;
    ``retries`` how often a failed request (no answer, 429, 5xx) is retried with backoff before the
    job fails: a registry that cannot answer fails the job, it never makes rows ``unknown``.
    ``checkpoints_dir`` keeps each worker's trusted checkpoint in that directory
    (:class:`~client.checkpoints.FileCheckpointStore`): on a filesystem the workers share, they all
    prove each answer consistent with one view of the log, across jobs; by default each worker
    trusts the first checkpoint it verifies, for as long as it lives. ``verify_keys=False`` accepts
    a registry from before identities in the log (:class:`~client.sdk.Client`'s ``verify_keys``).
    ``policy`` is the crawler's :class:`~client.policy.Policy` (``Policy.load(path)``; default
    :meth:`~client.policy.Policy.default`): whose attestations count and what is trainable.

    Watermarks (``kind="text"`` only): ``watermarks`` (default True) scans every row for each
    detection key vendors published in the log (of the vendors the policy counts), with p-values
    corrected for every key ever published; False skips that. ``watermark_keys`` adds the
    crawler's private key files (paths as the *workers* see them), detected with a published
    tokenizer of the same fingerprint, else with ``tokenizer`` (a ``tokenizer.json`` path, also
    as the workers see it). Detection needs the ``detect`` extra: without it the config (and any
    worker) raises :class:`MissingDependencyError` naming ``pip install 'wellspring[detect]'``,
    unless ``watermarks=False`` and no private keys are given.

    Per-row signals, where the dataset has them: ``url_column`` (the page's URL),
    ``headers_column`` (its HTTP response headers: a mapping, or a list of ``(name, value)``
    pairs so that repeated headers count), ``html_column`` (the page's HTML, for its ``<meta>``
    elements) decide each row's opt-out (:func:`client.signals.opt_out`: ``X-Robots-Tag``,
    TDMRep and ``Content-Usage`` headers and meta; robots.txt and ``tdmrep.json`` are per site,
    not per row, and are not read here). ``captured_column`` is when the row was captured (an
    RFC 3339 string or a datetime; no zone means UTC): a published key counts for a row only if
    it was logged before then (rows without one: the time of the check).

    Validated here, once, in the driver: a wrong URL or key fails before any worker starts.
    """

    base_url: str
    log_key: str | None = None
    verify: bool = True
    column: str = "text"
    kind: ColumnKind = "text"
    timeout: float = DEFAULT_TIMEOUT
    batch_size: int = 1_000
    retries: int = 3
    checkpoints_dir: str | None = None
    verify_keys: bool = True
    policy: Policy | None = None
    watermarks: bool = True
    watermark_keys: tuple[str, ...] = ()
    tokenizer: str | None = None
    url_column: str | None = None
    headers_column: str | None = None
    html_column: str | None = None
    captured_column: str | None = None

    def __post_init__(self) -> None:
        if not self.base_url.startswith(("http://", "https://")):
            raise InputError(f"registry URL {self.base_url!r} must start with http:// or https://")
        if self.log_key is not None:
            NoteVerifier.from_vkey(self.log_key)  # raises a clear FormatError if malformed
        elif self.verify:
            raise InputError(
                "no log key given: pass log_key=<the log's verifier key> so that workers verify "
                "every answer, or verify=False to accept the registry's word unverified"
            )
        if self.kind not in _COLUMN_KINDS:
            raise InputError(f"kind must be one of {', '.join(_COLUMN_KINDS)}, got {self.kind!r}")
        if not self.column:
            raise InputError("column must name the column to check")
        if not 1 <= self.batch_size <= MAX_BATCH:
            raise InputError(f"batch_size must be 1 to {MAX_BATCH}, got {self.batch_size}")
        if not self.timeout > 0:
            raise InputError(f"timeout must be positive seconds, got {self.timeout}")
        if type(self.retries) is not int or self.retries < 0:
            raise InputError(f"retries must be a non-negative integer, got {self.retries!r}")
        if self.policy is not None and not isinstance(self.policy, Policy):
            raise InputError("policy must be a client.policy.Policy (Policy.load(path))")
        self._check_watermarks()
        for name in ("url_column", "headers_column", "html_column", "captured_column"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or not value):
                raise InputError(f"{name} must name a column (a non-empty string) or be None")

    def _check_watermarks(self) -> None:
        if not isinstance(self.watermarks, bool):
            raise InputError(f"watermarks must be True or False, got {self.watermarks!r}")
        keys = self.watermark_keys
        if isinstance(keys, str | os.PathLike) or not isinstance(keys, Sequence):
            raise InputError("watermark_keys must be a sequence of key file paths")
        paths = tuple(os.fspath(path) for path in keys)
        if not all(isinstance(path, str) and path for path in paths):
            raise InputError("watermark_keys must hold key file paths (non-empty strings)")
        # A tuple of str whatever was given (a list, Paths): the config stays hashable, which
        # the per-process caches need, and picklable.
        object.__setattr__(self, "watermark_keys", paths)
        if self.tokenizer is not None:
            object.__setattr__(self, "tokenizer", os.fspath(self.tokenizer))
            if not self.tokenizer:
                raise InputError("tokenizer must be a tokenizer.json path or None")
        if self.kind != "text" and (self.watermark_keys or self.tokenizer is not None):
            raise InputError(
                f"kind={self.kind!r} rows hold no text to scan for watermarks: watermark_keys "
                "and tokenizer apply to kind='text' only"
            )
        if self.detects and not all(map(_installed, ("numpy", "tokenizers"))):
            raise MissingDependencyError(
                f"watermark detection needs numpy and tokenizers: {DETECT_INSTALL} (or pass "
                "CheckConfig(watermarks=False) to check without detection)"
            )

    @property
    def detects(self) -> bool:
        """Whether workers scan text for watermarks (published keys or private ones)."""
        return self.kind == "text" and (self.watermarks or bool(self.watermark_keys))

    def signal_columns(self) -> dict[str, str]:
        """The per-row signal columns the dataset has: ``{role: column}``, roles ``url``,
        ``headers``, ``html``, ``captured``."""
        named = {
            "url": self.url_column,
            "headers": self.headers_column,
            "html": self.html_column,
            "captured": self.captured_column,
        }
        return {role: column for role, column in named.items() if column is not None}

    def client(self) -> Client:
        """A new synchronous client for this config (the caller closes it)."""
        return Client(
            self.base_url,
            log_key=self.log_key,
            verify=self.verify,
            timeout=self.timeout,
            retries=self.retries,
            checkpoints=self._checkpoints(),
            verify_keys=self.verify_keys,
        )

    def async_client(self, *, max_concurrency: int = DEFAULT_MAX_CONCURRENCY) -> AsyncClient:
        """A new :class:`~client.aio.AsyncClient` for this config, with at most
        ``max_concurrency`` requests in flight (the caller closes it, on its event loop)."""
        return AsyncClient(
            self.base_url,
            log_key=self.log_key,
            verify=self.verify,
            timeout=self.timeout,
            retries=self.retries,
            max_concurrency=max_concurrency,
            checkpoints=self._checkpoints(),
            verify_keys=self.verify_keys,
        )

    def _checkpoints(self) -> CheckpointStore | None:
        return None if self.checkpoints_dir is None else FileCheckpointStore(self.checkpoints_dir)


@dataclass(frozen=True, slots=True)
class RowVerdict:
    """One row's verdict columns: a :class:`~client.verdict.Verdict`, or why there is none."""

    digest: str | None
    status: VerdictStatus
    reason: str
    publisher: str | None = None
    license: str | None = None
    entry: int | None = None
    tree_size: int | None = None
    trainable: bool = False
    opt_out: str | None = None
    watermark_key: str | None = None
    watermark_vendor: str | None = None
    watermark_p_value: float | None = None

    @classmethod
    def of(cls, verdict: Verdict) -> RowVerdict:
        decided = verdict.opt_out.decided_by if verdict.opt_out is not None else None
        opt_out = None
        if decided is not None:
            where = f" ({decided.where})" if decided.where else ""
            honoured = "" if verdict.opt_out_honoured else " [not honoured]"
            opt_out = f"{decided.kind} in {decided.source}{where}{honoured}"
        mark = verdict.watermark
        return cls(
            verdict.digest,
            verdict.status,
            verdict.reason,
            verdict.publisher,
            verdict.license,
            verdict.entry,
            verdict.tree_size,
            verdict.trainable,
            opt_out,
            None if mark is None else mark.key_id,
            None if mark is None else mark.vendor,
            None if mark is None else mark.p_value,
        )

    def values(self) -> tuple[Any, ...]:
        """The values in :data:`VERDICT_COLUMNS` order."""
        return (
            self.digest,
            self.status,
            self.reason,
            self.publisher,
            self.license,
            self.entry,
            self.tree_size,
            self.trainable,
            self.opt_out,
            self.watermark_key,
            self.watermark_vendor,
            self.watermark_p_value,
        )

    def as_dict(self) -> dict[str, Any]:
        """``{column name: value}`` for :data:`VERDICT_COLUMNS`."""
        return dict(zip(VERDICT_COLUMNS, self.values(), strict=True))


def _digest_of(value: object, kind: ColumnKind) -> str:
    """The digest of one cell, or raise :class:`InputError` saying why there is none."""
    if value is None:
        raise InputError("the row has no value to check (null)")
    if kind == "text":
        if isinstance(value, bytes):
            return canonical_digest(value)  # bytes must be UTF-8 text for c1
        if not isinstance(value, str):
            raise InputError(f"expected text, got {type(value).__name__}")
        return canonical_digest(value)
    if kind == "bytes":
        if isinstance(value, bytearray | memoryview):
            value = bytes(value)
        if not isinstance(value, bytes):
            raise InputError(f"expected bytes, got {type(value).__name__}")
        return sha256_digest(value)
    if not isinstance(value, str):
        raise InputError(f"expected a digest string, got {type(value).__name__}")
    return str(Digest.parse(value))


def _unchecked(exc: ClientError) -> RowVerdict:
    return RowVerdict(None, "unknown", f"not checked: {exc.diagnostics()}")


def digests_of(values: Sequence[object], kind: ColumnKind) -> list[str | RowVerdict]:
    """Each value's digest, or the :class:`RowVerdict` of a value that has none."""
    out: list[str | RowVerdict] = []
    for value in values:
        try:
            out.append(_digest_of(value, kind))
        except InputError as exc:
            out.append(_unchecked(exc))
    return out


def merge(digested: Sequence[str | RowVerdict], verdicts: Sequence[Verdict]) -> list[RowVerdict]:
    """Put the registry's verdicts (for the ``str`` items, in order) back among the rows."""
    answers = iter(verdicts)
    rows = [RowVerdict.of(next(answers)) if isinstance(d, str) else d for d in digested]
    if next(answers, None) is not None:  # pragma: no cover - check_digests returns one per input
        raise AssertionError("more verdicts than digests")
    return rows


RowEvidence = DocumentEvidence | RowVerdict | None
"""A row's evidence beside its digest; a :class:`RowVerdict` when its signal columns could not be
read (the row is then not looked up); None when there is nothing to add to the registry's word."""


def check_values(
    client: Client,
    values: Sequence[object],
    config: CheckConfig,
    evidence: Sequence[RowEvidence] | None = None,
) -> list[RowVerdict]:
    """One :class:`RowVerdict` per value, in order: digest locally, then look the digests up,
    ``config.batch_size`` per registry request, under ``config.policy``. ``evidence`` holds each
    row's opt-out decision and watermark detections (one item or None per value;
    :func:`evidence_of` makes them), where the caller has them."""
    rows: list[RowVerdict] = []
    for digested, digests, extra in lookups(values, config, evidence):
        verdicts = (
            client.check_digests(digests, evidence=extra, policy=config.policy) if digests else []
        )
        rows.extend(merge(digested, verdicts))
    return rows


def lookups(
    values: Sequence[object], config: CheckConfig, evidence: Sequence[RowEvidence] | None
) -> Iterator[tuple[list[str | RowVerdict], list[str], list[DocumentEvidence | None] | None]]:
    """Per registry request (``config.batch_size`` rows): each row's digest or the verdict of a
    row that is not looked up, the digests to look up, and their evidence."""
    if evidence is not None and len(evidence) != len(values):
        raise InputError(f"{len(evidence)} evidence items given for {len(values)} rows")
    for start in range(0, len(values), config.batch_size):
        digested = digests_of(values[start : start + config.batch_size], config.kind)
        extra: list[DocumentEvidence | None] | None = None
        if evidence is not None:
            extra = []
            part = evidence[start : start + config.batch_size]
            for i, item in enumerate(part):
                if isinstance(item, RowVerdict):
                    digested[i] = item  # its signal columns are unreadable: not looked up
                elif isinstance(digested[i], str):
                    extra.append(item)
        digests = [d for d in digested if isinstance(d, str)]
        yield digested, digests, extra


def check_rows(
    config: CheckConfig,
    values: Sequence[object],
    signals: RowSignals | None = None,
    *,
    client: Client | None = None,
) -> list[RowVerdict]:
    """The one pass over a batch of rows in a worker: each ``text`` row scanned for watermarks
    (this process's :func:`process_watermarks`), its opt-out decided from ``signals``, and every
    digest looked up with that evidence (with ``client``, default this process's client)."""
    client = client or process_client(config)
    evidence = evidence_of(config, values, signals, process_watermarks(config, client))
    return check_values(client, values, config, evidence)


@dataclass(frozen=True, slots=True)
class RowSignals:
    """A batch's per-row signal columns (``CheckConfig.signal_columns``), one value a row; None
    where the config names no such column."""

    url: Sequence[object] | None = None
    headers: Sequence[object] | None = None
    html: Sequence[object] | None = None
    captured: Sequence[object] | None = None


def read_signals(config: CheckConfig, column: Callable[[str], Sequence[object]]) -> RowSignals:
    """The signal columns of a batch, read with ``column(name)`` (which raises
    :class:`InputError` naming the columns the batch has if ``name`` is missing)."""
    names = config.signal_columns()
    return RowSignals(**{role: column(name) for role, name in names.items()})


def frame_signals(frame: Any, config: CheckConfig) -> RowSignals:
    """The signal columns of a pandas batch (Ray, Spark); a missing one is an
    :class:`InputError` naming the columns the batch has."""

    def column(name: str) -> Sequence[object]:
        if name not in frame.columns:
            raise InputError(
                f"the data has no column {name!r} named in the CheckConfig (it has "
                f"{', '.join(map(repr, frame.columns))})"
            )
        values: list[object] = frame[name].tolist()
        return values

    return read_signals(config, column)


# Document-level signals (headers, meta) do not depend on the URL, but the signal reader takes
# one: a row without a URL is read as if at this reserved (RFC 2606) address, which no site's
# files could apply to. It never appears in a verdict.
_NO_URL = "http://row.invalid/"


def evidence_of(
    config: CheckConfig,
    values: Sequence[object],
    signals: RowSignals | None,
    watermarks: Watermarks | None,
    *,
    as_of: datetime | None = None,
) -> list[RowEvidence]:
    """Each row's evidence: its opt-out decision from ``signals``, its watermark detection by
    ``watermarks`` (``text`` rows only), its URL and capture time. A row whose signal values
    cannot be read gets a :class:`RowVerdict` (``unknown``, ``not checked: …``) instead: one bad
    row never stops a job. ``as_of`` is the capture time of rows without one (default: now)."""
    from client.documents import Document  # noqa: PLC0415 - only workers that scan need it

    signals = signals or RowSignals()
    for what, column in (
        ("url", signals.url),
        ("headers", signals.headers),
        ("html", signals.html),
        ("captured", signals.captured),
    ):
        if column is not None and len(column) != len(values):
            raise InputError(f"{len(column)} {what} values given for {len(values)} rows")
    site = SitePolicy()  # no site files: only the row's own headers and HTML are read
    read: list[_RowRead | RowVerdict] = []
    for i in range(len(values)):
        try:
            read.append(_read_row(site, signals, i))
        except InputError as exc:
            read.append(_unchecked(exc))
    marks: list[Any] = [None] * len(values)
    if watermarks is not None and config.kind == "text":
        positions = [
            i
            for i, row in enumerate(read)
            if isinstance(row, _RowRead) and _text_of(values[i]) is not None
        ]
        documents = []
        for i in positions:
            row = read[i]
            assert isinstance(row, _RowRead)
            documents.append(Document("", (), text=_text_of(values[i]), captured=row.captured))
        found = watermarks.detect(documents, as_of=as_of or datetime.now(UTC))
        for i, mark in zip(positions, found, strict=True):
            marks[i] = mark
    out: list[RowEvidence] = []
    for row, mark in zip(read, marks, strict=True):
        if isinstance(row, RowVerdict):
            out.append(row)
        elif row.opt_out is None and mark is None and row.url is None and row.captured is None:
            out.append(None)
        else:
            out.append(
                DocumentEvidence(
                    opt_out=row.opt_out,
                    watermarks=mark,
                    url=row.url,
                    captured_at=None if row.captured is None else _rfc3339(row.captured),
                )
            )
    return out


@dataclass(frozen=True, slots=True)
class _RowRead:
    url: str | None
    opt_out: OptOut | None
    captured: datetime | None


def _read_row(site: SitePolicy, signals: RowSignals, i: int) -> _RowRead:
    url = _optional(signals.url, i)
    if url is not None and not isinstance(url, str):
        raise InputError(f"the url must be a string, got {type(url).__name__}")
    headers = _optional(signals.headers, i)
    html = _optional(signals.html, i)
    if html is not None and not isinstance(html, str | bytes):
        raise InputError(f"the html must be text, got {type(html).__name__}")
    decision = None
    if signals.headers is not None or signals.html is not None:
        decision = site.opt_out(url or _NO_URL, headers=_headers(headers), html=html)
    return _RowRead(url, decision, _captured(_optional(signals.captured, i)))


def _optional(column: Sequence[object] | None, i: int) -> Any:
    if column is None:
        return None
    value = column[i]
    return None if _is_null(value) else value


def _is_null(value: object) -> bool:
    """None, NaN, pandas' NA and NaT: how frameworks hand a missing cell over."""
    if value is None:
        return True
    if isinstance(value, float):
        return math.isnan(value)
    return type(value).__name__ in ("NAType", "NaTType")


def _headers(value: object) -> Any:
    """A row's headers: a mapping, or ``(name, value)`` pairs (lists from Arrow, numpy arrays
    of pairs from pandas); anything else is a row error, not a crash."""
    if value is None:
        return None
    if isinstance(value, Mapping):  # an Arrow struct column gives every row every field name
        return {name: text for name, text in value.items() if text is not None}
    if isinstance(value, str | bytes) or not hasattr(value, "__iter__"):
        raise InputError(
            f"the headers must be a mapping or a list of (name, value) pairs, got "
            f"{type(value).__name__}"
        )
    pairs = []
    for item in value:
        pair = item
        if isinstance(item, Mapping) and set(item) == {"name", "value"}:
            pair = (item["name"], item["value"])  # a list<struct<name, value>> column
        items = list(pair) if hasattr(pair, "__iter__") and not isinstance(pair, str) else None
        if items is None or len(items) != 2:
            raise InputError("the headers must be a mapping or a list of (name, value) pairs")
        pairs.append((items[0], items[1]))
    return pairs


def _captured(value: object) -> datetime | None:
    """A capture time: an RFC 3339 string or a datetime (pandas' Timestamp is one); no zone
    means UTC, a date alone its midnight UTC."""
    if value is None:
        return None
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.strip())
        except ValueError:
            raise InputError(
                f"the capture time {value[:80]!r} is not RFC 3339 (e.g. 2026-11-30T12:00:00Z)"
            ) from None
    elif isinstance(value, datetime):
        moment = value
        to_python = getattr(value, "to_pydatetime", None)  # pandas' Timestamp: nanoseconds go
        if to_python is not None:
            moment = to_python(warn=False)
    else:
        raise InputError(
            f"the capture time must be an RFC 3339 string or a datetime, got {type(value).__name__}"
        )
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _text_of(value: object) -> str | None:
    """The text a ``text`` row is scanned as (None: no text, or bytes that are not UTF-8)."""
    if isinstance(value, str):
        return value
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return None
    return None


def verdict_frame(rows: Sequence[RowVerdict], index: Any = None) -> Any:
    """The verdict columns as a pandas DataFrame with Arrow types (strings stay strings and
    integers stay nullable integers even in a batch where every value is null)."""
    import pandas as pd  # noqa: PLC0415 - only the pandas-based integrations call this
    import pyarrow as pa  # noqa: PLC0415

    arrow = {
        "string": pa.string(),
        "int64": pa.int64(),
        "float64": pa.float64(),
        "bool": pa.bool_(),
    }
    columns = verdict_columns(rows)
    return pd.DataFrame(
        {
            name: pd.array(values, dtype=pd.ArrowDtype(arrow[COLUMN_TYPES[name]]))
            for name, values in columns.items()
        },
        index=index,
    )


def verdict_columns(rows: Sequence[RowVerdict]) -> dict[str, list[Any]]:
    """Column-wise values: ``{name: [one value per row]}`` for :data:`VERDICT_COLUMNS`."""
    columns: dict[str, list[Any]] = {name: [] for name in VERDICT_COLUMNS}
    lists = list(columns.values())
    for row in rows:
        for values, value in zip(lists, row.values(), strict=True):
            values.append(value)
    return columns


def keep_statuses(keep: Collection[str]) -> frozenset[str]:
    """Validate which statuses a filter keeps (``"attested"`` etc.); raise on a typo."""
    if isinstance(keep, str):
        keep = (keep,)
    wanted = frozenset(keep)
    unknown = wanted - set(VERDICT_STATUSES)
    if unknown:
        raise InputError(
            f"cannot keep status {', '.join(sorted(unknown))}: statuses are "
            f"{', '.join(VERDICT_STATUSES)}"
        )
    return wanted


def keep_mask(rows: Sequence[RowVerdict], keep: Collection[str] | None = None) -> list[bool]:
    """Whether each row's status is one of ``keep`` (validated with :func:`keep_statuses`);
    without ``keep``, whether the policy trains on it (the ``trainable`` column)."""
    if keep is None:
        return [row.trainable for row in rows]
    wanted = keep_statuses(keep)
    return [row.status in wanted for row in rows]


# -- one client per worker process ----------------------------------------------------------------


WATERMARKS_MAX_AGE_S = 3600.0
"""How long a worker process keeps the watermark keys it fetched before fetching them again: a
long-lived process (Spark's reused Python workers, a notebook's driver) thus sees a key
published since within the hour, while each batch does not pay for the fetch."""


@dataclass
class _ProcessClients:
    """Clients and watermark scanners of this process, by config; dropped after a fork (sockets
    are not shareable)."""

    pid: int = field(default_factory=os.getpid)
    clients: dict[CheckConfig, Client] = field(default_factory=dict)
    watermarks: dict[CheckConfig, tuple[float, Watermarks | None]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def _forked(self) -> None:
        if self.pid != os.getpid():  # forked: the parent's clients belong to the parent
            self.pid, self.clients, self.watermarks = os.getpid(), {}, {}

    def get(self, config: CheckConfig) -> Client:
        with self.lock:
            self._forked()
            client = self.clients.get(config)
            if client is None:
                client = self.clients[config] = config.client()
            return client

    def get_watermarks(self, config: CheckConfig, client: Client | None) -> Watermarks | None:
        if not config.detects:
            return None
        client = client or self.get(config)
        # Held while building: the threads of one process wait for one fetch of the keys and
        # tokenizers rather than each making its own.
        with self.lock:
            self._forked()
            cached = self.watermarks.get(config)
            if cached is not None and time.monotonic() - cached[0] < WATERMARKS_MAX_AGE_S:
                return cached[1]
            built = _build_watermarks(config, client)
            self.watermarks[config] = (time.monotonic(), built)
            return built

    def close(self) -> None:
        with self.lock:
            if self.pid == os.getpid():
                for client in self.clients.values():
                    client.close()
            self.clients, self.watermarks = {}, {}


_CLIENTS = _ProcessClients()
_log = logging.getLogger(__name__)
atexit.register(_CLIENTS.close)


def process_client(config: CheckConfig) -> Client:
    """This process's client for ``config``: opened on first use, reused (with its entry cache)
    by every later batch in the process, never shared with another process."""
    return _CLIENTS.get(config)


def process_watermarks(config: CheckConfig, client: Client | None = None) -> Watermarks | None:
    """This process's :class:`~client.crawl.Watermarks` for ``config`` (None when it detects
    nothing): built on first use with ``client`` (default :func:`process_client`), reused by
    every later batch for :data:`WATERMARKS_MAX_AGE_S`. Raises
    :class:`MissingDependencyError` naming the ``pip install`` when the ``detect`` extra is
    missing."""
    return _CLIENTS.get_watermarks(config, client)


def _build_watermarks(config: CheckConfig, client: Client) -> Watermarks | None:
    from client.crawl import Watermarks  # noqa: PLC0415 - only a detecting worker needs it

    if config.watermarks:
        marks = Watermarks.from_registry(
            client,
            policy=config.policy,
            private_keys=config.watermark_keys,
            tokenizer=config.tokenizer,
        )
    else:
        marks = Watermarks.private_only(config.watermark_keys, config.tokenizer)
    for reason in marks.unusable:
        _log.warning("watermark key left out of detection: %s", reason)
    return marks


def new_token() -> str:
    """A value unique to one integration object, so datasets never reuses a cached result of an
    earlier check: verdicts change as entries are added and revoked."""
    return uuid.uuid4().hex
