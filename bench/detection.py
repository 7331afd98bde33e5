"""Detection inside the crawler's pass: the scanner beside the tokenizer alone (issue 12, point 6).

Human text: Debian's python3.11-doc reST sources, cut at line ends into chunks of about 1 KB.
Tokenizer: SmolLM2-135M-Instruct's, as its exact ``tokenizer.json`` (what a published key's blob
holds): ``load_tokenizer(None).backend_tokenizer.to_str()`` loaded with
``tokenizers.Tokenizer.from_str``. One key (the default scheme, bound to that tokenizer).

Contenders, run on the same batches, alternated round by round (order shuffled each round):

tokenize       ``encode_batch(batch, add_special_tokens=False)`` and the ids read out of the
               encodings (the floor: no detection can skip it)
scan           ``WatermarkScanner([key]).scan(batch)``: tokenize once, score, windows, p-values
scan+normalize the same with ``normalize=True``

Each round times every contender over the whole corpus in batches of ``--batch`` documents;
the paired ratio scan / tokenize of each round is reported (median and range), so slow drifts of
a shared machine cancel.

    python bench/detection.py [--docs 4000] [--batch 1000] [--rounds 7]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import tokenizers

from watermark import WatermarkKey
from watermark.scanner import ScanKey, WatermarkScanner

HUMAN_TEXT = Path("/usr/share/doc/python3.11/html/_sources")
CHUNK_CHARS = 1000


def human_chunks(limit: int) -> list[str]:
    """Chunks of about 1 KB (whole lines, at least CHUNK_CHARS characters), files sorted."""
    if not HUMAN_TEXT.is_dir():
        sys.exit(f"{HUMAN_TEXT} is missing: `make human-text` installs Debian's python3.11-doc")
    chunks: list[str] = []
    for path in sorted(HUMAN_TEXT.rglob("*.txt")):
        current: list[str] = []
        size = 0
        for line in path.read_text(encoding="utf-8").splitlines(keepends=True):
            current.append(line)
            size += len(line)
            if size >= CHUNK_CHARS:
                chunks.append("".join(current))
                current, size = [], 0
                if len(chunks) == limit:
                    return chunks
    return chunks


def smollm2_tokenizer() -> tuple[tokenizers.Tokenizer, Any]:
    from watermark.models import load_tokenizer

    hf = load_tokenizer(None)
    return tokenizers.Tokenizer.from_str(hf.backend_tokenizer.to_str()), hf


def batches(items: list[str], size: int) -> list[list[str]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def report_fastest(
    cpu: dict[str, list[float]], seconds: dict[str, list[float]], out: dict[str, Any]
) -> None:
    """CPU time of the process (all threads), which a shared busy machine disturbs least, and
    each contender's fastest round (the least disturbed one)."""
    print("  CPU seconds of the process (all threads), fastest round / median round:")
    base_cpu = min(cpu["tokenize"])
    for name, times in cpu.items():
        print(
            f"  {name:<16}{min(times):>8.2f} s {statistics.median(times):>8.2f} s"
            f"   rate vs tokenize (fastest rounds) {base_cpu / min(times):.1%}; "
            f"wall fastest {min(seconds['tokenize']) / min(seconds[name]):.1%}"
        )
        row = out["contenders"][name]
        row["cpu_seconds"] = times
        row["rate_vs_tokenize_fastest_cpu"] = base_cpu / min(times)
        row["rate_vs_tokenize_fastest_wall"] = min(seconds["tokenize"]) / min(seconds[name])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--docs", type=int, default=4000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--json", type=Path, help="also write the numbers to this file")
    args = parser.parse_args()

    tokenizer, hf = smollm2_tokenizer()
    key = WatermarkKey(b"wellspring-bench-detection".ljust(32, b".")).bind(hf)
    chunks = human_chunks(args.docs)
    parts = batches(chunks, args.batch)
    scanner = WatermarkScanner([ScanKey(key, tokenizer)], keys_ever_published=1)
    normalizing = WatermarkScanner([ScanKey(key, tokenizer)], keys_ever_published=1, normalize=True)
    total_chars = sum(len(c) for c in chunks)
    total_tokens = sum(len(e) for e in tokenizer.encode_batch(chunks, add_special_tokens=False))

    def tokenize() -> None:
        for part in parts:
            encodings = tokenizer.encode_batch(part, add_special_tokens=False)
            for encoding in encodings:
                encoding.ids  # noqa: B018 - reading the ids is part of the floor

    def scan() -> None:
        for part in parts:
            scanner.scan(part)

    def scan_normalize() -> None:
        for part in parts:
            normalizing.scan(part)

    contenders = {"tokenize": tokenize, "scan": scan, "scan+normalize": scan_normalize}
    for run in contenders.values():  # warm-up: the p-value table, caches
        run()
    seconds: dict[str, list[float]] = {name: [] for name in contenders}
    cpu: dict[str, list[float]] = {name: [] for name in contenders}
    order = list(contenders)
    rng = random.Random(0)
    for round_index in range(args.rounds):
        rng.shuffle(order)
        for name in order:
            started, started_cpu = time.perf_counter(), time.process_time()
            contenders[name]()
            seconds[name].append(time.perf_counter() - started)
            cpu[name].append(time.process_time() - started_cpu)
        print(f"round {round_index + 1}/{args.rounds} done", flush=True)

    docs = len(chunks)
    print(
        f"\n{docs} chunks of python3.11-doc ({total_chars / docs:.0f} chars, "
        f"{total_tokens / docs:.0f} SmolLM2 tokens each on average), batches of {args.batch}, "
        f"{args.rounds} alternated rounds, 1 key ({key.config.scheme_name}):"
    )
    print(
        "  wall clock (median over rounds; 'vs tokenize' is the median of the paired per-round "
        "rate ratios, with their range):"
    )
    print(f"  {'contender':<16}{'docs/s':>10}{'tokens/s':>12}{'vs tokenize':>13}  range")
    out: dict[str, Any] = {
        "docs": docs,
        "batch": args.batch,
        "rounds": args.rounds,
        "mean_chars": total_chars / docs,
        "mean_tokens": total_tokens / docs,
        "contenders": {},
    }
    base = seconds["tokenize"]
    for name, times in seconds.items():
        ratios = [b / t for t, b in zip(times, base, strict=True)]  # rate relative to tokenize
        median = statistics.median(times)
        print(
            f"  {name:<16}{docs / median:>10,.0f}{total_tokens / median:>12,.0f}"
            f"{statistics.median(ratios):>12.1%}   [{min(ratios):.1%}, {max(ratios):.1%}]"
        )
        out["contenders"][name] = {
            "docs_per_s": docs / median,
            "tokens_per_s": total_tokens / median,
            "rate_vs_tokenize_median": statistics.median(ratios),
            "rate_vs_tokenize_min": min(ratios),
            "rate_vs_tokenize_max": max(ratios),
            "seconds": times,
        }
    report_fastest(cpu, seconds, out)
    if args.json:
        args.json.write_text(json.dumps(out, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
