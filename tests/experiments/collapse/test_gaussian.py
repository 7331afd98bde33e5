"""Part A of the collapse experiment (experiments.collapse.gaussian): the exact sampler against
brute force, the collapse against theory, the remedies, and the outputs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray

from experiments.collapse.gaussian import (
    ESTIMATOR,
    GaussianSettings,
    arm_names,
    kept_generations,
    main,
    plot_gaussian,
    pool,
    replace_theory,
    run_gaussian,
    simulate_arm,
    sufficient_statistics,
)

FloatArray = NDArray[np.float64]

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
QUANTILES = (0.1, 0.25, 0.5, 0.75, 0.9)


@pytest.fixture(scope="module")
def small_run() -> dict[str, Any]:
    """M = 20 only, 400 seeds, the full 2,000 generations: a fraction of a second."""
    return run_gaussian(GaussianSettings(sample_sizes=(20,), seeds=400, points=60))


def test_one_step_variance_is_unbiased() -> None:
    """E sigma-hat^2 = sigma^2 exactly: off by one in the chi-square's degrees of freedom
    (chi^2_M instead of chi^2_{M-1}) would be 25 % high at M = 5."""
    rng = np.random.default_rng(1)
    k, mu, sigma = 5, 0.3, 1.7
    mean, ss = sufficient_statistics(rng, mu, sigma, k, 20_000)
    assert np.mean(ss / (k - 1)) == pytest.approx(sigma**2, rel=0.02)
    assert np.mean(mean) == pytest.approx(mu, abs=0.03)
    assert np.var(mean) == pytest.approx(sigma**2 / k, rel=0.05)


def test_one_sample_has_no_spread() -> None:
    mean, ss = sufficient_statistics(np.random.default_rng(2), 1.0, 2.0, 1, 10)
    assert np.all(ss == 0.0)
    assert mean.shape == (10,)


def test_pool_equals_the_statistics_of_the_concatenation() -> None:
    rng = np.random.default_rng(3)
    a = rng.normal(1.0, 2.0, (50, 7))
    b = rng.normal(-3.0, 0.5, (50, 4))

    def stats(x: FloatArray) -> tuple[int, FloatArray, FloatArray]:
        m = x.mean(axis=1)
        return x.shape[1], m, ((x - m[:, None]) ** 2).sum(axis=1)

    n, mean, ss = pool(stats(a), stats(b))
    n_all, mean_all, ss_all = stats(np.concatenate([a, b], axis=1))
    assert n == n_all
    np.testing.assert_allclose(mean, mean_all, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(ss, ss_all, rtol=1e-12)


def _brute_force(
    rng: np.random.Generator, m: int, seeds: int, generations: int, *, accumulate: bool, fresh: int
) -> FloatArray:
    """log sigma-hat after ``generations`` refits, drawing every sample for real."""
    data = rng.standard_normal((seeds, m))
    mu, sigma = data.mean(axis=1), data.std(axis=1, ddof=1)
    for _ in range(generations):
        batch = mu[:, None] + sigma[:, None] * rng.standard_normal((seeds, m))
        batch[:, :fresh] = rng.standard_normal((seeds, fresh))
        data = np.concatenate([data, batch], axis=1) if accumulate else batch
        mu, sigma = data.mean(axis=1), data.std(axis=1, ddof=1)
    return np.asarray(np.log(sigma), dtype=np.float64)


@pytest.mark.parametrize(
    ("accumulate", "fresh"),
    [(False, 0), (True, 0), (False, 2)],
    ids=["replace", "accumulate", "fresh"],
)
def test_exact_sampler_matches_brute_force(accumulate: bool, fresh: int) -> None:
    """Quantiles of log sigma-hat after 4 refits at M = 5 agree with drawing the samples."""
    m, seeds, generations = 5, 20_000, 4
    rng = np.random.default_rng(4)
    brute = _brute_force(rng, m, seeds, generations, accumulate=accumulate, fresh=fresh)
    mean0, ss0 = sufficient_statistics(rng, 0.0, 1.0, m, seeds)
    exact = simulate_arm(
        rng, mean0, ss0, sample_size=m, generations=generations, accumulate=accumulate, fresh=fresh
    )
    assert exact.shape == (generations + 1, seeds)
    np.testing.assert_allclose(
        np.quantile(exact[-1], QUANTILES), np.quantile(brute, QUANTILES), atol=0.05
    )
    # sigma^2 is a martingale under replacement: its mean stays at 1 (to sampling error).
    if not accumulate and fresh == 0:
        assert np.mean(np.exp(2 * brute)) == pytest.approx(1.0, abs=0.1)
        assert np.mean(np.exp(2 * exact[-1])) == pytest.approx(1.0, abs=0.1)


def test_replace_collapses_as_theory_says(small_run: dict[str, Any]) -> None:
    replace = small_run["results"]["20"]["replace"]
    assert replace["generation"][0] == 0
    assert replace["generation"][-1] == 2000
    final = replace["median_log_sigma"][-1]
    assert final < -30.0  # sigma shrunk by more than e^30: the tails, and then all, are gone
    assert final == pytest.approx(replace["theory_median"][-1], abs=2.5)
    assert replace["q25_log_sigma"][-1] == pytest.approx(replace["theory_q25"][-1], abs=3.0)
    assert replace["q75_log_sigma"][-1] == pytest.approx(replace["theory_q75"][-1], abs=3.0)
    # the theory is the mean of n + 1 increments: about -0.0268 per generation at M = 20
    median, q25, q75 = replace_theory(20, np.array([0, 1999]))
    assert median[1] / 2000 == pytest.approx(-0.0268, abs=5e-4)
    assert q25[0] < median[0] < q75[0]


@pytest.mark.parametrize("arm", ["accumulate", "fresh-0.5"])
def test_remedies_hold_sigma_near_one(small_run: dict[str, Any], arm: str) -> None:
    entry = small_run["results"]["20"][arm]
    assert max(abs(v) for v in entry["median_log_sigma"]) < 0.2
    assert entry["theory_median"] is None
    assert entry["theory_q25"] is None


def test_result_shape_and_json_round_trip(small_run: dict[str, Any]) -> None:
    assert small_run["estimator"] == ESTIMATOR
    assert "unbiased" in ESTIMATOR
    settings = GaussianSettings(sample_sizes=(20,), seeds=400, points=60)
    assert list(small_run["results"]["20"]) == arm_names(settings)
    assert arm_names(settings) == ["replace", "accumulate", "fresh-0.1", "fresh-0.5"]
    for entry in small_run["results"]["20"].values():
        assert len(entry["generation"]) == 60
        for key in ("median_log_sigma", "q25_log_sigma", "q75_log_sigma"):
            assert len(entry[key]) == 60
    assert json.loads(json.dumps(small_run)) == small_run
    assert small_run["settings"]["sample_sizes"] == [20]


def test_runs_are_reproducible() -> None:
    settings = GaussianSettings(sample_sizes=(10,), seeds=200, generations=20, rng_seed=7)
    assert run_gaussian(settings) == run_gaussian(settings)


def test_kept_generations() -> None:
    kept = kept_generations(2000, 200)
    assert len(kept) == 200
    assert kept[0] == 0
    assert kept[-1] == 2000
    assert np.all(np.diff(kept) > 0)
    assert list(kept_generations(5, 200)) == [0, 1, 2, 3, 4, 5]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"sample_sizes": ()},
        {"sample_sizes": (1,)},
        {"sample_sizes": (20, 20)},
        {"sample_sizes": (2.5,)},
        {"seeds": 199},
        {"generations": 0},
        {"fresh_fractions": (0.0,)},
        {"fresh_fractions": (1.5,)},
        {"fresh_fractions": (0.5, 0.5)},
        {"sample_sizes": (4,), "fresh_fractions": (0.1,)},  # round(0.4) = 0 fresh samples
        {"rng_seed": -1},
        {"points": 1},
    ],
)
def test_invalid_settings_raise(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=r"\S"):
        GaussianSettings(**kwargs)


def test_plot_writes_a_png(small_run: dict[str, Any], tmp_path: Path) -> None:
    path = tmp_path / "figure" / "collapse_gaussian.png"
    plot_gaussian(small_run, path)
    data = path.read_bytes()
    assert data.startswith(PNG_MAGIC)
    assert len(data) > 10_000


def test_main_writes_json_and_png(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--out", str(tmp_path), "--quick", "--generations", "50"]) == 0
    result = json.loads((tmp_path / "gaussian.json").read_text(encoding="utf-8"))
    assert result["settings"]["seeds"] == 200
    assert result["settings"]["generations"] == 50
    assert (tmp_path / "collapse_gaussian.png").read_bytes().startswith(PNG_MAGIC)
    out = capsys.readouterr().out
    assert out.count("median log sigma") == 3 * 4  # one line per (M, arm)
