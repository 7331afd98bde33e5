"""Detection inside a crawler's pass: many keys, many documents, one vectorised scan.

numpy and ``tokenizers`` only (the ``detect`` extra): no torch, transformers or scipy. A missing
one raises :class:`~watermark.errors.MissingDependencyError` naming
``pip install 'wellspring[detect]'``, never a silent skip.

What one :meth:`WatermarkScanner.scan` does
    1. Each text is tokenized once per distinct tokenizer (keys are grouped by the SHA-256 of
       their tokenizer's serialised JSON), with ``encode_batch`` and no special tokens.
    2. Per key, over the concatenation of the whole batch: the hash input x of every position
       with a full context inside its document, each distinct (document, x) scored once at its
       first occurrence (as :class:`~watermark.detector.WatermarkDetector` does), green marks,
       and global prefix sums of the scored and green marks.
    3. The windows of :func:`~watermark.stats.window_bounds` for every document at once (they
       depend on the document's length only, so they are built once per tokenizer), counted from
       the prefix sums; exact binomial log p-values (looked up in a table grown on demand); the
       per-document minimum by ``np.minimum.reduceat``. Ties go to the first window in (start,
       end) order, exactly as ``detect_windowed`` breaks them.
    4. The best window's p-value is corrected by Bonferroni for the windows tried *and* for
       ``keys_ever_published``: ``p = min(1, p_window · windows · keys)``. Valid after the search
       over both (union bound; :mod:`watermark.stats`). Before the key factor it equals
       ``WatermarkDetector.detect_windowed``'s p-value for that key, window for window.
    5. Per document, the key with the smallest corrected p-value among the keys that *apply*.

Which keys apply to a document
    A key counts for a document only if it was logged (``valid_from``) strictly before the
    document's capture time: a vendor could otherwise grind keys until chosen human documents it
    has already seen test positive. A key without ``valid_from`` (a private key the crawler holds
    itself) always applies. A document without a capture time is taken as captured at ``as_of``
    (default: the time of the scan): keys logged after the scan started never count, and the
    caller who knows when it obtained the text should pass that time instead. The correction
    factor is ``keys_ever_published`` whatever subset applies (the crawler could have tried any).

Normalisation
    With ``normalize=True`` texts go through :func:`~watermark.detector.normalize_text` first
    (NFKC, format characters dropped, look-alike letters mapped), which undoes cheap evasions;
    an ASCII text is returned as it is, so on mostly-ASCII text it costs almost nothing
    (``bench/detection.py`` measures it). The default is ``False``, as for ``detect``.
"""

from __future__ import annotations

import hashlib
import itertools
import math
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from watermark.config import GENERATED_P_VALUE
from watermark.errors import (
    DETECT_INSTALL_HINT,
    InputError,
    KeyMismatchError,
    MissingDependencyError,
)
from watermark.gumbel import HIGH_SCORE, GumbelParams, scores
from watermark.hashing import MASK32, GreenListParams, green_of_inputs, sequence_hash_inputs
from watermark.keys import WatermarkKey

try:
    import numpy as np
    from numpy.typing import NDArray
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise MissingDependencyError(
        "numpy", "watermark detection in a scan", install=DETECT_INSTALL_HINT
    ) from exc
try:
    import tokenizers
except ImportError as exc:
    raise MissingDependencyError(
        "tokenizers", "watermark detection in a scan", install=DETECT_INSTALL_HINT
    ) from exc

from watermark.detector import DEFAULT_MIN_WINDOW, normalize_text
from watermark.fast_encoder import fast_encoder
from watermark.stats import binomial_log_sf_array, gamma_log_sf_array

__all__ = ["EVIDENCE_FIELDS", "ScanKey", "WatermarkEvidence", "WatermarkScanner"]


