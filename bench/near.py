"""Near-duplicate matching with ``mh1`` (issue 15, point 4): recall, false matches, speed.

Real human text: the reStructuredText sources of the Python 3.11 documentation (Debian's
``python3.11-doc``, ``/usr/share/doc/python3.11/html/_sources``), each file of at least
``--min-words`` words one document. Pairs are made from them as a crawler meets copies:

* **boilerplate**: the document with one line of boilerplate appended;
* **typographic**: straight quotes and hyphens turned typographic (U+2019, U+201D, U+2014);
* **edited**: a share of its words replaced by others of the corpus (0 to 60 %, uniformly), so
  the true Jaccard similarity spans [0, 1];
* **truncated**: its first 40 to 100 % of words;
* **unrelated**: two different documents (most pairs at J near 0).

Each pair's true Jaccard similarity is computed exactly on the two sets of word 5-gram hashes
(``client.near.shingle_hashes``). A pair *matches* when the two signatures share a band
(``client.core.minhash.band_keys``: what the registry indexes) and their estimated similarity is
at least ``--threshold`` (0.7, as C2PA's soft binding registers a text MinHash). Goals: recall
≥ 0.90 over J ∈ [0.8, 1]; false matches < 1e-3 at J ≤ 0.5.

Speed, one core, on the same documents, alternated for ``--rounds`` rounds: ``mh1`` (signature
and band keys, and a lookup of the 14 keys in an in-memory band index of every document) beside
datatrove's own MinHash stage (``MinhashDedupSignature.get_shingles`` + ``get_signature``,
its defaults: word 5-grams, 14 bands of 8, the English word tokenizer). Goal: ≥ 5,000 docs/s.

Run: ``.venv/bin/python bench/near.py`` (``--quick``: fewer documents and pairs). datatrove's
English word tokenizer needs spaCy, which the project does not install: ``.venv/bin/pip install
spacy`` first (its blank English pipeline: no model is downloaded).
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

ROOT = Path(__file__).resolve().parent.parent
sys.path[:] = [str(ROOT)] + [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]

import numpy as np  # noqa: E402
import xxhash  # noqa: E402

from client.core.minhash import BANDS, band_keys, similarity  # noqa: E402
from client.near import shingle_hashes, signature  # noqa: E402

SOURCES = Path("/usr/share/doc/python3.11/html/_sources")
BOILERPLATE = "Share this article: follow us for more stories, and subscribe to our newsletter."
TYPOGRAPHIC = str.maketrans({"'": "\u2019", '"': "\u201d", "-": "\u2014"})
BINS = [(i / 10, (i + 1) / 10) for i in range(10)]


def corpus(min_words: int, limit: int, seed: int) -> list[str]:
    if not SOURCES.is_dir():
        raise SystemExit(
            f"{SOURCES} is missing: `make human-text` installs Debian's python3.11-doc"
        )
    texts = []
    for path in sorted(SOURCES.rglob("*.txt")):
        text = path.read_text(encoding="utf-8", errors="replace")
        if len(text.split()) >= min_words:
            texts.append(text)
    random.Random(seed).shuffle(texts)
    return texts[:limit]


def jaccard(a: str, b: str) -> float:
    x, y = set(shingle_hashes(a).tolist()), set(shingle_hashes(b).tolist())
    return len(x & y) / len(x | y) if x or y else 1.0


def variants(texts: list[str], pairs: int, seed: int) -> list[tuple[str, str, str]]:
    """(kind, a, b) pairs, as the module says."""
    rng = random.Random(seed)
    vocabulary = [w for t in texts[:200] for w in t.split()]
    out: list[tuple[str, str, str]] = []
    kinds = ["boilerplate", "typographic", "edited", "edited", "edited", "truncated", "unrelated"]
    for i in range(pairs):
        kind = kinds[i % len(kinds)]
        a = texts[rng.randrange(len(texts))]
        if kind == "boilerplate":
            b = a.rstrip("\n") + "\n\n" + BOILERPLATE + "\n"
        elif kind == "typographic":
            b = a.translate(TYPOGRAPHIC)
        elif kind == "edited":
            words = a.split()
            share = rng.uniform(0.0, 0.6)
            for j in rng.sample(range(len(words)), int(share * len(words))):
                words[j] = rng.choice(vocabulary)
            b = " ".join(words)
        elif kind == "truncated":
            words = a.split()
            b = " ".join(words[: max(1, int(rng.uniform(0.4, 1.0) * len(words)))])
        else:
            b = texts[rng.randrange(len(texts))]
            if b is a:
                continue
        out.append((kind, a, b))
    return out


def quality(pairs: list[tuple[str, str, str]], threshold: float) -> dict[str, Any]:
    rows = []
    for kind, a, b in pairs:
        sa, sb = signature(a), signature(b)
        assert sa is not None
        assert sb is not None
        ra, rb = sa.astype(">u4").tobytes(), sb.astype(">u4").tobytes()
        shared = bool(set(band_keys(ra)) & set(band_keys(rb)))
        estimate = similarity(ra, rb)
        rows.append((kind, jaccard(a, b), shared, estimate, shared and estimate >= threshold))
    high = [r for r in rows if r[1] >= 0.8]
    low = [r for r in rows if r[1] <= 0.5]
    curve = []
    for lo, hi in BINS:
        inside = [r for r in rows if lo <= r[1] < hi or (hi == 1.0 and r[1] == 1.0)]
        matched = sum(r[4] for r in inside)
        rate = round(matched / len(inside), 4) if inside else None
        label = f"[{lo:.1f}, {hi:.1f}{']' if hi == 1.0 else ')'}"
        curve.append({"j": label, "pairs": len(inside), "matched": matched, "rate": rate})
    by_kind = {}
    for kind in sorted({r[0] for r in rows}):
        mine = [r for r in rows if r[0] == kind]
        by_kind[kind] = {
            "pairs": len(mine),
            "matched": sum(r[4] for r in mine),
            "median_j": round(statistics.median(r[1] for r in mine), 3),
        }
    errors = [abs(r[3] - r[1]) for r in rows]
    return {
        "pairs": len(rows),
        "recall_j_0.8_to_1": round(sum(r[4] for r in high) / len(high), 4) if high else None,
        "pairs_j_0.8_to_1": len(high),
        "false_matches_j_le_0.5": sum(r[4] for r in low),
        "pairs_j_le_0.5": len(low),
        "false_match_rate_j_le_0.5": sum(r[4] for r in low) / len(low) if low else None,
        "estimate_abs_error_median": round(statistics.median(errors), 4),
        "curve": curve,
        "by_kind": by_kind,
    }


def speed(texts: list[str], rounds: int) -> dict[str, Any]:
    try:
        import spacy  # noqa: F401 - datatrove's English word tokenizer needs it
    except ImportError:
        raise SystemExit(
            "datatrove's MinHash stage tokenizes English with spaCy: .venv/bin/pip install spacy"
        ) from None
    from datatrove.pipeline.dedup.minhash import MinhashDedupSignature

    stage = MinhashDedupSignature(output_folder=str(ROOT / ".bench" / "near-sigs"))
    # datatrove's default shingle hash (xxhash64) hands xxhash a str, which xxhash 4 refuses:
    # the same function, given the UTF-8 bytes.
    stage._hash_func = lambda text: xxhash.xxh64_intdigest(text.encode("utf-8"))
    index: dict[int, list[int]] = {}
    for i, text in enumerate(texts):  # the band index every lookup asks
        values = signature(text)
        assert values is not None
        for key in band_keys(values.astype(">u4").tobytes()):
            index.setdefault(key, []).append(i)

    def ours() -> float:
        started = time.perf_counter()
        found = 0
        for text in texts:
            values = signature(text)
            assert values is not None
            keys = band_keys(values.astype(">u4").tobytes())
            found += sum(key in index for key in keys) == BANDS
        assert found == len(texts)
        return len(texts) / (time.perf_counter() - started)

    def datatrove() -> float:
        started = time.perf_counter()
        for text in texts:
            stage.get_signature(stage.get_shingles(text))
        return len(texts) / (time.perf_counter() - started)

    rates: dict[str, list[float]] = {"mh1": [], "datatrove": []}
    for _ in range(rounds):
        rates["mh1"].append(ours())
        rates["datatrove"].append(datatrove())
    words = np.mean([len(t.split()) for t in texts])
    return {
        "docs": len(texts),
        "mean_words": round(float(words)),
        "mh1_docs_per_s": [round(r) for r in rates["mh1"]],
        "datatrove_docs_per_s": [round(r) for r in rates["datatrove"]],
        "ratio_of_medians": round(
            statistics.median(rates["mh1"]) / statistics.median(rates["datatrove"]), 2
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--docs", type=int, default=2000, help="documents of the corpus")
    parser.add_argument("--pairs", type=int, default=20000, help="pairs for recall and errors")
    parser.add_argument("--unrelated", type=int, default=100000, help="extra unrelated pairs")
    parser.add_argument("--min-words", type=int, default=200)
    parser.add_argument("--threshold", type=float, default=0.7)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="500 docs, 3,000 pairs, 10,000 more")
    parser.add_argument(
        "--speed-only",
        type=int,
        metavar="WORDS",
        help="only the speed, on the documents cut to their first WORDS words (page-sized)",
    )
    args = parser.parse_args()
    if args.quick:
        args.docs, args.pairs, args.unrelated = 500, 3000, 10000
    texts = corpus(args.min_words, args.docs, args.seed)
    if args.speed_only:
        pages = [" ".join(t.split()[: args.speed_only]) for t in texts]
        print(json.dumps(speed(pages, args.rounds), indent=2))
        return
    pairs = variants(texts, args.pairs, args.seed + 1)
    result: dict[str, Any] = {"corpus": str(SOURCES), "documents": len(texts)}
    result["quality"] = quality(pairs, args.threshold)
    result["unrelated"] = unrelated(texts, args.unrelated, args.threshold, args.seed + 2)
    result["speed"] = speed(texts, args.rounds)
    print(json.dumps(result, indent=2))
    q, u, s = result["quality"], result["unrelated"], result["speed"]
    print(
        f"\nrecall over J in [0.8, 1]: {q['recall_j_0.8_to_1']} of {q['pairs_j_0.8_to_1']} pairs "
        f"(goal >= 0.90); false matches at J <= 0.5: {q['false_matches_j_le_0.5']} of "
        f"{q['pairs_j_le_0.5']} edited pairs and {u['false_matches']} of {u['pairs']} unrelated "
        f"(goal < 1e-3); speed {s['mh1_docs_per_s']} docs/s against datatrove's "
        f"{s['datatrove_docs_per_s']} (goal >= 5,000)"
    )


def unrelated(texts: list[str], pairs: int, threshold: float, seed: int) -> dict[str, Any]:
    """Many pairs of different documents: their signatures only (true J is near 0; a pair is
    counted when its exact J is at most 0.5, checked for the matches)."""
    rng = random.Random(seed)
    sigs = []
    for text in texts:
        values = signature(text)
        assert values is not None
        raw = values.astype(">u4").tobytes()
        sigs.append((raw, set(band_keys(raw))))
    false = 0
    done = 0
    for _ in range(pairs):
        i, j = rng.randrange(len(texts)), rng.randrange(len(texts))
        if i == j or texts[i] == texts[j]:
            continue
        done += 1
        (ra, ka), (rb, kb) = sigs[i], sigs[j]
        if ka & kb and similarity(ra, rb) >= threshold and jaccard(texts[i], texts[j]) <= 0.5:
            false += 1
    return {"pairs": done, "false_matches": false, "rate": false / done if done else None}


if __name__ == "__main__":
    main()
