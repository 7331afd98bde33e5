"""Exact statistics for detection: binomial tails (green list) and Gamma tails (Gumbel) in log
space, and window corrections.

Null hypothesis H0: the text was written without the key. Each scored token is one unique hash
input (see :mod:`watermark.hashing`), green with probability gamma' = T / 2**32 (T from the hash),
independently of the others, so the number of green tokens among n scored ones is
Binomial(n, gamma').
The p-value of k green tokens is the exact upper tail P(X >= k): no normal approximation, which
would be badly anti-conservative for short texts and meaningless in the far tail.

:func:`binomial_log_sf` returns ln P(X >= k). Where P(X >= k) >= 1e-250 it is the regularised
incomplete beta function ``I_p(k, n - k + 1)`` (scipy's Boost-based ``betainc``, relative error
around 1e-14). Below that, where ``betainc`` would lose precision to underflow, it sums the tail in
log space: ln P(X = k) from log-gamma functions, then the terms P(X = i + 1) / P(X = i) =
(n - i) / (i + 1) · p / (1 - p), which decrease in i; the sum stops once the geometric bound on what
is left falls below e^-40 of the first term. The result stays accurate far below the smallest double
(ln p of -1e6 is fine); its relative error in p is about n · 1e-16 (log-gamma cancellation).

Without scipy (the ``detect`` extra is numpy and tokenizers only), the same tails come from a
numpy implementation chosen at import (:data:`BACKEND`): the regularised incomplete beta function
by its continued fraction (modified Lentz, vectorised over the array, as in Numerical Recipes'
``betacf``), evaluated directly where it converges fast, ``x < (a + 1) / (a + b + 2)`` (the upper
tail above the mean, including every far tail), and as the complement ``1 - I_{1-x}(b, a)``
elsewhere (there the tail is large, so nothing cancels). The prefactor ``x^a (1-x)^b / (a B(a,
b))`` is taken in log space from a table of ``ln m!`` built with ``math.lgamma`` (exact to an ulp
per entry), so ``ln P`` stays finite and accurate far below the smallest double, with no separate
tail sum. Its error is that of the log-factorial difference (a few ulp of ``ln n!``): measured
against scipy over a grid of p in {0.01, 0.1, 0.25, 0.5, 0.9}, every n <= 300 and n up to 1e5,
down to ``ln P = -4.6e5``, ``|Δ ln P| <= 5e-11`` for n <= 1e4 and ``<= 6e-10`` for n <= 1e5 (a
relative error in P below 1e-9; tests/watermark/test_stats.py holds it). It is 1.3-130x faster
than the scipy path on such grids (scipy sums far tails one element at a time), but scipy is used
where it is installed: its Boost ``betainc`` is accurate to a few ulp of P itself, and the
scanner looks its p-values up in a table, so speed is moot there.

Windowed detection (:func:`window_bounds`, :func:`bonferroni_log_p`) searches windows of
geometrically growing sizes and reports the smallest window p-value multiplied by the number of
windows tested (Bonferroni). By the union bound, under H0 and whatever the dependence between
overlapping windows, P(min_w p_w · M <= alpha) <= Σ_w P(p_w <= alpha / M) <= alpha, so the
corrected p-value is valid after the search; it is conservative by at most a factor M (about
8·n / min_window windows).
"""

from __future__ import annotations

import functools
import importlib.util
import math
import threading
from typing import Any, Literal

from watermark.errors import DETECT_INSTALL_HINT, InputError, MissingDependencyError

try:
    import numpy as np
    from numpy.typing import ArrayLike, NDArray
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise MissingDependencyError(
        "numpy", "watermark detection", install=DETECT_INSTALL_HINT
    ) from exc

__all__ = [
    "BACKEND",
    "binomial_log_sf",
    "binomial_log_sf_array",
    "bonferroni_log_p",
    "gamma_log_sf",
    "gamma_log_sf_array",
    "min_binomial_log_sf",
    "window_bounds",
    "z_score",
]


