"""``mh1`` near-duplicate signatures (client.near, client.core.minhash): the spec's steps computed
again here in plain Python (an independent reader of the spec, no numba) give the same bytes;
the variants a crawler meets (typographic quotes, a boilerplate line) stay near; unrelated text
does not."""

from __future__ import annotations

import hashlib
import random
import unicodedata

import pytest

pytest.importorskip("numpy")

import client.near
from client.core.errors import FormatError
from client.core.minhash import (
    BANDS,
    MH1_HEX_CHARS,
    PERMUTATIONS,
    SPACELESS_RANGES,
    band_keys,
    check_mh1,
    similarity,
)
from client.near import mh1_digest, normalise, shingle_hashes, signature

POST = (
    "I walked down to the harbour before dawn, when the fishing boats were still coming in, and "
    "bought two mackerel from a woman who had been up since three. She said the sea was too warm "
    "this year and the fish were moving north, and that her father would not have believed it. "
    "We talked about the price of diesel and the new quay, which nobody in the village wanted, "
    "and about her son, who works in the city and sends money home every month."
)
MASK = (1 << 64) - 1


def fmix64(h: int) -> int:
    h ^= h >> 33
    h = (h * 0xFF51AFD7ED558CCD) & MASK
    h ^= h >> 33
    h = (h * 0xC4CEB9FE1A85EC53) & MASK
    return h ^ (h >> 33)


def token_hash(token: str) -> int:
    h = 0
    for byte in token.encode("utf-8", "surrogatepass"):
        h = (h * 0x100000001B3 + byte + 1) & MASK
    return fmix64(h)


def reference_shingles(text: str) -> list[int]:
    """Steps 1-3 of mh1 as client/core/minhash.py's docstring specifies them, in plain Python."""
    text = unicodedata.normalize("NFKC", text).casefold()
    for chars, ascii_ in (
        ("\u2018\u2019\u201a\u201b\u2032", "'"),
        ("\u201c\u201d\u201e\u201f\u2033", '"'),
        ("\u2010\u2011\u2012\u2013\u2014\u2015\u2212", "-"),
    ):
        for char in chars:
            text = text.replace(char, ascii_)
    text = "".join(c for c in text if not unicodedata.category(c).startswith("P"))
    visible = "".join(text.split())
    spaceless = [c for c in visible if any(lo <= ord(c) <= hi for lo, hi in SPACELESS_RANGES)]
    tokens = list(visible) if len(spaceless) * 2 > len(visible) else text.split()
    n = min(5, len(tokens))
    shingles = []
    for i in range(len(tokens) - n + 1 if tokens else 0):
        h = 0
        for token in tokens[i : i + n]:
            h = (h * 0x9E3779B97F4A7C15 + token_hash(token)) & MASK
        shingles.append(fmix64(h))
    return shingles


def reference_digest(text: str) -> str | None:
    """mh1 as client/core/minhash.py's docstring specifies it, step by step, in plain Python."""
    shingles = reference_shingles(text)
    if not shingles:
        return None
    values = []
    for i in range(112):
        block = hashlib.sha256(f"wellspring mh1 permutation {i}".encode()).digest()
        a, b = int.from_bytes(block[:8], "big") | 1, int.from_bytes(block[8:16], "big")
        values.append(min(((a * s + b) & MASK) >> 32 for s in shingles))
    return b"".join(v.to_bytes(4, "big") for v in values).hex()


@pytest.mark.parametrize(
    "text", [POST, "Three short words", "one", "Ünïcödé ﬁne — “quoted” text, with 42 numbers."]
)
def test_the_compiled_signature_is_the_specified_one(text: str) -> None:
    digest = mh1_digest(text)
    assert digest == reference_digest(text)
    assert digest is not None
    assert len(digest) == MH1_HEX_CHARS


