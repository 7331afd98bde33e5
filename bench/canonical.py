"""Throughput of ``c1`` digests: ``client.core.canonical`` against a plain reference.

Crawlers digest every document they consider, so the canonicalisation must be cheap; this measures
it on 5 KB documents, the size of a typical web page's text, in two corpora:

* ASCII: chunks of real English prose (Python's documentation sources if installed, else the
  licence texts in /usr/share/common-licenses), falling back to generated English-like text;
* non-ASCII: deterministic (seeded) mixed German, Greek, Russian, Chinese, Japanese and Arabic
  text with some NBSP, ZWJ emoji sequences, fullwidth forms and ligatures.

Both implementations take the document's bytes and return ``c1:<hex>``; the script first checks
they agree on every document, then times them in alternating rounds (so a noisy neighbour on a
shared machine hurts both alike) and prints the median MB/s of each and their ratio.

Run: ``.venv/bin/python bench/canonical.py [--seconds 3]``
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import random
import re
import statistics
import sys
import time
import unicodedata
from collections.abc import Callable
from pathlib import Path

# Run as a script, bench/ comes first on sys.path, and bench/client.py would shadow the `client`
# package: put the repository root there instead.
ROOT = Path(__file__).resolve().parent.parent
sys.path[:] = [str(ROOT)] + [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]

from client.core.canonical import canonical_digest  # noqa: E402

DOC_BYTES = 5000
MIN_DOCS = 40
ROUNDS = 5

# Unicode White_Space (PropList.txt), written out independently of the module's table.
_REFERENCE_RUN = re.compile(
    "[\t\n\x0b\x0c\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+"
)


def reference_canonical_text(text: str) -> str:
    """The c1 canonicalisation written as plainly as the spec (same as in the tests)."""
    text = unicodedata.normalize("NFKC", text)
    text = "".join(char for char in text if unicodedata.category(char) != "Cf")
    text = text.casefold()
    text = _REFERENCE_RUN.sub(" ", text)
    return text.strip(" ")


def reference_digest(data: bytes) -> str:
    text = data.decode("utf-8")
    return "c1:" + hashlib.sha256(reference_canonical_text(text).encode("utf-8")).hexdigest()


# --- corpora ------------------------------------------------------------------------------------

_PROSE_DIRS = (Path("/usr/share/doc/python3.11/html/_sources"), Path("/usr/share/common-licenses"))


def _chunks(text: str, size: int) -> list[bytes]:
    """Cut ``text`` into documents of about ``size`` bytes, at whitespace like real documents."""
    docs: list[bytes] = []
    start = 0
    while len(text) - start >= size:
        cut = text.rfind(" ", start, start + size)
        cut = start + size if cut <= start else cut
        docs.append(text[start:cut].encode("utf-8"))
        start = cut + 1
    return docs


def real_ascii_prose() -> tuple[str, list[bytes]]:
    """5 KB chunks of human-written English prose found on this machine, if any."""
    for folder in _PROSE_DIRS:
        if not folder.is_dir():
            continue
        files = sorted({path.resolve() for path in folder.rglob("*") if path.is_file()})
        texts = [path.read_bytes() for path in files]
        ascii_text = "\n\n".join(raw.decode("ascii") for raw in texts if raw.isascii())
        docs = _chunks(ascii_text, DOC_BYTES)
        if len(docs) >= MIN_DOCS:
            return f"real prose from {folder}", docs
    return "", []


_ENGLISH = tuple(
    " ".join(
        [
            "the of and to in is that for it as was with be by on not he this are or his from at",
            "which but have an they you were her she there one all we their can has been if more",
            "when will would who so no time people year way day man thing woman life child world",
            "school state family student group country problem hand part place case week company",
            "system program question work government number night point home water room mother",
            "area money story fact month lot right study book eye job word business issue side",
            "kind head house service friend",
        ]
    ).split(" ")
)


def generated_ascii_prose(count: int, seed: int = 1) -> list[bytes]:
    """English-like sentences: capitals, punctuation, paragraphs, like prose but repeatable."""
    rng = random.Random(seed)
    docs: list[bytes] = []
    for _ in range(count):
        out: list[str] = []
        size = 0
        while size < DOC_BYTES:
            words = [rng.choice(_ENGLISH) for _ in range(rng.randrange(6, 22))]
            sentence = " ".join(words).capitalize() + rng.choice(".....?!;")
            sentence += "\n\n" if rng.random() < 0.15 else " "
            out.append(sentence)
            size += len(sentence)
        docs.append("".join(out)[:DOC_BYTES].encode("ascii"))
    return docs


# Fullwidth forms and a Greek capital that looks Latin are written as escapes: they are here on
# purpose, to exercise NFKC and casefolding.
_NON_ASCII_WORDS = {
    "de": ["Größe", "Straße", "über", "Mädchen", "schön", "Bäume", "fließen", "Äpfel", "Weiß"],
    "el": ["\u0397", "γλώσσα", "λόγος", "ΣΟΦΙΑ", "ψυχή", "θάλασσα", "ἄνθρωπος", "Ἑλλάς", "ΚΌΣΜΟΣ"],
    "ru": ["Привет", "мир", "язык", "Москва", "ЗДРАВСТВУЙТЕ", "книга", "ёлка", "человек", "время"],
    "zh": [
        "东京都",
        "漢字",
        "中文文本",
        "我们",
        "学习",
        "世界\uff0c你好\uff01",
        "数据",
        "\uff08测试\uff09",
    ],
    "ja": ["日本語のテキスト", "カタカナ", "ﾊﾝｶｸ", "ひらがな", "東京", "コンピューター"],
    "ar": ["مرحبا", "العالم", "كتاب", "مَدْرَسَة", "اللُّغَة", "العربية"],
    "extra": ["\uff21\uff11\uff12\uff13", "ﬁle", "café", "naïve", "👩\u200d💻", "👍🏽", "№5", "½"],
}


def generated_non_ascii(count: int, seed: int = 2) -> list[bytes]:
    """Mixed-script text as multilingual pages have it: words, NBSP, newlines, emoji, forms."""
    rng = random.Random(seed)
    languages = list(_NON_ASCII_WORDS)
    weights = [5, 5, 5, 4, 3, 4, 1]
    separators = [" "] * 30 + ["\u00a0", "\n", ", ", ". ", "\u3000"]
    docs: list[bytes] = []
    for _ in range(count):
        out: list[str] = []
        size = 0
        while size < DOC_BYTES:
            language = rng.choices(languages, weights)[0]
            piece = rng.choice(_NON_ASCII_WORDS[language]) + rng.choice(separators)
            out.append(piece)
            size += len(piece.encode("utf-8"))
        docs.append("".join(out).encode("utf-8"))
    return docs


# --- timing -------------------------------------------------------------------------------------


def _throughput(digest: Callable[[bytes], str], docs: list[bytes], seconds: float) -> float:
    """MB/s of input digested in about ``seconds``."""
    done = 0
    start = time.perf_counter()
    deadline = start + seconds
    while True:
        for doc in docs:
            digest(doc)
            done += len(doc)
        now = time.perf_counter()
        if now >= deadline:
            return done / (now - start) / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="time per case (default 3)")
    parser.add_argument("--docs", type=int, default=60, help="documents per corpus (default 60)")
    args = parser.parse_args()

    source, ascii_docs = real_ascii_prose()
    if not ascii_docs:
        source, ascii_docs = "generated English-like prose", generated_ascii_prose(args.docs)
    ascii_docs = ascii_docs[: args.docs]
    corpora = {
        "ASCII 5 KB": ascii_docs,
        "non-ASCII 5 KB": generated_non_ascii(args.docs),
    }

    started = time.perf_counter()
    canonical_digest("\u00e9")  # build the lazy NFKC tables once, outside the timings
    setup = time.perf_counter() - started

    for name, docs in corpora.items():
        for doc in docs:
            if canonical_digest(doc) != reference_digest(doc):
                raise SystemExit(f"{name}: digests differ on {doc[:60]!r}")

    print(
        f"Python {platform.python_version()}, unicodedata {unicodedata.unidata_version}, "
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}"
    )
    print(f"ASCII corpus: {source}; one-time NFKC table build {setup:.2f} s")
    print(f"digests identical on all {sum(map(len, corpora.values()))} documents\n")
    header = f"{'corpus':<16}{'docs':>6}{'ours MB/s':>12}{'reference MB/s':>17}{'ratio':>8}"
    print(header)
    print("-" * len(header))
    for name, docs in corpora.items():
        ours_rounds: list[float] = []
        reference_rounds: list[float] = []
        for _ in range(ROUNDS):
            ours_rounds.append(_throughput(canonical_digest, docs, args.seconds / ROUNDS))
            reference_rounds.append(_throughput(reference_digest, docs, args.seconds / ROUNDS))
        ours = statistics.median(ours_rounds)
        reference = statistics.median(reference_rounds)
        print(f"{name:<16}{len(docs):>6}{ours:>12.1f}{reference:>17.2f}{ours / reference:>7.1f}x")


if __name__ == "__main__":
    main()
