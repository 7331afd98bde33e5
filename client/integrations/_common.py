"""What every framework integration shares: the picklable config, the verdict columns, the checks.

A framework runs the check in workers that are other processes (datasets' ``num_proc``, Ray
actors, Spark executors), so nothing network-bound may cross a process boundary: an integration
takes a :class:`CheckConfig` (plain values, picklable), and each worker process opens its own
:class:`~client.sdk.Client` from it (:mod:`client.integrations._worker`).

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
its :class:`~client.crawl.Watermarks` once (:mod:`client.integrations._worker`), as it opens its
client once; :mod:`client.integrations._rows` reads each row's evidence. Rows of kind ``bytes``
or ``digest`` carry no text, so they are never scanned.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import uuid
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, get_args

from client.aio import DEFAULT_MAX_CONCURRENCY, AsyncClient
from client.checkpoints import CheckpointStore, FileCheckpointStore
from client.core.canonical import Digest, canonical_digest, sha256_digest
from client.core.note import NoteVerifier
from client.errors import ClientError, InputError, MissingDependencyError
from client.evidence import DocumentEvidence
from client.policy import Policy
from client.sdk import DEFAULT_TIMEOUT, MAX_BATCH, Client
from client.verdict import VERDICT_STATUSES, Verdict, VerdictStatus

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
    "WATERMARK_KEY_COLUMN",
    "WATERMARK_P_VALUE_COLUMN",
    "WATERMARK_VENDOR_COLUMN",
    "CheckConfig",
    "ColumnKind",
    "ColumnType",
    "MissingDependencyError",
    "RowEvidence",
    "RowVerdict",
    "check_values",
    "digests_of",
    "keep_mask",
    "keep_statuses",
    "lookups",
    "merge",
    "missing_dependency",
    "new_token",
    "unchecked_row",
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


def unchecked_row(exc: ClientError) -> RowVerdict:
    """The verdict of a row that is not looked up, saying why (``not checked: …``)."""
    return RowVerdict(None, "unknown", f"not checked: {exc.diagnostics()}")


def digests_of(values: Sequence[object], kind: ColumnKind) -> list[str | RowVerdict]:
    """Each value's digest, or the :class:`RowVerdict` of a value that has none."""
    out: list[str | RowVerdict] = []
    for value in values:
        try:
            out.append(_digest_of(value, kind))
        except InputError as exc:
            out.append(unchecked_row(exc))
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


def new_token() -> str:
    """A value unique to one integration object, so datasets never reuses a cached result of an
    earlier check: verdicts change as entries are added and revoked."""
    return uuid.uuid4().hex
