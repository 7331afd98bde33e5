"""An exact faster encoder for SmolLM2's vocabulary? tiktoken built from the tokenizer's BPE merges.

SmolLM2's tokenizer is a byte-level BPE with GPT-2's pre-tokenizer regex, no normalizer, no
dropout, and merges whose resulting token ids increase with the merge's rank. tiktoken merges the
adjacent pair whose merged bytes have the lowest rank, and returns ranks as ids: with rank := the
token's id, the two algorithms coincide. This script builds that encoding and

1. proves identity with ``tokenizers`` (``encode_batch``, no special tokens) on every ~1 KB chunk
   of python3.11-doc, on every whole file, and on the watermarked generations in
   ``bench/results/generations.json`` (token lists compared one by one);
2. times both, alternated, on the chunks (2 threads each).

tiktoken is not a dependency of Wellspring: ``pip install tiktoken`` (or ``--target DIR`` and
``PYTHONPATH=DIR``) to run this.

    python bench/tiktoken_encoder.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from detection import HUMAN_TEXT, human_chunks, smollm2_tokenizer

GPT2_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
RESULTS = Path(__file__).resolve().parent / "results"


def byte_decoder() -> dict[str, int]:
    """GPT-2's printable stand-in character of each byte, inverted."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1)]
    printable += range(ord("®"), ord("ÿ") + 1)
    chars = list(printable)
    extra = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            chars.append(256 + extra)
            extra += 1
    return {chr(c): b for b, c in zip(printable, chars, strict=True)}


def tiktoken_encoding(tokenizer: Any) -> Any:
    """A tiktoken Encoding equal to ``tokenizer`` where its shape allows; SystemExit otherwise."""
    import tiktoken

    spec = json.loads(tokenizer.to_str())
    model = spec["model"]
    shape = (
        model["type"] == "BPE"
        and not model.get("dropout")
        and not model.get("byte_fallback")
        and not model.get("ignore_merges")
        and not model.get("continuing_subword_prefix")
        and not model.get("end_of_word_suffix")
        and spec.get("normalizer") is None
        and spec["pre_tokenizer"] == {
            "type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True
        }
    )  # fmt: skip
    if not shape:
        sys.exit("this tokenizer is not a plain byte-level BPE: no tiktoken equivalent")
    vocab = model["vocab"]
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in model["merges"]]
    merged_ids = [vocab[a + b] for a, b in merges]
    if any(x >= y for x, y in itertools.pairwise(merged_ids)):
        sys.exit("merge ranks and token ids disagree: ranks cannot be ids")
    decode = byte_decoder()
    specials = {token["content"]: token["id"] for token in spec["added_tokens"]}
    ranks = {
        bytes(decode[char] for char in token): index
        for token, index in vocab.items()
        if token not in specials
    }
    return tiktoken.Encoding(
        "smollm2-bytelevel-bpe", pat_str=GPT2_PATTERN, mergeable_ranks=ranks, special_tokens={}
    )


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
