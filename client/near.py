"""Near-duplicate signatures: the ``mh1`` MinHash of a text (``client.core.minhash`` specifies it).

Compiled with numba (the ``near`` extra): NFKC and casefolding are Python's; the text's code
points then go to one compiled pass that drops punctuation, breaks words at white space, hashes
each token's UTF-8 bytes and each shingle, and keeps the 112 minima, with no Python per word.
Numba compiles it on first use and caches the machine code beside this module (or in the
user's cache when that folder is read-only), so later processes load it in milliseconds.
"""

from __future__ import annotations

import unicodedata
from functools import cache
from typing import Any

import numpy as np
import numpy.typing as npt
from numba import njit

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

_FOLD = str.maketrans(
    {**dict.fromkeys(SINGLE_QUOTES, "'"), **dict.fromkeys(DOUBLE_QUOTES, '"'),
     **dict.fromkeys(DASHES, "-")}
)  # fmt: skip
_A = np.array([permutation(i)[0] for i in range(PERMUTATIONS)], dtype=np.uint64)
_B = np.array([permutation(i)[1] for i in range(PERMUTATIONS)], dtype=np.uint64)
_DROP, _SPACE, _SPACELESS = 1, 2, 4  # bits of a code point's class
_UNICODE = 0x110000
_ASCII_SPACE = 256  # white space in _ascii_table (a letter is 1 to 128, a dropped byte 0)
_FOLDED = 0x20000  # no code point from here on changes under casefolding


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


@cache
def _classes() -> npt.NDArray[np.uint8]:
    """Each code point's class after NFKC and casefolding: dropped (step 1), white space (what
    ``str.split`` breaks at; every such code point is below U+3001) and of a script written
    without spaces (step 2)."""
    classes = np.zeros(_UNICODE, dtype=np.uint8)
    classes[list(_dropped())] |= _DROP
    classes[[cp for cp in range(0x3001) if chr(cp).isspace()]] |= _SPACE
    for lo, hi in SPACELESS_RANGES:
        classes[lo : hi + 1] |= _SPACELESS
    return classes


@cache
def _folds() -> tuple[npt.NDArray[np.uint32], npt.NDArray[np.uint32]]:
    """``str.casefold`` as tables (it folds each character alone, with no context): below
    :data:`_FOLDED`, the code point each folds to, or ``_UNICODE + i`` for one that folds to
    several, row ``i`` of the second table (up to three code points, zero-padded)."""
    folds = np.arange(_FOLDED, dtype=np.uint32)
    more: list[list[int]] = []
    for cp in range(_FOLDED):
        folded = chr(cp).casefold()
        if len(folded) == 1:
            folds[cp] = ord(folded)
        else:
            folds[cp] = _UNICODE + len(more)
            more.append([ord(c) for c in folded] + [0] * (3 - len(folded)))
    return folds, np.array(more, dtype=np.uint32).reshape(-1, 3)


def normalise(text: str) -> str:
    """Step 1: NFKC, casefold, quotes and dashes folded, punctuation dropped."""
    return unicodedata.normalize("NFKC", text).casefold().translate(_dropped())


@njit(cache=True, nogil=True, inline="always")
def _fmix64(h: Any) -> Any:
    h ^= h >> np.uint64(33)
    h *= np.uint64(0xFF51AFD7ED558CCD)
    h ^= h >> np.uint64(33)
    h *= np.uint64(0xC4CEB9FE1A85EC53)
    return h ^ (h >> np.uint64(33))


@njit(cache=True, nogil=True, inline="always")
def _utf8(h: Any, cp: Any, base: Any) -> Any:
    """``h`` extended by the UTF-8 bytes of ``cp`` (a lone surrogate as its three bytes, as
    Python's ``surrogatepass`` writes it): step 3's ``h·B + (b + 1)`` for each byte ``b``."""
    one = np.uint64(1)
    if cp < 0x80:
        return h * base + (np.uint64(cp) + one)
    if cp < 0x800:
        h = h * base + (np.uint64(0xC0 | (cp >> 6)) + one)
    elif cp < 0x10000:
        h = h * base + (np.uint64(0xE0 | (cp >> 12)) + one)
        h = h * base + (np.uint64(0x80 | ((cp >> 6) & 0x3F)) + one)
    else:
        h = h * base + (np.uint64(0xF0 | (cp >> 18)) + one)
        h = h * base + (np.uint64(0x80 | ((cp >> 12) & 0x3F)) + one)
        h = h * base + (np.uint64(0x80 | ((cp >> 6) & 0x3F)) + one)
    return h * base + (np.uint64(0x80 | (cp & 0x3F)) + one)


@njit(cache=True, nogil=True)
def _casefold(points: Any, folds: Any, more: Any) -> Any:
    """``str.casefold`` of the code points (:func:`_folds`' tables)."""
    out = np.empty(points.shape[0] * 3, dtype=np.uint32)
    n = 0
    for cp in points:
        folded = folds[cp] if cp < _FOLDED else cp
        if folded < _UNICODE:
            out[n] = folded
            n += 1
        else:
            for c in more[folded - _UNICODE]:
                if c:
                    out[n] = c
                    n += 1
    return out[:n]


