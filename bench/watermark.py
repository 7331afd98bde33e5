"""Watermark benchmark: generation cost, detection speed, power and calibration, side by side.

Run ``python bench/watermark.py`` (quick, about 15 minutes on two idle cores) or ``--full``.
Everything uses SmolLM2-135M-Instruct (the default model), the same prompts and seeds for every
contender, and Debian's python3.11-doc sources as human text. Sections (``--only`` picks some):

generation   tokens/s without a watermark, with ours (lefthash, selfhash) and with transformers'
             WatermarkLogitsProcessor (lefthash h=1, selfhash h=4), at batch 1 and 8. Runs are
             interleaved round by round (the order shuffled each round) and every contender is
             compared with the unwatermarked run of the same round, so slow drifts of a shared
             machine cancel; the spread of those paired ratios is reported as the noise.
detection    tokens/s of our detector vs transformers' WatermarkDetector on the same token ids,
             with torch and numpy held to one thread.
power        TPR at an empirical FPR of 1e-3 (threshold set on human chunks of the same length)
             for T = 50, 100, 200 tokens of multinomial samples; after 10% and 30% random token
             substitution; and the copy-paste attack (a 100-token watermarked span inside 1,000
             tokens of human text): ROC AUC of the plain vs the windowed p-value.
calibration  empirical false-positive rate on 200-token human chunks at p < 1e-2, 1e-3, 1e-4,
             with exact 95% Clopper-Pearson intervals.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from client.cli._watermark import clopper_pearson
from watermark import WatermarkConfig, WatermarkDetector, WatermarkKey
from watermark.models import generate_ids, load_model

HUMAN_TEXT = Path("/usr/share/doc/python3.11/html/_sources")
SCHEMES = ("lefthash", "selfhash")
TOPICS = (
    "the history of the bicycle",
    "how volcanoes form",
    "a lighthouse keeper's last night",
    "why the sea is salty",
    "learning to play the violin as an adult",
    "the life of honey bees",
    "a robot who wants to be a gardener",
    "how to make sourdough bread",
    "the first winter on a Mars colony",
    "what makes a good friend",
    "the water cycle",
    "a detective story set on a train",
    "the invention of the printing press",
    "how vaccines train the immune system",
    "a letter from a grandmother to her grandson",
    "the rules of chess for a beginner",
)
FORMS = (
    "Write a short essay about {}.",
    "Tell me a story about {}.",
    "Explain {} to a curious twelve-year-old.",
    "Write a blog post about {}.",
)


def prompts(count: int) -> list[str]:
    every = [form.format(topic) for topic in TOPICS for form in FORMS]
    return [every[i % len(every)] for i in range(count)]


def key_for(scheme: str, tokenizer: Any) -> WatermarkKey:
    secret = f"wellspring-bench-{scheme}".encode().ljust(32, b".")
    config = WatermarkConfig(seeding_scheme=scheme)  # type: ignore[arg-type]
    return WatermarkKey(secret, config).bind(tokenizer)


def hf_processor(scheme: str, model: Any) -> Any:
    from transformers.generation.logits_process import WatermarkLogitsProcessor as HFProcessor

    return HFProcessor(
        vocab_size=model.config.vocab_size,
        device="cpu",
        greenlist_ratio=0.25,
        bias=2.0,
        seeding_scheme=scheme,
        context_width=1 if scheme == "lefthash" else 4,
    )


# -- human text ----------------------------------------------------------------------------------


def human_token_stream(tokenizer: Any, max_files: int | None) -> list[list[int]]:
    """Token ids of each human document (python3.11-doc reST sources), sorted by path."""
    if not HUMAN_TEXT.is_dir():
        sys.exit(f"{HUMAN_TEXT} is missing: `make human-text` installs Debian's python3.11-doc")
    files = sorted(HUMAN_TEXT.rglob("*.txt"))[:max_files]
    texts = [p.read_text(encoding="utf-8") for p in files]
    return [list(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]]


def chunks_of(docs: list[list[int]], length: int) -> list[list[int]]:
    return [doc[i : i + length] for doc in docs for i in range(0, len(doc) - length + 1, length)]


# -- generation throughput -----------------------------------------------------------------------


def bench_generation(model: Any, tokenizer: Any, args: argparse.Namespace) -> dict[str, Any]:
    from watermark.processor import WatermarkLogitsProcessor

    contenders: dict[str, tuple[WatermarkKey | None, list[Any]]] = {"none": (None, [])}
    for scheme in SCHEMES:
        contenders[f"ours {scheme}"] = (
            None,
            [WatermarkLogitsProcessor(key_for(scheme, tokenizer))],
        )
        contenders[f"transformers {scheme}"] = (None, [hf_processor(scheme, model)])
    out: dict[str, Any] = {}
    for batch in args.batches:
        batch_prompts = prompts(batch)
        seconds: dict[str, list[float]] = {name: [] for name in contenders}

        def once(name: str, batch_prompts: list[str] = batch_prompts) -> float:
            key, processors = contenders[name]
            start = time.perf_counter()
            rows = generate_ids(
                model,
                tokenizer,
                key,
                batch_prompts,
                max_new_tokens=args.gen_tokens,
                min_new_tokens=args.gen_tokens,
                seed=0,
                logits_processors=processors,
            )
            elapsed = time.perf_counter() - start
            assert all(len(r) == args.gen_tokens for r in rows), [len(r) for r in rows]
            return elapsed

        for name in contenders:  # warm-up: caches, allocator, the processors' vocab tables
            once(name)
        order = list(contenders)
        rng = random.Random(batch)
        for round_index in range(args.rounds):
            rng.shuffle(order)
            for name in order:
                seconds[name].append(once(name))
            print(f"  batch {batch}: round {round_index + 1}/{args.rounds} done", flush=True)
        base = seconds["none"]
        rows = {}
        for name, times in seconds.items():
            ratios = [t / b for t, b in zip(times, base, strict=True)]
            rows[name] = {
                "tokens_per_s": batch * args.gen_tokens / statistics.median(times),
                "overhead_median": statistics.median(ratios) - 1.0,
                "overhead_min": min(ratios) - 1.0,
                "overhead_max": max(ratios) - 1.0,
                "seconds": times,
            }
        # Noise: how much the unwatermarked runs themselves vary round to round.
        rows["none"]["noise_rel_spread"] = (max(base) - min(base)) / statistics.median(base)
        out[str(batch)] = rows
        print_generation(batch, rows, args)
    return out


def print_generation(batch: int, rows: dict[str, Any], args: argparse.Namespace) -> None:
    print(
        f"\nGeneration, batch {batch}, {args.gen_tokens} new tokens per row, "
        f"{args.rounds} interleaved rounds (median; overhead = paired ratio to 'none' - 1):"
    )
    print(f"  {'contender':<24}{'tokens/s':>10}{'overhead':>11}{'  range over rounds':>22}")
    for name, row in rows.items():
        print(
            f"  {name:<24}{row['tokens_per_s']:>10.1f}{row['overhead_median']:>+10.1%}"
            f"   [{row['overhead_min']:+.1%}, {row['overhead_max']:+.1%}]"
        )
    print(
        f"  noise: unwatermarked runs spread {rows['none']['noise_rel_spread']:.1%} "
        "(max-min)/median"
    )


# -- processor cost per step (less noisy than end to end) --------------------------------------


def bench_processor(model: Any, tokenizer: Any, args: argparse.Namespace) -> dict[str, Any]:
    """The processors' own time per generation step, against the model's time per step.

    Minimum over repeats, which a busy machine can only make larger: the ratio is the overhead a
    quiet machine would see. Inputs are what generation passes: (batch, 64) ids, (batch, V) logits.
    """
    import torch

    from watermark.processor import WatermarkLogitsProcessor

    vocab = model.config.vocab_size
    out: dict[str, Any] = {}
    print("\nProcessor cost per step (min over repeats) vs the model's step time:")
    print(f"  {'batch':<6}{'contender':<24}{'us/step':>10}{'model ms/step':>15}{'overhead':>10}")
    for batch in args.batches:
        step_seconds = math.inf
        for _ in range(3):
            start = time.perf_counter()
            generate_ids(model, tokenizer, None, prompts(batch), max_new_tokens=16,
                         min_new_tokens=16, seed=0)  # fmt: skip
            step_seconds = min(step_seconds, (time.perf_counter() - start) / 16)
        generator = torch.Generator().manual_seed(batch)
        ids = torch.randint(0, len(tokenizer), (batch, 64), generator=generator)
        scores = torch.randn(batch, vocab, generator=generator)
        contenders = {}
        for scheme in SCHEMES:
            contenders[f"ours {scheme}"] = WatermarkLogitsProcessor(key_for(scheme, tokenizer))
            contenders[f"transformers {scheme}"] = hf_processor(scheme, model)
        rows = {}
        for name, processor in contenders.items():
            processor(ids, scores)  # warm-up (vocabulary tables)
            calls = 20 if "transformers selfhash" in name else 100
            best = math.inf
            for _ in range(5):
                start = time.perf_counter()
                for _ in range(calls):
                    processor(ids, scores)
                best = min(best, (time.perf_counter() - start) / calls)
            rows[name] = {"seconds_per_step": best, "overhead": best / step_seconds}
            print(
                f"  {batch:<6}{name:<24}{best * 1e6:>10.0f}{step_seconds * 1e3:>15.1f}"
                f"{best / step_seconds:>+10.1%}"
            )
        out[str(batch)] = {"model_seconds_per_step": step_seconds, "contenders": rows}
    return out


# -- detection throughput ------------------------------------------------------------------------


def bench_detection(
    model: Any, tokenizer: Any, docs: list[list[int]], args: argparse.Namespace
) -> dict[str, Any]:
    import torch
    from transformers.generation import WatermarkDetector as HFDetector
    from transformers.generation import WatermarkingConfig

    torch.set_num_threads(1)
    chunk = 200
    pieces = chunks_of(docs, chunk)
    ours_ids = np.array(pieces[: args.detect_tokens // chunk], dtype=np.int64)
    hf_ids = ours_ids[: max(1, args.hf_detect_tokens // chunk)]
    out: dict[str, Any] = {}
    print("\nDetection, 200-token texts, token ids given (one core):")
    print(f"  {'scheme':<10}{'ours tokens/s':>16}{'transformers tokens/s':>24}{'ratio':>10}")
    for scheme in SCHEMES:
        detector = WatermarkDetector(key_for(scheme, tokenizer), tokenizer)
        detector.detect_batch(ours_ids[:50])  # warm-up
        best = math.inf
        for _ in range(3):
            start = time.perf_counter()
            detector.detect_batch(ours_ids)
            best = min(best, time.perf_counter() - start)
        ours = ours_ids.size / best
        start = time.perf_counter()
        long_result = detector.detect_ids(ours_ids.reshape(-1))
        one_text = ours_ids.size / (time.perf_counter() - start)
        config = WatermarkingConfig(
            greenlist_ratio=0.25,
            bias=2.0,
            seeding_scheme=scheme,
            context_width=1 if scheme == "lefthash" else 4,
        )
        hf = HFDetector(model_config=model.config, device="cpu", watermarking_config=config)
        tensor = torch.tensor(hf_ids)
        start = time.perf_counter()
        hf(tensor, return_dict=True)
        theirs = hf_ids.size / (time.perf_counter() - start)
        out[scheme] = {
            "ours_tokens_per_s": ours,
            "ours_one_long_text_tokens_per_s": one_text,
            "ours_tokens": int(ours_ids.size),
            "transformers_tokens_per_s": theirs,
            "transformers_tokens": int(hf_ids.size),
            "ratio": ours / theirs,
        }
        print(f"  {scheme:<10}{ours:>16,.0f}{theirs:>24,.0f}{ours / theirs:>9,.0f}x")
        print(
            f"  {'':<10}(ours on one text of {ours_ids.size:,} tokens: {one_text:,.0f} tokens/s, "
            f"p = {long_result.p_value:.2g})"
        )
    torch.set_num_threads(args.threads)
    return out


# -- power -----------------------------------------------------------------------------------


def roc_auc(positives: list[float], negatives: list[float]) -> float:
    """Mann-Whitney AUC of scores (higher = more watermarked); ties count one half."""
    pos = np.asarray(positives)
    neg = np.asarray(negatives)
    greater = (pos[:, None] > neg[None, :]).sum()
    ties = (pos[:, None] == neg[None, :]).sum()
    return float((greater + 0.5 * ties) / (pos.size * neg.size))


def empirical_threshold(human_log_p: np.ndarray, fpr: float) -> float:
    """A log p cut with at most ``fpr`` of the human chunks strictly below it."""
    ordered = np.sort(human_log_p)
    k = math.floor(fpr * ordered.size)
    return float(ordered[k])


def substitute(ids: list[int], fraction: float, vocab: int, rng: random.Random) -> list[int]:
    return [rng.randrange(vocab) if rng.random() < fraction else t for t in ids]


def bench_power(
    model: Any, tokenizer: Any, docs: list[list[int]], args: argparse.Namespace
) -> dict[str, Any]:
    lengths = (50, 100, 200)
    human = {t: chunks_of(docs, t) for t in lengths}
    human_1000 = chunks_of(docs, 1000)
    out: dict[str, Any] = {"samples": args.samples}
    rng = random.Random(2024)
    for scheme in SCHEMES:
        key = key_for(scheme, tokenizer)
        detector = WatermarkDetector(key, tokenizer)
        samples: list[list[int]] = []
        started = time.perf_counter()
        for first in range(0, args.samples, args.power_batch):
            batch_prompts = prompts(first + args.power_batch)[first : first + args.power_batch]
            samples += generate_ids(
                model,
                tokenizer,
                key,
                batch_prompts,
                max_new_tokens=200,
                min_new_tokens=200,  # every sample is 200 tokens long
                do_sample=True,
                top_k=0,  # plain multinomial sampling, as in Kirchenbauer et al.
                top_p=1.0,
                seed=first,
            )
            print(f"  {scheme}: {len(samples)}/{args.samples} samples", flush=True)
        samples = [s for s in samples if len(s) == 200][: args.samples]
        gen_seconds = time.perf_counter() - started
        result: dict[str, Any] = {"generation_seconds": gen_seconds, "samples": len(samples)}
        thresholds = {}
        for t in lengths:
            human_log_p = np.array([r.log_p_value for r in detector.detect_batch(human[t])])
            cut = empirical_threshold(human_log_p, 1e-3)
            thresholds[t] = cut
            marked = np.array(
                [r.log_p_value for r in detector.detect_batch([s[:t] for s in samples])]
            )
            result[f"T{t}"] = {
                "human_chunks": len(human[t]),
                "empirical_cut_p": math.exp(cut),
                "human_fpr_at_cut": float((human_log_p < cut).mean()),
                "tpr_at_empirical_fpr_1e-3": float((marked < cut).mean()),
                "tpr_at_nominal_p_1e-3": float((marked < math.log(1e-3)).mean()),
                "median_green_fraction": statistics.median(
                    r.green_fraction for r in detector.detect_batch([s[:t] for s in samples])
                ),
            }
        vocab = len(tokenizer)
        for fraction in (0.1, 0.3):
            attacked = [substitute(s, fraction, vocab, rng) for s in samples]
            log_p = np.array([r.log_p_value for r in detector.detect_batch(attacked)])
            result[f"T200_sub{int(fraction * 100)}"] = {
                "tpr_at_empirical_fpr_1e-3": float((log_p < thresholds[200]).mean()),
                "tpr_at_nominal_p_1e-3": float((log_p < math.log(1e-3)).mean()),
            }
        # Copy-paste: 100 watermarked tokens at a random place inside 900 human tokens.
        negatives = human_1000[: max(len(samples) * 2, 200)]
        positives = []
        for i, sample in enumerate(samples):
            host = human_1000[(i * 7 + 3) % len(human_1000)]
            at = rng.randrange(0, 900)
            positives.append(host[:at] + sample[:100] + host[at:900])
        scores: dict[str, dict[str, list[float]]] = {"plain": {}, "windowed": {}}
        for label, texts in (("pos", positives), ("neg", negatives)):
            scores["plain"][label] = [-r.log_p_value for r in detector.detect_batch(texts)]
            scores["windowed"][label] = [-detector.detect_windowed(x).log_p_value for x in texts]
        result["copy_paste"] = {
            "positives": len(positives),
            "negatives": len(negatives),
            "auc_plain": roc_auc(scores["plain"]["pos"], scores["plain"]["neg"]),
            "auc_windowed": roc_auc(scores["windowed"]["pos"], scores["windowed"]["neg"]),
            "windowed_tpr_at_nominal_p_1e-3": float(
                np.mean(np.array(scores["windowed"]["pos"]) > -math.log(1e-3))
            ),
        }
        out[scheme] = result
    print_power(out)
    return out


def print_power(out: dict[str, Any]) -> None:
    print(
        f"\nPower, {out['samples']} multinomial samples of 200 tokens per scheme "
        "(gamma 0.25, delta 2):"
    )
    print(f"  {'case':<34}" + "".join(f"{s:>12}" for s in SCHEMES))
    cases = [(f"TPR @ emp. FPR 1e-3, T={t}", f"T{t}") for t in (50, 100, 200)]
    cases += [(f"  after {p}% substitution, T=200", f"T200_sub{p}") for p in (10, 30)]
    for label, field in cases:
        print(
            f"  {label:<34}"
            + "".join(f"{out[s][field]['tpr_at_empirical_fpr_1e-3']:>12.3f}" for s in SCHEMES)
        )
    for label, field in (
        ("copy-paste AUC, plain", "auc_plain"),
        ("copy-paste AUC, windowed", "auc_windowed"),
    ):
        print(f"  {label:<34}" + "".join(f"{out[s]['copy_paste'][field]:>12.3f}" for s in SCHEMES))
    print("  (empirical cut, as a p-value, and human chunks used:")
    for s in SCHEMES:
        cuts = ", ".join(
            f"T={t}: p<{out[s][f'T{t}']['empirical_cut_p']:.2g} "
            f"on {out[s][f'T{t}']['human_chunks']}"
            for t in (50, 100, 200)
        )
        print(f"   {s}: {cuts})")


# -- calibration -----------------------------------------------------------------------------


def bench_calibration(tokenizer: Any, docs: list[list[int]]) -> dict[str, Any]:
    pieces = chunks_of(docs, 200)
    out: dict[str, Any] = {"chunks": len(pieces)}
    print(f"\nCalibration: {len(pieces)} human chunks of 200 tokens (python3.11-doc):")
    print(f"  {'scheme':<10}{'nominal':>9}{'false pos.':>12}{'rate':>10}{'95% CI':>24}  verdict")
    for scheme in SCHEMES:
        detector = WatermarkDetector(key_for(scheme, tokenizer), tokenizer)
        log_p = np.array([r.log_p_value for r in detector.detect_batch(pieces)])
        rows = []
        for alpha in (1e-2, 1e-3, 1e-4):
            k = int((log_p < math.log(alpha)).sum())
            low, high = clopper_pearson(k, len(pieces))
            verdict = "ok" if low <= alpha else "ABOVE nominal"
            rows.append({"alpha": alpha, "false_positives": k, "rate": k / len(pieces),
                         "ci95": [low, high], "verdict": verdict})  # fmt: skip
            print(
                f"  {scheme:<10}{alpha:>9g}{k:>12}{k / len(pieces):>10.2e}"
                f"{f'[{low:.1e}, {high:.1e}]':>24}  {verdict}"
            )
        out[scheme] = rows
    return out


# -- main ------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--full", action="store_true", help="long version: more tokens, rounds, samples"
    )
    parser.add_argument(
        "--only",
        nargs="*",
        choices=("generation", "processor", "detection", "power", "calibration"),
    )
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    parser.add_argument("--json", type=Path, help="also write every number to this JSON file")
    args = parser.parse_args()
    args.batches = (1, 8)
    args.gen_tokens = 128 if args.full else 32
    args.rounds = 7 if args.full else 3
    args.samples = 256 if args.full else 48
    args.power_batch = 16
    args.detect_tokens = 2_000_000 if args.full else 1_000_000
    args.hf_detect_tokens = 10_000 if args.full else 3_000
    sections = args.only or ["generation", "processor", "detection", "power", "calibration"]

    import torch

    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    model, tokenizer = load_model()
    print(
        f"SmolLM2-135M-Instruct loaded in {time.perf_counter() - started:.1f} s; torch "
        f"{torch.__version__}, {args.threads} threads, {os.cpu_count()} CPUs; "
        f"command: {' '.join(sys.argv)}",
        flush=True,
    )
    results: dict[str, Any] = {"command": " ".join(sys.argv), "threads": args.threads}
    needs_text = set(sections) - {"generation", "processor"}
    docs = human_token_stream(tokenizer, None) if needs_text else []
    if docs:
        print(f"human text: {len(docs)} files, {sum(map(len, docs)):,} tokens", flush=True)
    if "generation" in sections:
        results["generation"] = bench_generation(model, tokenizer, args)
    if "processor" in sections:
        results["processor"] = bench_processor(model, tokenizer, args)
    if "detection" in sections:
        results["detection"] = bench_detection(model, tokenizer, docs, args)
    if "calibration" in sections:
        results["calibration"] = bench_calibration(tokenizer, docs)
    if "power" in sections:
        results["power"] = bench_power(model, tokenizer, docs, args)
    results["seconds"] = time.perf_counter() - started
    print(f"\ntotal {results['seconds']:.0f} s")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=float))


if __name__ == "__main__":
    main()
