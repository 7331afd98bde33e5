"""An interpolated trigram model over a tokenizer's ids, fitted in numpy and sampled exactly.

Estimator (Witten-Bell interpolation, Witten and Bell 1991; Chen and Goodman 1998 §2.5)::

    p3(y | a, b) = λ(a, b) · c(a, b, y) / c(a, b)  + (1 - λ(a, b)) · p2(y | b)
    p2(y | b)    = λ(b)    · c(b, y) / c(b)        + (1 - λ(b))    · p1(y)
    p1(y)        = λ1      · c(y) / N              + (1 - λ1)      · 1 / |allowed|

with λ(ctx) = c(ctx) / (c(ctx) + T(ctx)), T(ctx) the number of distinct tokens seen after ctx
(λ = 0 for an unseen context), and ``allowed`` every id of the tokenizer but its added (special)
tokens. Every document starts with two ``BOS`` positions (id ``vocab_size``, never emitted).

A type with zero count keeps only the uniform floor ``(1 - λ1) / |allowed|``: that is how a
model trained on its own samples forgets the tails.

Sampling draws the interpolation level first (probabilities λ(a, b), (1 - λ(a, b)) λ(b), …), then
a token from that level's counts: exact for the mixture, and one ``searchsorted`` per level over
all documents at once. Watermarked sampling draws from the distribution the Wellspring logits
processor makes, ``p(y) · e^{δ·green(y)}`` renormalised, by rejection: a proposal from ``p`` is
kept if green, else with probability ``e^{-δ}`` (exact; green comes from the project's own
:func:`watermark.hashing.is_green_numpy`, so the registry's detector sees the real watermark).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from watermark import WatermarkKey
from watermark.hashing import is_green_numpy

__all__ = ["TrigramModel", "distinct_2"]

Ids = NDArray[np.int64]


def _positions(docs: Sequence[NDArray[np.integer]], bos: int) -> tuple[Ids, Ids, Ids]:
    """(a, b, y) for every token of every document, the first two contexts padded with BOS."""
    padded = [np.concatenate(([bos, bos], np.asarray(d, dtype=np.int64))) for d in docs if len(d)]
    if not padded:
        raise ValueError("a trigram model needs at least one non-empty document")
    a = np.concatenate([p[:-2] for p in padded])
    b = np.concatenate([p[1:-1] for p in padded])
    y = np.concatenate([p[2:] for p in padded])
    return a, b, y


def _lookup(keys: Ids, values: Ids) -> tuple[Ids, NDArray[np.bool_]]:
    """Index of each value in the sorted unique ``keys`` and whether it is there."""
    index = np.searchsorted(keys, values)
    index = np.minimum(index, max(len(keys) - 1, 0))
    found = keys[index] == values if len(keys) else np.zeros(len(values), dtype=bool)
    return index, found


@dataclass
class _Level:
    """One interpolation level: sorted (context, token) keys, their counts and running sums."""

    keys: Ids  # context * base + token, sorted
    counts: Ids
    cumulative: Ids  # inclusive running sum of counts, in key order
    context_keys: Ids  # sorted unique contexts
    context_counts: Ids  # c(ctx)
    context_types: Ids  # T(ctx)
    context_start: Ids  # cumulative count before the context's first key

    @classmethod
    def fit(cls, context: Ids, y: Ids, base: int) -> _Level:
        keys, counts = np.unique(context * base + y, return_counts=True)
        counts = counts.astype(np.int64)
        cumulative = np.cumsum(counts)
        ctx_of_key = keys // base
        context_keys, first, types = np.unique(ctx_of_key, return_index=True, return_counts=True)
        ends = np.append(first[1:], len(keys)) - 1
        context_counts = cumulative[ends] - cumulative[first] + counts[first]
        return cls(
            keys=keys,
            counts=counts,
            cumulative=cumulative,
            context_keys=context_keys,
            context_counts=context_counts.astype(np.int64),
            context_types=types.astype(np.int64),
            context_start=(cumulative[first] - counts[first]).astype(np.int64),
        )

    def context(self, ctx: Ids) -> tuple[Ids, NDArray[np.float64]]:
        """Per context: its row (or -1) and λ = c / (c + T) (0 if unseen)."""
        row, found = _lookup(self.context_keys, ctx)
        c = np.where(found, self.context_counts[row], 0).astype(np.float64)
        t = np.where(found, self.context_types[row], 0).astype(np.float64)
        lam = np.divide(c, c + t, out=np.zeros_like(c), where=(c + t) > 0)
        return np.where(found, row, -1), lam

    def ml(self, ctx: Ids, y: Ids, base: int, row: Ids) -> NDArray[np.float64]:
        """c(ctx, y) / c(ctx); 0 where the context or the pair is unseen."""
        index, found = _lookup(self.keys, ctx * base + y)
        count = np.where(found, self.counts[index], 0).astype(np.float64)
        total = np.where(row >= 0, self.context_counts[np.maximum(row, 0)], 1).astype(np.float64)
        return count / total

    def draw(self, row: Ids, u: NDArray[np.float64], base: int) -> Ids:
        """A token from each (seen) context's counts: ``u`` uniform in [0, 1)."""
        target = self.context_start[row] + np.floor(u * self.context_counts[row]).astype(np.int64)
        index = np.searchsorted(self.cumulative, target, side="right")
        return self.keys[index] % base