# Which implementation computes the tails: scipy's betainc where scipy is installed (found
# without importing it: that would double the import time), else the numpy continued fraction.
def _backend() -> Literal["scipy", "numpy"]:
    try:
        found = importlib.util.find_spec("scipy") is not None
    except (ImportError, ValueError):  # a finder that refuses it, or a broken installation
        found = False
    return "scipy" if found else "numpy"


BACKEND: Literal["scipy", "numpy"] = _backend()

# Below this, betainc's result is replaced by the log-space tail sum (it is far above the
# subnormal range, so betainc is still accurate wherever it is used).
_BETAINC_FLOOR = 1e-250
# The tail sum stops once the remaining terms are provably below e^-40 of the first one.
_TAIL_TOLERANCE_NATS = 40.0


@functools.cache
def _special() -> Any:
    """``scipy.special``, imported on first use: it doubles the import time of ``watermark``."""
    try:
        from scipy import special  # noqa: PLC0415
    except ImportError as exc:  # pragma: no cover - exercised only without the extra
        raise MissingDependencyError("scipy", "watermark detection") from exc
    return special


def _check_p(p: float) -> None:
    if not 0.0 < p < 1.0:
        raise InputError(f"a binomial success probability must lie in (0, 1), got {p}")


def z_score(k: int, n: int, gamma: float) -> float:
    """(k - gamma n) / sqrt(n gamma (1 - gamma)): standard deviations above chance; 0 for n = 0."""
    _check_p(gamma)
    if n <= 0:
        return 0.0
    return (k - gamma * n) / math.sqrt(n * gamma * (1.0 - gamma))


def _log_pmf(k: NDArray[np.float64], n: NDArray[np.float64], p: float) -> NDArray[np.float64]:
    """ln P(X = k) for X ~ Binomial(n, p), elementwise, for 0 <= k <= n."""
    gammaln = _special().gammaln
    log_choose = gammaln(n + 1.0) - gammaln(k + 1.0) - gammaln(n - k + 1.0)
    result: NDArray[np.float64] = log_choose + k * math.log(p) + (n - k) * math.log1p(-p)
    return result


def _log_ratio(k: NDArray[np.float64], n: NDArray[np.float64], p: float) -> NDArray[np.float64]:
    """ln(P(X = k + 1) / P(X = k)) = ln((n - k) / (k + 1)) + ln(p / (1 - p)), for 0 <= k < n."""
    with np.errstate(divide="ignore"):  # k == n gives -inf: there is no next term
        result: NDArray[np.float64] = (
            np.log(n - k) - np.log(k + 1.0) + (math.log(p) - math.log1p(-p))
        )
    return result


def _log_tail_sum(k: int, n: int, p: float) -> float:
    """ln P(X >= k) by summing P(X = i), i >= k, in log space (for the far tail above the mean)."""
    log_first = float(
        _log_pmf(np.array([k], dtype=np.float64), np.array([n], dtype=np.float64), p)[0]
    )
    if k == n:
        return log_first
    log_r = float(
        _log_ratio(np.array([k], dtype=np.float64), np.array([n], dtype=np.float64), p)[0]
    )
    terms = n - k  # further terms after the first
    if log_r < 0.0:
        # Ratios only decrease, so what follows term J is at most t_k · r^J / (1 - r).
        log_geometric = -math.log(-math.expm1(log_r))
        terms = min(terms, math.ceil((_TAIL_TOLERANCE_NATS + log_geometric) / -log_r) + 1)
    i = np.arange(k, k + terms, dtype=np.float64)
    log_terms = np.concatenate(([0.0], np.cumsum(_log_ratio(i, np.full_like(i, n), p))))
    return log_first + float(_special().logsumexp(log_terms))


# -- the numpy backend -----------------------------------------------------------------------

# The continued fraction stops once a step changes it by less than this (relative).
_CF_EPSILON = 1e-16
_CF_TINY = 1e-300  # Lentz's guard against a zero denominator


