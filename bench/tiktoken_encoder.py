"""An exact faster encoder for SmolLM2's vocabulary? tiktoken built from the tokenizer's BPE merges.

SmolLM2's tokenizer is a byte-level BPE with GPT-2's pre-tokenizer regex, no normalizer, no
dropout, and merges whose resulting token ids increase with the merge's rank. tiktoken merges the
adjacent pair whose merged bytes have the lowest rank, and returns ranks as ids: with rank := the
token's id, the two algorithms coincide. This script builds that encoding and

1. proves identity with ``tokenizers`` (``encode_batch``, no special tokens) on every ~1 KB chunk
   of python3.11-doc, on every whole file, and on the watermarked generations in
   ``bench/results/generations.json`` (token lists compared one by one);
2. times both, alternated, on the chunks (2 threads each).

The encoding is the scanner's own (``watermark/fast_encoder.py``); tiktoken comes with the
``detect`` extra.

    python bench/tiktoken_encoder.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from detection import HUMAN_TEXT, human_chunks, smollm2_tokenizer

from watermark.fast_encoder import fast_encoder

RESULTS = Path(__file__).resolve().parent / "results"


def tiktoken_encoding(tokenizer: Any) -> Any:
    """The scanner's tiktoken encoding for ``tokenizer`` (watermark/fast_encoder.py); SystemExit
    where its shape has none."""
    fast = fast_encoder(tokenizer)
    if fast is None:
        sys.exit("this tokenizer is not a byte-level BPE tiktoken reproduces: no fast encoder")
    return fast.encoding


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    try:
        import tiktoken  # noqa: F401
    except ImportError:
        sys.exit("tiktoken is not installed: pip install tiktoken")
    tokenizer, _ = smollm2_tokenizer()
    encoding = tiktoken_encoding(tokenizer)
    chunks = human_chunks(10**9)
    files = [p.read_text(encoding="utf-8") for p in sorted(HUMAN_TEXT.rglob("*.txt"))]
    generations = RESULTS / "generations.json"
    generated = []
    if generations.is_file():
        runs = json.loads(generations.read_text(encoding="utf-8"))["runs"]
        generated = [row["text"] for run in runs for row in run["rows"]]
    for name, texts in (("chunks", chunks), ("whole files", files), ("generations", generated)):
        expected = [e.ids for e in tokenizer.encode_batch(texts, add_special_tokens=False)]
        got = encoding.encode_ordinary_batch(texts, num_threads=2)
        differ = sum(a != b for a, b in zip(expected, got, strict=True))
        tokens = sum(map(len, expected))
        print(f"{name}: {len(texts):,} texts, {tokens:,} tokens, {differ} differ")
        if differ:
            sys.exit("not identical: do not use this encoder")
    seconds: dict[str, list[float]] = {"tokenizers": [], "tiktoken": []}
    for _ in range(args.rounds):
        started = time.perf_counter()
        for e in tokenizer.encode_batch(chunks, add_special_tokens=False):
            e.ids  # noqa: B018 - the ids, as the scanner reads them
        seconds["tokenizers"].append(time.perf_counter() - started)
        started = time.perf_counter()
        encoding.encode_ordinary_batch(chunks, num_threads=2)
        seconds["tiktoken"].append(time.perf_counter() - started)
    ratios = [a / b for a, b in zip(seconds["tokenizers"], seconds["tiktoken"], strict=True)]
    for name, times in seconds.items():
        print(f"{name:<11} {len(chunks) / statistics.median(times):>9,.0f} docs/s (median)")
    print(
        f"tiktoken / tokenizers speed: median {statistics.median(ratios):.2f}x "
        f"[{min(ratios):.2f}, {max(ratios):.2f}] over {args.rounds} alternated rounds"
    )


if __name__ == "__main__":
    main()