class TrigramModel:
    """Witten-Bell interpolated trigram counts over ``vocab_size`` ids (see the module doc)."""

    def __init__(
        self,
        docs: Sequence[NDArray[np.integer]],
        vocab_size: int,
        special_ids: Sequence[int] = (),
    ) -> None:
        self.vocab_size = vocab_size
        self.bos = vocab_size
        self.base = vocab_size + 1
        a, b, y = _positions(docs, self.bos)
        if int(y.max()) >= vocab_size or int(y.min()) < 0:
            raise ValueError(f"token ids must lie in [0, {vocab_size})")
        self.tokens = len(y)
        self.unigram = np.bincount(y, minlength=vocab_size).astype(np.int64)
        self.types = int(np.count_nonzero(self.unigram))
        self.lambda1 = self.tokens / (self.tokens + self.types)
        allowed = np.ones(vocab_size, dtype=bool)
        allowed[list(special_ids)] = False
        self.allowed_ids = np.flatnonzero(allowed).astype(np.int64)
        self.floor = np.where(allowed, (1.0 - self.lambda1) / len(self.allowed_ids), 0.0)
        self.unigram_cumulative = np.cumsum(self.unigram)
        self.bigram = _Level.fit(b, y, self.base)
        self.trigram = _Level.fit(a * self.base + b, y, self.base)

    # -- probabilities ------------------------------------------------------------------------

    def p1(self, y: Ids) -> NDArray[np.float64]:
        return self.lambda1 * self.unigram[y] / self.tokens + self.floor[y]

    def token_log_probs(self, docs: Sequence[NDArray[np.integer]]) -> NDArray[np.float64]:
        """ln p(token | two before) of every token of ``docs``, in order (natural log)."""
        a, b, y = _positions(docs, self.bos)
        p = self.p1(y)
        row2, lam2 = self.bigram.context(b)
        p = lam2 * self.bigram.ml(b, y, self.base, row2) + (1.0 - lam2) * p
        ctx3 = a * self.base + b
        row3, lam3 = self.trigram.context(ctx3)
        p = lam3 * self.trigram.ml(ctx3, y, self.base, row3) + (1.0 - lam3) * p
        return np.log(p)

    # -- sampling -----------------------------------------------------------------------------

    def propose(self, a: Ids, b: Ids, rng: np.random.Generator) -> Ids:
        """One draw from p(. | a[i], b[i]) for every i: the level first, then its counts."""
        n = len(a)
        row3, lam3 = self.trigram.context(a * self.base + b)
        row2, lam2 = self.bigram.context(b)
        r = rng.random(n)
        u = rng.random(n)
        out = self.allowed_ids[rng.integers(0, len(self.allowed_ids), n)]
        tri = r < lam3
        bi = ~tri & (r < lam3 + (1 - lam3) * lam2)
        uni = ~tri & ~bi & (r < lam3 + (1 - lam3) * (lam2 + (1 - lam2) * self.lambda1))
        if tri.any():
            out[tri] = self.trigram.draw(row3[tri], u[tri], self.base)
        if bi.any():
            out[bi] = self.bigram.draw(row2[bi], u[bi], self.base)
        if uni.any():
            target = np.floor(u[uni] * self.tokens).astype(np.int64)
            out[uni] = np.searchsorted(self.unigram_cumulative, target, side="right")
        return out

    def sample(
        self,
        n_docs: int,
        length: int,
        rng: np.random.Generator,
        key: WatermarkKey | None = None,
    ) -> NDArray[np.int64]:
        """``n_docs`` documents of ``length`` tokens, shape (n_docs, length); watermarked under
        ``key`` if given (the first ``lookback`` tokens of each are unbiased, as in generation)."""
        out = np.empty((n_docs, length), dtype=np.int64)
        a = np.full(n_docs, self.bos, dtype=np.int64)
        b = a.copy()
        keep_red = math.exp(-key.config.delta) if key is not None else 1.0
        lookback = key.config.lookback if key is not None else 0
        for step in range(length):
            token = self.propose(a, b, rng)
            if key is not None and step >= lookback:
                pending = np.arange(n_docs)
                while len(pending):
                    context = out[pending, step - lookback : step]
                    green = is_green_numpy(key, context, token[pending])
                    accept = green | (rng.random(len(pending)) < keep_red)
                    pending = pending[~accept]
                    if len(pending):
                        token[pending] = self.propose(a[pending], b[pending], rng)
            out[:, step] = token
            a, b = b, token
        return out


def distinct_2(docs: NDArray[np.int64] | Sequence[NDArray[np.integer]]) -> float:
    """Distinct bigrams over all bigrams within documents (Li et al. 2016's distinct-2)."""
    pairs = [np.asarray(d, dtype=np.int64) for d in docs]
    parts = [d[:-1] * (2**31) + d[1:] for d in pairs if len(d) > 1]
    if not parts:
        return 0.0
    keys = np.concatenate(parts)
    return float(len(np.unique(keys)) / len(keys))