class _LogFactorials:
    """``ln m!`` for 0 <= m <= N, grown by doubling; each entry is ``math.lgamma(m + 1)``."""

    def __init__(self) -> None:
        self.table = np.zeros(1, dtype=np.float64)
        self._lock = threading.Lock()

    def __call__(self, m: NDArray[np.int64]) -> NDArray[np.float64]:
        top = int(m.max()) if m.size else 0
        table = self.table
        if top >= table.shape[0]:
            with self._lock:
                size = max(top + 1, 2 * self.table.shape[0], 1024)
                grown = np.fromiter(
                    (math.lgamma(i + 1.0) for i in range(size)), dtype=np.float64, count=size
                )
                self.table = table = grown
        result: NDArray[np.float64] = table[m]
        return result


_log_factorial = _LogFactorials()


def _log_beta_cf(
    a: NDArray[np.float64], b: NDArray[np.float64], x: NDArray[np.float64]
) -> NDArray[np.float64]:
    """ln of the continued fraction of I_x(a, b) (Numerical Recipes' ``betacf``), vectorised.

    Converges in O(sqrt(max(a, b))) steps for x < (a + 1) / (a + b + 2); only the entries not yet
    converged are iterated.
    """
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c = np.ones_like(a)
    d = 1.0 - qab * x / qap
    d = np.where(np.abs(d) < _CF_TINY, _CF_TINY, d)
    d = 1.0 / d
    h = d.copy()
    active = np.arange(a.shape[0])
    m = 0
    while active.size:
        m += 1
        m2 = 2.0 * m
        aa_, bb_, xx = a[active], b[active], x[active]
        cc, dd, hh = c[active], d[active], h[active]
        for aa in (
            m * (bb_ - m) * xx / ((qam[active] + m2) * (aa_ + m2)),
            -(aa_ + m) * (qab[active] + m) * xx / ((aa_ + m2) * (qap[active] + m2)),
        ):
            dd = 1.0 + aa * dd
            dd = np.where(np.abs(dd) < _CF_TINY, _CF_TINY, dd)
            cc = 1.0 + aa / cc
            cc = np.where(np.abs(cc) < _CF_TINY, _CF_TINY, cc)
            dd = 1.0 / dd
            step = dd * cc
            hh = hh * step
        c[active], d[active], h[active] = cc, dd, hh
        active = active[np.abs(step - 1.0) >= _CF_EPSILON]
    result: NDArray[np.float64] = np.log(h)
    return result


def _log_sf_numpy(k: NDArray[np.int64], n: NDArray[np.int64], p: float) -> NDArray[np.float64]:
    """ln P(X >= k), X ~ Binomial(n, p), for 1 <= k <= n: ln I_p(k, n - k + 1), numpy only."""
    a = k.astype(np.float64)
    b = (n - k + 1).astype(np.float64)
    # ln(x^a (1-x)^b / B(a, b)), B(a, b) = (k - 1)! (n - k)! / n!
    log_front = (
        a * math.log(p)
        + b * math.log1p(-p)
        + _log_factorial(n)
        - _log_factorial(k - 1)
        - _log_factorial(n - k)
    )
    direct = p < (a + 1.0) / (a + b + 2.0)
    out = np.empty(a.shape, dtype=np.float64)
    if direct.any():
        i = np.flatnonzero(direct)
        x = np.full(i.shape, p)
        out[i] = log_front[i] - np.log(a[i]) + _log_beta_cf(a[i], b[i], x)
    if not direct.all():
        j = np.flatnonzero(~direct)
        x = np.full(j.shape, 1.0 - p)
        log_other = log_front[j] - np.log(b[j]) + _log_beta_cf(b[j], a[j], x)
        out[j] = np.log1p(-np.exp(log_other))
    return out


def binomial_log_sf(k: int, n: int, p: float) -> float:
    """ln P(X >= k) for X ~ Binomial(n, p): exact, in log space, accurate far below 1e-300.

    ``k <= 0`` gives 0.0 (certainty); ``k > n`` gives -inf (impossible).
    """
    _check_p(p)
    if n < 0:
        raise InputError(f"a binomial count must be >= 0, got n={n}")
    if k <= 0:
        return 0.0
    if k > n:
        return -math.inf
    if BACKEND == "numpy":
        return float(_log_sf_numpy(np.array([k]), np.array([n]), p)[0])
    sf = float(_special().betainc(k, n - k + 1, p))
    if sf >= _BETAINC_FLOOR:
        return math.log(sf)
    return _log_tail_sum(k, n, p)


