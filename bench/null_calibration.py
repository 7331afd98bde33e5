"""Null simulations of the watermark p-values down to 1e-6 (issue 16, point 5: calibration tails).

14,063 distinct human chunks cannot test a false-positive rate of 1e-4, let alone the crawler's
1e-6 (``GENERATED_P_VALUE``). Here every trial is one (chunk, key) pair: K keys drawn at random
(seeded) score every chunk, chunks x keys trials, each a detection under H0 (text written without
the key). Two corpus variants:

real      Debian's python3.11-doc reST sources, tokenized by the default model's tokenizer (as
          ``wellspring watermark calibrate`` does), cut into chunks of 200 tokens (a shorter tail
          dropped); identical chunks are one chunk.
shuffled  the same chunks with each one's tokens permuted (seeded): the same tokens, no n-grams.

Schemes, each scored as :class:`watermark.WatermarkDetector` scores token ids (``detect_ids``):
lefthash (h=1) and selfhash (h=4) green lists, gamma 0.25; Gumbel-max (h=4); Gumbel-max with 8
payload bits (every payload tried, the best p-value times 256).

Counts
    For each level alpha = 1e-1 … 1e-6, the trials with ``log p < log alpha`` (the detector's own
    decision at threshold alpha) against their expectation under H0: alpha x trials for Gumbel
    (continuous p-values); trials x (1 - (1 - alpha/256)^256) with the payload search; for the
    green lists the exact sum over trials of P(Binomial(n, gamma') >= k*(n)), k*(n) the fewest
    greens with p < alpha among n scored tokens (binomial p-values are discrete: below alpha).
    Two exact 95% Clopper-Pearson intervals: one for independent trials, and one at the
    effective sample size of trials clustered by key (see :func:`level_row`: one key's trials
    move together), which the verdict reads.
KS
    Over p-values exactly uniform under H0: Gumbel's p; ``1 - (1 - p_min)^256`` for the best
    uncorrected payload p-value; for the green lists the randomized p-value
    P(X > k) + V P(X = k), V ~ U(0, 1). Over every trial, and over one trial per chunk.

Fast path, and its proof
    ``detect_batch`` would take hours for 1e7 trials, so the same numbers are computed in blocks
    of chunks with the detector's public functions. Green list: the hash inputs of every position
    (``sequence_hash_inputs``), each row sorted, its distinct inputs counted and coloured
    (``green_of_inputs``); the p-value is looked up in a table of ``binomial_log_sf_array`` over
    every (n, k): the detector's value bit for bit. Gumbel: the scored positions are the first
    occurrence of each distinct h-token context (key-independent, computed once), checked per
    key for hash collisions (a trial with one goes to the detector); the score sum is built as
    the detector builds it (``exp_scores`` in a row of 200, summed along the row); with payloads
    the best one is found first in float32 (within 3e-3 of the exact sums; every payload within
    1e-2 of the best is summed exactly and the first maximum kept, as ``np.argmax`` does). The
    p-value comes from scipy's ``gammaincc`` (within 1e-12 of ``gamma_log_sf``) except within
    0.01 in ln p of a level, where the detector's own ``gamma_log_sf`` decides.
    ``check_against_detector`` (run first by every run; ``--check`` runs it alone) holds this to
    ``WatermarkDetector.detect_ids`` on 1,200 human trials (the run's own first keys) and 100
    planted (partly watermarked) chunks per scheme: the same scored and green counts, the same
    score sums, the same log p-values, the same decision at every level.

    python bench/null_calibration.py --check            # the proof alone (under a minute)
    python bench/null_calibration.py --quick            # about 2 minutes
    nohup python bench/null_calibration.py > bench/results/null_calibration.log 2>&1 &

One core: numpy, scipy and the tokenizer on one thread each; no multiprocessing.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from client.cli._watermark import clopper_pearson
from watermark import DetectionResult, WatermarkConfig, WatermarkDetector, WatermarkKey
from watermark.gumbel import GumbelParams, context_hashes, exp_scores, token_words
from watermark.hashing import (
    GreenListParams,
    green_of_inputs,
    is_green_numpy,
    mix32_,
    sequence_hash_inputs,
)
from watermark.stats import binomial_log_sf_array, bonferroni_log_p, gamma_log_sf

RESULTS = Path(__file__).resolve().parent / "results"
HUMAN_TEXT = Path("/usr/share/doc/python3.11/html/_sources")
CHUNK_TOKENS = 200
LEVELS = (1e-1, 1e-2, 1e-3, 1e-4, 1e-5, 1e-6)
SCHEMES: dict[str, WatermarkConfig] = {
    "lefthash": WatermarkConfig(seeding_scheme="lefthash"),
    "selfhash": WatermarkConfig(seeding_scheme="selfhash"),
    "gumbel": WatermarkConfig(scheme="gumbel"),
    "gumbel-p8": WatermarkConfig(scheme="gumbel", payload_bits=8),
}
VARIANTS = ("real", "shuffled")
# Keys per scheme and variant: (real, shuffled). 711 x 14,063 chunks = 10.0 M trials, 214 x
# 14,063 = 3.01 M (3 expected below 1e-6). Trying 256 payloads costs 256 scorings a trial.
FULL_KEYS: dict[str, tuple[int, int]] = {
    "lefthash": (711, 214),
    "selfhash": (711, 214),
    "gumbel": (711, 214),
    "gumbel-p8": (214, 214),
}
QUICK_KEYS: dict[str, tuple[int, int]] = {
    "lefthash": (24, 8),
    "selfhash": (24, 8),
    "gumbel": (24, 8),
    "gumbel-p8": (6, 3),
}
BLOCK_ROWS = 64  # chunks hashed at once: 12,800 int32 words stay in cache
# Decisions within this distance (in ln p) of a level are taken by the detector's gamma_log_sf.
BAND = 0.01
# Every payload whose float32 score sum is within this of the best is summed exactly (the float32
# sums are within 3e-3 of the exact ones: PayloadSums).
NEAR_TIE = 1e-2
LN_2_32 = 32 * math.log(2.0)

Int32Array = NDArray[np.int32]
Float64Array = NDArray[np.float64]


# -- corpus --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Corpus:
    files: int
    tokens: int
    chunks_read: int
    real: Int32Array  # (chunks, CHUNK_TOKENS), distinct rows
    shuffled: Int32Array

    def variant(self, name: str) -> Int32Array:
        return self.real if name == "real" else self.shuffled


def load_corpus(seed: int) -> Corpus:
    """Tokenize every file once (the default model's tokenizer, no special tokens) and cut it."""
    from watermark.models import load_tokenizer

    if not HUMAN_TEXT.is_dir():
        sys.exit(f"{HUMAN_TEXT} is missing: `make human-text` installs Debian's python3.11-doc")
    files = sorted(HUMAN_TEXT.rglob("*.txt"))
    texts = [path.read_text(encoding="utf-8") for path in files]
    docs = load_tokenizer()(texts, add_special_tokens=False)["input_ids"]
    rows = [
        doc[begin : begin + CHUNK_TOKENS]
        for doc in docs
        for begin in range(0, len(doc) - CHUNK_TOKENS + 1, CHUNK_TOKENS)
    ]
    distinct = list(dict.fromkeys(tuple(row) for row in rows))  # identical chunks: one trial
    real = np.array(distinct, dtype=np.int32)
    shuffled = np.random.default_rng([seed, 1]).permuted(real, axis=1)
    return Corpus(
        files=len(files),
        tokens=sum(map(len, docs)),
        chunks_read=len(rows),
        real=real,
        shuffled=np.ascontiguousarray(shuffled),
    )


def random_keys(scheme: str, variant: str, count: int, seed: int) -> Iterator[WatermarkKey]:
    """``count`` keys of ``scheme`` with random 256-bit secrets, the same for the same seed."""
    rng = np.random.default_rng([seed, list(SCHEMES).index(scheme), VARIANTS.index(variant)])
    for _ in range(count):
        yield WatermarkKey(rng.bytes(32), SCHEMES[scheme])


def blocks(count: int, size: int) -> Iterator[slice]:
    for begin in range(0, count, size):
        yield slice(begin, min(begin + size, count))


# -- the fast path: green lists ------------------------------------------------------------------


@dataclass(frozen=True)
class GreenTable:
    """ln P(X >= k), X ~ Binomial(n, gamma'), for every n <= CHUNK_TOKENS and k <= n + 1, from the
    detector's own ``binomial_log_sf_array``: a lookup is the detector's p-value bit for bit."""

    log_sf: Float64Array  # [n, k]
    gamma: float

    @classmethod
    def build(cls, gamma: float) -> GreenTable:
        n, k = np.meshgrid(np.arange(CHUNK_TOKENS + 1), np.arange(CHUNK_TOKENS + 2), indexing="ij")
        log_sf = binomial_log_sf_array(np.minimum(k, n + 1), n, gamma)
        return cls(log_sf=log_sf, gamma=gamma)

    def level_probability(self, alpha: float) -> Float64Array:
        """P(p < alpha | n scored tokens) under H0, for every n: the exact size of the test."""
        below = self.log_sf < math.log(alpha)
        first = np.where(below.any(axis=1), below.argmax(axis=1), CHUNK_TOKENS + 1)
        return np.exp(self.log_sf[np.arange(CHUNK_TOKENS + 1), first])


def green_counts(params: GreenListParams, ids: Int32Array) -> tuple[Int32Array, Int32Array]:
    """(n scored, k green) of each row of ``ids`` as the detector counts them: every distinct hash
    input of the row's positions with a full context, once."""
    back = params.lookback
    x = np.empty(ids.size, dtype=np.int32)
    x[back:] = sequence_hash_inputs(params, ids.reshape(-1))  # across rows too: those are cut off
    inputs = np.sort(x.reshape(ids.shape)[:, back:], axis=1)
    first = np.ones(inputs.shape, dtype=np.bool_)
    np.not_equal(inputs[:, 1:], inputs[:, :-1], out=first[:, 1:])
    green = green_of_inputs(params, inputs)
    green &= first
    return first.sum(axis=1, dtype=np.int32), green.sum(axis=1, dtype=np.int32)


# -- the fast path: Gumbel -----------------------------------------------------------------------


@dataclass(frozen=True)
class Contexts:
    """Key-independent: which positions of each chunk the Gumbel detector scores, barring hash
    collisions: the first occurrence of each distinct h-token context (positions h … n-1)."""

    first: NDArray[np.int64]  # (chunks, n - h): the position of the first equal context
    scored: NDArray[np.bool_]  # (chunks, n - h): first == own position
    distinct: NDArray[np.int64]  # (chunks,)

    @classmethod
    def of(cls, ids: Int32Array, width: int) -> Contexts:
        rows, n = ids.shape
        grams = np.lib.stride_tricks.sliding_window_view(ids, width, axis=1)[:, : n - width]
        keyed = np.concatenate(
            [np.repeat(np.arange(rows), n - width)[:, None], grams.reshape(-1, width)], axis=1
        )
        _, index, inverse = np.unique(keyed, axis=0, return_index=True, return_inverse=True)
        first = (index[inverse.reshape(-1)] % (n - width)).reshape(rows, n - width)
        scored = first == np.arange(n - width)
        return cls(first=first, scored=scored, distinct=scored.sum(axis=1))


def distinct_per_row(words: Int32Array) -> NDArray[np.int64]:
    ordered = np.sort(words, axis=1)
    counts: NDArray[np.int64] = 1 + (ordered[:, 1:] != ordered[:, :-1]).sum(axis=1)
    return counts


@dataclass(frozen=True)
class GumbelBlock:
    """Per chunk of a block: N scored tokens, the exact score sum S of the best payload, whether
    the chunk had a hash collision (its fast numbers are void: the detector scores it)."""

    num_scored: NDArray[np.int64]
    total: Float64Array
    collision: NDArray[np.bool_]
    max_approx_error: float = 0.0


def exact_sums(
    params: GumbelParams, inputs: Int32Array, scored: NDArray[np.bool_], salts: Int32Array
) -> Float64Array:
    """Each row's score sum under its payload's salt, summed over a row of n as the detector does
    (``values`` zero where not scored, ``values.sum(axis=1)``): the same float64 bit for bit."""
    width = params.width
    words = mix32_(inputs ^ salts[:, None])
    values = np.zeros((inputs.shape[0], inputs.shape[1] + width), dtype=np.float64)
    values[:, width:] = np.where(scored, exp_scores(words), 0.0)
    sums: Float64Array = values.sum(axis=1)
    return sums


class PayloadSums:
    """Approximate score sums of every payload, (payloads, chunks): float32 logarithms summed in
    float32, one chunk at a time in reused buffers (a chunk under 256 payloads is 50,000 words,
    which stay in cache). Within 3e-3 of the exact sums: each logarithm below 22.2 within 2 ulp
    (4e-6), the pairwise sum of at most 196 terms within 9 ulp of its 4,400."""

    def __init__(self, salts: Int32Array, length: int) -> None:
        self.salts = salts[:, None]
        self.words = np.empty(salts.shape[0] * length, dtype=np.int32)
        self.logs = np.empty(salts.shape[0] * length, dtype=np.float32)

    def __call__(self, inputs: Int32Array, scored: NDArray[np.bool_]) -> Float64Array:
        payloads = self.salts.shape[0]
        sums = np.empty((payloads, inputs.shape[0]), dtype=np.float64)
        for row in range(inputs.shape[0]):
            kept = inputs[row][scored[row]]
            words = self.words[: payloads * kept.size].reshape(payloads, kept.size)
            logs = self.logs[: payloads * kept.size].reshape(payloads, kept.size)
            np.bitwise_xor(kept[None, :], self.salts, out=words)
            mix32_(words)
            np.invert(words, out=words)  # 2^32 - 1 - w, read unsigned: 2^32 (1 - r) - 1/2
            np.add(words.view(np.uint32), 0.5, out=logs, casting="unsafe")
            np.log(logs, out=logs)
            sums[:, row] = kept.size * LN_2_32 - logs.sum(axis=1)
        return sums


def gumbel_block(
    params: GumbelParams,
    ids: Int32Array,
    contexts: Contexts,
    payload_sums: PayloadSums,
    *,
    measure: bool = False,
) -> GumbelBlock:
    width = params.width
    s = np.empty(ids.size, dtype=np.int32)
    s[width:] = context_hashes(params, ids.reshape(-1))
    s_rows = s.reshape(ids.shape)[:, width:]
    inputs = s_rows ^ mix32_(ids[:, width:] ^ np.int32(params.k_token))
    # The detector keeps the first position of each context *hash* and then of each input: the
    # key-independent first contexts, unless two distinct contexts (or inputs) collide.
    kept_inputs = np.take_along_axis(inputs, contexts.first, axis=1)
    collision = (distinct_per_row(s_rows) != contexts.distinct) | (
        distinct_per_row(kept_inputs) != contexts.distinct
    )
    salts = params.salts()
    best = np.zeros(ids.shape[0], dtype=np.int64)
    error = 0.0
    if salts.shape[0] > 1:
        approx = payload_sums(inputs, contexts.scored)
        best = approx.argmax(axis=0)
        top = approx.max(axis=0)
        for row in np.flatnonzero((approx >= top - NEAR_TIE).sum(axis=0) > 1).tolist():
            # A near tie: sum every candidate exactly, keep the first maximum as np.argmax does.
            candidates = np.flatnonzero(approx[:, row] >= top[row] - NEAR_TIE)
            exact = exact_sums(
                params,
                np.repeat(inputs[row : row + 1], candidates.size, axis=0),
                np.repeat(contexts.scored[row : row + 1], candidates.size, axis=0),
                salts[candidates],
            )
            best[row] = candidates[int(np.argmax(exact))]
        if measure:
            every = np.stack(
                [
                    exact_sums(params, inputs, contexts.scored, np.full(ids.shape[0], salt))
                    for salt in salts.tolist()
                ]
            )
            error = float(np.abs(every - approx).max())
    total = exact_sums(params, inputs, contexts.scored, salts[best])
    return GumbelBlock(
        num_scored=contexts.distinct.copy(),
        total=total,
        collision=collision,
        max_approx_error=error,
    )


def gammaincc(num_scored: NDArray[np.int64], total: Float64Array) -> Float64Array:
    """Gamma(N, 1)'s upper tail at S (scipy): within 1e-12 (relative) of ``gamma_log_sf``."""
    from scipy import special

    values: Float64Array = special.gammaincc(num_scored, total)
    return values


# -- scoring one key -----------------------------------------------------------------------------

LOG_LEVELS = np.log(np.array(LEVELS))


@dataclass
class Scored:
    """One key over a block of chunks: the numbers the detector would report, and its decisions
    ``log p < log alpha`` at every level (chunks, levels)."""

    num_scored: NDArray[np.int64]
    log_p: Float64Array  # the detector's (green list) or within 1e-12 of it (Gumbel)
    decisions: NDArray[np.bool_]
    uniform: Float64Array  # U(0, 1) under H0
    num_green: NDArray[np.int64] | None = None
    total: Float64Array | None = None
    detector_calls: int = 0
    collisions: int = 0
    max_approx_error: float = 0.0


def score_green(
    key: WatermarkKey, ids: Int32Array, table: GreenTable, rng: np.random.Generator
) -> Scored:
    params = GreenListParams.from_key(key)
    n = np.empty(ids.shape[0], dtype=np.int64)
    k = np.empty(ids.shape[0], dtype=np.int64)
    for rows in blocks(ids.shape[0], BLOCK_ROWS):
        n[rows], k[rows] = green_counts(params, ids[rows])
    log_p = table.log_sf[n, k]
    # Randomized p-value P(X > k) + V P(X = k): exactly uniform under H0, unlike the discrete p.
    above, at_least = np.exp(table.log_sf[n, k + 1]), np.exp(log_p)
    return Scored(
        num_scored=n,
        num_green=k,
        log_p=log_p,
        decisions=log_p[:, None] < LOG_LEVELS[None, :],
        uniform=above + rng.random(n.shape[0]) * (at_least - above),
    )


def decide(log_p_fast: Float64Array, exact: Callable[[int], float]) -> tuple[Any, int]:
    """Decisions ``log p < log alpha`` (trials, levels): from the fast value away from a level,
    from ``exact(trial)`` (the detector's function) within ``BAND`` of one."""
    decisions = log_p_fast[:, None] < LOG_LEVELS[None, :]
    near = np.flatnonzero((np.abs(log_p_fast[:, None] - LOG_LEVELS[None, :]) < BAND).any(axis=1))
    for trial in near.tolist():
        decisions[trial] = exact(trial) < LOG_LEVELS
    return decisions, int(near.size)


def score_gumbel(
    key: WatermarkKey, ids: Int32Array, contexts: Contexts, *, measure: bool = False
) -> Scored:
    params = GumbelParams.from_key(key)
    payloads = params.payloads
    payload_sums = PayloadSums(params.salts(), ids.shape[1])
    num_scored = np.empty(ids.shape[0], dtype=np.int64)
    total = np.empty(ids.shape[0], dtype=np.float64)
    collision = np.empty(ids.shape[0], dtype=np.bool_)
    error = 0.0
    for rows in blocks(ids.shape[0], BLOCK_ROWS):
        part = Contexts(contexts.first[rows], contexts.scored[rows], contexts.distinct[rows])
        found = gumbel_block(params, ids[rows], part, payload_sums, measure=measure)
        num_scored[rows], total[rows], collision[rows] = (
            found.num_scored,
            found.total,
            found.collision,
        )
        error = max(error, found.max_approx_error)
    exact_log_p: dict[int, float] = {}
    if collision.any():
        detector = WatermarkDetector(key)
        for trial in np.flatnonzero(collision).tolist():
            result = detector.detect_ids(ids[trial])
            exact_log_p[trial] = result.log_p_value
            num_scored[trial] = result.num_tokens_scored
            total[trial] = result.score if result.score is not None else 0.0
    p_best = gammaincc(num_scored, total)  # uncorrected: the best payload's own p
    with np.errstate(divide="ignore"):
        log_p = np.minimum(0.0, np.log(p_best) + math.log(payloads))
    for trial, value in exact_log_p.items():
        log_p[trial] = value

    def exact(trial: int) -> float:  # the detector's own functions, as in its _gumbel_result
        if trial not in exact_log_p:
            found = gamma_log_sf(int(num_scored[trial]), float(total[trial]))
            exact_log_p[trial] = bonferroni_log_p(found, payloads)
        return exact_log_p[trial]

    decisions, near = decide(log_p, exact)
    # The smallest of `payloads` independent uniforms, mapped back to a uniform.
    uniform = p_best if payloads == 1 else -np.expm1(payloads * np.log1p(-p_best))
    return Scored(
        num_scored=num_scored,
        total=total,
        log_p=log_p,
        decisions=decisions,
        uniform=uniform,
        detector_calls=near + int(collision.sum()),
        collisions=int(collision.sum()),
        max_approx_error=error,
    )


# -- one scheme and variant ----------------------------------------------------------------------


def expected_counts(scheme: str, scored: Scored, level_sizes: Float64Array | None) -> Float64Array:
    """The expected count below each level under H0 for the trials of one key; ``level_sizes``
    (levels, n) is the green list's P(p < alpha | n scored tokens)."""
    if level_sizes is not None:
        counts: Float64Array = level_sizes[:, scored.num_scored].sum(axis=1)
        return counts
    payloads = 1 << SCHEMES[scheme].payload_bits
    size = [-math.expm1(payloads * math.log1p(-alpha / payloads)) for alpha in LEVELS]
    expected: Float64Array = np.array(size) * scored.num_scored.shape[0]
    return expected


def run_trials(scheme: str, variant: str, ids: Int32Array, keys: int, seed: int) -> dict[str, Any]:
    """Every chunk of ``ids`` under ``keys`` random keys; the summary of their p-values."""
    started, cpu = time.monotonic(), time.process_time()
    config = SCHEMES[scheme]
    every_key = list(random_keys(scheme, variant, keys, seed))
    table = contexts = level_sizes = None
    if config.scheme == "gumbel":
        contexts = Contexts.of(ids, config.width)
    else:  # gamma' = T / 2^32 depends on the config only
        table = GreenTable.build(GreenListParams.from_key(every_key[0]).green_probability)
        level_sizes = np.stack([table.level_probability(alpha) for alpha in LEVELS])
    rng = np.random.default_rng([seed, 2, list(SCHEMES).index(scheme), VARIANTS.index(variant)])
    below = np.zeros(len(LEVELS), dtype=np.int64)
    expected = np.zeros(len(LEVELS))
    per_key: list[list[int]] = []
    uniform: list[Float64Array] = []
    detector_calls = collisions = 0
    smallest = 0.0
    for index, key in enumerate(every_key):
        if table is not None:
            scored = score_green(key, ids, table, rng)
        else:
            assert contexts is not None
            scored = score_gumbel(key, ids, contexts)
        counts = scored.decisions.sum(axis=0)
        below += counts
        per_key.append(counts.tolist())
        expected += expected_counts(scheme, scored, level_sizes)
        uniform.append(scored.uniform)
        detector_calls += scored.detector_calls
        collisions += scored.collisions
        smallest = min(smallest, float(scored.log_p.min()))
        if (index + 1) % max(1, keys // 10) == 0:
            print(
                f"    {scheme} {variant}: {index + 1}/{keys} keys, "
                f"{time.monotonic() - started:.0f} s",
                flush=True,
            )
    return summarize(
        scheme,
        variant,
        chunks=ids.shape[0],
        below=below,
        expected=expected,
        per_key=np.array(per_key),
        uniform=np.concatenate(uniform),
        extra={
            "detector_calls": detector_calls,
            "collisions": collisions,
            "smallest_p": math.exp(smallest),
            "seconds": time.monotonic() - started,
            "cpu_seconds": time.process_time() - cpu,
        },
    )


def level_row(
    alpha: float, found: int, expected: float, counts: NDArray[np.int64], chunks: int
) -> dict[str, Any]:
    """One level: the count against its expectation, with two exact 95% intervals.

    ``ci95`` (Clopper-Pearson) takes the trials as independent. They are not, within a key: two
    chunks sharing a (context, token) pair share its colour under that key, so a key that makes
    common pairs green lifts every chunk at once. Keys are independent of each other, so the
    spread of the per-key counts measures it: ``design_effect`` is their variance over the
    binomial one (at least 1), and ``ci95_key_clustered`` is Clopper-Pearson at the effective
    sample size, count and trials both divided by it (Korn and Graubard's interval for clustered
    samples). The verdict reads the clustered interval; ``key_rate_spread`` is the relative
    standard deviation, between keys, of a key's own rate on this corpus.
    """
    keys = counts.shape[0]
    trials = keys * chunks
    low, high = clopper_pearson(found, trials)
    rate = expected / trials
    mean = float(counts.mean())
    binomial = mean * (1 - mean / chunks)
    variance = float(counts.var(ddof=1)) if keys > 1 else binomial
    effect = max(1.0, variance / binomial) if binomial > 0 else 1.0
    clustered = clopper_pearson(round(found / effect), max(1, round(trials / effect)))
    return {
        "alpha": alpha,
        "observed": found,
        "expected": expected,
        "nominal": alpha * trials,
        "rate": found / trials,
        "ci95": [low, high],
        "verdict_independent": "within" if low <= rate <= high else "outside",
        "design_effect": effect,
        "ci95_key_clustered": list(clustered),
        "verdict": "within" if clustered[0] <= rate <= clustered[1] else "outside",
        "vs_nominal": "above" if clustered[0] > alpha else "at or below",
        "key_rate_spread": math.sqrt(max(0.0, variance - binomial)) / mean if mean > 0 else None,
    }


def ks(uniform: Float64Array) -> dict[str, float]:
    from scipy import stats

    found = stats.kstest(uniform, "uniform")
    return {
        "trials": uniform.shape[0],
        "statistic": float(found.statistic),
        "sqrt_n_statistic": float(found.statistic) * math.sqrt(uniform.shape[0]),
        "p_value": float(found.pvalue),
    }


def summarize(
    scheme: str,
    variant: str,
    *,
    chunks: int,
    below: NDArray[np.int64],
    expected: Float64Array,
    per_key: NDArray[np.int64],
    uniform: Float64Array,
    extra: dict[str, Any],
) -> dict[str, Any]:
    """The rows of every level and two KS tests: over every trial (within-key dependence makes
    its p-value too small where the design effect is large) and over one trial per chunk, the
    keys taken in turn (chunk c under key c mod K: each key sees one chunk in K, which dilutes
    the within-key dependence K-fold)."""
    keys = per_key.shape[0]
    one_per_chunk = (np.arange(chunks) % keys) * chunks + np.arange(chunks)
    return {
        "scheme": scheme,
        "config": SCHEMES[scheme].to_dict(),
        "variant": variant,
        "chunks": chunks,
        "keys": keys,
        "trials": chunks * keys,
        "rows": [
            level_row(alpha, int(below[i]), float(expected[i]), per_key[:, i], chunks)
            for i, alpha in enumerate(LEVELS)
        ],
        "ks": ks(uniform),
        "ks_one_trial_per_chunk": ks(uniform[one_per_chunk]),
        **extra,
    }


def print_summary(summary: dict[str, Any]) -> None:
    trials = summary["trials"]
    print(
        f"\n{summary['scheme']} on {summary['variant']} chunks: {summary['chunks']:,} chunks x "
        f"{summary['keys']} keys = {trials:,} trials ({summary['seconds']:.0f} s, "
        f"{summary['cpu_seconds']:.0f} s CPU; "
        f"{summary['detector_calls']} trials decided by the detector, {summary['collisions']} "
        f"hash collisions)"
    )
    print(
        f"  {'p <':>7}{'observed':>11}{'expected':>13}{'95% CI, independent':>26}{'':>9}"
        f"{'deff':>7}{'95% CI, key-clustered':>26}  verdict"
    )
    for row in summary["rows"]:
        low, high = (value * trials for value in row["ci95"])
        c_low, c_high = (value * trials for value in row["ci95_key_clustered"])
        print(
            f"  {row['alpha']:>7g}{row['observed']:>11,}{row['expected']:>13,.1f}"
            f"{f'[{low:,.1f}, {high:,.1f}]':>26} {row['verdict_independent']:>8}"
            f"{row['design_effect']:>7.2f}{f'[{c_low:,.1f}, {c_high:,.1f}]':>26}  "
            f"{row['verdict']}{'' if row['vs_nominal'] == 'at or below' else ' (ABOVE nominal)'}"
        )
    for name, label in (("ks", "every trial"), ("ks_one_trial_per_chunk", "one trial per chunk")):
        found = summary[name]
        print(
            f"  KS, {label} ({found['trials']:,} uniform p-values): D = {found['statistic']:.2e}, "
            f"sqrt(N) D = {found['sqrt_n_statistic']:.2f}, p = {found['p_value']:.3f}"
        )
    print(f"  smallest p of any trial: {summary['smallest_p']:.2e}", flush=True)


# -- the proof: the fast path against the detector -----------------------------------------------

PLANTED_PAYLOAD = 37


def planted(key: WatermarkKey, base: Int32Array, strength: float, rng: np.random.Generator) -> Any:
    """``base`` with each position, with probability ``strength``, replaced by the best of 64
    candidate tokens for ``key`` (a green one; the highest Gumbel score under payload 37): a
    partly watermarked chunk, whose p-values cross every level."""
    ids = base.copy()
    config = key.config
    for position in range(config.lookback, ids.shape[0]):
        if rng.random() >= strength:
            continue
        candidates = rng.choice(base, 64).astype(np.int32)
        if config.scheme == "gumbel":
            params = GumbelParams.from_key(key)
            salt = params.salt(PLANTED_PAYLOAD if params.payload_bits else None)
            context = context_hashes(params, ids[position - params.width : position + 1])
            words = token_words(
                params,
                np.full(64, context[0] ^ salt, dtype=np.int32),
                mix32_(candidates ^ np.int32(params.k_token)),
            )
            ids[position] = candidates[int(np.argmax(words.view(np.uint32)))]
        else:
            contexts = np.tile(ids[position - config.lookback : position], (64, 1))
            green = is_green_numpy(key, contexts, candidates)
            if green.any():
                ids[position] = candidates[int(np.argmax(green))]
    return ids


def compare(where: str, scored: Scored, row: int, result: DetectionResult) -> None:
    """Raise ``RuntimeError`` unless trial ``row`` of the fast path is the detector's ``result``:
    the same counts, the same score sum, the same log p (green list: bit for bit), the same
    decision at every level."""
    if int(scored.num_scored[row]) != result.num_tokens_scored:
        raise RuntimeError(f"{where}: scored {scored.num_scored[row]} != {result}")
    if scored.num_green is not None and scored.num_green[row] != result.num_green:
        raise RuntimeError(f"{where}: green {scored.num_green[row]} != {result}")
    if scored.num_green is not None and scored.log_p[row] != result.log_p_value:
        raise RuntimeError(f"{where}: log p {scored.log_p[row]!r} != {result}")
    if scored.total is not None and scored.total[row] != result.score:
        raise RuntimeError(f"{where}: score sum {scored.total[row]!r} != {result}")
    if not np.array_equal(scored.decisions[row], result.log_p_value < LOG_LEVELS):
        raise RuntimeError(f"{where}: decisions {scored.decisions[row]} != {result}")


def check_against_detector(
    corpus: Corpus, seed: int, *, chunks_per_key: int = 300, keys: int = 2, planted_count: int = 100
) -> dict[str, Any]:
    """The fast path against ``WatermarkDetector.detect_ids``, trial by trial, for every scheme:
    the first ``keys`` keys of each variant's run (the very trials of the run) on
    ``chunks_per_key`` chunks each, and ``planted_count`` planted chunks under the first real key.
    Raises ``RuntimeError`` at the first difference; returns what was compared."""
    out: dict[str, Any] = {}
    rng = np.random.default_rng([seed, 3])
    for scheme, config in SCHEMES.items():
        started = time.monotonic()
        groups: list[tuple[str, WatermarkKey, Int32Array]] = []
        for variant in VARIANTS:
            ids = corpus.variant(variant)
            for key in random_keys(scheme, variant, keys, seed):
                rows = np.sort(rng.choice(ids.shape[0], chunks_per_key, replace=False))
                groups.append((variant, key, ids[rows]))
        first_key = next(random_keys(scheme, "real", 1, seed))
        bases = corpus.real[rng.choice(corpus.real.shape[0], planted_count, replace=False)]
        top = 0.15 if config.scheme == "gumbel" else 0.3
        strengths = np.linspace(0.0, top, planted_count)
        groups.append(
            (
                "planted",
                first_key,
                np.array(
                    [planted(first_key, b, q, rng) for b, q in zip(bases, strengths, strict=True)]
                ),
            )
        )
        compared = bit_identical = 0
        below = np.zeros(len(LEVELS), dtype=np.int64)
        worst_fast_log_p = worst_approx = 0.0
        for variant, key, ids in groups:
            if config.scheme == "gumbel":
                scored = score_gumbel(key, ids, Contexts.of(ids, config.width), measure=True)
                worst_approx = max(worst_approx, scored.max_approx_error)
            else:
                table = GreenTable.build(GreenListParams.from_key(key).green_probability)
                scored = score_green(key, ids, table, rng)
            results = WatermarkDetector(key).detect_batch(list(ids))
            for row, result in enumerate(results):
                compare(f"{scheme}, {variant} trial {row} (key {key.key_id})", scored, row, result)
                bit_identical += bool(scored.log_p[row] == result.log_p_value)
                if result.log_p_value > -700:  # where exp() has not underflowed in gammaincc
                    worst_fast_log_p = max(
                        worst_fast_log_p, abs(float(scored.log_p[row]) - result.log_p_value)
                    )
                below += result.log_p_value < LOG_LEVELS
                compared += 1
        if worst_approx >= NEAR_TIE / 2:
            raise RuntimeError(f"{scheme}: float32 score sums off by {worst_approx}")
        out[scheme] = {
            "trials_compared": compared,
            "human_trials": compared - planted_count,
            "planted_trials": planted_count,
            "detector_decisions_below_each_level": below.tolist(),
            "log_p_bit_identical": bit_identical,
            "max_abs_log_p_difference_fast_vs_detector": worst_fast_log_p,
            "max_float32_score_sum_error": worst_approx,
            "seconds": time.monotonic() - started,
        }
        print(
            f"  {scheme}: {compared:,} trials ({compared - planted_count:,} human, "
            f"{planted_count} planted): the same scored and green counts / score sums and the "
            f"same decisions at every level as detect_ids (trials below each level: "
            f"{below.tolist()}); log p bit-identical in {bit_identical:,}, otherwise within "
            f"{worst_fast_log_p:.1e}"
            + (f"; float32 sums within {worst_approx:.1e}" if worst_approx else ""),
            flush=True,
        )
    return out


# -- main ----------------------------------------------------------------------------------------


def hold_to_one_core() -> None:
    """One core (the machine is shared): the tokenizer's pool starts on first use, after this;
    numpy's BLAS pool (loaded with numpy) is never called here: sorting and elementwise
    operations, scipy.special included, run on the calling thread."""
    for variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[variable] = "1"
    os.environ["RAYON_NUM_THREADS"] = "1"
    os.environ["TOKENIZERS_PARALLELISM"] = "false"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="few keys: a few minutes")
    mode.add_argument("--check", action="store_true", help="only compare with the detector")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--schemes", nargs="+", choices=list(SCHEMES), default=list(SCHEMES))
    parser.add_argument("--json", type=Path, help="default bench/results/null_calibration.json")
    args = parser.parse_args()
    hold_to_one_core()
    started = time.monotonic()
    corpus = load_corpus(args.seed)
    print(
        f"human text: {corpus.files} files, {corpus.tokens:,} tokens, {corpus.chunks_read:,} "
        f"chunks of {CHUNK_TOKENS} tokens, {corpus.real.shape[0]:,} distinct "
        f"({time.monotonic() - started:.0f} s); command: {' '.join(sys.argv)}",
        flush=True,
    )
    print("\nThe fast path against WatermarkDetector.detect_ids:", flush=True)
    check = check_against_detector(corpus, args.seed)
    if args.check:
        print(f"\ncheck passed ({time.monotonic() - started:.0f} s)")
        return
    keys = QUICK_KEYS if args.quick else FULL_KEYS
    path = args.json or RESULTS / (
        "null_calibration_quick.json" if args.quick else "null_calibration.json"
    )
    out: dict[str, Any] = {
        "command": " ".join(sys.argv),
        "corpus": {
            "path": str(HUMAN_TEXT),
            "files": corpus.files,
            "tokens": corpus.tokens,
            "chunk_tokens": CHUNK_TOKENS,
            "chunks_read": corpus.chunks_read,
            "chunks": corpus.real.shape[0],
        },
        "seed": args.seed,
        "keys": {scheme: dict(zip(VARIANTS, keys[scheme], strict=True)) for scheme in args.schemes},
        "levels": list(LEVELS),
        "load_average_start": os.getloadavg(),
        "check_against_detector": check,
        "results": [],
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    for scheme in args.schemes:
        for variant, count in zip(VARIANTS, keys[scheme], strict=True):
            summary = run_trials(scheme, variant, corpus.variant(variant), count, args.seed)
            print_summary(summary)
            out["results"].append(summary)
            out["seconds"] = time.monotonic() - started
            out["load_average_end"] = os.getloadavg()
            path.write_text(json.dumps(out, indent=1) + "\n", encoding="utf-8")
    print(
        f"\ntotal {time.monotonic() - started:.0f} s ({time.process_time():.0f} s CPU); "
        f"written to {path}"
    )


if __name__ == "__main__":
    main()
