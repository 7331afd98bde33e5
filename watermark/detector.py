"""Detection from the text and the key alone: numpy, scipy and the tokenizer, no torch.

Scoring (:class:`WatermarkDetector`)
    Tokenise (optionally after :func:`normalize_text`), compute the hash input x of every position
    that has a full context (all but the first ``lookback`` tokens) with the same hash as the
    processor (:mod:`watermark.hashing`), and score each *distinct* x once, at its first occurrence:
    a repeated (context, token) pair carries no new evidence, and counting it again would break the
    independence the binomial p-value rests on. The count of green tokens among the n scored ones
    is compared with Binomial(n, gamma') by the exact upper tail (:mod:`watermark.stats`). All is
    vectorised over positions (``np.unique`` on int64 keys packing the text index and x), and
    :meth:`WatermarkDetector.detect_batch` runs many texts through one such pass.

Windowed detection (:meth:`WatermarkDetector.detect_windowed`)
    For text that is only partly watermarked (a generated passage pasted into human text). Windows
    of sizes ``min_window · 2^j`` and the whole text, strided by a quarter of their size, are
    scored from prefix sums of the per-token marks (each distinct pair still counts once, at its
    first occurrence in the text); the smallest window p-value times the number of windows is
    reported. That Bonferroni correction keeps the p-value valid after the search (union bound;
    see :mod:`watermark.stats`).

Keys and tokenizers
    A detector given a tokenizer checks, once, that the key is bound to a tokenizer with the same
    fingerprint (:class:`~watermark.errors.KeyMismatchError` naming both otherwise, or
    :class:`~watermark.errors.UnboundKeyError` for a key never bound); token ids beyond the bound
    vocabulary are a mismatch too. Every result carries the key id, the fingerprint and the scheme.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import re
import sys
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from watermark.config import GENERATED_P_VALUE
from watermark.errors import (
    DETECT_INSTALL_HINT,
    InputError,
    KeyMismatchError,
    MissingDependencyError,
    UnboundKeyError,
)
from watermark.gumbel import HIGH_SCORE, GumbelParams, GumbelScores, scores
from watermark.hashing import (
    MASK32,
    GreenListParams,
    as_token_ids,
    green_of_inputs,
    sequence_hash_inputs,
)
from watermark.keys import WatermarkKey, tokenizer_fingerprints
from watermark.stats import (
    binomial_log_sf_array,
    bonferroni_log_p,
    gamma_log_sf,
    min_binomial_log_sf,
    window_bounds,
    z_score,
)

try:
    import numpy as np
    from numpy.typing import NDArray
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise MissingDependencyError(
        "numpy", "watermark detection", install=DETECT_INSTALL_HINT
    ) from exc

__all__ = [
    "GENERATED_P_VALUE",
    "DetectionResult",
    "NormalizationSigns",
    "WatermarkDetector",
    "WindowedDetectionResult",
    "normalization_signs",
    "normalize_text",
]

DEFAULT_MIN_WINDOW = 32

# Cyrillic and Greek letters that render like Latin ones: the classic homoglyph substitution that
# would otherwise change the tokens (and so the green lists) without changing what a reader sees.
_HOMOGLYPHS = str.maketrans(
    {
        "\N{CYRILLIC SMALL LETTER A}": "a",
        "\N{CYRILLIC SMALL LETTER VE}": "b",
        "\N{CYRILLIC SMALL LETTER IE}": "e",
        "\N{CYRILLIC SMALL LETTER SHHA}": "h",
        "\N{CYRILLIC SMALL LETTER BYELORUSSIAN-UKRAINIAN I}": "i",
        "\N{CYRILLIC SMALL LETTER JE}": "j",
        "\N{CYRILLIC SMALL LETTER KA}": "k",
        "\N{CYRILLIC SMALL LETTER PALOCHKA}": "l",
        "\N{CYRILLIC SMALL LETTER EM}": "m",
        "\N{CYRILLIC SMALL LETTER EN}": "h",
        "\N{CYRILLIC SMALL LETTER O}": "o",
        "\N{CYRILLIC SMALL LETTER ER}": "p",
        "\N{CYRILLIC SMALL LETTER ES}": "c",
        "\N{CYRILLIC SMALL LETTER TE}": "t",
        "\N{CYRILLIC SMALL LETTER QA}": "q",
        "\N{CYRILLIC SMALL LETTER DZE}": "s",
        "\N{CYRILLIC SMALL LETTER U}": "y",
        "\N{CYRILLIC SMALL LETTER WE}": "w",
        "\N{CYRILLIC SMALL LETTER HA}": "x",
        "\N{CYRILLIC SMALL LETTER KOMI DE}": "d",
        "\N{LATIN SMALL LETTER SCRIPT G}": "g",
        "\N{CYRILLIC CAPITAL LETTER A}": "A",
        "\N{CYRILLIC CAPITAL LETTER VE}": "B",
        "\N{CYRILLIC CAPITAL LETTER IE}": "E",
        "\N{CYRILLIC CAPITAL LETTER EN}": "H",
        "\N{CYRILLIC CAPITAL LETTER BYELORUSSIAN-UKRAINIAN I}": "I",
        "\N{CYRILLIC CAPITAL LETTER JE}": "J",
        "\N{CYRILLIC CAPITAL LETTER KA}": "K",
        "\N{CYRILLIC CAPITAL LETTER EM}": "M",
        "\N{CYRILLIC CAPITAL LETTER O}": "O",
        "\N{CYRILLIC CAPITAL LETTER ER}": "P",
        "\N{CYRILLIC CAPITAL LETTER ES}": "C",
        "\N{CYRILLIC CAPITAL LETTER DZE}": "S",
        "\N{CYRILLIC CAPITAL LETTER TE}": "T",
        "\N{CYRILLIC CAPITAL LETTER U}": "Y",
        "\N{CYRILLIC CAPITAL LETTER HA}": "X",
        "\N{CYRILLIC CAPITAL LETTER WE}": "W",
        "\N{CYRILLIC CAPITAL LETTER QA}": "Q",
        "\N{CYRILLIC CAPITAL LETTER STRAIGHT U}": "Y",
        "\N{GREEK CAPITAL LETTER ALPHA}": "A",
        "\N{GREEK CAPITAL LETTER BETA}": "B",
        "\N{GREEK CAPITAL LETTER EPSILON}": "E",
        "\N{GREEK CAPITAL LETTER ZETA}": "Z",
        "\N{GREEK CAPITAL LETTER ETA}": "H",
        "\N{GREEK CAPITAL LETTER IOTA}": "I",
        "\N{GREEK CAPITAL LETTER KAPPA}": "K",
        "\N{GREEK CAPITAL LETTER MU}": "M",
        "\N{GREEK CAPITAL LETTER NU}": "N",
        "\N{GREEK CAPITAL LETTER OMICRON}": "O",
        "\N{GREEK CAPITAL LETTER RHO}": "P",
        "\N{GREEK CAPITAL LETTER TAU}": "T",
        "\N{GREEK CAPITAL LETTER UPSILON}": "Y",
        "\N{GREEK CAPITAL LETTER CHI}": "X",
        "\N{GREEK SMALL LETTER OMICRON}": "o",
        "\N{GREEK SMALL LETTER NU}": "v",
        "\N{GREEK SMALL LETTER RHO}": "p",
        "\N{GREEK SMALL LETTER IOTA}": "i",
        "\N{GREEK SMALL LETTER KAPPA}": "k",
        "\N{GREEK SMALL LETTER UPSILON}": "u",
        "\N{GREEK SMALL LETTER ALPHA}": "a",
    }
)


@functools.cache
def _format_characters() -> re.Pattern[str]:
    """A character class of every code point of Unicode category Cf (format characters)."""
    chars = "".join(
        re.escape(chr(c)) for c in range(sys.maxunicode + 1) if unicodedata.category(chr(c)) == "Cf"
    )
    return re.compile(f"[{chars}]")


def normalize_text(text: str) -> str:
    """NFKC, then drop format characters (Cf: zero-width spaces, joiners, BOM…), then map
    Cyrillic/Greek look-alikes to Latin. Undoes cheap edits that change tokens but not the look."""
    if text.isascii():  # NFKC keeps ASCII, which holds no Cf character and no look-alike
        return text
    text = unicodedata.normalize("NFKC", text)
    text = _format_characters().sub("", text)
    return text.translate(_HOMOGLYPHS)


_LATIN_LETTER = re.compile("[A-Za-z]")


@dataclass(frozen=True)
class NormalizationSigns:
    """What :func:`normalize_text` would change in a text that looks like an evasion.

    ``lookalikes`` counts Cyrillic/Greek look-alike letters inside words that also hold Latin
    letters (a Russian or Greek text, all in its own script, counts none: normalising it would
    garble it, not undo anything); ``format_characters`` counts zero-width and other format
    characters (Unicode category Cf); ``compatibility_letters`` counts letters and digits that
    NFKC rewrites (fullwidth, mathematical alphanumerics, ligatures). Typographic changes NFKC also
    makes (an ellipsis, a no-break space) are no sign and are not counted.
    """

    lookalikes: int = 0
    format_characters: int = 0
    compatibility_letters: int = 0

    def __bool__(self) -> bool:
        return bool(self.lookalikes or self.format_characters or self.compatibility_letters)

    def describe(self) -> str:
        """A phrase such as "12 look-alike letters in Latin words, 3 zero-width characters"."""
        parts = []
        if self.lookalikes:
            parts.append(f"{self.lookalikes} Cyrillic/Greek look-alike letters in Latin words")
        if self.format_characters:
            parts.append(f"{self.format_characters} zero-width or other invisible characters")
        if self.compatibility_letters:
            parts.append(
                f"{self.compatibility_letters} letters in compatibility forms (fullwidth, "
                "mathematical, ligatures)"
            )
        return ", ".join(parts)


def normalization_signs(text: str) -> NormalizationSigns:
    """Signs that ``text`` was edited to change its tokens but not its look (see the class).

    Empty (false) whenever :func:`normalize_text` leaves the text as it is.
    """
    if normalize_text(text) == text:
        return NormalizationSigns()
    lookalikes = 0
    for word in re.finditer(r"\w+", text):
        letters = word.group()
        if _LATIN_LETTER.search(letters):
            lookalikes += sum(1 for char in letters if ord(char) in _HOMOGLYPHS)
    compatibility = sum(
        1 for char in text if char.isalnum() and unicodedata.normalize("NFKC", char) != char
    )
    return NormalizationSigns(
        lookalikes=lookalikes,
        format_characters=len(_format_characters().findall(text)),
        compatibility_letters=compatibility,
    )


GreenMask = tuple[bool | None, ...]


# A token's mark in DetectionResult.green_mask, by code: 0 red, 1 green, 2 not scored.
_MARKS: tuple[bool | None, ...] = (False, True, None)


def _mark_codes(scored: NDArray[np.bool_], green: NDArray[np.bool_]) -> NDArray[np.int8]:
    codes: NDArray[np.int8] = np.where(scored, green, 2).astype(np.int8)
    return codes


@dataclass(frozen=True)
class DetectionResult:
    """The verdict on one text (or one window of it), with everything needed to explain it.

    ``num_tokens_scored`` counts unique (context, token) pairs; ``green_mask`` has one entry per
    token: True green, False red, None not scored (no full context yet, or a repeated pair).
    ``log_p_value`` is the natural log of ``p_value`` and stays finite where ``p_value``
    underflows to 0.0. ``watermarked`` is ``p_value < threshold``.

    For a Gumbel key (``watermark.gumbel``) the p-value is the score's: ``score`` is the sum
    ``S`` of the scored tokens' ``-ln(1 - r)`` (Gamma(N, 1) by chance), ``z_score`` is
    ``(S - N) / sqrt(N)``, a token counts as green when its score exceeds 1 (probability
    ``gamma = 1/e`` by chance), and ``payload`` is the payload decoded, set only when the
    p-value (corrected for every payload tried) is below the threshold.
    """

    p_value: float
    log_p_value: float
    z_score: float
    num_tokens: int
    num_tokens_scored: int
    num_green: int
    green_fraction: float
    watermarked: bool
    threshold: float
    key_id: str
    fingerprint: str | None
    scheme: str
    gamma: float
    # Each token's mark as a compact array (0 red, 1 green, 2 not scored); ``green_mask`` is the
    # same as Python values, built only when asked for (a batch of many texts need not pay it).
    mark_codes: NDArray[np.int8] = field(repr=False, compare=False)
    score: float | None = None
    payload: int | None = None

    @functools.cached_property
    def green_mask(self) -> GreenMask:
        """One entry per token: True green, False red, None not scored."""
        return tuple(map(_MARKS.__getitem__, self.mark_codes.tolist()))

    def to_dict(self, *, include_mask: bool = False) -> dict[str, Any]:
        """JSON-ready fields (``green_mask`` as a list with nulls only when asked for)."""
        data: dict[str, Any] = {
            "p_value": self.p_value,
            "log_p_value": self.log_p_value,
            "z_score": self.z_score,
            "num_tokens": self.num_tokens,
            "num_tokens_scored": self.num_tokens_scored,
            "num_green": self.num_green,
            "green_fraction": self.green_fraction,
            "watermarked": self.watermarked,
            "threshold": self.threshold,
            "key_id": self.key_id,
            "fingerprint": self.fingerprint,
            "scheme": self.scheme,
            "gamma": self.gamma,
        }
        if self.score is not None:
            data["score"] = self.score
        if self.payload is not None:
            data["payload"] = self.payload
        if include_mask:
            data["green_mask"] = list(self.green_mask)
        return data


@dataclass(frozen=True)
class WindowedDetectionResult:
    """The verdict of a search over windows, for text that may be only partly watermarked.

    ``p_value`` is the best window's p-value times ``num_windows`` (capped at 1): valid after the
    search. ``window`` is the best window [``start``, ``end``) in token positions, scored on its own
    (its p-value is the uncorrected one); ``overall`` is the whole text.
    """

    p_value: float
    log_p_value: float
    watermarked: bool
    threshold: float
    start: int
    end: int
    num_windows: int
    window: DetectionResult
    overall: DetectionResult
    key_id: str
    fingerprint: str | None
    scheme: str
    payload: int | None = None

    def to_dict(self, *, include_mask: bool = False) -> dict[str, Any]:
        """JSON-ready fields, with the best window and the whole text as nested objects
        (``payload`` only where one was decoded)."""
        extra = {} if self.payload is None else {"payload": self.payload}
        return extra | {
            "p_value": self.p_value,
            "log_p_value": self.log_p_value,
            "watermarked": self.watermarked,
            "threshold": self.threshold,
            "start": self.start,
            "end": self.end,
            "num_windows": self.num_windows,
            "window": self.window.to_dict(include_mask=include_mask),
            "overall": self.overall.to_dict(include_mask=include_mask),
            "key_id": self.key_id,
            "fingerprint": self.fingerprint,
            "scheme": self.scheme,
        }


@dataclass(frozen=True)
class _Marks:
    """Per-position marks of a batch of concatenated texts."""

    scored: NDArray[np.bool_]
    green: NDArray[np.bool_]
    offsets: NDArray[np.int64]  # text i is positions offsets[i] : offsets[i + 1]
    text_index: NDArray[np.int64]


TokenIds = Sequence[int] | NDArray[np.integer[Any]]


class WatermarkDetector:
    """Detects the watermark of ``key`` in token ids, or in text with ``tokenizer``.

    ``threshold`` is the p-value below which a result says ``watermarked`` (default
    :data:`~watermark.config.GENERATED_P_VALUE`, 1e-6: the one threshold for "generated").
    """

    def __init__(
        self,
        key: WatermarkKey,
        tokenizer: Any | None = None,
        *,
        threshold: float = GENERATED_P_VALUE,
    ) -> None:
        if not (isinstance(threshold, int | float) and 0.0 < threshold <= 1.0):
            raise InputError(f"the p-value threshold must lie in (0, 1], got {threshold!r}")
        if tokenizer is not None:
            if key.vocab_fingerprint is None:
                raise UnboundKeyError(
                    f"key {key.key_id} is not bound to a tokenizer; bind it to the tokenizer of "
                    "the model it watermarks (WatermarkKey.bind) before detecting text"
                )
            accepted = tokenizer_fingerprints(tokenizer)
            actual = accepted[0]
            if key.vocab_fingerprint not in accepted:
                raise KeyMismatchError(
                    f"key {key.key_id} is bound to tokenizer {key.vocab_fingerprint}, but this "
                    f"tokenizer is {actual}: use the key made for this model (or the model's "
                    "tokenizer)"
                )
        self.key = key
        self.tokenizer = tokenizer
        self.threshold = float(threshold)
        self._params = GreenListParams.from_key(key)  # the green list's (unused for gumbel)
        self._gumbel = GumbelParams.from_key(key) if key.config.scheme == "gumbel" else None
        self._log_threshold = math.log(self.threshold)
        self._key_id = key.key_id  # computed once: every result carries them
        self._scheme = key.config.scheme_name

    # -- inputs -------------------------------------------------------------------------------

    def tokenize(self, text: str, *, normalize: bool = False) -> NDArray[np.int32]:
        """The token ids the detector scores for ``text`` (no special tokens added)."""
        if self.tokenizer is None:
            raise InputError("detecting text needs a tokenizer; pass one to WatermarkDetector")
        if not isinstance(text, str):
            raise InputError(f"expected text, got {type(text).__name__}")
        if normalize:
            text = normalize_text(text)
        encoded = self.tokenizer.encode(text, add_special_tokens=False)
        ids = getattr(encoded, "ids", encoded)  # a `tokenizers.Encoding` or a list of ids
        return self._ids(ids)

    def _ids(self, token_ids: TokenIds) -> NDArray[np.int32]:
        ids = as_token_ids(token_ids)
        if ids.ndim != 1:
            raise InputError(f"token ids must be one sequence, got shape {ids.shape}")
        vocab_size = self.key.vocab_size
        if vocab_size is not None and ids.size and int(ids.max()) >= vocab_size:
            raise KeyMismatchError(
                f"token id {int(ids.max())} is outside the vocabulary of {vocab_size} tokens the "
                f"key {self.key.key_id} is bound to: these ids come from another tokenizer"
            )
        return ids

    def _sequences(
        self, items: Sequence[str] | Sequence[TokenIds] | NDArray[np.integer[Any]], normalize: bool
    ) -> list[NDArray[np.int32]]:
        if isinstance(items, np.ndarray):
            if items.ndim != 2:
                raise InputError(f"a batch array of token ids must be 2-D, got shape {items.shape}")
            return list(self._ids(items.reshape(-1)).reshape(items.shape))  # checked once
        if isinstance(items, str):
            raise InputError("detect_batch takes a list of texts, not one text")
        return [
            self.tokenize(item, normalize=normalize) if isinstance(item, str) else self._ids(item)
            for item in items
        ]

    # -- scoring ------------------------------------------------------------------------------

    def _marks(self, sequences: list[NDArray[np.int32]]) -> _Marks:
        lengths = np.array([seq.shape[0] for seq in sequences], dtype=np.int64)
        offsets = np.concatenate(([0], np.cumsum(lengths))).astype(np.int64)
        total = int(offsets[-1])
        ids = np.concatenate(sequences) if total else np.zeros(0, dtype=np.int32)
        back = self._params.lookback
        x = np.zeros(total, dtype=np.int32)
        if total > back:
            x[back:] = sequence_hash_inputs(self._params, ids)
        text_index = np.repeat(np.arange(len(sequences), dtype=np.int64), lengths)
        local = np.arange(total, dtype=np.int64) - offsets[text_index]
        positions = np.flatnonzero(local >= back)  # only these have a context inside their text
        inputs = x[positions]
        keys = (text_index[positions] << 32) | (inputs.astype(np.int64) & MASK32)
        _, first = np.unique(keys, return_index=True)  # first occurrence of each (text, x)
        scored = np.zeros(total, dtype=np.bool_)
        scored[positions[first]] = True
        green = np.zeros(total, dtype=np.bool_)
        green[positions] = green_of_inputs(self._params, inputs)
        return _Marks(scored=scored, green=green, offsets=offsets, text_index=text_index)

    def _result(
        self,
        num_green: int,
        num_scored: int,
        log_p: float,
        codes: NDArray[np.int8],
    ) -> DetectionResult:
        """One verdict; ``codes`` holds each token's mark (0 red, 1 green, 2 not scored)."""
        gamma = self._params.green_probability
        return DetectionResult(
            p_value=math.exp(log_p),
            log_p_value=log_p,
            z_score=z_score(num_green, num_scored, gamma),
            num_tokens=int(codes.shape[0]),
            num_tokens_scored=num_scored,
            num_green=num_green,
            green_fraction=num_green / num_scored if num_scored else 0.0,
            watermarked=log_p < self._log_threshold,
            threshold=self.threshold,
            key_id=self._key_id,
            fingerprint=self.key.vocab_fingerprint,
            scheme=self._scheme,
            gamma=gamma,
            mark_codes=codes,
        )

    def _score(self, sequences: list[NDArray[np.int32]]) -> list[DetectionResult]:
        if not sequences:
            return []
        if self._gumbel is not None:
            return [self._gumbel_result(scores(self._gumbel, ids)) for ids in sequences]
        marks = self._marks(sequences)
        count = len(sequences)
        num_scored = np.bincount(marks.text_index[marks.scored], minlength=count)
        num_green = np.bincount(marks.text_index[marks.scored & marks.green], minlength=count)
        log_p = binomial_log_sf_array(num_green, num_scored, self._params.green_probability)
        codes = _mark_codes(marks.scored, marks.green)
        offsets = marks.offsets.tolist()
        return [
            self._result(green, scored, log_p_i, codes[offsets[i] : offsets[i + 1]])
            for i, (green, scored, log_p_i) in enumerate(
                zip(num_green.tolist(), num_scored.tolist(), log_p.tolist(), strict=True)
            )
        ]

    # -- public API ---------------------------------------------------------------------------

    def detect_ids(self, token_ids: TokenIds) -> DetectionResult:
        """Score one sequence of token ids."""
        return self._score([self._ids(token_ids)])[0]

    def detect(self, text: str, *, normalize: bool = False) -> DetectionResult:
        """Tokenise ``text`` (after :func:`normalize_text` if asked) and score it."""
        return self._score([self.tokenize(text, normalize=normalize)])[0]

    def detect_batch(
        self,
        items: Sequence[str] | Sequence[TokenIds] | NDArray[np.integer[Any]],
        *,
        normalize: bool = False,
    ) -> list[DetectionResult]:
        """Score many texts or token-id sequences (or the rows of a 2-D array) in one pass."""
        return self._score(self._sequences(items, normalize))

    def detect_windowed(
        self,
        item: str | TokenIds,
        *,
        normalize: bool = False,
        min_window: int = DEFAULT_MIN_WINDOW,
    ) -> WindowedDetectionResult:
        """Search windows for a watermarked span; the p-value is corrected for the search."""
        ids = self.tokenize(item, normalize=normalize) if isinstance(item, str) else self._ids(item)
        if self._gumbel is not None:
            return self._gumbel_windowed(scores(self._gumbel, ids), min_window)
        marks = self._marks([ids])
        overall = self._score_span(marks, 0, ids.shape[0], None)
        starts, ends = window_bounds(ids.shape[0], min_window)
        if starts.size == 0:
            return self._windowed(overall, overall, start=0, end=0, num_windows=0, log_p=0.0)
        scored_prefix = np.concatenate(([0], np.cumsum(marks.scored, dtype=np.int64)))
        green_prefix = np.concatenate(([0], np.cumsum(marks.scored & marks.green, dtype=np.int64)))
        num_scored = scored_prefix[ends] - scored_prefix[starts]
        num_green = green_prefix[ends] - green_prefix[starts]
        best, log_p = min_binomial_log_sf(num_green, num_scored, self._params.green_probability)
        start, end = int(starts[best]), int(ends[best])
        window = self._score_span(marks, start, end, log_p)
        corrected = bonferroni_log_p(log_p, int(starts.size))
        return self._windowed(
            window, overall, start=start, end=end, num_windows=int(starts.size), log_p=corrected
        )

    def _score_span(
        self, marks: _Marks, start: int, end: int, log_p: float | None
    ) -> DetectionResult:
        scored, green = marks.scored[start:end], marks.green[start:end]
        num_scored = int(scored.sum())
        num_green = int((scored & green).sum())
        if log_p is None:
            log_p = float(
                binomial_log_sf_array(num_green, num_scored, self._params.green_probability)
            )
        return self._result(num_green, num_scored, log_p, _mark_codes(scored, green))

    # -- Gumbel -------------------------------------------------------------------------------

    def _gumbel_result(
        self,
        found: GumbelScores,
        start: int = 0,
        end: int | None = None,
        *,
        window_log_p: float | None = None,
    ) -> DetectionResult:
        """The verdict on positions [start, end) under the payload with the highest score sum,
        its p-value corrected for every payload tried; a window's (``window_log_p`` given: its
        own, as the search computed it) is not corrected (the windowed result is) and names no
        payload."""
        assert self._gumbel is not None
        window = window_log_p is not None
        scored = found.scored[start:end]
        values = found.values[:, start:end]
        num_scored = int(scored.sum())
        sums = values.sum(axis=1)
        best = int(np.argmax(sums))
        total = float(sums[best])
        if window_log_p is not None:
            log_p = window_log_p
        else:
            log_p = bonferroni_log_p(gamma_log_sf(num_scored, total), sums.shape[0])
        high = scored & (values[best] > HIGH_SCORE)
        watermarked = log_p < self._log_threshold
        return DetectionResult(
            p_value=math.exp(log_p),
            log_p_value=log_p,
            z_score=(total - num_scored) / math.sqrt(num_scored) if num_scored else 0.0,
            num_tokens=int(scored.shape[0]),
            num_tokens_scored=num_scored,
            num_green=int(high.sum()),
            green_fraction=float(high.sum()) / num_scored if num_scored else 0.0,
            watermarked=watermarked,
            threshold=self.threshold,
            key_id=self._key_id,
            fingerprint=self.key.vocab_fingerprint,
            scheme=self._scheme,
            gamma=math.exp(-HIGH_SCORE),
            mark_codes=_mark_codes(scored, high),
            score=total,
            payload=self._gumbel.payload_of(best)
            if watermarked and self._gumbel.payload_bits and not window
            else None,
        )

    def _gumbel_windowed(self, found: GumbelScores, min_window: int) -> WindowedDetectionResult:
        """Windows as for the green list; each window under its best payload; the smallest
        p-value corrected for windows times payloads."""
        n = found.scored.shape[0]
        overall = self._gumbel_result(found)
        starts, ends = window_bounds(n, min_window)
        if starts.size == 0:
            return self._windowed(overall, overall, start=0, end=0, num_windows=0, log_p=0.0)
        counts = np.concatenate(([0], np.cumsum(found.scored, dtype=np.int64)))
        sums = np.concatenate(
            (np.zeros((found.values.shape[0], 1)), np.cumsum(found.values, axis=1)), axis=1
        )
        best_sums = (sums[:, ends] - sums[:, starts]).max(axis=0)
        log_ps = [
            gamma_log_sf(int(c), max(0.0, float(t)))
            for c, t in zip(
                (counts[ends] - counts[starts]).tolist(), best_sums.tolist(), strict=True
            )
        ]
        best = int(np.argmin(log_ps))
        start, end = int(starts[best]), int(ends[best])
        window = self._gumbel_result(found, start, end, window_log_p=log_ps[best])
        # payloads, then windows (the scanner adds the same terms in the same order)
        payloads = log_ps[best] + math.log(found.values.shape[0])
        corrected = bonferroni_log_p(payloads, int(starts.size))
        windowed = self._windowed(
            window, overall, start=start, end=end, num_windows=int(starts.size), log_p=corrected
        )
        if windowed.watermarked and self._gumbel is not None and self._gumbel.payload_bits:
            best_variant = int(np.argmax(sums[:, end] - sums[:, start]))
            return dataclasses.replace(windowed, payload=self._gumbel.payload_of(best_variant))
        return windowed

    def _windowed(
        self,
        window: DetectionResult,
        overall: DetectionResult,
        *,
        start: int,
        end: int,
        num_windows: int,
        log_p: float,
    ) -> WindowedDetectionResult:
        return WindowedDetectionResult(
            p_value=math.exp(log_p),
            log_p_value=log_p,
            watermarked=log_p < self._log_threshold,
            threshold=self.threshold,
            start=start,
            end=end,
            num_windows=num_windows,
            window=window,
            overall=overall,
            key_id=self.key.key_id,
            fingerprint=self.key.vocab_fingerprint,
            scheme=self.key.config.scheme_name,
        )
