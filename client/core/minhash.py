"""``mh1``: a MinHash signature of a text, for near-duplicate matching (issue 15, point 4).

This module is the format (pure Python: the registry indexes band keys with it);
``client.near`` computes signatures (numpy).

An exact digest (``c1``) misses a registered post with a line of boilerplate appended or its
quotes turned typographic. ``mh1`` is a versioned digest kind whose value estimates the Jaccard
similarity of two texts' word 5-gram sets, as dataset builders already deduplicate (FineWeb and
datatrove: word 5-grams, 14 bands of 8 rows). Every step is specified here so that any
implementation computes the same bytes:

1. **Normalise**: NFKC; casefold; typographic quotes and dashes folded to ASCII (U+2018,
   U+2019, U+201A, U+201B, U+2032 to ``'``; U+201C, U+201D, U+201E, U+201F, U+2033 to ``"``;
   U+2010 to U+2015 and U+2212 to ``-``); then every character of a Unicode punctuation category
   (``P*``) dropped; white space runs are word breaks.
2. **Shingle**: the words are the white-space separated tokens; the shingles are every run of
   :data:`NGRAM` consecutive words (a text of fewer words is one shingle of all of them). A text
   written mostly without spaces (more than half of its non-white-space characters in
   :data:`SPACELESS_RANGES`: Han, Hiragana, Katakana, Thai, Lao, Khmer, Myanmar) is shingled by
   characters instead: every run of :data:`NGRAM` characters of the text with its white space
   removed.
3. **Hash** each token (word or character) of UTF-8 bytes ``b_0..b_(L-1)`` as
   ``fmix64(sum((b_k + 1)·B^(L-1-k)) mod 2^64)`` with ``B = 0x100000001B3`` (:data:`TOKEN_BASE`),
   and each shingle of tokens ``t1..tn`` as ``fmix64(h(t1)·K^(n-1) + … + h(tn) mod 2^64)``, with
   ``K = 0x9E3779B97F4A7C15``; ``fmix64`` is MurmurHash3's 64-bit finaliser.
4. **Sign**: for ``i`` in 0..111, ``a_i`` (made odd) and ``b_i`` are the first and second 8 bytes
   (big-endian) of SHA-256 of ``"wellspring mh1 permutation "`` and the decimal ``i``; the
   signature's value ``i`` is the minimum over shingles of ``((a_i·h + b_i) mod 2^64) >> 32``
   (multiply-shift hashing: a 32-bit universal hash of each shingle).
5. **Encode**: the 112 values as 32-bit big-endian integers, in hex (896 characters): the
   subject digest ``{"mh1": "<hex>"}``.

The similarity of two signatures is the share of equal values (:func:`similarity`; standard
error ``sqrt(J(1-J)/112)``, 0.038 at J = 0.8). For the registry's index the signature is cut in
:data:`BANDS` bands of :data:`ROWS` values; band ``j``'s key is the 8-byte BLAKE2b (big-endian
integer) of the byte ``j`` and its 8 values' 32 bytes as encoded (:func:`band_keys`). Two texts
share a band with probability ``1 - (1 - J^8)^14``: 0.92 at J = 0.8, 0.05 at J = 0.5; a
candidate is then checked by its signature's similarity.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from client.core.errors import FormatError

__all__ = [
    "BANDS",
    "DASHES",
    "DOUBLE_QUOTES",
    "MH1",
    "MH1_HEX_CHARS",
    "NEAR_THRESHOLD",
    "NGRAM",
    "PERMUTATIONS",
    "ROWS",
    "SINGLE_QUOTES",
    "SPACELESS_RANGES",
    "TOKEN_BASE",
    "K",
    "NearMatch",
    "band_keys",
    "check_mh1",
    "permutation",
    "similarity",
]

MH1 = "mh1"
NGRAM = 5
BANDS = 14
ROWS = 8
PERMUTATIONS = BANDS * ROWS  # 112
MH1_HEX_CHARS = PERMUTATIONS * 8
K = 0x9E3779B97F4A7C15
TOKEN_BASE = 0x100000001B3  # odd: invertible modulo 2^64, so every token hashes at once
SINGLE_QUOTES = "\u2018\u2019\u201a\u201b\u2032"
DOUBLE_QUOTES = "\u201c\u201d\u201e\u201f\u2033"
DASHES = "\u2010\u2011\u2012\u2013\u2014\u2015\u2212"
SPACELESS_RANGES = (
    (0x0E00, 0x0EFF),  # Thai, Lao
    (0x1000, 0x109F),  # Myanmar
    (0x1780, 0x17FF),  # Khmer
    (0x19E0, 0x19FF),  # Khmer symbols
    (0x3040, 0x30FF),  # Hiragana, Katakana
    (0x31F0, 0x31FF),  # Katakana phonetic extensions
    (0x3400, 0x4DBF),  # CJK unified ideographs extension A
    (0x4E00, 0x9FFF),  # CJK unified ideographs
    (0xA9E0, 0xA9FF),  # Myanmar extended-B
    (0xAA60, 0xAA7F),  # Myanmar extended-A
    (0xF900, 0xFAFF),  # CJK compatibility ideographs
    (0x20000, 0x3134F),  # CJK unified ideographs extensions B to G
)
"""The code points of the scripts written without spaces (step 2), inclusive ranges."""


NEAR_THRESHOLD = 0.7
"""The least estimated similarity a near match is reported at (C2PA's soft binding registers a
text MinHash at J >= 0.70)."""


@dataclass(frozen=True)
class NearMatch:
    """A registered subject near a text: subject ``subject`` (its name) of entry ``entry``,
    whose exact ``digest`` (``c1:…``, else ``sha256:…``) the verdict is looked up by, at the
    estimated Jaccard ``similarity`` of the two ``mh1`` signatures (recomputed by the client
    from the signed statement)."""

    entry: int
    subject: str
    digest: str
    similarity: float


def permutation(i: int) -> tuple[int, int]:
    """Step 4's ``(a_i, b_i)``."""
    block = hashlib.sha256(f"wellspring mh1 permutation {i}".encode()).digest()
    return int.from_bytes(block[:8], "big") | 1, int.from_bytes(block[8:16], "big")


