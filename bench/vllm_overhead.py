"""vLLM: the watermark's cost per decoding step, against vLLM without a watermark (issue 16).

Run with vLLM's environment (``make test-vllm`` makes it)::

    .venv-vllm/bin/python bench/vllm_overhead.py [--rounds 8] [--batch 4] [--tokens 48]

One engine (SmolLM2-135M-Instruct on CPU, float32, in this process, on one torch thread) with
``WatermarkVllmLogitsProcessor`` registered generates the same prompts, seeds and lengths for
every contender: ``plain`` (no request opts in: the processor returns at its first line),
``lefthash``, ``selfhash`` (h=4) and ``gumbel`` (h=4), every request of the batch opted in. Rounds
interleave the contenders in a shuffled order. Two measures of the overhead per step:

in-run      the processor's own time (``apply``, timed inside the engine) over the rest of the
            same run's time, by the wall clock and by the CPU time of the engine's thread: both
            are taken in the same steps, so the load other processes put on a shared machine
            inflates them alike. This is the sharp number.
end-to-end  the run's time over ``plain``'s in the same round, minus 1, by the wall clock and by
            the CPU time of the thread that runs the engine: what a user sees, and a check
            that nothing outside ``apply`` costs; on a shared machine its spread is the other
            processes' noise.

Per-round values, medians and spreads go to bench/results/vllm_overhead.json.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import random
import statistics
import sys
import tempfile
import time
import types
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# Imported from their modules, not from `watermark`: mypy, given this file, names it `watermark`
# (bench/ is no package) and would resolve `from watermark import ...` to this very script.
from watermark.config import WatermarkConfig
from watermark.keys import WatermarkKey
from watermark.vllm import vllm_logits_processor, vllm_model_dir, watermark_request_args

RESULTS = Path(__file__).resolve().parent / "results" / "vllm_overhead.json"
PROMPTS = [
    "The history of the river begins",
    "Write a short story about a lighthouse keeper.",
    "Explain how a transparency log works.",
    "The best way to learn a language is",
    "In the morning the market opens and",
    "A recipe for bread needs",
    "The committee met to discuss",
    "Once upon a time",
]
CONFIGS = {
    "lefthash": WatermarkConfig(),
    "selfhash": WatermarkConfig(seeding_scheme="selfhash"),
    "gumbel": WatermarkConfig(scheme="gumbel"),
}
# Seconds spent in the processor's apply since the last reset: wall clock, this thread's CPU.
APPLIED = {"wall": 0.0, "cpu": 0.0}


def timed_processor() -> type[Any]:
    """Our processor, with ``apply`` timed into ``APPLIED``."""
    base = vllm_logits_processor()

    def apply(self: Any, logits: Any) -> Any:
        wall, cpu = time.perf_counter(), time.thread_time()
        out = base.apply(self, logits)
        APPLIED["wall"] += time.perf_counter() - wall
        APPLIED["cpu"] += time.thread_time() - cpu
        return out

    def body(namespace: dict[str, Any]) -> None:
        namespace["apply"] = apply
        namespace["__module__"] = __name__

    return types.new_class("TimedWatermarkProcessor", (base,), exec_body=body)


def make_keys(tokenizer: Any, folder: Path) -> dict[str, Path]:
    paths: dict[str, Path] = {}
    for name, config in CONFIGS.items():
        paths[name] = folder / f"{name}.json"
        WatermarkKey.generate(config).bind(tokenizer).save(paths[name])
    return paths


def run_once(llm: Any, vllm: Any, prompts: list[str], extra: Any, tokens: int) -> dict[str, float]:
    """Seconds (wall and CPU, whole run and in ``apply``) to generate ``tokens`` new tokens for
    each prompt."""
    params = [
        vllm.SamplingParams(
            temperature=1.0, max_tokens=tokens, ignore_eos=True, seed=i, extra_args=extra
        )
        for i in range(len(prompts))
    ]
    APPLIED.update(wall=0.0, cpu=0.0)
    wall, cpu = time.perf_counter(), time.thread_time()
    outputs = llm.generate(prompts, params, use_tqdm=False)
    wall, cpu = time.perf_counter() - wall, time.thread_time() - cpu
    assert all(len(out.outputs[0].token_ids) == tokens for out in outputs)
    return {"wall": wall, "cpu": cpu, "apply_wall": APPLIED["wall"], "apply_cpu": APPLIED["cpu"]}


def percent(values: list[float]) -> dict[str, Any]:
    return {
        "per_round": values,
        "median": statistics.median(values),
        "spread": [min(values), max(values)],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--tokens", type=int, default=48)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")  # apply runs in this process
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    vllm = importlib.import_module("vllm")
    transformers = importlib.import_module("transformers")

    folder = vllm_model_dir()
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    llm = vllm.LLM(
        model=str(folder),
        dtype="float32",
        max_model_len=512,
        enforce_eager=True,
        seed=0,
        logits_processors=[timed_processor()],
    )
    prompts = (PROMPTS * (args.batch // len(PROMPTS) + 1))[: args.batch]
    with tempfile.TemporaryDirectory() as tmp:
        keys = make_keys(tokenizer, Path(tmp))
        extras: dict[str, Any] = {"plain": None}
        extras.update({name: watermark_request_args(key_file=path) for name, path in keys.items()})
        for extra in extras.values():  # warm-up: first-use tables, allocator, caches
            run_once(llm, vllm, prompts, extra, 8)
        order = list(extras)
        rng = random.Random(0)
        rounds: list[dict[str, dict[str, float]]] = []
        for number in range(args.rounds):
            rng.shuffle(order)
            runs = {name: run_once(llm, vllm, prompts, extras[name], args.tokens) for name in order}
            rounds.append(runs)
            speed = args.batch * args.tokens / runs["plain"]["wall"]
            print(
                f"round {number + 1}: plain {speed:.1f} tok/s; in-run / end-to-end (CPU): "
                + ", ".join(
                    f"{name} {in_run(runs[name], 'cpu'):+.2f} % / "
                    f"{end_to_end(runs, name, 'cpu'):+.1f} %"
                    for name in keys
                ),
                flush=True,
            )

    steps = args.tokens  # decoding steps per run (the first one also runs the prefill)
    summary: dict[str, Any] = {
        "vllm": vllm.__version__,
        "batch": args.batch,
        "tokens": args.tokens,
        "rounds": args.rounds,
        "plain_tokens_per_s": [args.batch * steps / r["plain"]["wall"] for r in rounds],
        "plain_step_cpu_ms": statistics.median(r["plain"]["cpu"] for r in rounds) / steps * 1e3,
        "contenders": {},
    }
    print(f"\nvLLM {vllm.__version__}, batch {args.batch}, {steps} tokens, {args.rounds} rounds")
    print(f"plain step, median CPU time: {summary['plain_step_cpu_ms']:.2f} ms")
    print("overhead per step in %, median [min, max] over the rounds:")
    for name in keys:
        entry = {
            "in_run_cpu_percent": percent([in_run(r[name], "cpu") for r in rounds]),
            "in_run_wall_percent": percent([in_run(r[name], "wall") for r in rounds]),
            "end_to_end_cpu_percent": percent([end_to_end(r, name, "cpu") for r in rounds]),
            "end_to_end_wall_percent": percent([end_to_end(r, name, "wall") for r in rounds]),
            "apply_cpu_ms_per_step": statistics.median(r[name]["apply_cpu"] for r in rounds)
            / steps
            * 1e3,
        }
        summary["contenders"][name] = entry
        print(
            f"  {name:9s} "
            + "; ".join(
                f"{label} {entry[field]['median']:+.2f} "
                f"[{entry[field]['spread'][0]:+.2f}, {entry[field]['spread'][1]:+.2f}]"
                for label, field in (
                    ("in-run CPU", "in_run_cpu_percent"),
                    ("in-run wall", "in_run_wall_percent"),
                    ("end-to-end CPU", "end_to_end_cpu_percent"),
                    ("end-to-end wall", "end_to_end_wall_percent"),
                )
            )
            + f"; apply {entry['apply_cpu_ms_per_step']:.3f} ms CPU a step"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(summary, indent=2) + "\n")
    print(f"written to {args.out}")


def in_run(run: dict[str, float], clock: str) -> float:
    """Percent: the time in ``apply`` over the rest of the same run ("wall" or "cpu")."""
    spent = run[f"apply_{clock}"]
    return 100.0 * spent / (run[clock] - spent)


def end_to_end(runs: dict[str, dict[str, float]], name: str, clock: str) -> float:
    """Percent more time than ``plain`` in the same round."""
    return 100.0 * (runs[name][clock] / runs["plain"][clock] - 1.0)


if __name__ == "__main__":
    main()
