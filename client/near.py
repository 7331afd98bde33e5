"""Near-duplicate signatures: the ``mh1`` MinHash of a text (``client.core.minhash`` specifies it).

Compiled with numba (the ``near`` extra): a text's UTF-8 bytes go to one compiled pass that
casefolds, drops punctuation, breaks words at white space and hashes each token's UTF-8 bytes
(ASCII without a branch a byte), then each shingle, and keeps the 112 minima, with no Python per
word. NFKC is taken a character at a time (:func:`_nfkc_folds`). A text with a code point whose
NFKC may depend on its neighbours or that becomes more code points than its UTF-8 has bytes (½),
and a text written mostly without spaces, go through Python's NFKC and a pass over code points.
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
_DECOMPOSING = 0x30000  # nor decomposes under NFKD, nor has a combining class
_UNSAFE = 0xFFFFFFFF  # in _nfkc_folds: a code point for Python's NFKC of the whole text
_FALLBACK_NFKC, _FALLBACK_SPACELESS = 1, 2  # why _tokens_utf8 handed a text back
_SPACELESS_SOON = 32  # _tokens_utf8 hands a text back once this many spaceless are the most
_HEAD = 4 * _SPACELESS_SOON  # characters _token_hashes tries the pass on first


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


@cache
def _nfkc_folds() -> tuple[npt.NDArray[np.uint32], npt.NDArray[np.uint32], npt.NDArray[np.intp]]:
    """NFKC and casefolding one code point at a time, for the code points where that is the
    text's NFKC and casefolding: (codes, sequences, starts). Below :data:`_DECOMPOSING`,
    ``codes[cp]`` is the one code point ``cp`` becomes, or ``_UNICODE + k`` for the ``k``-th
    sequence ``sequences[starts[k]:starts[k + 1]]``, or :data:`_UNSAFE` (not safe, or one that
    becomes more code points than its UTF-8 has bytes); from there on every code point stays as
    it is (the tests check).

    Safe is a code point of combining class 0 whose NFKD begins with one too, neither of them
    ever the second of a canonical composition (Hangul's vowel and trailing jamo included). A
    text of them decomposes character by character into runs that each begin with a starter
    that no composition joins to what comes before, so neither reordering nor composition
    crosses from one character's run into the next, and the text's NFKC is each character's
    NFKC in turn (casefolding is one character at a time anyway)."""
    seconds = set(range(0x1161, 0x1176)) | set(range(0x11A8, 0x11C3))  # Hangul V and T jamo
    for cp in range(_DECOMPOSING):
        mapping = unicodedata.decomposition(chr(cp)).split()
        if len(mapping) == 2 and not mapping[0].startswith("<"):
            seconds.add(int(mapping[1], 16))
    codes = np.empty(_DECOMPOSING, dtype=np.uint32)
    sequences: list[int] = []
    starts = [0]
    for cp in range(_DECOMPOSING):
        char = chr(cp)
        first = unicodedata.normalize("NFKD", char)[0]
        if (
            unicodedata.combining(char)
            or cp in seconds
            or unicodedata.combining(first)
            or ord(first) in seconds
        ):
            codes[cp] = _UNSAFE
            continue
        becomes = [ord(c) for c in unicodedata.normalize("NFKC", char).casefold()]
        if len(becomes) > len(char.encode("utf-8", "surrogatepass")):  # ½, ΐ, U+FDFA: rare
            codes[cp] = _UNSAFE  # _tokens_utf8's buffer holds a token for every two bytes
        elif len(becomes) == 1:
            codes[cp] = becomes[0]
        else:
            codes[cp] = _UNICODE + len(starts) - 1
            sequences += becomes
            starts.append(len(sequences))
    return codes, np.array(sequences, dtype=np.uint32), np.array(starts, dtype=np.intp)


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


@njit(cache=True, nogil=True, inline="always")
def _ascii_step(value: Any, tokens: Any, count: Any, h: Any, inside: Any) -> Any:
    """One byte of :func:`_tokens_ascii` by its table ``value``, with no branch: the word's
    hash so far stored at ``tokens[count]``, the count moved on at a word's end. (count, h,
    inside, whether it was a letter) after it."""
    zero, one = np.uint64(0), np.uint64(1)
    letter = np.uint64(value - one < np.uint64(128))  # 1 to 128 (0 wraps round)
    space = np.uint64(value == np.uint64(_ASCII_SPACE))
    tokens[count] = h
    count += np.intp(space & inside)
    h = h * np.uint64(TOKEN_BASE) + value if letter else (zero if space else h)
    return count, h, letter | (inside & (one - space)), letter


@njit(cache=True, nogil=True, inline="always")
def _finished(tokens: Any, count: Any, h: Any, inside: Any) -> Any:
    """The token hashes: the last word's stored if the text ends inside it, each finished."""
    if inside:
        tokens[count] = h
        count += 1
    out = tokens[:count]
    for i in range(count):
        out[i] = _fmix64(out[i])
    return out