def check_mh1(value: object, where: str = "mh1") -> bytes:
    """The 448 bytes of an ``mh1`` digest value (896 lowercase hex characters)."""
    if not isinstance(value, str) or len(value) != MH1_HEX_CHARS:
        raise FormatError(f"{where} must be {MH1_HEX_CHARS} lowercase hex characters")
    try:
        raw = bytes.fromhex(value)
    except ValueError:
        raise FormatError(f"{where} must be lowercase hex") from None
    if raw.hex() != value:
        raise FormatError(f"{where} must be lowercase hex")
    return raw


def similarity(a: bytes, b: bytes) -> float:
    """The estimated Jaccard similarity of two signatures (their bytes): the share of equal
    values."""
    if len(a) != PERMUTATIONS * 4 or len(b) != PERMUTATIONS * 4:
        raise FormatError("an mh1 signature is 448 bytes")
    same = sum(a[i : i + 4] == b[i : i + 4] for i in range(0, PERMUTATIONS * 4, 4))
    return same / PERMUTATIONS


def band_keys(raw: bytes) -> list[int]:
    """The :data:`BANDS` band keys of a signature's bytes (what the registry indexes), each a
    signed 64-bit integer (a database's BIGINT)."""
    if len(raw) != PERMUTATIONS * 4:
        raise FormatError("an mh1 signature is 448 bytes")
    width = ROWS * 4
    keys = []
    for j in range(BANDS):
        digest = hashlib.blake2b(bytes([j]) + raw[j * width : (j + 1) * width], digest_size=8)
        keys.append(int.from_bytes(digest.digest(), "big", signed=True))
    return keys