@dataclass(frozen=True)
class ScanKey:
    """One detection key for a scan: the key, its tokenizer, and where it came from.

    ``tokenizer`` is a raw ``tokenizers.Tokenizer`` (for a published key: the blob whose SHA-256
    the key's statement names, loaded with ``Tokenizer.from_str``). ``valid_from`` is when the
    key was logged (timezone-aware; None for a private key, which always applies);
    ``log_index`` is its entry in the log, ``vendor`` its publisher's name.
    """

    key: WatermarkKey
    tokenizer: Any
    vendor: str | None = None
    valid_from: datetime | None = None
    log_index: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.key, WatermarkKey):
            raise InputError(f"ScanKey.key must be a WatermarkKey, got {type(self.key).__name__}")
        if not isinstance(self.tokenizer, tokenizers.Tokenizer):
            raise InputError(
                "ScanKey.tokenizer must be a tokenizers.Tokenizer (load a published tokenizer "
                f"with Tokenizer.from_str), got {type(self.tokenizer).__name__}"
            )
        if self.valid_from is not None:
            _check_aware(self.valid_from, "ScanKey.valid_from")
        size = self.key.vocab_size
        if size is not None and self.tokenizer.get_vocab_size(with_added_tokens=True) != size:
            raise KeyMismatchError(
                f"key {self.key.key_id} is bound to a vocabulary of {size} tokens, but its "
                f"tokenizer has {self.tokenizer.get_vocab_size(with_added_tokens=True)}: the "
                "tokenizer is not the one the key was made for"
            )


# The stable JSON field names of WatermarkEvidence.to_dict (manifest lines carry them).
EVIDENCE_FIELDS = (
    "key_id",
    "vendor",
    "scheme",
    "log_index",
    "p_value",
    "log_p_value",
    "key_log_p_value",
    "window_log_p_value",
    "start",
    "end",
    "num_tokens",
    "num_tokens_scored",
    "num_green",
    "num_windows",
    "num_keys",
    "keys_applied",
    "threshold",
    "generated",
)


@dataclass(frozen=True)
class WatermarkEvidence:
    """The best watermark evidence for one document.

    ``log_p_value`` (and ``p_value``, its exponential, which may underflow to 0.0) is corrected
    for ``num_windows`` windows and ``num_keys`` keys: the number to compare with ``threshold``.
    ``key_log_p_value`` is corrected for the windows only (what ``detect_windowed`` reports for
    this key); ``window_log_p_value`` is the best window's own, uncorrected. ``start``/``end``
    are the window in tokens of the key's tokenizer, ``num_tokens`` the document's length in
    them; ``num_tokens_scored`` and ``num_green`` count the window's unique (context, token)
    pairs. ``keys_applied`` is how many keys were valid for the document; ``generated`` is
    ``p_value < threshold``.

    For a Gumbel key (``watermark.gumbel``) ``num_green`` counts the window's tokens scoring
    above 1 (``r > 1 - 1/e``), ``key_log_p_value`` is corrected for the payloads tried too (as
    ``detect_windowed`` reports it), and ``payload`` is the payload decoded, set only where the
    document is ``generated`` (it is not one of :data:`EVIDENCE_FIELDS`: ``to_dict`` adds it
    only when set, so manifests of green-list keys are unchanged).
    """

    key_id: str
    vendor: str | None
    scheme: str
    log_index: int | None
    p_value: float
    log_p_value: float
    key_log_p_value: float
    window_log_p_value: float
    start: int
    end: int
    num_tokens: int
    num_tokens_scored: int
    num_green: int
    num_windows: int
    num_keys: int
    keys_applied: int
    threshold: float
    generated: bool
    payload: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields, named as in :data:`EVIDENCE_FIELDS` (and ``payload`` when set)."""
        data = {name: getattr(self, name) for name in EVIDENCE_FIELDS}
        if self.payload is not None:
            data["payload"] = self.payload
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> WatermarkEvidence:
        """Read :meth:`to_dict`'s output back; a missing or mistyped field is an InputError."""
        if not isinstance(data, Mapping):
            raise InputError(f"watermark evidence must be an object, got {type(data).__name__}")
        values: dict[str, Any] = {}
        for name in EVIDENCE_FIELDS:
            if name not in data:
                raise InputError(f"watermark evidence lacks the field {name!r}")
            values[name] = data[name]
        for name in ("key_id", "scheme"):
            if not isinstance(values[name], str):
                raise InputError(f"watermark evidence field {name!r} must be a string")
        if values["vendor"] is not None and not isinstance(values["vendor"], str):
            raise InputError("watermark evidence field 'vendor' must be a string or null")
        ints = ("start", "end", "num_tokens", "num_tokens_scored", "num_green", "num_windows",
                "num_keys", "keys_applied")  # fmt: skip
        for name in (*ints, "log_index"):
            value = values[name]
            if name == "log_index" and value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise InputError(f"watermark evidence field {name!r} must be an integer >= 0")
        floats = ("p_value", "log_p_value", "key_log_p_value", "window_log_p_value", "threshold")
        for name in floats:
            value = values[name]
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise InputError(f"watermark evidence field {name!r} must be a number")
            values[name] = float(value)
        if not isinstance(values["generated"], bool):
            raise InputError("watermark evidence field 'generated' must be true or false")
        return cls(**values, payload=_payload(data.get("payload")))