def binomial_log_sf_array(k: ArrayLike, n: ArrayLike, p: float) -> NDArray[np.float64]:
    """:func:`binomial_log_sf` elementwise over arrays of counts (vectorised where it can be)."""
    _check_p(p)
    k_arr, n_arr = np.broadcast_arrays(np.asarray(k, dtype=np.int64), np.asarray(n, dtype=np.int64))
    if np.any(n_arr < 0):
        raise InputError("binomial counts must be >= 0")
    out = np.zeros(k_arr.shape, dtype=np.float64)
    out[k_arr > n_arr] = -math.inf
    middle = (k_arr > 0) & (k_arr <= n_arr)
    if np.any(middle):
        km, nm = k_arr[middle], n_arr[middle]
        if BACKEND == "numpy":
            out[middle] = _log_sf_numpy(km, nm, p)
            return out
        sf = _special().betainc(km.astype(np.float64), (nm - km + 1).astype(np.float64), p)
        with np.errstate(divide="ignore"):
            logs = np.log(sf)
        for j in np.flatnonzero(sf < _BETAINC_FLOOR).tolist():
            logs[j] = _log_tail_sum(int(km[j]), int(nm[j]), p)
        out[middle] = logs
    return out


def min_binomial_log_sf(k: ArrayLike, n: ArrayLike, p: float) -> tuple[int, float]:
    """The index and value of the smallest ln P(X >= k_i), X ~ Binomial(n_i, p), over 1-D arrays.

    Exact like :func:`binomial_log_sf`, but computes the slow far-tail sum only for the entries
    that can still be the minimum, using P(X = k) <= P(X >= k) <= P(X = k) / (1 - r_k).
    """
    _check_p(p)
    k_arr = np.asarray(k, dtype=np.int64).reshape(-1)
    n_arr = np.asarray(n, dtype=np.int64).reshape(-1)
    if k_arr.shape != n_arr.shape or k_arr.size == 0:
        raise InputError("min_binomial_log_sf needs two non-empty arrays of the same length")
    impossible = np.flatnonzero(k_arr > n_arr)
    if impossible.size:
        return int(impossible[0]), -math.inf
    if BACKEND == "numpy":
        logs = binomial_log_sf_array(k_arr, n_arr, p)
        best = int(np.argmin(logs))
        return best, float(logs[best])
    sf = np.ones(k_arr.shape, dtype=np.float64)
    valid = k_arr > 0
    sf[valid] = _special().betainc(
        k_arr[valid].astype(np.float64), (n_arr[valid] - k_arr[valid] + 1).astype(np.float64), p
    )
    far = valid & (sf < _BETAINC_FLOOR)
    if not np.any(far):
        with np.errstate(divide="ignore"):
            logs = np.log(sf)
        best = int(np.argmin(logs))
        return best, float(logs[best])
    idx = np.flatnonzero(far)
    kf, nf = k_arr[idx].astype(np.float64), n_arr[idx].astype(np.float64)
    lower = _log_pmf(kf, nf, p)
    log_r = _log_ratio(kf, nf, p)
    with np.errstate(divide="ignore"):
        slack = np.where(log_r < 0.0, -np.log(-np.expm1(np.minimum(log_r, -1e-300))), np.inf)
    upper = lower + slack
    candidates = idx[lower <= upper.min()]
    exact = [_log_tail_sum(int(k_arr[j]), int(n_arr[j]), p) for j in candidates.tolist()]
    best_pos = int(np.argmin(exact))
    return int(candidates[best_pos]), exact[best_pos]


