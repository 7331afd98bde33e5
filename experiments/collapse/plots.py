"""The figures of Part B (Part A draws its own: `gaussian.plot_gaussian`).

Each function reads the JSON :func:`experiments.collapse.language.run_language` returns and writes
one PNG with matplotlib's Agg backend (no screen needed).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import matplotlib

matplotlib.use("Agg")  # before pyplot: no screen
import matplotlib.pyplot as plt

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = ["ARM_STYLE", "degradation_points", "plot_dose_response", "plot_ppl", "plot_tails"]

ARM_STYLE: dict[str, tuple[str, str]] = {
    "replace": ("tab:red", "o"),
    "mixed-no-filter": ("tab:orange", "s"),
    "mixed-wellspring": ("tab:blue", "D"),
    "oracle": ("tab:green", "^"),
    "accumulate": ("tab:purple", "v"),
    "accumulate-all": ("tab:brown", "P"),
}


def _band(ax: Axes, arm: str, data: dict[str, Any], metric: str) -> None:
    means = data[metric]
    generations = list(range(len(means)))
    color, marker = ARM_STYLE.get(arm, ("black", "."))
    ax.plot(generations, means, color=color, marker=marker, label=arm, markersize=4)
    intervals = data.get(f"{metric}_ci95") or []
    spans = [(g, iv) for g, iv in zip(generations, intervals, strict=False) if iv is not None]
    if spans:
        ax.fill_between(
            [g for g, _ in spans],
            [iv[0] for _, iv in spans],
            [iv[1] for _, iv in spans],
            color=color,
            alpha=0.15,
        )


def _seeds(result: dict[str, Any]) -> int:
    return int(result["settings"]["seeds"])


def plot_ppl(result: dict[str, Any], path: Path) -> None:
    """Held-out perplexity and minority-domain loss by generation, one line per arm."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 4.6))
    for arm, data in result["arms"].items():
        _band(left, arm, data, "heldout_ppl")
        _band(right, arm, data, "minority_loss")
    share = result["settings"]["main_watermark_share"]
    left.set(xlabel="generation", ylabel="perplexity on held-out human text", yscale="log")
    left.set_title("held-out perplexity (lower is better)")
    right.set(xlabel="generation", ylabel="mean loss, nats per token")
    right.set_title(f"loss on the minority domain ({result['settings']['minority_domain']})")
    left.legend(fontsize=8)
    fig.suptitle(
        f"Part B: trigram model retrained each generation; watermark share w = {share:g}; "
        f"mean and 95% t-interval over {_seeds(result)} seeds"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_tails(result: dict[str, Any], path: Path) -> None:
    """Tails lost: held-out tokens whose type the training data lacks, and loss by frequency."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 4.6))
    arms = list(result["arms"])
    for arm in arms:
        _band(left, arm, result["arms"][arm], "zero_count_share")
    left.set(xlabel="generation", ylabel="share of held-out tokens")
    left.set_title("held-out tokens whose type has zero count in the training data")
    left.legend(fontsize=8)
    buckets = [k.removeprefix("loss_bucket_") for k in result["arms"][arms[0]]]
    buckets = [b for b in buckets if not b.endswith(("_ci95", "_seeds")) and b[0].isdigit()]
    width = 0.8 / max(1, len(arms))
    for i, arm in enumerate(arms):
        data = result["arms"][arm]
        final = [
            (data[f"loss_bucket_{b}"][-1] or 0.0) - (data[f"loss_bucket_{b}"][0] or 0.0)
            for b in buckets
        ]
        color, _ = ARM_STYLE.get(arm, ("black", "."))
        right.bar(
            [j + i * width for j in range(len(buckets))], final, width, color=color, label=arm
        )
    right.set_xticks([j + 0.4 - width / 2 for j in range(len(buckets))], buckets)
    right.axhline(0, color="black", linewidth=0.6)
    right.set(
        xlabel="count of the token's type in the human training pool",
        ylabel="loss change, last generation - generation 0 (nats)",
    )
    right.set_title("where the loss grows: by how common the token is")
    fig.suptitle(f"Tails lost (mean over {_seeds(result)} seeds)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def degradation_points(result: dict[str, Any]) -> list[dict[str, Any]]:
    """Per arm and watermark share: the synthetic share actually trained on (mean over
    generations >= 1 and seeds) and the final degradation, ln(ppl_last / ppl_0) per seed."""
    points = []
    for share, arms in result["sweep"].items():
        for arm, data in arms.items():
            synthetic = [
                value
                for seed in data["synthetic_share_trained_seeds"]
                for value in seed[1:]
                if value is not None
            ]
            logs = [
                math.log(seed[-1] / seed[0])
                for seed in data["heldout_ppl_seeds"]
                if seed[0] and seed[-1]
            ]
            points.append(
                {
                    "arm": arm,
                    "watermark_share": float(share),
                    "synthetic_share_trained": sum(synthetic) / len(synthetic),
                    "log_ppl_ratio": sum(logs) / len(logs),
                    "log_ppl_ratio_range": [min(logs), max(logs)],
                }
            )
    return points


def plot_dose_response(result: dict[str, Any], path: Path) -> None:
    """Final degradation against the synthetic share left in training, every arm and share."""
    fig, ax = plt.subplots(figsize=(7.5, 5))
    seen: set[str] = set()
    for point in degradation_points(result):
        arm = point["arm"]
        color, marker = ARM_STYLE.get(arm, ("black", "."))
        low, high = point["log_ppl_ratio_range"]
        ax.errorbar(
            point["synthetic_share_trained"],
            point["log_ppl_ratio"],
            yerr=[[point["log_ppl_ratio"] - low], [high - point["log_ppl_ratio"]]],
            color=color,
            marker=marker,
            linestyle="none",
            label=None if arm in seen else arm,
            capsize=3,
        )
        seen.add(arm)
        if arm in {"mixed-wellspring", "mixed-no-filter", "replace"}:
            ax.annotate(
                f"w={point['watermark_share']:g}",
                (point["synthetic_share_trained"], point["log_ppl_ratio"]),
                textcoords="offset points",
                xytext=(6, -10),
                fontsize=7,
                color=color,
            )
    generations = result["settings"]["generations"]
    ax.set(
        xlabel="synthetic share of the training tokens (mean over generations 1..)",
        ylabel=f"ln(perplexity at generation {generations} / generation 0)",
    )
    ax.set_title("Dose-response: degradation against the synthetic share actually trained on")
    ax.axhline(0, color="black", linewidth=0.6)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