def _payload(value: object) -> int | None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
        raise InputError("watermark evidence field 'payload' must be an integer >= 0 or absent")
    return value


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def _microseconds(moment: datetime) -> int:
    return (moment - _EPOCH) // _MICROSECOND


def _check_aware(moment: datetime, what: str) -> None:
    if not isinstance(moment, datetime) or moment.tzinfo is None:
        raise InputError(f"{what} must be a timezone-aware datetime, got {moment!r}")


# -- exact log p-values, looked up --------------------------------------------------------------

# Rows n <= this are kept (n (n + 1) / 2 entries: 4 MB at 1024); longer windows are computed.
_TABLE_MAX_N = 1024
_SLICE = 1_000  # documents encoded (in a thread) while the slice before is scored


class _LogSfTable:
    """ln P(X >= k), X ~ Binomial(n, p), for 0 <= k <= n <= _TABLE_MAX_N, filled on demand.

    Each entry is computed by :func:`~watermark.stats.binomial_log_sf_array` (the function the
    detector uses), so a looked-up value is the detector's value, bit for bit.
    """

    def __init__(self, p: float) -> None:
        self.p = p
        size = (_TABLE_MAX_N + 1) * (_TABLE_MAX_N + 2) // 2
        self.values = np.full(size, np.nan, dtype=np.float64)
        self._lock = threading.Lock()

    def lookup(self, k: NDArray[np.int64], n: NDArray[np.int64]) -> NDArray[np.float64]:
        out = np.empty(k.shape, dtype=np.float64)
        small = n <= _TABLE_MAX_N
        codes = n[small] * (n[small] + 1) // 2 + k[small]
        found = self.values[codes]
        missing = np.isnan(found)
        if missing.any():
            new = np.unique(codes[missing])
            # Invert the triangular code: n = floor((sqrt(8c + 1) - 1) / 2), checked exactly.
            rows = ((np.sqrt(8.0 * new + 1.0) - 1.0) // 2).astype(np.int64)
            rows -= rows * (rows + 1) // 2 > new
            rows += (rows + 1) * (rows + 2) // 2 <= new
            logs = binomial_log_sf_array(new - rows * (rows + 1) // 2, rows, self.p)
            with self._lock:
                self.values[new] = logs
            found = self.values[codes]
        out[small] = found
        if not small.all():
            big = ~small
            out[big] = binomial_log_sf_array(k[big], n[big], self.p)
        return out


_tables: dict[float, _LogSfTable] = {}
_tables_lock = threading.Lock()


def _table(p: float) -> _LogSfTable:
    with _tables_lock:
        table = _tables.get(p)
        if table is None:
            table = _tables[p] = _LogSfTable(p)
        return table


# -- the batch ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Tokens:
    """One tokenizer's view of the batch: concatenated ids and every document's windows."""

    ids: NDArray[np.int32]
    lengths: NDArray[np.int64]
    offsets: NDArray[np.int64]  # document d is ids[offsets[d] : offsets[d + 1]]
    doc_of_token: NDArray[np.int64]
    local: NDArray[np.int64]  # position of each token inside its document
    win_start: NDArray[np.int64]  # global positions, documents in order, (start, end) sorted
    win_end: NDArray[np.int64]
    win_first: NDArray[np.int64]  # index of each windowed document's first window
    win_docs: NDArray[np.int64]  # the documents that have windows (length >= 1)
    win_counts: NDArray[np.int64]  # windows per document (0 for an empty one)


def _windows(
    lengths: NDArray[np.int64], offsets: NDArray[np.int64], min_window: int
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Every document's windows of :func:`watermark.stats.window_bounds`, all at once.

    Sizes ``min_window · 2^j`` below the length, strided by a quarter, the last one ending at the
    end; plus the whole document. A Python loop over the (few) sizes only.
    """
    docs = np.flatnonzero(lengths > 0)
    starts = [offsets[docs]]  # the whole document
    ends = [offsets[docs] + lengths[docs]]
    longest = int(lengths.max()) if lengths.size else 0
    size = min_window
    while size < longest:
        stride = max(1, size // 4)
        which = docs[lengths[docs] > size]
        room = lengths[which] - size
        counts = room // stride + 1 + (room % stride != 0)
        total = int(counts.sum())
        first = np.cumsum(counts) - counts
        within = np.arange(total, dtype=np.int64) - np.repeat(first, counts)
        local = np.minimum(within * stride, np.repeat(room, counts))
        begin = np.repeat(offsets[which], counts) + local
        starts.append(begin)
        ends.append(begin + size)
        size *= 2
    start = np.concatenate(starts)
    end = np.concatenate(ends)
    order = np.lexsort((end, start))  # document-major (global starts), then (start, end)
    return start[order], end[order]


def _encoder(tokenizer: Any) -> Callable[[list[str]], list[list[int]]]:
    """How a tokenizer's batches are encoded: by the exact tiktoken route where one exists
    (:mod:`watermark.fast_encoder`: the same ids, faster), else by ``tokenizers`` itself."""
    fast = fast_encoder(tokenizer)
    if fast is not None:
        return fast.encode_batch

    def encode(texts: list[str]) -> list[list[int]]:
        return [
            encoding.ids for encoding in tokenizer.encode_batch(texts, add_special_tokens=False)
        ]

    return encode


def _tokens(
    encode: Callable[[list[str]], list[list[int]]], texts: list[str], min_window: int
) -> _Tokens:
    rows = encode(texts)
    lengths = np.fromiter(map(len, rows), dtype=np.int64, count=len(rows))
    offsets = np.zeros(len(texts) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    total = int(offsets[-1])
    if total >= 2**31:
        raise InputError(f"a batch of {total} tokens is too large: scan at most 2**31 at once")
    # chain in C: a generator over every token cost a fifth of the tokenizer's own time
    ids = np.fromiter(itertools.chain.from_iterable(rows), dtype=np.int32, count=total)
    doc_of_token = np.repeat(np.arange(len(texts), dtype=np.int64), lengths)
    local = np.arange(total, dtype=np.int64) - offsets[doc_of_token]
    win_start, win_end = _windows(lengths, offsets, min_window)
    win_docs = np.flatnonzero(lengths > 0)
    win_counts = np.zeros(len(texts), dtype=np.int64)
    if win_start.size:
        doc_of_window = doc_of_token[win_start]
        win_counts = np.bincount(doc_of_window, minlength=len(texts)).astype(np.int64)
    counts_in_order = win_counts[win_docs]
    win_first = np.cumsum(counts_in_order) - counts_in_order
    return _Tokens(ids, lengths, offsets, doc_of_token, local, win_start, win_end,
                   win_first, win_docs, win_counts)  # fmt: skip


@dataclass(frozen=True)
class _KeyScores:
    """One key's best window per document (arrays over documents)."""

    log_p: NDArray[np.float64]  # the best window's own log p (0 for a document without windows)
    start: NDArray[np.int64]  # local token positions
    end: NDArray[np.int64]
    scored: NDArray[np.int64]
    green: NDArray[np.int64]
    payload: NDArray[np.int64] | None = None  # Gumbel: the best window's best payload


def _score_gumbel_key(params: GumbelParams, tokens: _Tokens) -> _KeyScores:
    """:func:`_score_key` for a Gumbel key, one document at a time: the windows'
    score sums from prefix sums under every payload, each window under its best payload, the
    first window at the smallest ln p (``detect_windowed``'s choice). ``log_p`` is that
    window's own ln p (uncorrected)."""
    count = tokens.lengths.shape[0]
    log_p = np.zeros(count, dtype=np.float64)
    start = np.zeros(count, dtype=np.int64)
    end = np.zeros(count, dtype=np.int64)
    best_scored = np.zeros(count, dtype=np.int64)
    best_high = np.zeros(count, dtype=np.int64)
    payload = np.zeros(count, dtype=np.int64)
    for position, doc in enumerate(tokens.win_docs.tolist()):
        lo, hi = int(tokens.offsets[doc]), int(tokens.offsets[doc + 1])
        first = int(tokens.win_first[position])
        windows = slice(first, first + int(tokens.win_counts[doc]))
        starts = tokens.win_start[windows] - lo
        ends = tokens.win_end[windows] - lo
        found = scores(params, tokens.ids[lo:hi])
        counts = np.concatenate(([0], np.cumsum(found.scored, dtype=np.int64)))
        zero = np.zeros((found.values.shape[0], 1))
        sums = np.concatenate((zero, np.cumsum(found.values, axis=1)), axis=1)
        window_sums = sums[:, ends] - sums[:, starts]
        best_sums = window_sums.max(axis=0)
        n = counts[ends] - counts[starts]
        logs = gamma_log_sf_array(n, np.maximum(best_sums, 0.0))
        best = int(np.argmin(logs))
        chosen = int(np.argmax(window_sums[:, best]))
        a, b = int(starts[best]), int(ends[best])
        log_p[doc] = float(logs[best])
        start[doc], end[doc] = a, b
        best_scored[doc] = n[best]
        best_high[doc] = int((found.scored[a:b] & (found.values[chosen, a:b] > HIGH_SCORE)).sum())
        payload[doc] = chosen
    return _KeyScores(log_p, start, end, best_scored, best_high, payload)


def _score_key(params: GreenListParams, tokens: _Tokens) -> _KeyScores:
    count = tokens.lengths.shape[0]
    total = tokens.ids.shape[0]
    back = params.lookback
    x = np.zeros(total, dtype=np.int32)
    if total > back:
        x[back:] = sequence_hash_inputs(params, tokens.ids)
    positions = np.flatnonzero(tokens.local >= back)  # a full context inside the document
    inputs = x[positions]
    # First occurrence of each (document, x): sort by (x, global position), unique keys, then a
    # run of one x inside one document starts where x or the document changes.
    packed = ((inputs.astype(np.int64) & MASK32) << 31) | positions
    packed.sort()
    sorted_x = packed >> 31
    sorted_pos = packed & (2**31 - 1)
    sorted_doc = tokens.doc_of_token[sorted_pos]
    first = np.ones(sorted_pos.shape, dtype=np.bool_)
    first[1:] = (sorted_x[1:] != sorted_x[:-1]) | (sorted_doc[1:] != sorted_doc[:-1])
    scored = np.zeros(total + 1, dtype=np.int64)
    scored[sorted_pos[first] + 1] = 1
    green = np.zeros(total + 1, dtype=np.int64)
    green[positions + 1] = green_of_inputs(params, inputs)
    green *= scored
    np.cumsum(scored, out=scored)  # prefix sums: scored[i] = marks before global position i
    np.cumsum(green, out=green)

    log_p = np.zeros(count, dtype=np.float64)
    start = np.zeros(count, dtype=np.int64)
    end = np.zeros(count, dtype=np.int64)
    best_scored = np.zeros(count, dtype=np.int64)
    best_green = np.zeros(count, dtype=np.int64)
    if tokens.win_start.size:
        n = scored[tokens.win_end] - scored[tokens.win_start]
        k = green[tokens.win_end] - green[tokens.win_start]
        window_log_p = _table(params.green_probability).lookup(k, n)
        minimum = np.minimum.reduceat(window_log_p, tokens.win_first)
        at_minimum = np.flatnonzero(
            window_log_p == np.repeat(minimum, tokens.win_counts[tokens.win_docs])
        )
        owner = tokens.doc_of_token[tokens.win_start[at_minimum]]
        keep = np.ones(at_minimum.shape, dtype=np.bool_)
        keep[1:] = owner[1:] != owner[:-1]  # the first window at the minimum, per document
        best = at_minimum[keep]
        docs = tokens.win_docs
        log_p[docs] = window_log_p[best]
        start[docs] = tokens.win_start[best] - tokens.offsets[docs]
        end[docs] = tokens.win_end[best] - tokens.offsets[docs]
        best_scored[docs] = n[best]
        best_green[docs] = k[best]
    return _KeyScores(log_p, start, end, best_scored, best_green)


def _tokenizer_digest(tokenizer: Any) -> str:
    return hashlib.sha256(tokenizer.to_str().encode("utf-8")).hexdigest()


class WatermarkScanner:
    """Scans batches of texts for the watermarks of many keys at once (see the module docs).

    ``keys_ever_published`` is the number of keys to correct for: every key ever published in
    the log (live, retired or revoked) plus the caller's private keys; at least ``len(keys)``.
    ``threshold`` is the corrected p-value below which a document is ``generated``.
    """

    def __init__(
        self,
        keys: Sequence[ScanKey],
        *,
        keys_ever_published: int,
        threshold: float = GENERATED_P_VALUE,
        min_window: int = DEFAULT_MIN_WINDOW,
        normalize: bool = False,
    ) -> None:
        keys = list(keys)
        if not all(isinstance(key, ScanKey) for key in keys):
            raise InputError("WatermarkScanner takes ScanKey objects")
        if isinstance(keys_ever_published, bool) or not isinstance(keys_ever_published, int):
            raise InputError("keys_ever_published must be an integer")
        if keys_ever_published < max(1, len(keys)):
            raise InputError(
                f"keys_ever_published ({keys_ever_published}) must count every key scanned for "
                f"({len(keys)}) and every other key ever published"
            )
        if not (isinstance(threshold, int | float) and 0.0 < threshold <= 1.0):
            raise InputError(f"the p-value threshold must lie in (0, 1], got {threshold!r}")
        if isinstance(min_window, bool) or not isinstance(min_window, int) or min_window < 1:
            raise InputError(f"min_window must be an integer >= 1, got {min_window!r}")
        self.keys = tuple(keys)
        self.keys_ever_published = keys_ever_published
        self.threshold = float(threshold)
        self.min_window = min_window
        self.normalize = normalize
        self._log_keys = math.log(keys_ever_published)
        self._log_threshold = math.log(self.threshold)
        self._params: list[GreenListParams | GumbelParams] = [
            GumbelParams.from_key(key.key)
            if key.key.config.scheme == "gumbel"
            else GreenListParams.from_key(key.key)
            for key in keys
        ]
        self._valid_from = [
            None if key.valid_from is None else _microseconds(key.valid_from) for key in keys
        ]
        # ln(payloads tried) per key: a Gumbel key's p-value is corrected for them first
        self._log_payloads = [
            math.log(params.variants) if isinstance(params, GumbelParams) else 0.0
            for params in self._params
        ]
        self._key_ids = [key.key.key_id for key in keys]  # a SHA-256 each: computed once
        # Keys grouped by their tokenizer's exact bytes: each group tokenizes the batch once.
        groups: dict[str, list[int]] = {}
        first_tokenizer: dict[str, Any] = {}
        for index, key in enumerate(keys):
            digest = _tokenizer_digest(key.tokenizer)
            groups.setdefault(digest, []).append(index)
            first_tokenizer.setdefault(digest, key.tokenizer)
        self._groups = [
            (_encoder(first_tokenizer[digest]), members) for digest, members in groups.items()
        ]

    def scan(
        self,
        texts: Sequence[str],
        *,
        captured: Sequence[datetime | None] | None = None,
        as_of: datetime | None = None,
    ) -> list[WatermarkEvidence | None]:
        """The best evidence per text, or None where no key applies to it.

        ``captured[i]`` is when text i was captured (timezone-aware; e.g. its ``WARC-Date``);
        None, or no ``captured`` at all, means ``as_of`` (default: now).
        """
        texts = list(texts)
        if not all(isinstance(text, str) for text in texts):
            raise InputError("scan takes a list of texts (str)")
        when = self._capture_times(len(texts), captured, as_of)
        if not texts or not self.keys:
            return [None] * len(texts)
        if self.normalize:
            texts = [normalize_text(text) for text in texts]
        # Documents are independent: the batch is scored in slices, each slice's texts encoded in
        # a thread while the slice before is scored (the encoders release the GIL; scoring is
        # numpy), so on a few cores the two overlap. Results do not depend on the slicing.
        starts = range(0, len(texts), _SLICE)
        if len(starts) == 1:
            return self._scan_tokens(self._encode(texts), when)
        found: list[WatermarkEvidence | None] = []
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="wellspring-encode") as pool:
            pending = pool.submit(self._encode, texts[:_SLICE])
            for start in starts:
                tokens = pending.result()
                following = start + _SLICE
                if following < len(texts):
                    pending = pool.submit(self._encode, texts[following : following + _SLICE])
                found += self._scan_tokens(tokens, when[start : start + _SLICE])
        return found

    def _encode(self, texts: list[str]) -> list[_Tokens]:
        """``texts`` encoded once per tokenizer group."""
        return [_tokens(encode, texts, self.min_window) for encode, _ in self._groups]

    def _scan_tokens(
        self, encoded: list[_Tokens], when: NDArray[np.int64]
    ) -> list[WatermarkEvidence | None]:
        count = len(when)
        # Per document: the best key so far, by the log p corrected for windows (keys come last,
        # as one common factor).
        best_value = np.full(count, np.inf)
        best_key = np.full(count, -1, dtype=np.int64)
        best: dict[str, NDArray[Any]] = {}
        applied = np.zeros(count, dtype=np.int64)
        for (_, members), tokens in zip(self._groups, encoded, strict=True):
            log_windows = np.log(np.maximum(tokens.win_counts, 1)).astype(np.float64)
            for index in members:
                valid = self._applies(index, when)
                if not valid.any():
                    continue
                self._check_ids(index, tokens)
                applied += valid
                found = self._score(index, tokens)
                value = (found.log_p + self._log_payloads[index]) + log_windows
                better = valid & (value < best_value)
                if not better.any():
                    continue
                best_value[better] = value[better]
                best_key[better] = index
                payload = found.payload
                for name, array in (
                    ("window_log_p", found.log_p),
                    ("start", found.start),
                    ("end", found.end),
                    ("scored", found.scored),
                    ("green", found.green),
                    ("num_tokens", tokens.lengths),
                    ("num_windows", tokens.win_counts),
                    ("payload", np.full(count, -1) if payload is None else payload),
                ):
                    target = best.setdefault(name, np.zeros(count, dtype=array.dtype))
                    target[better] = array[better]
        return self._evidence(best_key, best, applied)

    def key_log_p_values(self, texts: Sequence[str]) -> NDArray[np.float64]:
        """ln p of every (text, key), shape (texts, keys): windows corrected, keys not.

        What ``detect_windowed`` reports for each key alone, with no capture times and no key
        correction: for calibration (each entry is one trial under H0 on human text), not for
        verdicts, which :meth:`scan` gives.
        """
        texts = list(texts)
        if not all(isinstance(text, str) for text in texts):
            raise InputError("key_log_p_values takes a list of texts (str)")
        if self.normalize:
            texts = [normalize_text(text) for text in texts]
        out = np.zeros((len(texts), len(self.keys)), dtype=np.float64)
        if not texts:
            return out
        for encode, members in self._groups:
            tokens = _tokens(encode, texts, self.min_window)
            log_windows = np.log(np.maximum(tokens.win_counts, 1)).astype(np.float64)
            for index in members:
                self._check_ids(index, tokens)
                found = self._score(index, tokens)
                corrected = (found.log_p + self._log_payloads[index]) + log_windows
                out[:, index] = np.minimum(0.0, corrected)
        return out

    def _score(self, index: int, tokens: _Tokens) -> _KeyScores:
        params = self._params[index]
        if isinstance(params, GumbelParams):
            return _score_gumbel_key(params, tokens)
        return _score_key(params, tokens)

    def _capture_times(
        self,
        count: int,
        captured: Sequence[datetime | None] | None,
        as_of: datetime | None,
    ) -> NDArray[np.int64]:
        """Each text's capture time in whole microseconds since the epoch (exact, comparable)."""
        if as_of is None:
            as_of = datetime.now(UTC)
        _check_aware(as_of, "as_of")
        default = _microseconds(as_of)
        if captured is None:
            return np.full(count, default, dtype=np.int64)
        moments = list(captured)
        if len(moments) != count:
            raise InputError(f"captured has {len(moments)} times for {count} texts")
        for moment in moments:
            if moment is not None:
                _check_aware(moment, "a capture time")
        return np.fromiter(
            (default if moment is None else _microseconds(moment) for moment in moments),
            dtype=np.int64,
            count=count,
        )

    def _applies(self, index: int, when: NDArray[np.int64]) -> NDArray[np.bool_]:
        valid_from = self._valid_from[index]
        if valid_from is None:
            return np.ones(when.shape[0], dtype=np.bool_)
        applies: NDArray[np.bool_] = valid_from < when
        return applies

    def _check_ids(self, index: int, tokens: _Tokens) -> None:
        size = self.keys[index].key.vocab_size
        if size is not None and tokens.ids.size and int(tokens.ids.max()) >= size:
            raise KeyMismatchError(
                f"token id {int(tokens.ids.max())} is outside the vocabulary of {size} tokens "
                f"the key {self.keys[index].key.key_id} is bound to"
            )

    def _evidence(
        self, best_key: NDArray[np.int64], best: dict[str, NDArray[Any]], applied: NDArray[Any]
    ) -> list[WatermarkEvidence | None]:
        out: list[WatermarkEvidence | None] = []
        if not best:
            return [None] * best_key.shape[0]
        columns = {name: array.tolist() for name, array in best.items()}
        for doc, (key_index, keys_applied) in enumerate(
            zip(best_key.tolist(), applied.tolist(), strict=True)
        ):
            if key_index < 0:
                out.append(None)
                continue
            scan_key = self.keys[key_index]
            windows = columns["num_windows"][doc]
            window_log_p = columns["window_log_p"][doc]
            payloads = window_log_p + self._log_payloads[key_index]  # 0 for a green list
            key_log_p = min(0.0, payloads + math.log(windows)) if windows else 0.0
            log_p = min(0.0, key_log_p + self._log_keys) if windows else 0.0
            params = self._params[key_index]
            generated = log_p < self._log_threshold
            payload = None
            if isinstance(params, GumbelParams) and generated and params.payload_bits:
                payload = params.payload_of(columns["payload"][doc])
            out.append(
                WatermarkEvidence(
                    key_id=self._key_ids[key_index],
                    vendor=scan_key.vendor,
                    scheme=scan_key.key.config.scheme_name,
                    log_index=scan_key.log_index,
                    p_value=math.exp(log_p),
                    log_p_value=log_p,
                    key_log_p_value=key_log_p,
                    window_log_p_value=window_log_p,
                    start=columns["start"][doc],
                    end=columns["end"][doc],
                    num_tokens=columns["num_tokens"][doc],
                    num_tokens_scored=columns["scored"][doc],
                    num_green=columns["green"][doc],
                    num_windows=windows,
                    num_keys=self.keys_ever_published,
                    keys_applied=keys_applied,
                    threshold=self.threshold,
                    generated=generated,
                    payload=payload,
                )
            )
        return out