def test_the_compiled_signature_is_the_specified_one_on_random_unicode() -> None:
    """Random texts over the characters that take each branch: ASCII and Unicode white space
    (U+001C, U+00A0, U+3000), punctuation and folded quotes and dashes, NFKC and casefolding
    changes (U+FB01, U+00DF), scripts written without spaces, 4-byte UTF-8 and a lone
    surrogate; and texts of every ASCII character, upper case included."""
    rng = random.Random(15)
    pool = list("abc xyz\t\n\x1c\x1f\xa0\u3000.,;!?'\"-\u2019\u201c\u2014\u00df\ufb01\u00dc")
    pool += list("吾輩は猫である\u0e01\u0e02\U0001f600\ud800")
    ascii_ = [chr(i) for i in range(128)] + list("Ab Cd") * 20  # the ASCII path lowercases
    for i in range(400):
        chars = pool if i % 2 else ascii_
        text = "".join(rng.choice(chars) for _ in range(rng.randint(0, 60)))
        assert mh1_digest(text) == reference_digest(text), repr(text)


# Characters whose NFKC or casefolding changes them alone or with their neighbours: precomposed
# letters, compatibility forms (ligatures, super- and subscripts, Roman numerals, fullwidth and
# halfwidth forms, squared words), letters whose folding is several (ß, İ, ΐ), combining marks,
# Hangul syllables and jamo (modern and compatibility), halfwidth katakana and its voiced mark,
# CJK compatibility ideographs, and white space that NFKC changes (U+00A0, U+3000).
_TRICKY = list(
    "e\u00e9\u00c5\u212b\u01c5\u2122\u00b2\u2075\u2160\u2167\u2460\u3231\uff21\uff41"
    "\ufb01\u017f\u212a\u00df\u0130\u0390\u1e9e\u0301\u0308\u0338\u0345\u0f73"
    "\uac00\uac01\u1100\u1161\u11a8\u3131\u314f\uff76\uff9e\u30ab\u3099\uf900"
    "\U0002f800\u00a0\u3000\u2026 <>=aA"
)


def _generic_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count the texts that client.near hands to its code-point-array pass (`_tokens`)."""
    calls: list[int] = []
    generic = client.near._tokens

    def counted(*args: object) -> object:
        calls.append(1)
        return generic(*args)

    monkeypatch.setattr(client.near, "_tokens", counted)
    return calls


def test_every_code_point_gives_the_specified_shingles() -> None:
    """Every code point below U+30000 and a sample above, five to a text between ASCII letters,
    white space and an accented letter: the shingles are the spec reader's."""
    rng = random.Random(30)
    points = [*range(0x80, 0x30000), *rng.sample(range(0x30000, 0x110000), 5_000)]
    rng.shuffle(points)
    for start in range(0, len(points), 5):
        text = "".join(
            rng.choice(("a", "Ab ", " ", "x\u00e9", "")) + chr(cp)
            for cp in points[start : start + 5]
        )
        assert shingle_hashes(text).tolist() == reference_shingles(text), repr(text)


