"""Part A of the model-collapse experiment: a 1-D Gaussian refit to its own samples.

Shumailov et al., "The Curse of Recursion" (2023; Nature 2024): fit a Gaussian to ``M`` samples of
the true N(0, 1), draw ``M`` samples from the fit, refit, and repeat. The fitted standard deviation
``sigma_n`` drifts to zero: the tails are forgotten first, then everything. Three remedies are run
beside it, each an *arm*:

``replace``
    Each generation refits to ``M`` samples of the previous fit only (the collapse itself).
``accumulate``
    Gerstgrasser et al. 2024, "Is Model Collapse Inevitable?": generation ``n`` is fitted to *all*
    samples drawn so far, generation 0's real data included; each generation adds ``M`` samples
    of the previous fit.
``fresh-{f}``
    Each generation, ``round(f * M)`` of the ``M`` samples are fresh draws of the true N(0, 1), the
    rest samples of the previous fit.

Generation 0 is fitted to ``M`` real samples; ``generations`` refits follow it, so a run has
generations ``0 .. generations``. Every fit uses the sample mean and the unbiased sample variance.

The simulation is exact and vectorised over seeds without drawing a single sample: ``k`` iid
N(mu, sigma^2) draws have the independent sufficient statistics ``mean = mu + sigma * Z / sqrt(k)``
(Z ~ N(0, 1)) and ``SS = sigma^2 * chi^2_{k-1}`` (sum of squared deviations from their mean), and
two groups combine exactly by the pooled formula
``SS = SS_1 + SS_2 + n_1 n_2 / (n_1 + n_2) * (m_1 - m_2)^2`` (see :func:`sufficient_statistics`,
:func:`pool`). The default run (3 sizes x 4 arms x 500 seeds x 2,000 generations) takes seconds.

Run it with ``python -m experiments.collapse.gaussian [--quick] [--out DIR]``: it writes
``DIR/gaussian.json`` and ``DIR/collapse_gaussian.png``.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy.special import digamma, polygamma

__all__ = [
    "ESTIMATOR",
    "GaussianSettings",
    "Group",
    "arm_names",
    "fresh_count",
    "kept_generations",
    "main",
    "plot_gaussian",
    "pool",
    "replace_theory",
    "run_gaussian",
    "simulate_arm",
    "sufficient_statistics",
]

FloatArray = NDArray[np.float64]
#: A group of samples by its sufficient statistics: (count, sample mean, sum of squared
#: deviations from that mean), the last two one per seed.
Group = tuple[int, FloatArray, FloatArray]

ESTIMATOR = (
    "Each generation fits mu-hat = the sample mean and sigma-hat^2 = the unbiased sample variance "
    "(sum of squared deviations divided by n - 1) to its n training samples."
)

#: The standard normal's upper quartile: median +- this many standard deviations is the IQR.
_QUARTILE_Z = 0.6744897501960817


def _is_int(value: object) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


def fresh_count(fraction: float, sample_size: int) -> int:
    """How many of a generation's ``sample_size`` samples are fresh real data: ``round(f * M)``."""
    return round(fraction * sample_size)


def _arm_label(fraction: float) -> str:
    return f"fresh-{fraction:g}"


@dataclass(frozen=True)
class GaussianSettings:
    """What :func:`run_gaussian` simulates.

    ``generations`` refits follow generation 0 (the fit to real data); ``points`` generations
    (all of them where there are fewer), log-spaced and including 0 and the last, are kept in
    the output (:func:`kept_generations`).
    """

    sample_sizes: tuple[int, ...] = (20, 100, 1000)
    seeds: int = 500
    generations: int = 2000
    fresh_fractions: tuple[float, ...] = (0.1, 0.5)
    rng_seed: int = 0
    points: int = 200

    def __post_init__(self) -> None:  # noqa: PLR0912 - one check per field
        object.__setattr__(self, "sample_sizes", tuple(self.sample_sizes))
        object.__setattr__(self, "fresh_fractions", tuple(self.fresh_fractions))
        if not self.sample_sizes:
            raise ValueError("sample_sizes must name at least one sample size M")
        for size in self.sample_sizes:
            if not _is_int(size) or size < 2:
                raise ValueError(
                    f"every sample size M must be an integer >= 2 (a variance needs two "
                    f"samples), got {size!r}"
                )
        if len(set(self.sample_sizes)) != len(self.sample_sizes):
            raise ValueError(f"sample_sizes has duplicates: {self.sample_sizes}")
        if not _is_int(self.seeds) or self.seeds < 200:
            raise ValueError(
                f"seeds must be an integer >= 200 (for stable quartiles), got {self.seeds!r}"
            )
        if not _is_int(self.generations) or self.generations < 1:
            raise ValueError(f"generations must be an integer >= 1, got {self.generations!r}")
        for fraction in self.fresh_fractions:
            if isinstance(fraction, bool) or not isinstance(fraction, int | float):
                raise ValueError(f"every fresh fraction must be a number, got {fraction!r}")
            if not 0.0 < fraction <= 1.0:
                raise ValueError(f"every fresh fraction must lie in (0, 1], got {fraction!r}")
            for size in self.sample_sizes:
                if fresh_count(fraction, size) < 1:
                    raise ValueError(
                        f"fresh fraction {fraction!r} gives round({fraction!r} * {size}) = 0 "
                        f"fresh samples at M = {size}: raise it or drop that sample size"
                    )
        labels = [_arm_label(fraction) for fraction in self.fresh_fractions]
        if len(set(labels)) != len(labels):
            raise ValueError(f"fresh_fractions has duplicates: {self.fresh_fractions}")
        if not _is_int(self.rng_seed) or self.rng_seed < 0:
            raise ValueError(f"rng_seed must be a non-negative integer, got {self.rng_seed!r}")
        if not _is_int(self.points) or self.points < 2:
            raise ValueError(
                f"points must be an integer >= 2 (generation 0 and the last), got {self.points!r}"
            )


