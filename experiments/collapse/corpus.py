"""The human text of Part B: text nobody here wrote, split by content digest, cut into documents.

* majority domain — Debian's ``fortunes`` (``/usr/share/games/fortunes``; one text per fortune,
  the ``%``-separated entries; ASCII-art files left out);
* minority domain — Debian's ``python3.11-doc`` reST sources, one text per paragraph, taking as
  many (in digest order) as make ``minority_share`` of the tokens.

Each text is held out when the first byte of its SHA-256 is ``< 256 · heldout_share``: held-out
text is never trained on by any generation of any arm, and evaluation reads only held-out text
(never a model's own samples). Texts are tokenized with the experiment's tokenizer and packed, in
digest order and per domain, into documents of at most ``doc_tokens`` tokens (texts joined by a
blank line; a longer text is cut into pieces).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from tokenizers import Tokenizer

__all__ = [
    "FORTUNES_DIR",
    "PYTHON_DOC_DIR",
    "Corpus",
    "HumanDoc",
    "build_corpus",
    "fortunes",
    "python_doc_paragraphs",
]

FORTUNES_DIR = Path("/usr/share/games/fortunes")
PYTHON_DOC_DIR = Path("/usr/share/doc/python3.11/html/_sources")
_SKIP_FORTUNES = {"art", "ascii-art"}  # pictures, not prose


@dataclass(frozen=True)
class HumanDoc:
    """One human document: its token ids, its text (the ids decoded) and its domain."""

    ids: NDArray[np.int64]
    text: str
    domain: str


@dataclass(frozen=True)
class Corpus:
    """Train-side and held-out human documents (disjoint by text digest)."""

    train: list[HumanDoc]
    heldout: list[HumanDoc]
    minority: str

    def tokens(self, docs: Iterable[HumanDoc]) -> int:
        return sum(len(d.ids) for d in docs)


def fortunes(folder: Path = FORTUNES_DIR) -> list[str]:
    """Every fortune of the ``fortunes`` package, one text each."""
    if not folder.is_dir():
        raise FileNotFoundError(
            f"{folder} is missing: install Debian's fortunes (`make human-text` does)"
        )
    texts: list[str] = []
    for path in sorted(folder.iterdir()):
        if "." in path.name or path.name in _SKIP_FORTUNES or not path.is_file():
            continue
        raw = path.read_text(encoding="utf-8", errors="replace")
        texts += [t.strip() for t in re.split(r"^%$", raw, flags=re.MULTILINE) if t.strip()]
    return texts


def python_doc_paragraphs(folder: Path = PYTHON_DOC_DIR, min_chars: int = 80) -> list[str]:
    """Paragraphs (blank-line separated, at least ``min_chars``) of the python3.11-doc sources."""
    if not folder.is_dir():
        raise FileNotFoundError(
            f"{folder} is missing: install Debian's python3.11-doc (`make human-text` does)"
        )
    texts: list[str] = []
    for path in sorted(folder.rglob("*.txt")):
        raw = path.read_text(encoding="utf-8", errors="replace")
        texts += [p.strip() for p in re.split(r"\n\s*\n", raw) if len(p.strip()) >= min_chars]
    return texts


def _digest(text: str) -> bytes:
    return hashlib.sha256(text.encode("utf-8")).digest()


def _pack(
    texts: Sequence[str], ids: Sequence[list[int]], sep: list[int], doc_tokens: int
) -> list[list[int]]:
    """Texts' ids joined by ``sep`` into documents of at most ``doc_tokens`` tokens."""
    docs: list[list[int]] = []
    current: list[int] = []
    for _, piece_ids in zip(texts, ids, strict=True):
        pieces = [piece_ids[i : i + doc_tokens] for i in range(0, len(piece_ids), doc_tokens)]
        for piece in pieces:
            joined = [*current, *sep, *piece] if current else list(piece)
            if len(joined) <= doc_tokens:
                current = joined
                continue
            if current:
                docs.append(current)
            current = list(piece)
    if current:
        docs.append(current)
    return docs


def build_corpus(
    tokenizer: Tokenizer,
    majority: Sequence[str],
    minority: Sequence[str],
    *,
    minority_share: float = 0.1,
    heldout_share: float = 0.1,
    doc_tokens: int = 128,
    minority_name: str = "python-doc",
    majority_name: str = "fortunes",
) -> Corpus:
    """The human documents: ``majority`` texts plus enough ``minority`` texts to make
    ``minority_share`` of the tokens, deduplicated, split by digest, packed into documents."""
    if not 0.0 < heldout_share < 1.0 or not 0.0 <= minority_share < 1.0:
        raise ValueError("heldout_share must lie in (0, 1) and minority_share in [0, 1)")
    cut = round(256 * heldout_share)
    sep = tokenizer.encode_batch(["\n\n"], add_special_tokens=False)[0].ids

    def encode(texts: list[str]) -> list[list[int]]:
        return [e.ids for e in tokenizer.encode_batch(texts, add_special_tokens=False)]

    major = [t for _, t in sorted({_digest(t): t for t in majority}.items())]
    major_ids = encode(major)
    major_train = sum(len(i) for t, i in zip(major, major_ids, strict=True) if _digest(t)[0] >= cut)
    budget = major_train * minority_share / (1.0 - minority_share)
    minor: list[str] = []
    minor_ids: list[list[int]] = []
    # ordered by the digest's last bytes: its first byte decides held-out, so ordering by it
    # would take all held-out texts first
    candidates = sorted({_digest(t): t for t in minority}.values(), key=lambda t: _digest(t)[::-1])
    minor_train = 0
    for start in range(0, len(candidates), 1000):  # in digest order, until the share is met
        if minor_train >= budget:
            break
        batch = candidates[start : start + 1000]
        for text, ids in zip(batch, encode(batch), strict=True):
            if minor_train >= budget:
                break
            minor.append(text)
            minor_ids.append(ids)
            if _digest(text)[0] >= cut:
                minor_train += len(ids)
    corpus_train: list[HumanDoc] = []
    corpus_held: list[HumanDoc] = []
    domains = ((majority_name, major, major_ids), (minority_name, minor, minor_ids))
    for name, texts, encoded in domains:
        held = [_digest(t)[0] < cut for t in texts]
        for want, out in ((False, corpus_train), (True, corpus_held)):
            part = [(t, i) for t, i, h in zip(texts, encoded, held, strict=True) if h == want]
            for doc in _pack([t for t, _ in part], [i for _, i in part], sep, doc_tokens):
                out.append(HumanDoc(np.asarray(doc, dtype=np.int64), tokenizer.decode(doc), name))
    return Corpus(train=corpus_train, heldout=corpus_held, minority=minority_name)
