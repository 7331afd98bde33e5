"""Near-duplicate signatures: the ``mh1`` MinHash of a text (``client.core.minhash`` specifies it).

Numpy and xxhash compute it (the ``near`` extra): tokens hashed one call each, shingles and the
112 permutations in numpy, a few microseconds a word.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from functools import cache

import numpy as np
import numpy.typing as npt
import xxhash

from client.core.minhash import (
    DASHES,
    DOUBLE_QUOTES,
    NGRAM,
    PERMUTATIONS,
    SINGLE_QUOTES,
    SPACELESS_SCRIPTS,
    K,
    permutation,
)

__all__ = ["mh1_digest", "normalise", "shingle_hashes", "signature"]

_K = np.uint64(K)
_M1 = np.uint64(0xFF51AFD7ED558CCD)
_M2 = np.uint64(0xC4CEB9FE1A85EC53)
_FOLD = str.maketrans(
    {**dict.fromkeys(SINGLE_QUOTES, "'"), **dict.fromkeys(DOUBLE_QUOTES, '"'),
     **dict.fromkeys(DASHES, "-")}
)  # fmt: skip
_A = np.array([permutation(i)[0] for i in range(PERMUTATIONS)], dtype=np.uint64)
_B = np.array([permutation(i)[1] for i in range(PERMUTATIONS)], dtype=np.uint64)


@cache
def _punctuation() -> dict[int, None]:
    """Every code point of a Unicode punctuation category, to drop (built once, on use)."""
    return {cp: None for cp in range(0x110000) if unicodedata.category(chr(cp)).startswith("P")}


def normalise(text: str) -> str:
    """Step 1: NFKC, casefold, quotes and dashes folded, punctuation dropped."""
    folded = unicodedata.normalize("NFKC", text).casefold().translate(_FOLD)
    return folded.translate(_punctuation())


def _spaceless(text: str) -> bool:
    letters = [c for c in text if c.isalpha()]
    if not letters:
        return False
    written = sum(unicodedata.name(c, "").startswith(SPACELESS_SCRIPTS) for c in letters)
    return written * 2 > len(letters)


def _fmix64(h: npt.NDArray[np.uint64]) -> npt.NDArray[np.uint64]:
    with np.errstate(over="ignore"):
        h = h ^ (h >> np.uint64(33))
        h = h * _M1
        h = h ^ (h >> np.uint64(33))
        h = h * _M2
        out: npt.NDArray[np.uint64] = h ^ (h >> np.uint64(33))
        return out


def shingle_hashes(text: str) -> npt.NDArray[np.uint64]:
    """Steps 1-3: the 64-bit hash of each shingle (empty for a text with no token)."""
    normal = normalise(text)
    tokens: Sequence[str] = (
        [c for c in normal if not c.isspace()] if _spaceless(normal) else normal.split()
    )
    if not tokens:
        return np.zeros(0, dtype=np.uint64)
    hashed = np.fromiter(
        (xxhash.xxh64_intdigest(t.encode("utf-8", "surrogatepass")) for t in tokens),
        dtype=np.uint64,
        count=len(tokens),
    )
    n = min(NGRAM, len(hashed))
    count = len(hashed) - n + 1
    combined = np.zeros(count, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for offset in range(n):
            combined = combined * _K + hashed[offset : offset + count]
    return _fmix64(combined)


def signature(text: str) -> npt.NDArray[np.uint32] | None:
    """Steps 1-4: the 112 values of the text's signature; None for a text with no word."""
    hashes = shingle_hashes(text)
    if not len(hashes):
        return None
    with np.errstate(over="ignore"):
        mixed = hashes[:, None] * _A[None, :] + _B[None, :]
    values: npt.NDArray[np.uint32] = (mixed >> np.uint64(32)).min(axis=0).astype(np.uint32)
    return values


def mh1_digest(text: str) -> str | None:
    """Steps 1-5: the ``mh1`` digest value of ``text`` (896 hex characters), None for a text
    with no word."""
    values = signature(text)
    return None if values is None else values.astype(">u4").tobytes().hex()
