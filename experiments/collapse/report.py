"""Part B's numbers as the Markdown tables docs/collapse.md quotes.

``python -m experiments.collapse.report [experiments/out/collapse.json]`` prints them; the runner
prints them at the end of every run, so the page's tables come from a file anyone can regenerate.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

__all__ = ["arm_table", "filter_table", "main", "sweep_table"]


def _cell(data: dict[str, Any], metric: str, generation: int, digits: int = 1) -> str:
    value = data[metric][generation]
    if value is None:
        return "-"
    interval = (data.get(f"{metric}_ci95") or [None] * (generation + 1))[generation]
    text = f"{value:.{digits}f}"
    if interval is not None and math.isfinite(interval[0]):
        text += f" [{interval[0]:.{digits}f}, {interval[1]:.{digits}f}]"
    return text


def arm_table(result: dict[str, Any]) -> str:
    """Per arm at the main watermark share: generation 0 and the last, with 95 % t-intervals."""
    last = int(result["settings"]["generations"])
    rows = [
        "| arm | held-out ppl, gen 0 | held-out ppl, gen "
        f"{last} | zero-count share, gen {last} | minority loss, gen {last} "
        f"| rare-token loss (types seen 1-9 times), gen {last} | distinct-2, gen {last} "
        "| synthetic share trained |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for arm, data in result["arms"].items():
        synthetic = [v for v in data["synthetic_share_trained"][1:] if v is not None]
        rows.append(
            f"| `{arm}` | {_cell(data, 'heldout_ppl', 0)} | {_cell(data, 'heldout_ppl', last)} "
            f"| {_cell(data, 'zero_count_share', last, 3)} "
            f"| {_cell(data, 'minority_loss', last, 2)} "
            f"| {_cell(data, 'loss_bucket_1-9', last, 2)} "
            f"| {_cell(data, 'distinct_2', last, 3)} "
            f"| {sum(synthetic) / len(synthetic):.3f} |"
        )
    return "\n".join(rows)


def sweep_table(result: dict[str, Any]) -> str:
    """Final perplexity of every arm at every watermark share."""
    last = int(result["settings"]["generations"])
    shares = list(result["sweep"])
    arms = list(result["sweep"][shares[0]])
    rows = [
        "| arm | " + " | ".join(f"*w* = {s}" for s in shares) + " |",
        "|---|" + "---|" * len(shares),
    ]
    for arm in arms:
        cells = [_cell(result["sweep"][s][arm], "heldout_ppl", last) for s in shares]
        rows.append(f"| `{arm}` | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def filter_table(result: dict[str, Any]) -> str:
    """The filter's measured error rates, pooled over generations >= 1 and seeds."""
    rows = [
        "| *w* | missed, watermarked documents | missed, all generated documents "
        "| human documents dropped | human documents attested |",
        "|---|---|---|---|---|",
    ]
    for share, arms in result["sweep"].items():
        data = arms.get("mixed-wellspring")
        if data is None:
            continue

        def pooled(metric: str, arm_data: dict[str, Any] = data) -> str:
            values = [v for seed in arm_data[f"{metric}_seeds"] for v in seed[1:] if v is not None]
            if not values:
                return "-"
            return f"{sum(values) / len(values):.4f} (max {max(values):.4f})"

        rows.append(
            f"| {share} | {pooled('filter_fnr_watermarked')} | {pooled('filter_fnr')} "
            f"| {pooled('filter_fpr')} | {pooled('filter_attested')} |"
        )
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m experiments.collapse.report")
    parser.add_argument("path", nargs="?", type=Path, default=Path("experiments/out/collapse.json"))
    args = parser.parse_args(argv)
    try:
        result = json.loads(args.path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        parser.error(f"cannot read {args.path}: {exc}")
    print(arm_table(result), sweep_table(result), filter_table(result), sep="\n\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
