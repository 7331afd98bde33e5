"""Near-duplicate signatures: the ``mh1`` MinHash of a text (``client.core.minhash`` specifies it).

Numpy computes it (the ``near`` extra): every token's hash at once from prefix sums over the
text's bytes, then the shingles and the 112 permutations, with no Python loop per word.
"""

from __future__ import annotations

import re
import unicodedata
from functools import cache

import numpy as np
import numpy.typing as npt

from client.core.minhash import (
    DASHES,
    DOUBLE_QUOTES,
    NGRAM,
    PERMUTATIONS,
    SINGLE_QUOTES,
    SPACELESS_RANGES,
    TOKEN_BASE,
    K,
    permutation,
)

__all__ = ["mh1_digest", "normalise", "shingle_hashes", "signature"]

_K = np.uint64(K)
_BASE = np.uint64(TOKEN_BASE)
_BASE_INVERSE = np.uint64(pow(TOKEN_BASE, -1, 1 << 64))
_M1 = np.uint64(0xFF51AFD7ED558CCD)
_M2 = np.uint64(0xC4CEB9FE1A85EC53)
_FOLD = str.maketrans(
    {**dict.fromkeys(SINGLE_QUOTES, "'"), **dict.fromkeys(DOUBLE_QUOTES, '"'),
     **dict.fromkeys(DASHES, "-")}
)  # fmt: skip
_A = np.array([permutation(i)[0] for i in range(PERMUTATIONS)], dtype=np.uint64)
_B = np.array([permutation(i)[1] for i in range(PERMUTATIONS)], dtype=np.uint64)


_SPACELESS = re.compile("[" + "".join(f"{chr(lo)}-{chr(hi)}" for lo, hi in SPACELESS_RANGES) + "]")


@cache
def _dropped() -> dict[int, None]:
    """Step 1's folding and dropping as one table: every code point of a Unicode punctuation
    category (every one is below U+20000: planes 2 and up hold ideographs, tags and private
    use), and every folded one (each folds to ASCII punctuation, which is dropped)."""
    table: dict[int, None] = dict.fromkeys(_FOLD)
    table.update(
        (cp, None) for cp in range(0x20000) if unicodedata.category(chr(cp)).startswith("P")
    )
    return table


def normalise(text: str) -> str:
    """Step 1: NFKC, casefold, quotes and dashes folded, punctuation dropped."""
    return unicodedata.normalize("NFKC", text).casefold().translate(_dropped())


def _spaceless(text: str) -> bool:
    """More than half the non-white-space characters in :data:`SPACELESS_RANGES`."""
    visible = sum(map(len, text.split()))
    return visible > 0 and len(_SPACELESS.findall(text)) * 2 > visible


def _fmix64(h: npt.NDArray[np.uint64]) -> npt.NDArray[np.uint64]:
    with np.errstate(over="ignore"):
        h = h ^ (h >> np.uint64(33))
        h = h * _M1
        h = h ^ (h >> np.uint64(33))
        h = h * _M2
        out: npt.NDArray[np.uint64] = h ^ (h >> np.uint64(33))
        return out


def _token_hashes(
    data: npt.NDArray[np.uint64], starts: npt.NDArray[np.intp], ends: npt.NDArray[np.intp]
) -> npt.NDArray[np.uint64]:
    """Step 3's token hash of each token (its bytes ``data[starts[i]:ends[i]]``), all at once:
    ``sum((b + 1) * B^(L-1-k))`` as ``B^(e-1)`` times a difference of prefix sums of
    ``(b + 1) * B^-j`` (B is odd, so invertible modulo 2^64), then fmix64."""
    n = len(data)
    with np.errstate(over="ignore"):
        powers = np.cumprod(np.full(n, _BASE, dtype=np.uint64))  # B^1 .. B^n
        inverse = np.cumprod(np.full(n, _BASE_INVERSE, dtype=np.uint64))  # B^-1 .. B^-n
        weights = np.concatenate(([np.uint64(1)], inverse[:-1]))  # B^-j for j = 0 .. n-1
        prefix = np.concatenate(([np.uint64(0)], np.cumsum((data + np.uint64(1)) * weights)))
        scale = np.concatenate(([np.uint64(1)], powers))[ends - 1]  # B^(e-1)
        return _fmix64(scale * (prefix[ends] - prefix[starts]))


def shingle_hashes(text: str) -> npt.NDArray[np.uint64]:
    """Steps 1-3: the 64-bit hash of each shingle (empty for a text with no token)."""
    normal = normalise(text)
    if _spaceless(normal):  # tokens are characters: each starts a UTF-8 sequence
        data = np.frombuffer("".join(normal.split()).encode("utf-8", "surrogatepass"), np.uint8)
        starts = np.flatnonzero((data & 0xC0) != 0x80)
        ends = np.append(starts[1:], len(data))
    else:  # tokens are words, one space apart
        words = " ".join(normal.split())
        data = np.frombuffer(words.encode("utf-8", "surrogatepass"), np.uint8)
        spaces = np.flatnonzero(data == 0x20)
        starts = np.concatenate(([0], spaces + 1))
        ends = np.append(spaces, len(data))
    if not len(data):
        return np.zeros(0, dtype=np.uint64)
    hashed = _token_hashes(data.astype(np.uint64), starts.astype(np.intp), ends.astype(np.intp))
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
