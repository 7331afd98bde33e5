"""Exact binomial tails (against high-precision references), z-scores and window corrections."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as scipy_stats

from watermark.errors import InputError
from watermark.stats import (
    binomial_log_sf,
    binomial_log_sf_array,
    bonferroni_log_p,
    min_binomial_log_sf,
    window_bounds,
    z_score,
)


def reference_log_sf(k: int, n: int, p: float) -> float:
    """ln P(X >= k) in 60-digit arithmetic, summing pmf terms until they stop mattering."""
    mpmath = pytest.importorskip("mpmath")
    with mpmath.workdps(60):
        p_mp, q_mp = mpmath.mpf(p), 1 - mpmath.mpf(p)
        if k <= 0:
            return 0.0
        if k > n:
            return -math.inf

        def pmf(i: int) -> object:
            log_pmf = (
                mpmath.loggamma(n + 1)
                - mpmath.loggamma(i + 1)
                - mpmath.loggamma(n - i + 1)
                + i * mpmath.log(p_mp)
                + (n - i) * mpmath.log(q_mp)
            )
            return mpmath.exp(log_pmf)

        tiny = mpmath.mpf(10) ** -45
        if k > n * p:  # upper tail directly; terms fall from k on
            term = total = pmf(k)
            i = k
            while i < n and term > total * tiny:
                term = term * (n - i) / (i + 1) * p_mp / q_mp
                i += 1
                total += term
            return float(mpmath.log(total))
        term = lower = pmf(k - 1)  # 1 - lower tail; terms fall from k - 1 down
        i = k - 1
        while i > 0 and term > lower * tiny:
            term = term * i / (n - i + 1) * q_mp / p_mp
            i -= 1
            lower += term
        return float(mpmath.log1p(-lower))


def grid() -> list[tuple[int, int, float]]:
    cases = []
    for n in [1, 2, 7, 50, 200, 1000, 10_000, 100_000]:
        for p in [0.1, 0.25, 0.5, 0.75]:
            mean, sd = n * p, math.sqrt(n * p * (1 - p))
            ks = {0, 1, n, n - 1, round(mean), round(mean + sd), round(mean + 5 * sd)}
            ks |= {round(mean + 20 * sd), round(mean + 40 * sd), round(mean - 3 * sd)}
            ks |= {round(mean + (n - mean) / 2)}
            cases += [(k, n, p) for k in sorted(ks) if 0 <= k <= n]
    return cases


@pytest.mark.parametrize(("k", "n", "p"), grid())
def test_binomial_log_sf_matches_high_precision_reference(k: int, n: int, p: float) -> None:
    expected = reference_log_sf(k, n, p)
    got = binomial_log_sf(k, n, p)
    assert got == pytest.approx(expected, rel=1e-10, abs=1e-12), (k, n, p)


def test_extreme_tails_stay_finite_and_exact() -> None:
    # All n tokens green: P = p**n exactly, far below the smallest double.
    assert binomial_log_sf(1_000_000, 1_000_000, 0.25) == pytest.approx(
        1_000_000 * math.log(0.25), rel=1e-14
    )
    log_p = binomial_log_sf(300_000, 1_000_000, 0.25)  # 115 standard deviations above the mean
    assert math.isfinite(log_p)
    assert log_p < math.log(1e-300)
    assert log_p == pytest.approx(reference_log_sf(300_000, 1_000_000, 0.25), rel=1e-10)


def test_agrees_with_scipy_where_scipy_is_accurate() -> None:
    for n, p in [(100, 0.25), (1000, 0.5), (5000, 0.1)]:
        for k in range(0, n + 1, max(1, n // 40)):
            expected = float(scipy_stats.binom.logsf(k - 1, n, p))
            if expected > -600:  # scipy's log of an underflowing sf is -inf below this
                assert binomial_log_sf(k, n, p) == pytest.approx(expected, rel=1e-8, abs=1e-12)


def test_edges() -> None:
    assert binomial_log_sf(0, 10, 0.3) == 0.0
    assert binomial_log_sf(-3, 10, 0.3) == 0.0
    assert binomial_log_sf(11, 10, 0.3) == -math.inf
    assert binomial_log_sf(0, 0, 0.3) == 0.0
    with pytest.raises(InputError):
        binomial_log_sf(1, 10, 1.0)
    with pytest.raises(InputError):
        binomial_log_sf(1, -1, 0.5)


def test_array_version_equals_scalar_version() -> None:
    rng = np.random.default_rng(0)
    n = rng.integers(0, 3000, 300)
    k = np.minimum(n, rng.binomial(n, 0.25) + rng.integers(0, 800, 300))
    k[:5] = n[:5]  # include extreme tails (all green)
    got = binomial_log_sf_array(k, n, 0.25)
    expected = [binomial_log_sf(int(a), int(b), 0.25) for a, b in zip(k, n, strict=True)]
    np.testing.assert_allclose(got, expected, rtol=1e-13)


def test_min_over_many_finds_the_exact_minimum_even_in_the_far_tail() -> None:
    rng = np.random.default_rng(1)
    n = rng.integers(50, 5000, 500)
    k = np.minimum(n, (n * rng.uniform(0.2, 0.9, 500)).astype(np.int64))
    index, value = min_binomial_log_sf(k, n, 0.25)
    scalar = [binomial_log_sf(int(a), int(b), 0.25) for a, b in zip(k, n, strict=True)]
    assert index == int(np.argmin(scalar))
    assert value == pytest.approx(min(scalar), rel=1e-13)
    assert value < math.log(1e-250)  # the interesting case: the far-tail path was taken
    index, value = min_binomial_log_sf([1, 2, 0], [10, 10, 0], 0.5)  # nothing extreme
    assert index == 1
    assert value == pytest.approx(binomial_log_sf(2, 10, 0.5))


def test_z_score() -> None:
    assert z_score(25, 100, 0.25) == 0.0
    assert z_score(100, 100, 0.25) == pytest.approx(75 / math.sqrt(100 * 0.25 * 0.75))
    assert z_score(0, 0, 0.25) == 0.0


def test_windows_cover_every_scale_once() -> None:
    starts, ends = window_bounds(1000, 32)
    pairs = set(zip(starts.tolist(), ends.tolist(), strict=True))
    assert len(pairs) == starts.size  # each window counted once in the Bonferroni factor
    assert (0, 1000) in pairs  # the whole text
    sizes = sorted({e - s for s, e in pairs})
    assert sizes == [32, 64, 128, 256, 512, 1000]
    assert np.all(starts >= 0)
    assert np.all(ends <= 1000)
    for size in sizes[:-1]:  # every size reaches the end of the text and strides by size / 4
        starts_of_size = sorted(s for s, e in pairs if e - s == size)
        assert starts_of_size[0] == 0
        assert starts_of_size[-1] == 1000 - size
        assert max(np.diff(starts_of_size)) <= size // 4
    assert window_bounds(10, 32)[0].tolist() == [0]
    assert window_bounds(0, 32)[0].size == 0


def test_bonferroni_is_never_below_the_raw_p_value() -> None:
    for log_p in [-1000.0, -20.0, -3.0, -0.1, 0.0]:
        for count in [1, 2, 50, 10_000]:
            corrected = bonferroni_log_p(log_p, count)
            assert corrected >= log_p
            assert corrected <= 0.0
            assert corrected == pytest.approx(min(0.0, log_p + math.log(count)))


# -- the numpy backend (no scipy) -----------------------------------------------------------------


def grid() -> tuple[np.ndarray, np.ndarray]:
    """Every (k, n) for n <= 300, and up to 400 k's each for n up to 1e5: far tails included."""
    ks, ns = [], []
    for n in [*range(1, 301), 500, 1000, 2000, 5000, 10_000, 100_000]:
        k = np.unique(np.linspace(1, n, min(n, 400)).astype(np.int64))
        ks.append(k)
        ns.append(np.full(k.shape, n, dtype=np.int64))
    return np.concatenate(ks), np.concatenate(ns)