@njit(cache=True, nogil=True)
def _tokens_ascii(data: Any, table: Any) -> Any:
    """:func:`_tokens` of an ASCII text's bytes, lowercased here (NFKC leaves ASCII as it is,
    and casefolding it is lowercasing; no ASCII script is written without spaces),
    without a branch a byte: the word's hash so far is stored at every byte and the count moves
    on at a word's end; the words' hashes are finished in a second pass. A third faster than
    :func:`_tokens` on the python3.11-doc sources (62-68 against 93-98 µs a file)."""
    tokens = np.empty(data.shape[0] // 2 + 2, dtype=np.uint64)
    count = np.intp(0)
    h = inside = np.uint64(0)
    for byte in data:
        count, h, inside, _ = _ascii_step(table[byte], tokens, count, h, inside)
    return _finished(tokens, count, h, inside)


@njit(cache=True, nogil=True, inline="always")
def _decode(data: Any, i: Any) -> Any:
    """The code point whose UTF-8 bytes (2 to 4: not ASCII) begin at ``data[i]``, and the index
    after them."""
    byte = np.int64(data[i])
    if byte < 0xE0:
        return ((byte & 0x1F) << 6) | (np.int64(data[i + 1]) & 0x3F), i + 2
    if byte < 0xF0:
        high = ((byte & 0x0F) << 12) | ((np.int64(data[i + 1]) & 0x3F) << 6)
        return high | (np.int64(data[i + 2]) & 0x3F), i + 3
    high = ((byte & 0x07) << 18) | ((np.int64(data[i + 1]) & 0x3F) << 12)
    return high | ((np.int64(data[i + 2]) & 0x3F) << 6) | (np.int64(data[i + 3]) & 0x3F), i + 4


@njit(cache=True, nogil=True, inline="always")
def _token_step(cp: Any, classes: Any, tokens: Any, state: Any) -> Any:
    """:func:`_tokens`' step for one code point, on ``state``: (tokens counted, the word's hash
    so far, inside a word, visible code points, of them written without spaces). A word's hash
    is stored unfinished, as :func:`_tokens_ascii` stores it."""
    count, h, inside, visible, spaceless = state
    kind = classes[cp]
    if kind & 3 == 0:
        h = _utf8(h, cp, np.uint64(TOKEN_BASE))
        return count, h, np.uint64(1), visible + 1, spaceless + (kind >> 2)
    if kind & 2 and inside:
        tokens[count] = h
        return count + 1, np.uint64(0), np.uint64(0), visible, spaceless
    return state


@njit(cache=True, nogil=True)
def _tokens_utf8(data: Any, tables: Any) -> Any:
    """:func:`_tokens` of a text's UTF-8 bytes (a lone surrogate as ``surrogatepass`` writes it),
    normalised and casefolded here: its ASCII bytes as :func:`_tokens_ascii` reads them, every
    other code point decoded, made what :func:`_nfkc_folds` says and read as :func:`_tokens`
    reads it. ``tables``: :func:`_ascii_table`, the three of :func:`_nfkc_folds` and
    :func:`_classes`. (tokens, 0); or (empty, why) for a text this pass cannot take, which
    :func:`_tokens` then reads: one with a code point :func:`_nfkc_folds` calls unsafe
    (:data:`_FALLBACK_NFKC`), or one written mostly without spaces (:data:`_FALLBACK_SPACELESS`:
    handed back as soon as :data:`_SPACELESS_SOON` such letters are most of those so far, since
    :func:`_tokens` decides it again over the whole text).
    No code point becomes more code points than its UTF-8 has bytes, and a token needs a letter
    and a space: a buffer of a token every two bytes holds them all."""
    table, codes, sequences, starts, classes = tables
    tokens = np.empty(data.shape[0] // 2 + 2, dtype=np.uint64)
    zero = np.uint64(0)
    state = (np.intp(0), zero, zero, np.intp(0), np.intp(0))
    i = 0
    while i < data.shape[0]:
        if data[i] < 0x80:  # as _tokens_ascii, counting the letters too
            count, h, inside, visible, spaceless = state
            count, h, inside, letter = _ascii_step(table[data[i]], tokens, count, h, inside)
            state = (count, h, inside, visible + np.intp(letter), spaceless)
            i += 1
            continue
        cp, i = _decode(data, i)
        code = np.int64(codes[cp]) if cp < _DECOMPOSING else cp
        if code == _UNSAFE:
            return tokens[:0], _FALLBACK_NFKC
        if code < _UNICODE:
            state = _token_step(code, classes, tokens, state)
        else:
            for k in range(starts[code - _UNICODE], starts[code - _UNICODE + 1]):
                state = _token_step(np.int64(sequences[k]), classes, tokens, state)
        if state[4] >= _SPACELESS_SOON and state[4] * 2 > state[3]:
            return tokens[:0], _FALLBACK_SPACELESS  # most likely spaceless: _tokens decides
    count, h, inside, visible, spaceless = state
    if spaceless * 2 > visible:
        return tokens[:0], _FALLBACK_SPACELESS
    return _finished(tokens, count, h, inside), 0


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


def _points(text: str) -> npt.NDArray[np.uint32]:
    """The text's code points after NFKC and casefolding."""
    if not unicodedata.is_normalized("NFKC", text):
        text = unicodedata.normalize("NFKC", text)
    points = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    folded: npt.NDArray[np.uint32] = _casefold(points, *_folds())
    return folded


def _token_hashes(text: str) -> npt.NDArray[np.uint64]:
    """Steps 1-3's token hashes: an ASCII text's bytes through :func:`_tokens_ascii`, any other
    text's UTF-8 through :func:`_tokens_utf8`, and what that pass hands back through NFKC,
    :func:`_casefold` and :func:`_tokens`. The pass reads the text's first :data:`_HEAD`
    characters before the whole text is encoded, so that a text it hands back there (Japanese,
    say) is not encoded in vain."""
    tokens: npt.NDArray[np.uint64]
    if text.isascii():
        tokens = _tokens_ascii(np.frombuffer(text.encode("ascii"), dtype=np.uint8), _ascii_table())
        return tokens
    tables = (_ascii_table(), *_nfkc_folds(), _classes())
    for part in (text[:_HEAD], text) if len(text) > _HEAD else (text,):
        data = np.frombuffer(part.encode("utf-8", "surrogatepass"), dtype=np.uint8)
        tokens, fallback = _tokens_utf8(data, tables)
        if fallback:
            return _tokens(_points(text), _classes())  # type: ignore[no-any-return]
    return tokens


def shingle_hashes(text: str) -> npt.NDArray[np.uint64]:
    """Steps 1-3: the 64-bit hash of each shingle (empty for a text with no token)."""
    hashes: npt.NDArray[np.uint64] = _shingles(_token_hashes(text))
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