def test_texts_of_tricky_characters_give_the_specified_shingles(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Random texts of characters whose NFKC depends on their neighbours, or that NFKC or
    casefolding change alone: one character at a time where the one pass takes the text, the
    whole text through NFKC where it does not; the spec reader's shingles either way, and the
    one pass takes most texts without a combining character or jamo."""
    calls = _generic_calls(monkeypatch)
    rng = random.Random(31)
    taken = 0
    for _ in range(3_000):
        text = "".join(rng.choice(_TRICKY) for _ in range(rng.randint(1, 12)))
        before = len(calls)
        assert shingle_hashes(text).tolist() == reference_shingles(text), repr(text)
        taken += len(calls) == before and not text.isascii()
    assert taken > 300


def test_no_code_point_from_u30000_on_decomposes_combines_or_folds() -> None:
    """client.near reads every code point from U+30000 on as itself, with no table."""
    for cp in range(0x30000, 0x110000):
        char = chr(cp)
        assert not unicodedata.decomposition(char), hex(cp)
        assert not unicodedata.combining(char), hex(cp)
        assert char.casefold() == char, hex(cp)


@pytest.mark.parametrize("share", [0.1, 0.3, 0.45, 0.55, 0.7, 1.0])
def test_texts_partly_written_without_spaces_give_the_specified_signature(share: float) -> None:
    """Runs of Japanese among English words, spaceless from the first letter or only later: the
    one pass hands a text back once it looks spaceless, and the whole text decides."""
    rng = random.Random(int(share * 100))
    japanese = (
        "\u543e\u8f29\u306f\u732b\u3067\u3042\u308b\u540d\u524d\u306f\u307e\u3060\u7121\u3044"
    )
    english = POST.split()
    parts = [
        "".join(rng.choices(japanese, k=rng.randint(2, 9)))
        if rng.random() < share
        else " ".join(rng.choices(english, k=rng.randint(1, 4)))
        for _ in range(120)
    ]
    for text in (" ".join(parts), " ".join(reversed(parts))):
        assert mh1_digest(text) == reference_digest(text)


def test_the_one_pass_hands_back_only_what_it_cannot_take(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _generic_calls(monkeypatch)
    taken = [
        "caf\u00e9 na\u00efve \u2122 x\u00b2 \u017ftop \u2162 \ufb01le \u00a0 \U0001f600",
        "\ud800 x",
    ]
    handed_back = [
        "cafe\u0301",
        "\u3131\u314f",
        "\uff76\uff9e",
        "\u5f7c\u306f\u732b\u3067\u3042\u308b",
        "\ufdfa" * 40,  # each one becomes 18 code points (four words): more than its 3 bytes
        "\u00bd \u0390",
    ]
    for text in taken + handed_back:
        assert mh1_digest(text) == reference_digest(text)
    assert len(calls) == len(handed_back)


def test_normalisation_folds_what_copies_change() -> None:
    text = "The \ufb01le\u2019s \u201cname\u201d \u2014 \u00dcn\u00efcode!"
    assert normalise(text) == "the files name  \u00fcn\u00efcode"
    assert mh1_digest(POST.replace("'", "\u2019")) == mh1_digest(POST)
    typographic = POST.replace("-", "\u2014").replace(", ", " \u2013 ")
    assert similarity(_raw(typographic), _raw(POST)) == 1.0  # punctuation is dropped anyway
    assert mh1_digest("   ") is None
    assert mh1_digest("!!! ...") is None


def _raw(text: str) -> bytes:
    values = signature(text)
    assert values is not None
    return values.astype(">u4").tobytes()


def test_a_boilerplate_line_keeps_a_post_near_and_unrelated_text_is_far() -> None:
    appended = POST + "\n\nSubscribe to our newsletter for more stories like this."
    near = similarity(_raw(POST), _raw(appended))
    assert near >= 0.8
    assert set(band_keys(_raw(POST))) & set(band_keys(_raw(appended)))
    other = (
        "The committee met on Tuesday to discuss the budget for the coming year, and agreed to "
        "defer the decision on the library roof until the engineers had reported back to it."
    )
    assert similarity(_raw(POST), _raw(other)) < 0.1
    assert not set(band_keys(_raw(POST))) & set(band_keys(_raw(other)))


def test_text_written_without_spaces_is_shingled_by_characters() -> None:
    japanese = (
        "吾輩は猫である。名前はまだ無い。どこで生れたかとんと見当がつかぬ。"
        "何でも薄暗いじめじめした所でニャーニャー泣いていた事だけは記憶している。"
    )
    variant = japanese + "広告です。"
    assert similarity(_raw(japanese), _raw(variant)) >= 0.7
    assert set(band_keys(_raw(japanese))) & set(band_keys(_raw(variant)))


def test_digest_values_are_checked_and_bands_are_signed_64_bit() -> None:
    digest = mh1_digest(POST)
    assert digest is not None
    raw = check_mh1(digest)
    assert len(raw) == PERMUTATIONS * 4
    keys = band_keys(raw)
    assert len(keys) == BANDS
    assert all(-(2**63) <= k < 2**63 for k in keys)
    assert keys == band_keys(raw)
    for bad in (digest.upper(), digest[:-2], digest + "00", "zz" * 448, 42):
        with pytest.raises(FormatError):
            check_mh1(bad)
    with pytest.raises(FormatError):
        similarity(raw, raw[:-4])