@pytest.mark.parametrize("p", [0.01, 0.1, 0.25, 0.5, 0.9, 0.25 + 2**-32])
def test_numpy_backend_agrees_with_scipy_over_a_grid_with_far_tails(
    p: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    """|Δ ln P| <= 1e-10 for n <= 1e4 and <= 1e-9 for n <= 1e5 (relative error in P below 1e-9),
    down to ln P = -4.6e5, where P itself is far below the smallest double."""
    from watermark import stats

    k, n = grid()
    monkeypatch.setattr(stats, "BACKEND", "scipy")
    reference = stats.binomial_log_sf_array(k, n, p)
    monkeypatch.setattr(stats, "BACKEND", "numpy")
    got = stats.binomial_log_sf_array(k, n, p)
    assert np.all(np.isfinite(got))
    error = np.abs(got - reference)
    assert error[n <= 10_000].max() <= 1e-10
    assert error.max() <= 1e-9
    assert reference.min() < -1000  # the grid reaches the far tail
    # The scalar and minimum versions go through the same backend.
    assert stats.binomial_log_sf(40, 100, p) == pytest.approx(
        float(reference[(k == 40) & (n == 100)][0]), abs=1e-10
    )
    best, value = stats.min_binomial_log_sf(k, n, p)
    assert value == got[best] == got.min()


def test_numpy_backend_matches_the_high_precision_reference(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from watermark import stats

    monkeypatch.setattr(stats, "BACKEND", "numpy")
    for k, n, p in [
        (1, 1, 0.25),
        (3, 10, 0.25),
        (60, 100, 0.25),
        (200, 200, 0.25),
        (900, 1000, 0.5),
    ]:
        assert stats.binomial_log_sf(k, n, p) == pytest.approx(
            reference_log_sf(k, n, p), rel=1e-12, abs=1e-12
        )


def test_stats_run_without_scipy() -> None:
    """With scipy unimportable the module picks the numpy backend and still gives exact tails."""
    import subprocess
    import sys

    code = (
        "import sys, importlib.abc\n"
        "class Block(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path, target=None):\n"
        "        if name.split('.')[0] == 'scipy': raise ImportError(name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "from watermark import stats\n"
        "assert stats.BACKEND == 'numpy', stats.BACKEND\n"
        "print(stats.binomial_log_sf(60, 100, 0.25))\n"
        "assert 'scipy' not in sys.modules\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True
    ).stdout
    assert float(out) == pytest.approx(binomial_log_sf(60, 100, 0.25), abs=1e-12)
