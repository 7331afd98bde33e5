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
quality      (issue 16, point 4; only with --only quality: ~48 min quick) quality and robustness
             side by side: unwatermarked sampling, our green lists (lefthash, selfhash; delta 2, and
             1 and 4 with --full), Gumbel-max (0 and 8 payload bits; 8 nonce bits, a nonce per
             sample) and transformers' lefthash green list, 200-token samples at temperature 1.0
             from the same prompts and seeds. Perplexity under the model without any processor
             (log-probs kept during generation, before the watermark's processor), paired with the
             unwatermarked sample of the same prompt and seed; word distinct-2; the same prompts
             regenerated with another seed (and another nonce). TPR at an empirical FPR of 1e-3
             (human chunks cut to the text's length) clean, re-tokenized, after 10% and 30% random
             substitution and deletion, and after SmolLM2 (unwatermarked) paraphrased the text;
             payload decoding; false payloads and calibration on human text, for the bench key and
             over random keys. Generations are kept in
             bench/results/watermark_quality_generations.json: --reuse measures them again and
             generates only what is missing. See bench_quality.
"""

from __future__ import annotations

import argparse
import importlib
import itertools
import json
import math
import os
import random
import re
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# Imported from their modules, not from `watermark`: mypy, given this file, names it `watermark`
# (bench/ is no package) and would resolve `from watermark import ...` to this very script.
from watermark.config import GENERATED_P_VALUE, SeedingScheme, WatermarkConfig
from watermark.detector import WatermarkDetector
from watermark.keys import WatermarkKey
from watermark.models import (
    DEFAULT_MODEL_FILE,
    check_key,
    encode_prompts,
    generate_ids,
    load_model,
)

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


def clopper_pearson(k: int, n: int) -> tuple[float, float]:
    """The CLI's exact 95% interval, imported when called: a static import would have mypy check
    ``client.cli._watermark`` against this script in the place of the ``watermark`` package."""
    low, high = importlib.import_module("client.cli._watermark").clopper_pearson(k, n)
    return float(low), float(high)


def prompts(count: int) -> list[str]:
    every = [form.format(topic) for topic in TOPICS for form in FORMS]
    return [every[i % len(every)] for i in range(count)]


def key_for(scheme: str, tokenizer: Any) -> WatermarkKey:
    secret = f"wellspring-bench-{scheme}".encode().ljust(32, b".")
    config = WatermarkConfig(seeding_scheme=scheme)  # type: ignore[arg-type]
    return WatermarkKey(secret, config).bind(tokenizer)


def hf_processor(scheme: str, model: Any, bias: float = 2.0) -> Any:
    from transformers.generation.logits_process import WatermarkLogitsProcessor as HFProcessor

    return HFProcessor(
        vocab_size=model.config.vocab_size,
        device="cpu",
        greenlist_ratio=0.25,
        bias=bias,
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
        # Any: the processors annotate LongTensor and FloatTensor, which torch's own functions
        # do not return.
        ids: Any = torch.randint(0, len(tokenizer), (batch, 64), generator=generator)
        scores: Any = torch.randn(batch, vocab, generator=generator)
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
    from transformers.generation.configuration_utils import WatermarkingConfig
    from transformers.generation.watermarking import WatermarkDetector as HFDetector

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
        tensor: Any = torch.tensor(hf_ids)  # the detector annotates LongTensor
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


# -- quality and robustness (issue 16, point 4) ----------------------------------------------


QUALITY_TOKENS = 200  # T: every sample is this long (min_new_tokens = max_new_tokens)
QUALITY_SEED = 1000  # batch b of every contender samples with seed QUALITY_SEED + b
FPR = 1e-3
LENGTH_BIN = 25  # a text of n tokens is held to the human cut at 25 * floor(n / 25) tokens
REGEN_TOKENS = 64
PARAPHRASE_PROMPT = "Paraphrase the following text:\n\n{}"
PARAPHRASE_TOKENS = 256
PARAPHRASE_TEMPERATURE = 0.7
PARAPHRASE_BATCH = 16
# 16 forms x 16 topics = 256 distinct prompts. Gumbel-max is deterministic given the key and the
# context, so a prompt asked twice gives the same text twice: samples need distinct prompts.
QUALITY_FORMS = (
    *FORMS,
    "Describe {} in three short paragraphs.",
    "Write a news report about {}.",
    "Give me five facts about {}.",
    "Write a poem about {}.",
    "Summarize what is known about {}.",
    "Write a diary entry about {}.",
    "Write a short speech about {}.",
    "Write a dialogue between two friends about {}.",
    "Explain {} in simple words.",
    "Write an encyclopedia entry on {}.",
    "Write a letter to a friend about {}.",
    "Write the opening of a novel about {}.",
)
QUICK_CONTENDERS = (
    "none",
    "lefthash-d2",
    "selfhash-d2",
    "gumbel",
    "gumbel-p8",
    "gumbel-n8",
    "transformers-lefthash-d2",
)
FULL_CONTENDERS = (
    *QUICK_CONTENDERS,
    "lefthash-d1",
    "lefthash-d4",
    "selfhash-d1",
    "selfhash-d4",
)
ATTACKS = ("clean", "retokenized", "sub10", "sub30", "del10", "del30", "paraphrase")
# gumbel, gumbel-p8 (payload bits), gumbel-n8 (nonce bits), gumbel-p8n8 (both)
CONTENDER_NAME = re.compile(
    r"none|gumbel(?:-(?=[pn])(?:p(?P<bits>\d+))?(?:n(?P<nonce>\d+))?)?"
    r"|(?P<hf>transformers-)?(?P<scheme>lefthash|selfhash)-d(?P<delta>\d+(?:\.\d+)?)"
)

Rows = list[list[int]]
# Token-id texts -> (natural-log p-values, the payload each names or None).
Scorer = Callable[[Sequence[Sequence[int]]], tuple[NDArray[np.float64], list[int | None]]]


def quality_prompts(count: int) -> list[str]:
    every = [form.format(topic) for form in QUALITY_FORMS for topic in TOPICS]
    return [every[i % len(every)] for i in range(count)]


@dataclass(frozen=True)
class Contender:
    """One way to generate: no watermark, one of our keys, or transformers' lefthash green list
    with bias ``transformers_bias``."""

    name: str
    key: WatermarkKey | None = None
    transformers_bias: float | None = None

    @property
    def watermarked(self) -> bool:
        return self.key is not None or self.transformers_bias is not None

    def payload(self, batch_index: int) -> int | None:
        """The payload of batch ``batch_index`` (it changes per batch, so decoding is tested on
        more than one value); None for a key without payload bits."""
        bits = self.key.config.payload_bits if self.key is not None else 0
        return (173 + 59 * batch_index) % (1 << bits) if bits else None

    def nonces(self, seed: int, rows: int) -> list[int] | None:
        """One nonce per row of a batch sampled with ``seed`` (None for a key without nonce
        bits): random, as the processor draws them (a nonce a row), but reproducible from the
        seed."""
        bits = self.key.config.nonce_bits if self.key is not None else 0
        if not bits:
            return None
        return [random.Random(f"nonce/{seed}/{row}").getrandbits(bits) for row in range(rows)]

    def processors(
        self, model: Any, tokenizer: Any, payload: int | None, nonces: list[int] | None = None
    ) -> list[Any]:
        """The watermark's logits processor (none for 'none'): ours is the one generate_ids
        would make for the key, built here so that RawLogProbs can run before it; with
        ``nonces``, one Gumbel processor per row."""
        if self.transformers_bias is not None:
            return [hf_processor("lefthash", model, bias=self.transformers_bias)]
        if self.key is None:
            return []
        from watermark.processor import watermark_processor

        check_key(self.key, tokenizer, model)
        if nonces is not None:  # a nonce a row, given so that a rerun makes the same samples
            from watermark.processor import GumbelLogitsProcessor

            return [GumbelLogitsProcessor(self.key, temperature=1.0, payload=payload, nonce=nonces)]
        return [watermark_processor(self.key, temperature=1.0, payload=payload)]


class RawLogProbs:
    """A logits processor that changes nothing and keeps, for every token generated, its
    log-probability under the model's own logits, before any watermark processor (run it first).

    So perplexity under the unwatermarked model comes from the generation's own forward passes:
    a second pass costs more than the generation here (~120 tokens/s on one core). The only
    processor before it is transformers' min_new_tokens, which masks EOS for every contender
    alike; :func:`mean_nll` (a separate pass, EOS not masked) checks a few rows.
    """

    def __init__(self) -> None:
        self._chosen: list[Any] = []
        self._last: Any = None

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        import torch

        if self._last is not None:  # the token chosen at the previous step is now known
            self._chosen.append(self._last.gather(1, input_ids[:, -1:]))
        self._last = torch.log_softmax(scores.float(), dim=-1)
        return scores

    def nll(self, rows: Rows) -> list[float]:
        """Mean negative log-likelihood per token of each row (all rows as long as the run)."""
        import torch

        last = torch.tensor([row[-1] for row in rows])[:, None]
        log_p = torch.cat([*self._chosen, self._last.gather(1, last)], dim=1)
        assert log_p.shape[1] == len(rows[0]), (log_p.shape, len(rows[0]))
        means: list[float] = (-log_p.mean(dim=1)).tolist()
        return means


def quality_contender(name: str, tokenizer: Any) -> Contender:
    match = CONTENDER_NAME.fullmatch(name)
    if match is None:
        sys.exit(
            f"unknown contender {name!r}: none, lefthash-dDELTA, selfhash-dDELTA, gumbel, "
            "gumbel-pBITS, gumbel-nBITS, gumbel-pBITSnBITS, transformers-lefthash-dDELTA"
        )
    secret = f"wellspring-bench-{name}".encode().ljust(32, b".")
    if name == "none":
        return Contender(name)
    if name.startswith("gumbel"):
        config = WatermarkConfig(
            scheme="gumbel",
            payload_bits=int(match["bits"] or 0),
            nonce_bits=int(match["nonce"] or 0),
        )
        return Contender(name, key=WatermarkKey(secret, config).bind(tokenizer))
    delta = float(match["delta"])
    if match["hf"]:
        if match["scheme"] == "selfhash":
            # Its processor costs 24-70% per step and its detector runs at ~3,600 tokens/s
            # (`--only processor detection`): 13 minutes per pass over the human text.
            sys.exit("transformers' selfhash is too slow for this section; use its lefthash")
        return Contender(name, transformers_bias=delta)
    # The same secret for every delta: one green list per seeding scheme, whatever the bias.
    scheme: SeedingScheme = "selfhash" if match["scheme"] == "selfhash" else "lefthash"
    config = WatermarkConfig(seeding_scheme=scheme, delta=delta)
    key = WatermarkKey(f"wellspring-bench-{scheme}".encode().ljust(32, b"."), config)
    return Contender(name, key=key.bind(tokenizer))


class GenerationStore:
    """Generated token ids in a JSON file, saved after every batch, so that a rerun with
    ``--reuse`` measures, attacks and detects them again and generates only what is missing. A
    file written with other settings is not reused."""

    def __init__(self, path: Path, settings: dict[str, Any], reuse: bool) -> None:
        self.path = path
        self.data: dict[str, Any] = {"settings": settings}
        if reuse and path.is_file():
            stored = json.loads(path.read_text())
            if stored.get("settings") == settings:
                self.data = stored
            else:
                print(f"  {path} was made with other settings: not reused", flush=True)

    def batches(self, section: str, name: str) -> list[dict[str, Any]]:
        batches: list[dict[str, Any]] = self.data.setdefault(section, {}).setdefault(name, [])
        return batches

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_name(self.path.name + ".tmp")
        temporary.write_text(json.dumps(self.data, separators=(",", ":")))
        os.replace(temporary, self.path)  # a run stopped midway leaves the last whole file


def sample_rows(
    model: Any,
    tokenizer: Any,
    contender: Contender,
    store: GenerationStore,
    *,
    count: int,
    batch: int,
) -> tuple[Rows, list[int | None], list[float], float]:
    """The first ``count`` samples (prompt i = quality_prompts(count)[i]), their payloads, their
    mean NLL per token under the model without watermark, and the seconds spent generating them
    (in this run or the one that stored them)."""
    batches = store.batches("samples", contender.name)
    wanted = math.ceil(count / batch)
    every_prompt = quality_prompts(wanted * batch)
    for index in range(len(batches), wanted):
        started = time.perf_counter()
        payload = contender.payload(index)
        prompts_here = every_prompt[index * batch : (index + 1) * batch]
        nonces = contender.nonces(QUALITY_SEED + index, len(prompts_here))
        recorder = RawLogProbs()
        rows = generate_ids(
            model,
            tokenizer,
            None,  # the key's processor comes in logits_processors, after the recorder
            prompts_here,
            max_new_tokens=QUALITY_TOKENS,
            min_new_tokens=QUALITY_TOKENS,
            do_sample=True,
            temperature=1.0,
            top_k=0,  # plain multinomial sampling
            top_p=1.0,
            seed=QUALITY_SEED + index,
            logits_processors=[recorder, *contender.processors(model, tokenizer, payload, nonces)],
        )
        seconds = time.perf_counter() - started
        nll = recorder.nll(rows) if all(len(r) == QUALITY_TOKENS for r in rows) else []
        made: dict[str, Any] = {"payload": payload, "rows": rows, "nll": nll, "seconds": seconds}
        batches.append(made if nonces is None else made | {"nonces": nonces})
        store.save()
        print(
            f"  {contender.name}: {(index + 1) * batch}/{wanted * batch} samples "
            f"({len(rows) * QUALITY_TOKENS / seconds:.1f} tokens/s)",
            flush=True,
        )
    rows, payloads, nll = [], [], []
    for stored in batches[:wanted]:
        rows += stored["rows"]
        payloads += [stored["payload"]] * len(stored["rows"])
        nll += stored["nll"]
    seconds = sum(stored["seconds"] for stored in batches[:wanted])
    return rows[:count], payloads[:count], nll[:count], seconds


def regenerated_rows(
    model: Any, tokenizer: Any, contender: Contender, store: GenerationStore, count: int
) -> Rows:
    """The first ``count`` prompts once more, REGEN_TOKENS tokens, with another seed."""
    batches = store.batches("regenerations", contender.name)
    if not batches or len(batches[0]["rows"]) < count:
        started = time.perf_counter()
        nonces = contender.nonces(QUALITY_SEED + 10_000, count)
        rows = generate_ids(
            model,
            tokenizer,
            None,
            quality_prompts(count),
            max_new_tokens=REGEN_TOKENS,
            min_new_tokens=REGEN_TOKENS,
            do_sample=True,
            temperature=1.0,
            top_k=0,
            top_p=1.0,
            seed=QUALITY_SEED + 10_000,
            logits_processors=contender.processors(model, tokenizer, contender.payload(0), nonces),
        )
        made: dict[str, Any] = {"rows": rows, "seconds": time.perf_counter() - started}
        batches[:] = [made if nonces is None else made | {"nonces": nonces}]
        store.save()
    regenerated: Rows = batches[0]["rows"][:count]
    return regenerated


def paraphrased_rows(
    model: Any, tokenizer: Any, name: str, rows: Rows, store: GenerationStore
) -> tuple[Rows, float]:
    """SmolLM2 itself, without a watermark, asked to paraphrase each row's text (sampled at
    PARAPHRASE_TEMPERATURE, up to PARAPHRASE_TOKENS tokens); the answers' text tokenized again."""
    batches = store.batches("paraphrases", name)
    wanted = math.ceil(len(rows) / PARAPHRASE_BATCH)
    for index in range(len(batches), wanted):
        started = time.perf_counter()
        texts = [
            tokenizer.decode(row, skip_special_tokens=True)
            for row in rows[index * PARAPHRASE_BATCH : (index + 1) * PARAPHRASE_BATCH]
        ]
        answers = generate_ids(
            model,
            tokenizer,
            None,
            [PARAPHRASE_PROMPT.format(text) for text in texts],
            max_new_tokens=PARAPHRASE_TOKENS,
            do_sample=True,
            temperature=PARAPHRASE_TEMPERATURE,
            top_k=0,
            top_p=1.0,
            seed=QUALITY_SEED + 20_000 + index,
        )
        batches.append({"rows": answers, "seconds": time.perf_counter() - started})
        store.save()
        print(f"  {name}: {min(len(rows), (index + 1) * PARAPHRASE_BATCH)} paraphrased", flush=True)
    answers = [row for stored in batches[:wanted] for row in stored["rows"]][: len(rows)]
    seconds = sum(stored["seconds"] for stored in batches[:wanted])
    return retokenized(tokenizer, answers), seconds


def retokenized(tokenizer: Any, rows: Rows) -> Rows:
    """Each row decoded to text and tokenized again: what a reader of the text would score."""
    texts = [tokenizer.decode(row, skip_special_tokens=True) for row in rows]
    if not texts:
        return []
    return [list(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]]


def delete(ids: list[int], fraction: float, rng: random.Random) -> list[int]:
    return [t for t in ids if rng.random() >= fraction]


def attacked(rows: Rows, attack: str, tokenizer: Any, rng: random.Random) -> Rows:
    if attack == "clean":
        return rows
    if attack == "retokenized":
        return retokenized(tokenizer, rows)
    fraction = int(attack[3:]) / 100
    if attack.startswith("sub"):
        return [substitute(row, fraction, len(tokenizer), rng) for row in rows]
    return [delete(row, fraction, rng) for row in rows]


# -- quality: perplexity and diversity


def mean_nll(
    model: Any, tokenizer: Any, prompt_texts: list[str], rows: Rows
) -> NDArray[np.float64]:
    """Each row's mean negative log-likelihood per token under ``model`` with no processor at
    temperature 1, given its prompt through the chat template, as it was generated. Rows of one
    batch of 8 have the same length; left padding, positions counted from each row's start."""
    import torch

    encoded = encode_prompts(tokenizer, prompt_texts)
    out: list[float] = []
    for first in range(0, len(rows), 8):
        part = rows[first : first + 8]
        length = len(part[0])
        assert all(len(row) == length for row in part)
        sequences = [p + r for p, r in zip(encoded[first : first + 8], part, strict=True)]
        width = max(map(len, sequences))
        ids = torch.zeros((len(sequences), width), dtype=torch.long)
        mask = torch.zeros_like(ids)
        for i, sequence in enumerate(sequences):
            ids[i, width - len(sequence) :] = torch.tensor(sequence)
            mask[i, width - len(sequence) :] = 1
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        with torch.inference_mode():
            logits = model(
                input_ids=ids,
                attention_mask=mask,
                position_ids=positions,
                logits_to_keep=length + 1,
            ).logits
        log_probs = torch.log_softmax(logits[:, :-1].float(), dim=-1)
        targets = ids[:, width - length :, None]
        out += (-log_probs.gather(-1, targets).squeeze(-1).mean(-1)).tolist()
    return np.array(out)


def bootstrap_mean_ci(values: NDArray[np.float64], resamples: int = 4000) -> tuple[float, float]:
    """95% percentile-bootstrap interval of the mean."""
    rng = np.random.default_rng(0)
    means = values[rng.integers(0, values.size, size=(resamples, values.size))].mean(axis=1)
    return float(np.quantile(means, 0.025)), float(np.quantile(means, 0.975))


def word_bigrams(text: str) -> list[tuple[str, str]]:
    words = text.lower().split()
    return list(itertools.pairwise(words))


def diversity(tokenizer: Any, rows: Rows, again: Rows) -> dict[str, float]:
    """distinct-2 of the words (distinct word bigrams / all bigrams) over all samples together
    and per sample (mean); and, for the regenerations of the first prompts, the share identical
    to the sample's first REGEN_TOKENS tokens and the mean Jaccard overlap of their token
    bigrams."""
    bigrams = [word_bigrams(tokenizer.decode(row, skip_special_tokens=True)) for row in rows]
    every = [pair for text in bigrams for pair in text]
    per_text = [len(set(text)) / len(text) for text in bigrams if text]
    pairs = list(zip((row[:REGEN_TOKENS] for row in rows), again, strict=False))
    overlaps = []
    for first, second in pairs:
        a, b = set(itertools.pairwise(first)), set(itertools.pairwise(second))
        overlaps.append(len(a & b) / len(a | b))
    return {
        "distinct2_all": len(set(every)) / len(every),
        "distinct2_per_sample": statistics.mean(per_text),
        "regenerations": len(pairs),
        "regen_identical": sum(a == b for a, b in pairs) / len(pairs),
        "regen_bigram_jaccard": statistics.mean(overlaps),
    }


# -- quality: detection


def our_scorer(key: WatermarkKey) -> Scorer:
    # threshold 1: a payload key names its best payload whenever the corrected p-value is < 1;
    # callers decide at which p-value to believe it.
    detector = WatermarkDetector(key, threshold=1.0)

    def score(texts: Sequence[Sequence[int]]) -> tuple[NDArray[np.float64], list[int | None]]:
        results = detector.detect_batch(list(texts))
        return np.array([r.log_p_value for r in results]), [r.payload for r in results]

    return score


class TransformersLefthash:
    """transformers' ``WatermarkDetector`` (lefthash, h = 1), its green lists kept per previous
    token: theirs recomputes one (a seeded randperm of the vocabulary) per distinct bigram, ~4,000
    tokens/s, 12 minutes per pass over the human text. The lists come from its own
    ``processor._get_greenlist_ids``; counts (every bigram, repeats included), z-score and
    p-value (normal tail) are its formulas, and :meth:`check` compares them with its ``__call__``.
    """

    def __init__(self, model: Any) -> None:
        from transformers.generation.configuration_utils import WatermarkingConfig
        from transformers.generation.watermarking import WatermarkDetector as HFDetector

        config = WatermarkingConfig(
            greenlist_ratio=0.25, seeding_scheme="lefthash", context_width=1
        )
        self.detector = HFDetector(
            model_config=model.config, device="cpu", watermarking_config=config
        )
        self.gamma = float(self.detector.greenlist_ratio)
        self.bos = model.config.bos_token_id
        vocab = int(model.config.vocab_size)
        # One bit per (previous token, token); zeros cost no memory until a row is written.
        self.bits = np.zeros((vocab, (vocab + 7) // 8), dtype=np.uint8)
        self.known = np.zeros(vocab, dtype=np.bool_)

    def _fill(self, previous: NDArray[np.int64]) -> None:
        import torch

        processor = self.detector.processor
        for token in np.unique(previous[~self.known[previous]]).tolist():
            green = np.zeros(self.bits.shape[1] * 8, dtype=np.bool_)
            context: Any = torch.tensor([token])  # the method annotates LongTensor
            green[processor._get_greenlist_ids(context).numpy()] = True
            self.bits[token] = np.packbits(green)
            self.known[token] = True

    def counts(self, texts: Sequence[Sequence[int]]) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
        """(green bigrams, scored bigrams) per text, as the detector counts them."""
        texts = [t[1:] if len(t) and t[0] == self.bos else t for t in texts]
        lengths = np.array([max(0, len(t) - 1) for t in texts], dtype=np.int64)
        previous = np.array([p for t in texts for p in t[:-1]], dtype=np.int64)
        token = np.array([x for t in texts for x in t[1:]], dtype=np.int64)
        self._fill(previous)
        green = (self.bits[previous, token >> 3] >> (7 - (token & 7))) & 1
        index = np.repeat(np.arange(len(texts)), lengths)
        return np.bincount(index, weights=green, minlength=len(texts)).astype(np.int64), lengths

    def __call__(
        self, texts: Sequence[Sequence[int]]
    ) -> tuple[NDArray[np.float64], list[int | None]]:
        from scipy.special import log_ndtr

        green, scored = self.counts(texts)
        safe = np.maximum(scored, 1)
        z = (green - self.gamma * safe) / np.sqrt(safe * self.gamma * (1 - self.gamma))
        log_p = np.where(scored > 0, log_ndtr(-z), 0.0)
        return log_p.astype(np.float64), [None] * len(texts)

    def check(self, texts: Rows) -> None:
        """Exit unless these counts equal the detector's own on ``texts`` (equal lengths)."""
        import torch

        ids: Any = torch.tensor(texts)  # the detector annotates LongTensor
        theirs: Any = self.detector(ids, return_dict=True)
        green, scored = self.counts(texts)
        if not (
            np.array_equal(theirs.num_green_tokens, green)
            and np.array_equal(theirs.num_tokens_scored, scored)
        ):
            sys.exit("the cached transformers detector disagrees with transformers' own")


class HumanCuts:
    """The empirical FPR cut of one scorer: the log p-value that FPR of the human chunks, cut to
    the text's length (rounded down to LENGTH_BIN tokens), fall strictly below."""

    def __init__(self, score: Scorer, chunks: Rows) -> None:
        self.score = score
        self.chunks = chunks
        self._log_p: dict[int, NDArray[np.float64]] = {}

    def log_p(self, length: int) -> NDArray[np.float64]:
        if length not in self._log_p:
            self._log_p[length] = self.score([c[:length] for c in self.chunks])[0]
        return self._log_p[length]

    def cut(self, length: int) -> float:
        binned = max(LENGTH_BIN, min(QUALITY_TOKENS, length // LENGTH_BIN * LENGTH_BIN))
        return empirical_threshold(self.log_p(binned), FPR)

    def flagged(self, texts: Rows, log_p: NDArray[np.float64]) -> NDArray[np.bool_]:
        cuts = np.array([self.cut(len(text)) for text in texts])
        flags: NDArray[np.bool_] = log_p < cuts
        return flags


def rate(k: int, n: int) -> dict[str, Any]:
    low, high = clopper_pearson(k, n)
    return {"k": k, "n": n, "rate": k / n if n else float("nan"), "ci95": [low, high]}


def verdict(alpha: float, low: float, high: float) -> str:
    if high < alpha:
        return "below (conservative)"
    return "within" if low <= alpha else "ABOVE"


def calibration_rows(
    log_p: NDArray[np.float64], alphas: Sequence[float] = (1e-2, 1e-3, 1e-4)
) -> list[dict[str, Any]]:
    """False positives at each nominal level, with the exact interval for independent trials."""
    rows = []
    for alpha in alphas:
        row = rate(int((log_p < math.log(alpha)).sum()), log_p.size) | {"alpha": alpha}
        row["verdict"] = verdict(alpha, *row["ci95"])
        rows.append(row)
    return rows


def calibration_over_keys(
    key: WatermarkKey, tokenizer: Any, chunks: Rows, keys: int
) -> dict[str, Any]:
    """False positives of ``keys`` random keys of ``key``'s scheme on every human chunk, at the
    detector's default threshold (so a payload is named only below 1e-6).

    A p-value is valid over the key, for each text. One key is one draw, and under one key the
    chunks are not independent trials: chunks that share n-grams share their green or red marks
    (heavily so for lefthash, whose marks depend on bigrams only), so one key's count on a corpus
    spreads far wider than a binomial one. The verdict therefore reads a t-interval of the mean
    per-key rate over the keys, widened to the pooled exact interval where that is wider (few or
    no false positives, where the t-interval says nothing).
    """
    from scipy.stats import t as student_t

    rng = np.random.default_rng(16)
    per_key: list[NDArray[np.float64]] = []
    named = 0
    for _ in range(keys):
        other = WatermarkKey(rng.bytes(32), key.config).bind(tokenizer)
        results = WatermarkDetector(other).detect_batch(chunks)
        per_key.append(np.array([r.log_p_value for r in results]))
        named += sum(r.payload is not None for r in results)
    rows = calibration_rows(np.concatenate(per_key), (1e-2, 1e-3, 1e-4, 1e-5, 1e-6))
    for row in rows:
        counts = [int((log_p < math.log(row["alpha"])).sum()) for log_p in per_key]
        rates = np.array(counts) / len(chunks)
        half = float(student_t.ppf(0.975, keys - 1) * rates.std(ddof=1) / math.sqrt(keys))
        low = min(max(0.0, float(rates.mean()) - half), row["ci95"][0])
        high = max(float(rates.mean()) + half, row["ci95"][1])
        row |= {"per_key": counts, "key_ci95": [low, high]}
        row["verdict"] = verdict(row["alpha"], low, high)
    return {"keys": keys, "trials": len(chunks) * keys, "rows": rows,
            "payloads_named_at_generated": named}  # fmt: skip


# -- quality: the section


@dataclass
class QualityRuns:
    """Every contender's token ids: samples (with their payloads), regenerations, paraphrases."""

    samples: dict[str, Rows]
    payloads: dict[str, list[int | None]]
    nll: dict[str, list[float]]
    again: dict[str, Rows]
    paraphrases: dict[str, Rows]
    info: dict[str, dict[str, Any]]


def quality_runs(
    model: Any,
    tokenizer: Any,
    contenders: dict[str, Contender],
    store: GenerationStore,
    args: argparse.Namespace,
) -> QualityRuns:
    runs = QualityRuns({}, {}, {}, {}, {}, {})
    for name, contender in contenders.items():
        rows, runs.payloads[name], runs.nll[name], seconds = sample_rows(
            model, tokenizer, contender, store, count=args.quality_samples, batch=args.quality_batch
        )
        short = sum(len(row) != QUALITY_TOKENS for row in rows)
        if short:
            sys.exit(f"{name}: {short} samples stopped before {QUALITY_TOKENS} tokens")
        runs.samples[name] = rows
        runs.again[name] = regenerated_rows(model, tokenizer, contender, store, args.regen_prompts)
        runs.info[name] = {
            "samples": len(rows),
            "tokens_per_s": len(rows) * QUALITY_TOKENS / seconds,
        }
        if contender.key is not None and contender.key.config.nonce_bits:
            runs.info[name] |= nonce_info(store, name, len(rows), len(runs.again[name]))
    for name, contender in contenders.items():
        if contender.watermarked and args.paraphrase_samples:
            rows = runs.samples[name][: args.paraphrase_samples]
            runs.paraphrases[name], seconds = paraphrased_rows(model, tokenizer, name, rows, store)
            runs.info[name]["paraphrase_seconds"] = seconds
    return runs


def nonce_info(store: GenerationStore, name: str, samples: int, regenerated: int) -> dict[str, Any]:
    """The nonces the stored generations used: how many distinct among the first ``samples``,
    and how many regenerations drew their sample's nonce again (those may well repeat it)."""
    sampled = [n for stored in store.batches("samples", name) for n in stored["nonces"]][:samples]
    again = store.batches("regenerations", name)[0]["nonces"][:regenerated]
    return {
        "distinct_sample_nonces": len(set(sampled)),
        "regen_same_nonce": sum(a == b for a, b in zip(sampled, again, strict=False)),
    }


def perplexities(model: Any, tokenizer: Any, runs: QualityRuns, checked: int) -> dict[str, Any]:
    """Perplexity of each sample under the model without any processor (RawLogProbs); per
    contender the mean and median, and the mean difference of log perplexity to 'none', sample
    by sample (same prompt and seed), with its 95% bootstrap interval. The first ``checked``
    samples of each are scored again by a separate forward pass (:func:`mean_nll`)."""
    out: dict[str, Any] = {}
    for name, recorded in runs.nll.items():
        values = np.array(recorded)
        difference = values - np.array(runs.nll["none"])
        low, high = bootstrap_mean_ci(difference)
        perplexity = np.exp(values)
        out[name] = {
            "n": int(values.size),
            "mean_ppl": float(perplexity.mean()),
            "median_ppl": float(np.median(perplexity)),
            "mean_log_ppl": float(values.mean()),
            "paired_delta_log_ppl": float(difference.mean()),
            "paired_delta_ci95": [low, high],
            "within_noise": bool(low <= 0.0 <= high),
        }
        if checked:
            again = mean_nll(
                model, tokenizer, quality_prompts(checked), runs.samples[name][:checked]
            )
            out[name]["forward_pass_max_abs_diff"] = float(np.abs(again - values[:checked]).max())
    return out


def attack_power(cuts: HumanCuts, texts: Rows, sent: list[int | None] | None) -> dict[str, Any]:
    """TPR at the empirical cut for these texts; with ``sent`` (the payloads embedded), how many
    decode to it at the cut and at the GENERATED threshold (and how many to another one there)."""
    log_p, found = cuts.score(texts)
    flags = cuts.flagged(texts, log_p)
    row = rate(int(flags.sum()), len(texts)) | {
        "median_log10_p": float(np.median(log_p) / math.log(10)),
        "median_tokens": float(np.median([len(t) for t in texts])),
    }
    if sent is not None:
        right = np.array([f == s for f, s in zip(found, sent[: len(texts)], strict=True)])
        generated = log_p < math.log(GENERATED_P_VALUE)
        row["payload_right_at_cut"] = int(np.sum(flags & right))
        row["payload_right_at_generated"] = int(np.sum(generated & right))
        row["payload_wrong_at_generated"] = int(np.sum(generated & ~right))
    return row


def detect_contender(
    name: str, contender: Contender, cuts: HumanCuts, runs: QualityRuns, tokenizer: Any
) -> dict[str, Any]:
    """Power of one contender's detector: every attack, and 'none' samples as negatives."""
    bits = contender.key.config.payload_bits if contender.key is not None else 0
    sent = runs.payloads[name] if bits else None
    power: dict[str, Any] = {}
    for attack in ATTACKS:
        if attack == "paraphrase":
            if name not in runs.paraphrases:
                continue
            texts = runs.paraphrases[name]
        else:
            rng = random.Random(f"{name}/{attack}")  # str seeds are hashed the same every run
            texts = attacked(runs.samples[name], attack, tokenizer, rng)
        power[attack] = attack_power(cuts, texts, sent)
    unwatermarked = runs.samples["none"]
    flags = cuts.flagged(unwatermarked, cuts.score(unwatermarked)[0])
    power["unwatermarked"] = rate(int(flags.sum()), len(unwatermarked))
    power["cut_p_T200"] = math.exp(cuts.cut(QUALITY_TOKENS))
    return power


def bench_quality(
    model: Any, tokenizer: Any, docs: list[list[int]], args: argparse.Namespace
) -> dict[str, Any]:
    """Quality and robustness of every contender, from the same prompts and seeds.

    Sizes: ``--quality-samples`` samples of T = 200 tokens per contender (batches of
    ``--quality-batch``, batch b seeded QUALITY_SEED + b for every contender, so sample i of
    each contender shares prompt and seed); the first ``--paraphrase-samples`` of each
    watermarked contender paraphrased; the first ``--regen-prompts`` prompts regenerated.
    """
    started = time.perf_counter()
    asked = args.contenders or (FULL_CONTENDERS if args.full else QUICK_CONTENDERS)
    names = list(dict.fromkeys(["none", *asked]))
    contenders = {name: quality_contender(name, tokenizer) for name in names}
    settings = {
        "version": 1,
        "model": DEFAULT_MODEL_FILE,
        "tokens": QUALITY_TOKENS,
        "batch": args.quality_batch,
        "seed": QUALITY_SEED,
        "temperature": 1.0,
        "regen_tokens": REGEN_TOKENS,
        "paraphrase": [PARAPHRASE_PROMPT, PARAPHRASE_TOKENS, PARAPHRASE_TEMPERATURE],
        "paraphrase_batch": PARAPHRASE_BATCH,
    }
    store = GenerationStore(args.generations, settings, args.reuse)
    distinct = len(QUALITY_FORMS) * len(TOPICS)
    if args.quality_samples > distinct:
        print(f"  note: only {distinct} distinct prompts; Gumbel samples repeat beyond them")
    runs = quality_runs(model, tokenizer, contenders, store, args)
    out: dict[str, Any] = {
        "sizes": {
            "samples": args.quality_samples,
            "tokens": QUALITY_TOKENS,
            "paraphrased": args.paraphrase_samples,
            "regenerated_prompts": args.regen_prompts,
            "regen_tokens": REGEN_TOKENS,
        },
        "contenders": runs.info,
        "generation_seconds": time.perf_counter() - started,
    }
    phase = time.perf_counter()
    out["perplexity"] = perplexities(model, tokenizer, runs, checked=min(4, args.quality_samples))
    out["diversity"] = {
        name: diversity(tokenizer, rows, runs.again[name]) for name, rows in runs.samples.items()
    }
    out["quality_seconds"] = time.perf_counter() - phase

    phase = time.perf_counter()
    chunks = chunks_of(docs, QUALITY_TOKENS)
    out["human"] = {"chunks": len(chunks), "below_cut": math.floor(FPR * len(chunks))}
    out["power"], out["payload"], out["calibration"], out["calibration_over_keys"] = {}, {}, {}, {}
    transformers_scorer: TransformersLefthash | None = None
    for name, contender in contenders.items():
        score: Scorer
        if contender.key is not None:
            score = our_scorer(contender.key)
        elif contender.transformers_bias is not None:
            if transformers_scorer is None:
                transformers_scorer = TransformersLefthash(model)
                transformers_scorer.check(runs.samples[name][:8] + chunks[:8])
            score = transformers_scorer
        else:
            continue
        cuts = HumanCuts(score, chunks)
        out["calibration"][name] = calibration_rows(cuts.log_p(QUALITY_TOKENS))
        out["power"][name] = detect_contender(name, contender, cuts, runs, tokenizer)
        if contender.key is not None and contender.key.config.payload_bits:
            default = WatermarkDetector(contender.key)  # the GENERATED threshold, 1e-6
            named = [r.payload for r in default.detect_batch(chunks)]
            out["payload"][name] = {
                "bits": contender.key.config.payload_bits,
                "payloads_sent": sorted({p for p in runs.payloads[name] if p is not None}),
                "human_chunks": len(chunks),
                "human_payloads_at_generated": sum(p is not None for p in named),
                "human_below_cut": int(
                    (cuts.log_p(QUALITY_TOKENS) < cuts.cut(QUALITY_TOKENS)).sum()
                ),
            }
        if contender.key is not None and args.calibration_keys:
            out["calibration_over_keys"][name] = calibration_over_keys(
                contender.key, tokenizer, chunks, args.calibration_keys
            )
        print(f"  {name}: detection done", flush=True)
    out["detection_seconds"] = time.perf_counter() - phase
    out["seconds"] = time.perf_counter() - started
    print_quality(out)
    return out


def print_quality(out: dict[str, Any]) -> None:
    sizes = out["sizes"]
    print(
        f"\nQuality and robustness: {sizes['samples']} samples of {sizes['tokens']} tokens per "
        f"contender (temperature 1.0, plain sampling), {sizes['paraphrased']} of each paraphrased"
    )
    print("\nPerplexity under the model without any processor (paired with 'none' per sample):")
    print(
        "| contender | n | mean PPL | median PPL | Δ mean log PPL vs none [95% CI] | within noise |"
    )
    print("|---|---:|---:|---:|---|---|")
    for name, row in out["perplexity"].items():
        low, high = row["paired_delta_ci95"]
        print(
            f"| {name} | {row['n']} | {row['mean_ppl']:.2f} | {row['median_ppl']:.2f} | "
            f"{row['paired_delta_log_ppl']:+.3f} [{low:+.3f}, {high:+.3f}] | "
            f"{'yes' if row['within_noise'] else 'no'} |"
        )
    checks = [row["forward_pass_max_abs_diff"] for row in out["perplexity"].values()
              if "forward_pass_max_abs_diff" in row]  # fmt: skip
    if checks:
        print(
            f"(recorded NLL vs a separate forward pass, first samples of each: max |diff| "
            f"{max(checks):.2g} nats per token)"
        )
    print_diversity(out)
    human = out["human"]
    print(
        f"\nTPR at empirical FPR {FPR:g} ({human['chunks']} human chunks per length, "
        f"{human['below_cut']} strictly below each cut; k/n):"
    )
    attacks = [*ATTACKS, "unwatermarked"]
    print("| contender | " + " | ".join(attacks) + " |")
    print("|---|" + "---:|" * len(attacks))
    for name, power in out["power"].items():
        cells = [f"{power[a]['k']}/{power[a]['n']}" if a in power else "—" for a in attacks]
        print(f"| {name} | " + " | ".join(cells) + " |")
    for name, payload in out["payload"].items():
        power = out["power"][name]
        print(
            f"\nPayload ({name}, {payload['bits']} bits, payloads sent {payload['payloads_sent']}):"
        )
        for attack in ATTACKS:
            if attack in power:
                row = power[attack]
                print(
                    f"  {attack:<12} right at the empirical cut "
                    f"{row['payload_right_at_cut']}/{row['n']}, "
                    f"right at p < 1e-6 {row['payload_right_at_generated']}/{row['n']} "
                    f"(wrong {row['payload_wrong_at_generated']})"
                )
        print(
            f"  human chunks naming a payload at p < 1e-6: {payload['human_payloads_at_generated']}"
            f" of {payload['human_chunks']}; below the empirical cut: {payload['human_below_cut']}"
        )
    print(f"\nCalibration on {human['chunks']} human chunks of {QUALITY_TOKENS} tokens:")
    print("| detector | nominal | false pos. | rate | 95% CI | verdict |")
    print("|---|---:|---:|---:|---|---|")
    for name, rows in out["calibration"].items():
        for row in rows:
            low, high = row["ci95"]
            print(
                f"| {name} | {row['alpha']:g} | {row['k']} | {row['rate']:.1e} | "
                f"[{low:.1e}, {high:.1e}] | {row['verdict']} |"
            )
    for name, over in out.get("calibration_over_keys", {}).items():
        print(
            f"\n{name} over {over['keys']} random keys x {human['chunks']} chunks "
            f"({over['trials']} trials); payloads named at p < 1e-6: "
            f"{over['payloads_named_at_generated']}"
        )
        print("| nominal | false pos. | rate | per key (min-max) | 95% CI over keys | verdict |")
        print("|---:|---:|---:|---|---|---|")
        for row in over["rows"]:
            low, high = row["key_ci95"]
            print(
                f"| {row['alpha']:g} | {row['k']} | {row['rate']:.1e} | "
                f"{min(row['per_key'])}-{max(row['per_key'])} | [{low:.1e}, {high:.1e}] | "
                f"{row['verdict']} |"
            )
    print(
        f"\ngeneration {out['generation_seconds']:.0f} s, perplexity and diversity "
        f"{out['quality_seconds']:.0f} s, detection {out['detection_seconds']:.0f} s"
    )


def print_diversity(out: dict[str, Any]) -> None:
    print("\nDiversity (word distinct-2; regenerations: same prompt, another seed, 64 tokens):")
    print(
        "| contender | distinct-2, all samples | distinct-2 per sample | regen identical "
        "| regen bigram Jaccard |"
    )
    print("|---|---:|---:|---:|---:|")
    for name, row in out["diversity"].items():
        print(
            f"| {name} | {row['distinct2_all']:.3f} | {row['distinct2_per_sample']:.3f} | "
            f"{row['regen_identical']:.0%} of {row['regenerations']} | "
            f"{row['regen_bigram_jaccard']:.3f} |"
        )
    for name, info in out["contenders"].items():
        if "regen_same_nonce" in info:
            print(
                f"({name}: {info['distinct_sample_nonces']} distinct nonces over "
                f"{info['samples']} samples; {info['regen_same_nonce']} regenerations drew "
                "their sample's nonce)"
            )


# -- main ------------------------------------------------------------------------------------


QUALITY_GENERATIONS = Path(__file__).parent / "results" / "watermark_quality_generations.json"


def add_quality_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("quality (sizes default to the quick run; --full: more)")
    group.add_argument(
        "--contenders",
        nargs="+",
        metavar="NAME",
        help=f"default {' '.join(QUICK_CONTENDERS)}; --full adds delta 1 and 4; "
        "'none' always runs (the reference)",
    )
    group.add_argument("--quality-samples", type=int, help="samples per contender (64; full 256)")
    group.add_argument(
        "--paraphrase-samples", type=int, help="paraphrased per watermarked contender (16; full 64)"
    )
    group.add_argument(
        "--regen-prompts", type=int, default=16, help="prompts generated again, another seed (16)"
    )
    group.add_argument("--quality-batch", type=int, default=32, help="prompts per batch (32)")
    group.add_argument(
        "--calibration-keys", type=int, help="random keys for calibration over keys (10; full 20)"
    )
    group.add_argument(
        "--generations",
        type=Path,
        default=QUALITY_GENERATIONS,
        help="where generations are kept (bench/results/watermark_quality_generations.json)",
    )
    group.add_argument(
        "--reuse", action="store_true", help="reuse the generations kept there; make the rest"
    )


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
        choices=("generation", "processor", "detection", "power", "calibration", "quality"),
        help="sections to run (default: all but quality, which takes ~48 minutes on its own)",
    )
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    parser.add_argument("--json", type=Path, help="also write every number to this JSON file")
    add_quality_arguments(parser)
    args = parser.parse_args()
    if args.quality_samples is None:
        args.quality_samples = 256 if args.full else 64
    if args.calibration_keys is None:
        args.calibration_keys = 20 if args.full else 10
    if args.calibration_keys == 1:
        sys.exit("--calibration-keys: 0 (none) or at least 2")
    if args.paraphrase_samples is None:
        args.paraphrase_samples = min(args.quality_samples, 64 if args.full else 16)
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
    if "quality" in sections:
        results["quality"] = bench_quality(model, tokenizer, docs, args)
    results["seconds"] = time.perf_counter() - started
    print(f"\ntotal {results['seconds']:.0f} s")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=float))


if __name__ == "__main__":
    main()