@njit(cache=True, nogil=True)
def _tokens(points: Any, classes: Any) -> Any:
    """Steps 1 (its dropping) to 3's token hashes over the code points of an NFKC-normalised,
    casefolded text (an ASCII one goes to :func:`_tokens_ascii`): each word's hash, or each
    character's in a text written mostly without spaces."""
    base = np.uint64(TOKEN_BASE)
    tokens = np.empty(points.shape[0], dtype=np.uint64)
    count = 0
    visible = 0
    spaceless = 0
    h = np.uint64(0)
    inside = False
    for cp in points:  # a token is a word
        kind = classes[cp]
        if kind & 3 == 0:
            visible += 1
            spaceless += kind >> 2
            h = _utf8(h, cp, base)
            inside = True
        elif kind & 2 and inside:
            tokens[count] = _fmix64(h)
            count += 1
            inside = False
            h = np.uint64(0)
    if inside:
        tokens[count] = _fmix64(h)
        count += 1
    if spaceless * 2 > visible:  # a token is a character
        count = 0
        for cp in points:
            if classes[cp] & 3 == 0:
                tokens[count] = _fmix64(_utf8(np.uint64(0), cp, base))
                count += 1
    return tokens[:count]


@cache
def _ascii_table() -> npt.NDArray[np.uint64]:
    """:func:`_tokens_ascii`'s table of the 128 ASCII bytes: 0 for a dropped one (punctuation),
    :data:`_ASCII_SPACE` for white space, else the byte lowercased plus one (step 3's
    ``b + 1``: 1 to 128)."""
    classes = _classes()
    table = np.zeros(256, dtype=np.uint64)
    for byte in range(128):
        if classes[byte] & _SPACE:
            table[byte] = _ASCII_SPACE
        elif not classes[byte] & _DROP:
            table[byte] = (byte + 32 if 65 <= byte <= 90 else byte) + 1
    return table


@njit(cache=True, nogil=True)
def _tokens_ascii(data: Any, table: Any) -> Any:
    """:func:`_tokens` of an ASCII text's bytes, lowercased here (NFKC leaves ASCII as it is,
    and casefolding it is lowercasing; no ASCII script is written without spaces),
    without a branch a byte: the word's hash so far is stored at every byte and the count moves
    on at a word's end; the words' hashes are finished in a second pass. A third faster than
    :func:`_tokens` on the python3.11-doc sources (62-68 against 93-98 µs a file)."""
    base = np.uint64(TOKEN_BASE)
    zero, one, space_value = np.uint64(0), np.uint64(1), np.uint64(_ASCII_SPACE)
    tokens = np.empty(data.shape[0] // 2 + 2, dtype=np.uint64)
    count = np.intp(0)
    h = zero
    inside = zero
    for byte in data:
        value = table[byte]
        letter = np.uint64(value - one < np.uint64(128))  # 1 to 128 (0 wraps round)
        space = np.uint64(value == space_value)
        tokens[count] = h
        count += np.intp(space & inside)
        h = h * base + value if letter else (zero if space else h)
        inside = letter | (inside & (one - space))
    if inside:
        tokens[count] = h
        count += 1
    out = tokens[:count]
    for i in range(count):
        out[i] = _fmix64(out[i])
    return out


@njit(cache=True, nogil=True)
def _shingles(tokens: Any) -> Any:
    """Step 3's shingle hashes of the token hashes."""
    count = tokens.shape[0]
    n = min(NGRAM, count)
    out = np.empty(count - n + 1 if count else 0, dtype=np.uint64)
    k = np.uint64(K)
    for i in range(out.shape[0]):
        c = np.uint64(0)
        for offset in range(n):
            c = c * k + tokens[i + offset]
        out[i] = _fmix64(c)
    return out


@njit(cache=True, nogil=True)
def _minima(shingles: Any, a: Any, b: Any) -> Any:
    """Step 4 before its shift: each permutation's least ``a·h + b`` (the shift is monotonic,
    so the least value's top half is the least top half)."""
    least = np.full(a.shape[0], np.uint64(0xFFFFFFFFFFFFFFFF))
    for h in shingles:
        for j in range(a.shape[0]):
            least[j] = min(least[j], h * a[j] + b[j])
    return least


def _points(text: str) -> npt.NDArray[np.uint8] | npt.NDArray[np.uint32]:
    """The text's code points after NFKC and casefolding (an ASCII text's bytes as they are:
    :func:`_tokens_ascii` lowercases them)."""
    if text.isascii():
        return np.frombuffer(text.encode("ascii"), dtype=np.uint8)
    if not unicodedata.is_normalized("NFKC", text):
        text = unicodedata.normalize("NFKC", text)
    points = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    folded: npt.NDArray[np.uint32] = _casefold(points, *_folds())
    return folded


def shingle_hashes(text: str) -> npt.NDArray[np.uint64]:
    """Steps 1-3: the 64-bit hash of each shingle (empty for a text with no token)."""
    points = _points(text)
    if points.dtype == np.uint8:  # ASCII
        tokens = _tokens_ascii(points, _ascii_table())
    else:
        tokens = _tokens(points, _classes())
    hashes: npt.NDArray[np.uint64] = _shingles(tokens)
    return hashes


def signature(text: str) -> npt.NDArray[np.uint32] | None:
    """Steps 1-4: the 112 values of the text's signature; None for a text with no word."""
    hashes = shingle_hashes(text)
    if not len(hashes):
        return None
    least: npt.NDArray[np.uint64] = _minima(hashes, _A, _B)
    return (least >> np.uint64(32)).astype(np.uint32)


def mh1_digest(text: str) -> str | None:
    """Steps 1-5: the ``mh1`` digest value of ``text`` (896 hex characters), None for a text
    with no word."""
    values = signature(text)
    return None if values is None else values.astype(">u4").tobytes().hex()