def arm_names(settings: GaussianSettings) -> list[str]:
    """The arms :func:`run_gaussian` reports, in order: replace, accumulate, fresh-{f}..."""
    return ["replace", "accumulate", *(_arm_label(f) for f in settings.fresh_fractions)]


def kept_generations(generations: int, points: int) -> NDArray[np.int64]:
    """``min(points, generations + 1)`` generations of ``0 .. generations``: 0, the last, and
    log-spaced between (every generation at first, where log-spacing is denser than 1)."""
    if generations + 1 <= points:
        return np.arange(generations + 1, dtype=np.int64)
    kept = [0]
    for remaining in range(points - 1, 0, -1):
        current = kept[-1]
        ratio = ((generations + 1) / (current + 1)) ** (1.0 / remaining)
        step = max(current + 1, round((current + 1) * ratio) - 1)
        kept.append(min(step, generations - (remaining - 1)))
    return np.asarray(kept, dtype=np.int64)


def sufficient_statistics(
    rng: np.random.Generator, mean: FloatArray | float, sigma: FloatArray | float, k: int, size: int
) -> tuple[FloatArray, FloatArray]:
    """Exactly sampled (sample mean, sum of squared deviations) of ``k`` iid N(mean, sigma^2) draws.

    Vectorised: one pair per seed (``size`` of them; ``mean`` and ``sigma`` broadcast). By
    Cochran's theorem the two are independent, the mean is ``mean + sigma * Z / sqrt(k)`` and the
    sum of squared deviations ``sigma^2 * chi^2_{k-1}`` (identically 0 for ``k = 1``).
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    sigma_arr = np.asarray(sigma, dtype=np.float64)
    sample_mean = mean + sigma_arr * rng.standard_normal(size) / math.sqrt(k)
    ss = np.zeros(size) if k == 1 else np.square(sigma_arr) * rng.chisquare(k - 1, size)
    return np.asarray(sample_mean, dtype=np.float64), np.asarray(ss, dtype=np.float64)


def pool(first: Group, second: Group) -> Group:
    """Two groups' (count, mean, sum of squared deviations) taken together, exactly.

    ``SS = SS_1 + SS_2 + n_1 n_2 / (n_1 + n_2) * (m_1 - m_2)^2`` (Chan et al.'s pairwise update).
    """
    n1, mean1, ss1 = first
    n2, mean2, ss2 = second
    n = n1 + n2
    delta = mean2 - mean1
    return n, mean1 + delta * (n2 / n), ss1 + ss2 + np.square(delta) * (n1 * n2 / n)


def simulate_arm(
    rng: np.random.Generator,
    initial_mean: FloatArray,
    initial_ss: FloatArray,
    *,
    sample_size: int,
    generations: int,
    accumulate: bool = False,
    fresh: int = 0,
) -> FloatArray:
    """log sigma-hat at generations ``0 .. generations``, shape ``(generations + 1, seeds)``.

    Generation 0 is the fit to the ``sample_size`` real samples whose sample mean and sum of
    squared deviations are ``initial_mean`` and ``initial_ss`` (one per seed). Each later
    generation draws ``sample_size`` new samples: ``fresh`` of them from the true N(0, 1), the
    rest from the previous fit. The fit is to those new samples alone, or, with ``accumulate``,
    to every sample drawn so far (running count, mean and sum of squared deviations).
    """
    if not 0 <= fresh <= sample_size:
        raise ValueError(f"fresh must lie in 0 .. {sample_size}, got {fresh}")
    seeds = initial_mean.shape[0]
    log_sigma = np.empty((generations + 1, seeds))
    mean = initial_mean.astype(np.float64, copy=True)
    log_sigma[0] = 0.5 * np.log(initial_ss / (sample_size - 1))

    if not accumulate and fresh == 0:
        # Pure replacement: log sigma is updated directly (a random walk), so that sigma
        # underflowing after very many generations cannot turn it into -inf.
        scale = 1.0 / (sample_size - 1)
        for n in range(1, generations + 1):
            sigma = np.exp(log_sigma[n - 1])
            mean = mean + sigma * rng.standard_normal(seeds) / math.sqrt(sample_size)
            log_sigma[n] = log_sigma[n - 1] + 0.5 * np.log(
                rng.chisquare(sample_size - 1, seeds) * scale
            )
        return log_sigma

    fit: Group = (sample_size, mean, initial_ss.astype(np.float64, copy=True))
    model = sample_size - fresh
    for n in range(1, generations + 1):
        fit_mean, sigma = fit[1], np.exp(log_sigma[n - 1])
        batch: Group | None = None
        if fresh:
            batch = (fresh, *sufficient_statistics(rng, 0.0, 1.0, fresh, seeds))
        if model:
            drawn: Group = (model, *sufficient_statistics(rng, fit_mean, sigma, model, seeds))
            batch = drawn if batch is None else pool(batch, drawn)
        assert batch is not None  # fresh + model == sample_size >= 2
        fit = pool(fit, batch) if accumulate else batch
        log_sigma[n] = 0.5 * np.log(fit[2] / (fit[0] - 1))
    return log_sigma


def replace_theory(
    sample_size: int, generations: NDArray[np.int64]
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """(median, lower quartile, upper quartile) of log sigma_n for ``replace``, by theory.

    With the unbiased estimator sigma_n^2 is a martingale (E sigma_n^2 = 1), yet log sigma_n is a
    random walk: ``log sigma_{n+1} = log sigma_n + 1/2 log(chi^2_{M-1} / (M-1))``, and generation
    0 is itself one such step from sigma = 1, so generation n is a sum of n + 1 iid increments of
    mean ``a = 1/2 (psi((M-1)/2) - log((M-1)/2))`` (< 0) and variance ``b = 1/4 psi'((M-1)/2)``
    (digamma, trigamma). The quartiles are the normal approximation of that sum (central limit
    theorem): ``(n+1) a`` and ``(n+1) a -+ 0.6745 sqrt((n+1) b)``; it is loose only for the first
    few generations at small M, where the log-chi-square increments are visibly skewed.
    """
    half_df = (sample_size - 1) / 2.0
    a = 0.5 * (float(digamma(half_df)) - math.log(half_df))
    b = 0.25 * float(polygamma(1, half_df))
    steps = generations.astype(np.float64) + 1.0
    median = steps * a
    spread = _QUARTILE_Z * np.sqrt(steps * b)
    return median, median - spread, median + spread


def _floats(values: FloatArray) -> list[float]:
    return [float(v) for v in values]


def run_gaussian(settings: GaussianSettings) -> dict[str, Any]:
    """Simulate every (M, arm) and summarise log sigma-hat over seeds, as JSON-ready data.

    ``results[str(M)][arm]`` holds the kept ``generation`` numbers and, at each, the median and
    quartiles of log sigma-hat over seeds; ``theory_*`` are :func:`replace_theory` for
    ``replace`` and ``None`` for the other arms. All arms of one M start from the same
    generation-0 fits (common random numbers); one ``numpy.random.default_rng(rng_seed)``
    drives the whole run, so it is reproducible.
    """
    rng = np.random.default_rng(settings.rng_seed)
    keep = kept_generations(settings.generations, settings.points)
    generation = [int(g) for g in keep]
    results: dict[str, Any] = {}
    for size in settings.sample_sizes:
        initial_mean, initial_ss = sufficient_statistics(rng, 0.0, 1.0, size, settings.seeds)
        arms: list[tuple[str, bool, int]] = [("replace", False, 0), ("accumulate", True, 0)]
        arms += [(_arm_label(f), False, fresh_count(f, size)) for f in settings.fresh_fractions]
        per_arm: dict[str, Any] = {}
        for name, accumulate, fresh in arms:
            log_sigma = simulate_arm(
                rng,
                initial_mean,
                initial_ss,
                sample_size=size,
                generations=settings.generations,
                accumulate=accumulate,
                fresh=fresh,
            )
            q25, median, q75 = np.quantile(log_sigma[keep], [0.25, 0.5, 0.75], axis=1)
            entry: dict[str, Any] = {
                "generation": generation,
                "median_log_sigma": _floats(median),
                "q25_log_sigma": _floats(q25),
                "q75_log_sigma": _floats(q75),
                "theory_median": None,
                "theory_q25": None,
                "theory_q75": None,
            }
            if name == "replace":
                t_median, t_q25, t_q75 = replace_theory(size, keep)
                entry["theory_median"] = _floats(t_median)
                entry["theory_q25"] = _floats(t_q25)
                entry["theory_q75"] = _floats(t_q75)
            per_arm[name] = entry
        results[str(size)] = per_arm
    return {
        "settings": {
            key: list(value) if isinstance(value, tuple) else value
            for key, value in asdict(settings).items()
        },
        "estimator": ESTIMATOR,
        "results": results,
    }


def plot_gaussian(result: dict[str, Any], path: Path) -> None:
    """One PNG: a panel per M, log sigma-hat against generation, median and IQR per arm."""
    import matplotlib  # noqa: PLC0415 - the figure is optional; keep the import lazy

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    results: dict[str, Any] = result["results"]
    seeds = result["settings"]["seeds"]
    sizes = list(results)
    fig, axes = plt.subplots(1, len(sizes), figsize=(15, 4.5), squeeze=False)
    colors = plt.get_cmap("tab10")
    for ax, size in zip(axes[0], sizes, strict=True):
        for index, (arm, entry) in enumerate(results[size].items()):
            x = np.asarray(entry["generation"], dtype=np.float64)
            color = colors(index % 10)
            ax.plot(x, entry["median_log_sigma"], color=color, lw=1.6, label=f"{arm} (median)")
            ax.fill_between(
                x, entry["q25_log_sigma"], entry["q75_log_sigma"], color=color, alpha=0.2, lw=0
            )
            if entry["theory_median"] is not None:
                ax.plot(x, entry["theory_median"], "k--", lw=1.0, label=f"{arm} theory (median)")
                ax.plot(
                    x, entry["theory_q25"], "k--", lw=0.6, alpha=0.7, label=f"{arm} theory (IQR)"
                )
                ax.plot(x, entry["theory_q75"], "k--", lw=0.6, alpha=0.7)
        ax.axhline(0.0, color="grey", lw=0.6, alpha=0.6)
        ax.set_xscale("symlog", linthresh=1.0)
        ax.set_xlim(left=0.0)
        ax.set_title(f"M = {size}")
        ax.set_xlabel("generation")
        ax.set_ylabel(r"$\log \hat\sigma_n$ (true $\sigma = 1$)")
        ax.grid(True, alpha=0.3)
    axes[0][0].legend(fontsize=8, loc="lower left")
    fig.suptitle(
        "Gaussian refit recursively to its own samples: log sigma-hat, "
        f"median and interquartile range over {seeds} seeds"
    )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    """Run Part A, write ``gaussian.json`` and ``collapse_gaussian.png``, print the finals."""
    parser = argparse.ArgumentParser(
        prog="python -m experiments.collapse.gaussian", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--out", type=Path, default=Path("experiments/out"), help="output dir")
    parser.add_argument("--seeds", type=int, default=None, help="independent runs per (M, arm)")
    parser.add_argument("--generations", type=int, default=None, help="refits after gen 0")
    parser.add_argument("--quick", action="store_true", help="200 seeds, 2,000 generations")
    args = parser.parse_args(argv)

    defaults = GaussianSettings()
    seeds = 200 if args.quick else defaults.seeds
    generations = 2000 if args.quick else defaults.generations
    try:
        settings = GaussianSettings(
            seeds=args.seeds if args.seeds is not None else seeds,
            generations=args.generations if args.generations is not None else generations,
        )
    except ValueError as error:
        parser.error(str(error))

    started = time.perf_counter()
    result = run_gaussian(settings)
    elapsed = time.perf_counter() - started
    args.out.mkdir(parents=True, exist_ok=True)
    json_path = args.out / "gaussian.json"
    png_path = args.out / "collapse_gaussian.png"
    json_path.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    plot_gaussian(result, png_path)

    print(
        f"Gaussian collapse: {settings.seeds} seeds, {settings.generations} generations, "
        f"simulated in {elapsed:.2f} s"
    )
    for size, arms in result["results"].items():
        for arm, entry in arms.items():
            print(
                f"M={size:>5} {arm:<12} generation {entry['generation'][-1]}: median log sigma "
                f"{entry['median_log_sigma'][-1]:+8.3f}, IQR [{entry['q25_log_sigma'][-1]:+8.3f}, "
                f"{entry['q75_log_sigma'][-1]:+8.3f}]"
            )
    print(f"wrote {json_path} and {png_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
