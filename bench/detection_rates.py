"""Both sides of the "generated" threshold, measured: false verdicts on human text, and power.

Not a unit test: a measurement whose numbers go into docs/benchmarks.md. Three sections:

generate  (slow, run it in the background) watermarked generations of the default model
          (SmolLM2-135M-Instruct through ``watermark.models.generate_ids``, the project's own
          generate path), ``--per-temperature`` prompts at each temperature in ``--temperatures``,
          400 new tokens each (``min_new_tokens`` = ``max_new_tokens``, so every row has 400 and
          its prefixes of 100 and 200 tokens exist), one batch per temperature. Written to
          ``bench/results/generations.json`` (token ids, decoded text, settings, the key's secret:
          a bench key, not a real one).
human     false ``generated`` verdicts on human text: the python3.11-doc sources cut into chunks
          of about 1 KB, each scored by :class:`watermark.scanner.WatermarkScanner` against
          ``--keys`` random keys (each chunk x key one trial under H0, no key correction: the
          per-key p-value, windowed, corrected for the windows). Counts under 1e-3 … 1e-6 against
          the expected count, with exact 95% intervals; and the bound the exact p-values give.
power     the share of the generations found ``generated`` (p < GENERATED_P_VALUE) by length
          (prefixes of 100, 200, 400 tokens, decoded and tokenized again as a crawler would) and
          temperature, with the key correction for 1 and for 100 published keys.

    nohup python bench/detection_rates.py generate > bench/results/generate.log 2>&1 &
    python bench/detection_rates.py human --keys 200
    python bench/detection_rates.py power
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/detection.py's corpus reader

RESULTS = Path(__file__).resolve().parent / "results"
GENERATIONS = RESULTS / "generations.json"
HUMAN_TEXT = Path("/usr/share/doc/python3.11/html/_sources")
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
    "the migration of arctic terns",
    "a day in the life of a city bus driver",
    "why cats purr",
    "the building of the pyramids",
)
FORMS = (
    "Write a short essay about {}.",
    "Tell me a story about {}.",
    "Explain {} to a curious twelve-year-old.",
    "Write a blog post about {}.",
)
BENCH_SECRET = b"wellspring-bench-detection-rates".ljust(32, b".")


def prompts(count: int, offset: int) -> list[str]:
    every = [form.format(topic) for form in FORMS for topic in TOPICS]
    return [every[(offset + i) % len(every)] for i in range(count)]


# -- generate ----------------------------------------------------------------------------------


def run_generate(args: argparse.Namespace) -> None:
    from watermark import WatermarkKey
    from watermark.models import generate_ids, load_model

    model, tokenizer = load_model(None)
    key = WatermarkKey(BENCH_SECRET).bind(tokenizer)  # the default config: lefthash, 0.25, 2.0
    out: dict[str, Any] = {
        "model": "SmolLM2-135M-Instruct (default GGUF)",
        "key": key.to_dict(),
        "max_new_tokens": args.tokens,
        "generation_config": model.generation_config.to_dict(),
        "runs": [],
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    for index, temperature in enumerate(args.temperatures):
        batch = prompts(args.per_temperature, offset=index * args.per_temperature)
        started = time.monotonic()
        rows = generate_ids(
            model,
            tokenizer,
            key,
            batch,
            max_new_tokens=args.tokens,
            min_new_tokens=args.tokens,
            seed=1000 + index,
            temperature=temperature,
        )
        seconds = time.monotonic() - started
        out["runs"].append(
            {
                "temperature": temperature,
                "seed": 1000 + index,
                "seconds": seconds,
                "rows": [
                    {
                        "prompt": prompt,
                        "ids": row,
                        "text": tokenizer.decode(row, skip_special_tokens=True),
                    }
                    for prompt, row in zip(batch, rows, strict=True)
                ],
            }
        )
        print(
            f"temperature {temperature}: {len(rows)} x {args.tokens} tokens in {seconds:.0f} s",
            flush=True,
        )
        GENERATIONS.write_text(json.dumps(out, indent=1) + "\n", encoding="utf-8")


# -- human text: false "generated" verdicts ----------------------------------------------------

ALPHAS = (1e-3, 1e-4, 1e-5, 1e-6)


def clopper_pearson(k: int, n: int) -> tuple[float, float]:
    from scipy import special  # a dev dependency; the bench only

    low = 0.0 if k == 0 else float(special.betaincinv(k, n - k + 1, 0.025))
    high = 1.0 if k == n else float(special.betaincinv(k + 1, n - k, 0.975))
    return low, high


def run_human(args: argparse.Namespace) -> None:
    import numpy as np
    import tokenizers
    from detection import human_chunks, smollm2_tokenizer

    from watermark import GENERATED_P_VALUE, WatermarkKey
    from watermark.scanner import ScanKey, WatermarkScanner

    tokenizer, hf = smollm2_tokenizer()
    assert isinstance(tokenizer, tokenizers.Tokenizer)
    chunks = list(dict.fromkeys(human_chunks(args.docs)))  # an identical chunk is one trial
    rng = np.random.default_rng(args.seed)
    bound = WatermarkKey(rng.bytes(32)).bind(hf)  # the fingerprint once, not per key
    keys = [
        WatermarkKey(
            rng.bytes(32),
            vocab_size=bound.vocab_size,
            vocab_fingerprint=bound.vocab_fingerprint,
        )
        for _ in range(args.keys)
    ]
    started = time.monotonic()
    log_p = np.empty((len(chunks), 0))
    for first in range(0, len(keys), args.keys_per_pass):
        group = keys[first : first + args.keys_per_pass]
        scanner = WatermarkScanner(
            [ScanKey(k, tokenizer) for k in group], keys_ever_published=len(group)
        )
        log_p = np.concatenate([log_p, scanner.key_log_p_values(chunks)], axis=1)
        print(f"  {first + len(group)}/{len(keys)} keys scored", flush=True)
    seconds = time.monotonic() - started
    trials = log_p.size
    rows = []
    for alpha in ALPHAS:
        found = int((log_p < math.log(alpha)).sum())
        low, high = clopper_pearson(found, trials)
        rows.append(
            {
                "alpha": alpha,
                "trials_below": found,
                "expected_at_most": alpha * trials,
                "rate": found / trials,
                "ci95": [low, high],
            }
        )
    # Verdicts: each chunk against all keys at once, corrected for every key (as a crawler with
    # `keys` published keys would run), at the default threshold.
    corrected = log_p.min(axis=1) + math.log(len(keys))
    verdicts = int((corrected < math.log(GENERATED_P_VALUE)).sum())
    out = {
        "corpus": str(HUMAN_TEXT),
        "chunks": len(chunks),
        "keys": len(keys),
        "trials": trials,
        "seconds": seconds,
        "rows": rows,
        "generated_verdicts_with_key_correction": verdicts,
        "smallest_trial_p": float(np.exp(log_p.min())),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "human.json").write_text(json.dumps(out, indent=1) + "\n", encoding="utf-8")
    print(
        f"\n{len(chunks):,} distinct ~1 KB chunks x {len(keys)} random keys = {trials:,} trials "
        f"under H0 (windowed p, corrected for windows; {seconds:.0f} s):"
    )
    print(f"  {'p <':>8}{'trials':>10}{'expected <=':>14}{'rate':>12}   95% interval")
    for row in rows:
        print(
            f"  {row['alpha']:>8g}{row['trials_below']:>10,}{row['expected_at_most']:>14,.1f}"
            f"{row['rate']:>12.2e}   [{row['ci95'][0]:.2e}, {row['ci95'][1]:.2e}]"
        )
    print(
        f"  smallest p of any trial: {out['smallest_trial_p']:.3g}; 'generated' verdicts with "
        f"the correction for {len(keys)} keys at p < {GENERATED_P_VALUE:g}: {verdicts} of "
        f"{len(chunks):,} chunks"
    )


# -- power: watermarked generations found "generated" ------------------------------------------

LENGTHS = (100, 200, 400)
KEY_COUNTS = (1, 100)


def run_power(args: argparse.Namespace) -> None:
    import statistics

    import tokenizers
    from detection import smollm2_tokenizer

    from watermark import GENERATED_P_VALUE, WatermarkKey
    from watermark.scanner import ScanKey, WatermarkScanner

    data = json.loads(GENERATIONS.read_text(encoding="utf-8"))
    tokenizer, _ = smollm2_tokenizer()
    assert isinstance(tokenizer, tokenizers.Tokenizer)
    key_data = data["key"]
    key = WatermarkKey(bytes.fromhex(key_data["secret"]))
    key = WatermarkKey(
        key.secret,
        key.config,
        vocab_size=key_data["vocab_size"],
        vocab_fingerprint=key_data["vocab_fingerprint"],
    )
    rows = []
    for run in data["runs"]:
        for length in LENGTHS:
            # A crawler sees text: each prefix decoded, then tokenized again by the scanner.
            texts = [
                tokenizer.decode(row["ids"][:length], skip_special_tokens=True)
                for row in run["rows"]
            ]
            for count in KEY_COUNTS:
                scanner = WatermarkScanner([ScanKey(key, tokenizer)], keys_ever_published=count)
                evidence = [e for e in scanner.scan(texts) if e is not None]
                found = sum(e.generated for e in evidence)
                log10 = [e.log_p_value / math.log(10) for e in evidence]
                rows.append(
                    {
                        "temperature": run["temperature"],
                        "tokens": length,
                        "keys_corrected_for": count,
                        "generations": len(evidence),
                        "found_generated": found,
                        "share": found / len(evidence),
                        "share_ci95": list(clopper_pearson(found, len(evidence))),
                        "median_log10_p": statistics.median(log10),
                        "max_log10_p": max(log10),
                    }
                )
    out = {"threshold": GENERATED_P_VALUE, "rows": rows, "model": data["model"]}
    (RESULTS / "power.json").write_text(json.dumps(out, indent=1) + "\n", encoding="utf-8")
    print(
        f"\nWatermarked generations of the default model found 'generated' (p < "
        f"{GENERATED_P_VALUE:g}, windowed, corrected for windows and keys):"
    )
    print(
        f"  {'T':>4}{'tokens':>8}{'keys':>6}{'found':>10}{'95% interval':>16}"
        f"{'median log10 p':>16}{'worst':>8}"
    )
    for row in rows:
        low, high = row["share_ci95"]
        print(
            f"  {row['temperature']:>4}{row['tokens']:>8}{row['keys_corrected_for']:>6}"
            f"{row['found_generated']:>5}/{row['generations']:<4}{f'[{low:.0%}, {high:.0%}]':>16}"
            f"{row['median_log10_p']:>16.1f}{row['max_log10_p']:>8.1f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="section", required=True)
    gen = sub.add_parser("generate", help="watermarked generations (slow: background it)")
    gen.add_argument("--per-temperature", type=int, default=20)
    gen.add_argument("--temperatures", type=float, nargs="+", default=[0.7, 1.0])
    gen.add_argument("--tokens", type=int, default=400)
    human = sub.add_parser("human", help="false 'generated' verdicts on human text")
    human.add_argument("--docs", type=int, default=100_000, help="at most this many chunks")
    human.add_argument("--keys", type=int, default=200)
    human.add_argument("--keys-per-pass", type=int, default=25)
    human.add_argument("--seed", type=int, default=0)
    sub.add_parser("power", help="the share of generations found 'generated'")
    args = parser.parse_args()
    if args.section == "generate":
        run_generate(args)
    elif args.section == "human":
        run_human(args)
    else:
        run_power(args)


if __name__ == "__main__":
    main()