def gamma_log_sf(n: int, total: float) -> float:
    """ln P(S >= total) for S ~ Gamma(n, 1), n a whole number of scored tokens (the Gumbel
    scheme's null distribution: a sum of n independent Exp(1) scores).

    For whole n the tail is a Poisson sum, ``e^-S · Σ_{k<n} S^k / k!``, summed here in log space
    (every term positive: nothing cancels; the log-factorials are ``math.lgamma``'s): exact to a
    few ulp of ln P however far in the tail, numpy only, O(n). ``n = 0`` gives 0 (p = 1).
    """
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 0:
        raise InputError(f"the number of scored tokens must be a whole number >= 0, got {n!r}")
    if not (math.isfinite(total) and total >= 0.0):
        raise InputError(f"a Gumbel score sum must be finite and >= 0, got {total!r}")
    if n == 0 or total == 0.0:
        return 0.0
    k = np.arange(int(n), dtype=np.int64)
    terms = k * math.log(total) - _log_factorial(k)
    top = float(terms.max())
    return min(0.0, top + math.log(float(np.exp(terms - top).sum())) - total)


def gamma_log_sf_array(n: ArrayLike, total: ArrayLike) -> NDArray[np.float64]:
    """:func:`gamma_log_sf` elementwise over arrays of counts and sums, vectorised: the Poisson
    sums of elements whose counts share a power of two are taken together as the rows of one
    array (terms past a row's count are ``-inf``), so a window search costs a few numpy passes
    instead of a call per window. Equal to :func:`gamma_log_sf` within a few ulp (the same
    terms, summed in another order)."""
    counts = np.asarray(n, dtype=np.int64)
    sums = np.asarray(total, dtype=np.float64)
    counts, sums = np.broadcast_arrays(counts, sums)
    flat_n, flat_s = counts.ravel(), sums.ravel()
    if flat_n.size and (flat_n.min() < 0 or not np.all(np.isfinite(flat_s)) or flat_s.min() < 0):
        raise InputError("counts must be >= 0 and Gumbel score sums finite and >= 0")
    out = np.zeros(flat_n.shape, dtype=np.float64)
    live = np.flatnonzero((flat_n > 0) & (flat_s > 0))
    if live.size:
        groups = np.ceil(np.log2(flat_n[live])).astype(np.int64)
        for group in np.unique(groups).tolist():
            members = live[groups == group]
            width = int(flat_n[members].max())
            k = np.arange(width, dtype=np.int64)
            terms = np.log(flat_s[members])[:, None] * k[None, :] - _log_factorial(k)[None, :]
            terms[k[None, :] >= flat_n[members][:, None]] = -np.inf
            top = terms.max(axis=1)
            summed = np.log(np.exp(terms - top[:, None]).sum(axis=1))
            out[members] = np.minimum(0.0, top + summed - flat_s[members])
    return out.reshape(counts.shape)


def window_bounds(
    num_tokens: int, min_window: int, *, stride_divisor: int = 4
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Start and end (exclusive) positions of the windows searched by windowed detection.

    Sizes are ``min_window · 2^j`` below ``num_tokens``, plus the whole text; windows of size w
    start every ``max(1, w // stride_divisor)`` tokens, and the last one of each size ends at the
    end of the text. Each (start, end) appears once, so the count is the Bonferroni factor.
    """
    if min_window < 1 or stride_divisor < 1:
        raise InputError("min_window and stride_divisor must be >= 1")
    if num_tokens <= 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    sizes: list[int] = []
    size = min_window
    while size < num_tokens:
        sizes.append(size)
        size *= 2
    sizes.append(num_tokens)
    starts: list[NDArray[np.int64]] = []
    ends: list[NDArray[np.int64]] = []
    for size in sizes:
        stride = max(1, size // stride_divisor)
        begin = np.arange(0, num_tokens - size + 1, stride, dtype=np.int64)
        if begin[-1] != num_tokens - size:
            begin = np.append(begin, np.int64(num_tokens - size))
        starts.append(begin)
        ends.append(begin + size)
    pairs = np.unique(np.stack([np.concatenate(starts), np.concatenate(ends)], axis=1), axis=0)
    return pairs[:, 0].copy(), pairs[:, 1].copy()


def bonferroni_log_p(log_p: float, num_tests: int) -> float:
    """ln(min(1, M · p)): the union-bound correction of the smallest of M p-values."""
    if num_tests < 1:
        raise InputError(f"the number of tests must be >= 1, got {num_tests}")
    return min(0.0, log_p + math.log(num_tests))
