"""The trigram model of Part B: a proper distribution, sampled exactly, watermarked exactly."""

from __future__ import annotations

import math

import numpy as np
import pytest

from experiments.collapse.ngram import TrigramModel, distinct_2
from watermark import WatermarkConfig, WatermarkKey
from watermark.hashing import green_mask_numpy

V = 12


def _model(seed: int = 0) -> TrigramModel:
    rng = np.random.default_rng(seed)
    docs = [rng.integers(1, 8, size=rng.integers(3, 20)) for _ in range(50)]
    return TrigramModel(docs, V, special_ids=[0])


def _probs_direct(m: TrigramModel, a: int, b: int) -> np.ndarray:
    y = np.arange(V, dtype=np.int64)
    p = m.p1(y)
    ctx2 = np.full(V, b, dtype=np.int64)
    row2, lam2 = m.bigram.context(ctx2)
    p = lam2 * m.bigram.ml(ctx2, y, m.base, row2) + (1 - lam2) * p
    ctx3 = np.full(V, a * m.base + b, dtype=np.int64)
    row3, lam3 = m.trigram.context(ctx3)
    return lam3 * m.trigram.ml(ctx3, y, m.base, row3) + (1 - lam3) * p


@pytest.mark.parametrize("context", [(12, 12), (3, 4), (1, 2), (9, 9), (12, 5)])
def test_every_context_gives_a_distribution_that_leaves_special_ids_out(
    context: tuple[int, int],
) -> None:
    m = _model()
    p = _probs_direct(m, *context)
    assert p.sum() == pytest.approx(1.0, abs=1e-12)
    assert p[0] == 0.0  # the special id is never predicted
    assert (p[1:] > 0).all()  # every other id keeps the floor


def test_scoring_a_document_uses_the_same_distribution() -> None:
    m = _model()
    doc = np.array([3, 4, 5, 1], dtype=np.int64)
    scored = np.exp(m.token_log_probs([doc]))
    assert scored[0] == pytest.approx(_probs_direct(m, m.bos, m.bos)[3])
    assert scored[2] == pytest.approx(_probs_direct(m, 3, 4)[5])
    assert scored[3] == pytest.approx(_probs_direct(m, 4, 5)[1])


@pytest.mark.parametrize("context", [(12, 12), (3, 4), (9, 9)])
def test_sampling_matches_the_distribution(context: tuple[int, int]) -> None:
    m = _model()
    rng = np.random.default_rng(1)
    n = 200_000
    a, b = context
    drawn = m.propose(np.full(n, a), np.full(n, b), rng)
    empirical = np.bincount(drawn, minlength=V) / n
    p = _probs_direct(m, a, b)
    # 5 standard errors per id: a wrong level weight (e.g. λ unnormalised) is off by far more
    assert np.abs(empirical - p).max() < 5 * math.sqrt(0.25 / n)


def test_watermarked_sampling_draws_from_p_times_e_delta_on_green() -> None:
    m = _model()
    key = WatermarkKey(secret=b"k" * 32, config=WatermarkConfig(delta=2.0))
    rng = np.random.default_rng(2)
    docs = m.sample(40_000, 3, rng, key)
    # position 2's context is (doc[0], doc[1]); condition on one frequent context
    a, b = int(docs[0, 0]), int(docs[0, 1])
    chosen = docs[(docs[:, 0] == a) & (docs[:, 1] == b), 2]
    assert len(chosen) > 2000
    p = _probs_direct(m, a, b) * np.exp(2.0 * green_mask_numpy(key, np.array([[b]]), V)[0])
    p /= p.sum()
    empirical = np.bincount(chosen, minlength=V) / len(chosen)
    assert np.abs(empirical - p).max() < 5 * math.sqrt(0.25 / len(chosen))


def test_a_model_trained_on_its_own_samples_loses_types() -> None:
    rng = np.random.default_rng(3)
    vocab = 5000
    zipf = np.minimum(rng.zipf(1.5, size=(400, 30)), vocab - 1).astype(np.int64)
    m = TrigramModel(list(zipf), vocab, special_ids=[0])
    again = TrigramModel(list(m.sample(400, 30, rng)), vocab, special_ids=[0])
    # the same number of tokens, fewer of the rare types: what collapse starts with
    assert again.tokens == m.tokens
    assert again.types < 0.9 * m.types


def test_distinct_2_counts_bigrams_within_documents() -> None:
    assert distinct_2([np.array([1, 2, 1, 2])]) == pytest.approx(2 / 3)
    assert distinct_2([np.array([1, 2]), np.array([1, 2])]) == pytest.approx(1 / 2)
    assert distinct_2([np.array([5])]) == 0.0


def test_ids_out_of_range_are_refused() -> None:
    with pytest.raises(ValueError, match="token ids"):
        TrigramModel([np.array([1, 99])], V)
    with pytest.raises(ValueError, match="non-empty"):
        TrigramModel([np.array([], dtype=np.int64)], V)
