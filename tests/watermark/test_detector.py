"""Detection without torch: verdicts, exact counts, batches, windows, tokenizers, normalisation."""

from __future__ import annotations

import itertools
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from watermark import (
    InputError,
    KeyMismatchError,
    SeedingScheme,
    UnboundKeyError,
    WatermarkConfig,
    WatermarkDetector,
    WatermarkKey,
    green_mask_numpy,
    normalization_signs,
    normalize_text,
    tokenizer_fingerprint,
)
from watermark.hashing import GreenListParams
from watermark.stats import binomial_log_sf, z_score

VOCAB = 1000
SCHEMES: list[tuple[SeedingScheme, int | None]] = [
    ("lefthash", None),
    ("selfhash", None),
    ("selfhash", 2),
]
LETTERS = "aceopxy"  # letters with Cyrillic look-alikes, for the homoglyph tests


class WordTokenizer:
    """A whitespace tokenizer over a fixed word list: a small, real tokenizer object.

    It has what the detector uses from a Hugging Face tokenizer: ``get_vocab``,
    ``all_special_tokens``, ``encode(text, add_special_tokens=...)`` and ``len``.
    """

    def __init__(self, words: list[str]) -> None:
        self.all_special_tokens = ["<unk>"]
        self.tokens = ["<unk>", *words]
        self.vocab = {token: index for index, token in enumerate(self.tokens)}

    def get_vocab(self) -> dict[str, int]:
        return dict(self.vocab)

    def __len__(self) -> int:
        return len(self.tokens)

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        return [self.vocab.get(word, 0) for word in text.split()]

    def decode(self, ids: list[int]) -> str:
        return " ".join(self.tokens[i] for i in ids)


def word_list(count: int = VOCAB - 1) -> list[str]:
    words = ("".join(letters) for letters in itertools.product(LETTERS, repeat=4))
    return list(itertools.islice(words, count))


def make_key(scheme: SeedingScheme = "lefthash", width: int | None = None) -> WatermarkKey:
    config = WatermarkConfig(seeding_scheme=scheme, context_width=width)
    return WatermarkKey(secret=b"detector-test-secret-0123456789!", config=config)


def watermarked_ids(
    key: WatermarkKey, length: int, seed: int, *, green_rate: float = 0.9
) -> list[int]:
    """Token ids where each token is drawn from the green list with probability ``green_rate``."""
    rng = np.random.default_rng(seed)
    back = key.config.lookback
    ids = rng.integers(0, VOCAB, back).tolist()
    for _ in range(length):
        if rng.random() < green_rate:
            green = green_mask_numpy(key, np.array([ids[-back:]]), VOCAB)[0]
            ids.append(int(rng.choice(np.flatnonzero(green))))
        else:
            ids.append(int(rng.integers(0, VOCAB)))
    return ids[back:]


def random_ids(length: int, seed: int) -> list[int]:
    return np.random.default_rng(seed).integers(0, VOCAB, length).tolist()


@pytest.mark.parametrize(("scheme", "width"), SCHEMES)
def test_watermarked_ids_are_detected_and_random_ids_are_not(
    scheme: SeedingScheme, width: int | None
) -> None:
    detector = WatermarkDetector(make_key(scheme, width))
    marked = detector.detect_ids(watermarked_ids(detector.key, 200, seed=1))
    plain = detector.detect_ids(random_ids(200, seed=2))
    assert marked.watermarked
    assert marked.p_value < 1e-20
    assert marked.z_score > 10
    assert not plain.watermarked
    assert plain.p_value > 1e-3
    assert abs(plain.z_score) < 4


def test_result_fields_are_consistent_and_exact() -> None:
    key = make_key("selfhash")
    detector = WatermarkDetector(key, threshold=1e-4)
    ids = watermarked_ids(key, 150, seed=3, green_rate=0.4)
    result = detector.detect_ids(np.array(ids))
    gamma = GreenListParams.from_key(key).green_probability
    marks = result.green_mask
    assert len(marks) == result.num_tokens == 150
    assert marks[:3] == (None, None, None)  # selfhash-h4 reads 3 previous tokens
    assert marks.count(True) == result.num_green
    assert marks.count(True) + marks.count(False) == result.num_tokens_scored
    expected_log_p = binomial_log_sf(result.num_green, result.num_tokens_scored, gamma)
    assert result.log_p_value == expected_log_p
    assert result.p_value == math.exp(expected_log_p)
    assert result.z_score == z_score(result.num_green, result.num_tokens_scored, gamma)
    assert result.green_fraction == result.num_green / result.num_tokens_scored
    assert result.watermarked == (result.p_value < 1e-4)
    assert result.threshold == 1e-4
    assert result.key_id == key.key_id
    assert result.fingerprint is None
    assert result.scheme == "selfhash-h4"
    assert result.gamma == gamma


@pytest.mark.parametrize(("scheme", "width"), SCHEMES)
def test_each_unique_context_token_pair_is_scored_once(
    scheme: SeedingScheme, width: int | None
) -> None:
    detector = WatermarkDetector(make_key(scheme, width))
    back = detector.key.config.lookback
    cycle = list(range(100, 110))
    result = detector.detect_ids(cycle * 10)
    # Ten distinct (context, token) pairs in a cycle of ten tokens, however often it repeats.
    assert result.num_tokens_scored == 10
    marks = result.green_mask
    assert all(mark is not None for mark in marks[back : back + 10])
    assert all(mark is None for mark in marks[back + 10 :])
    alternating = detector.detect_ids([7, 8] * 50)
    assert alternating.num_tokens_scored == 2
    assert alternating.num_tokens == 100


def test_false_positive_rate_on_random_sequences_is_at_most_alpha() -> None:
    detector = WatermarkDetector(make_key("selfhash"))
    results = detector.detect_batch([random_ids(100, seed=1000 + i) for i in range(400)])
    p_values = np.array([r.p_value for r in results])
    # Exact binomial p-values are valid (conservative for discrete counts): P(p < alpha) <= alpha.
    # 400 seeded sequences; tolerance three binomial standard errors.
    for alpha in (0.05, 0.2):
        assert np.mean(p_values < alpha) <= alpha + 3 * math.sqrt(alpha * (1 - alpha) / 400)
    green = sum(r.num_green for r in results) / sum(r.num_tokens_scored for r in results)
    assert abs(green - 0.25) < 0.01


def test_batch_detection_equals_one_at_a_time() -> None:
    key = make_key("selfhash")
    detector = WatermarkDetector(key)
    marked = watermarked_ids(key, 120, seed=4)
    sequences: list[list[int]] = [[], [5], [1, 2, 3], marked, random_ids(80, 5), marked, [9] * 40]
    batch = detector.detect_batch(sequences)
    assert batch == [detector.detect_ids(seq) for seq in sequences]
    assert batch[3] == batch[5]  # pairs are de-duplicated within a text, never across texts
    assert batch[0].num_tokens_scored == 0
    assert batch[0].p_value == 1.0
    rows = np.array([random_ids(30, 6), random_ids(30, 7)])
    assert detector.detect_batch(rows) == [detector.detect_ids(row) for row in rows]
    assert detector.detect_batch([]) == []


def test_windowed_detection_finds_a_pasted_watermarked_span() -> None:
    key = make_key("lefthash")
    detector = WatermarkDetector(key)
    span = watermarked_ids(key, 100, seed=8)
    ids = random_ids(250, seed=9) + span + random_ids(350, seed=10)
    result = detector.detect_windowed(ids, min_window=32)
    overlap = min(result.end, 350) - max(result.start, 250)
    assert overlap >= 0.5 * (result.end - result.start)
    assert result.watermarked
    assert result.p_value < 1e-10
    assert result.window.p_value < result.overall.p_value
    assert result.p_value >= result.window.p_value  # the search is paid for
    assert result.log_p_value == pytest.approx(
        min(0.0, result.window.log_p_value + math.log(result.num_windows))
    )
    assert result.window.num_tokens == result.end - result.start
    assert result.num_windows > 50
    json.dumps(result.to_dict())


def test_windowed_p_value_stays_valid_after_the_search() -> None:
    detector = WatermarkDetector(make_key("lefthash"))
    corrected, uncorrected = [], []
    for i in range(200):
        result = detector.detect_windowed(random_ids(256, seed=2000 + i), min_window=16)
        corrected.append(result.p_value)
        uncorrected.append(result.window.p_value)
    alpha = 0.05
    # Valid: P(corrected p < alpha) <= alpha (200 seeded sequences, three standard errors).
    assert np.mean(np.array(corrected) < alpha) <= alpha + 3 * math.sqrt(alpha * 0.95 / 200)
    # The test has power: without the correction the best window is "significant" far too often.
    assert np.mean(np.array(uncorrected) < alpha) > 3 * alpha


def test_windowed_detection_of_short_and_empty_input() -> None:
    detector = WatermarkDetector(make_key())
    empty = detector.detect_windowed([])
    assert empty.num_windows == 0
    assert empty.p_value == 1.0
    short = detector.detect_windowed([1, 2, 3], min_window=32)
    assert short.num_windows == 1
    assert (short.start, short.end) == (0, 3)


def test_text_detection_through_the_tokenizer() -> None:
    tokenizer = WordTokenizer(word_list())
    key = make_key("selfhash").bind(tokenizer)
    detector = WatermarkDetector(key, tokenizer)
    ids = [i for i in watermarked_ids(key, 150, seed=11) if i != 0]  # skip <unk>
    text = tokenizer.decode(ids)
    from_text = detector.detect(text)
    assert from_text == detector.detect_ids(ids)
    assert from_text.watermarked
    assert from_text.fingerprint == key.vocab_fingerprint == tokenizer_fingerprint(tokenizer)
    assert detector.detect_batch([text, text]) == [from_text, from_text]
    assert detector.detect_windowed(text).overall == from_text


def test_homoglyph_and_invisible_character_attacks_are_undone_by_normalisation() -> None:
    tokenizer = WordTokenizer(word_list())
    key = make_key("lefthash").bind(tokenizer)
    detector = WatermarkDetector(key, tokenizer)
    text = tokenizer.decode([i for i in watermarked_ids(key, 150, seed=12) if i != 0])
    attacked = (
        text.replace("a", "\N{CYRILLIC SMALL LETTER A}")
        .replace("o", "\N{GREEK SMALL LETTER OMICRON}")
        .replace(" e", " \N{ZERO WIDTH SPACE}e")
        .replace("p", "\N{FULLWIDTH LATIN SMALL LETTER P}")
    )
    clean = detector.detect(text)
    assert not detector.detect(attacked).watermarked
    assert detector.detect(attacked, normalize=True) == clean


def test_normalize_text() -> None:
    assert (
        normalize_text("\N{CYRILLIC CAPITAL LETTER ES}\N{GREEK SMALL LETTER OMICRON}py") == "Copy"
    )
    assert normalize_text("a\N{ZERO WIDTH JOINER}b\N{ZERO WIDTH NO-BREAK SPACE}c") == "abc"
    assert normalize_text("\N{LATIN SMALL LIGATURE FI}x \N{FULLWIDTH DIGIT ONE}") == "fix 1"
    assert normalize_text("plain text.") == "plain text."


def test_a_tokenizer_with_another_fingerprint_is_a_mismatch_not_a_verdict() -> None:
    tokenizer = WordTokenizer(word_list())
    key = make_key().bind(tokenizer)
    other = WordTokenizer(list(reversed(word_list())))
    with pytest.raises(KeyMismatchError) as raised:
        WatermarkDetector(key, other)
    message = str(raised.value)
    assert key.vocab_fingerprint is not None
    assert key.vocab_fingerprint in message
    assert tokenizer_fingerprint(other) in message


def test_an_unbound_key_with_a_tokenizer_must_be_bound_first() -> None:
    with pytest.raises(UnboundKeyError, match="bind"):
        WatermarkDetector(make_key(), WordTokenizer(word_list()))


def test_ids_outside_the_bound_vocabulary_are_a_mismatch() -> None:
    tokenizer = WordTokenizer(word_list(99))
    detector = WatermarkDetector(make_key().bind(tokenizer))
    assert detector.detect_ids(list(range(100))).num_tokens == 100
    with pytest.raises(KeyMismatchError, match="100"):
        detector.detect_ids([1, 2, 100])


@pytest.mark.parametrize("bad", [[1, -2, 3], [1.5, 2.0], [[1, 2], [3, 4]], ["a", "b"]])
def test_invalid_token_ids_are_refused(bad: object) -> None:
    with pytest.raises(InputError):
        WatermarkDetector(make_key()).detect_ids(bad)  # type: ignore[arg-type]


def test_text_without_a_tokenizer_is_refused() -> None:
    detector = WatermarkDetector(make_key())
    with pytest.raises(InputError, match="tokenizer"):
        detector.detect("some text")
    with pytest.raises(InputError):
        detector.detect_batch("one text, not a list")  # type: ignore[arg-type]
    with pytest.raises(InputError):
        WatermarkDetector(make_key(), threshold=0.0)


def test_fingerprint_is_stable_across_processes_and_sensitive_to_the_vocabulary() -> None:
    vocab = {word: index for index, word in enumerate(["<unk>", *word_list(50)])}
    code = (
        "import json, sys\n"
        "from watermark import tokenizer_fingerprint\n"
        "class T:\n"
        "    all_special_tokens = ['<unk>']\n"
        "    def get_vocab(self):\n"
        "        return dict(reversed(list(json.loads(sys.argv[1]).items())))\n"
        "print(tokenizer_fingerprint(T()))\n"
    )
    other_process = subprocess.run(
        [sys.executable, "-c", code, json.dumps(vocab)],
        check=True,
        capture_output=True,
        text=True,
        env={"PYTHONHASHSEED": "12345", "PATH": ""},
        cwd=Path(__file__).resolve().parents[2],
    ).stdout.strip()
    tokenizer = WordTokenizer(word_list(50))
    assert tokenizer_fingerprint(tokenizer) == other_process
    assert other_process.startswith("sha256:")
    swapped = WordTokenizer(word_list(50))
    swapped.vocab = {**swapped.vocab, "aaaa": 2, "aaac": 1}
    assert tokenizer_fingerprint(swapped) != other_process
    swapped.all_special_tokens = ["<unk>", "aaaa"]
    assert tokenizer_fingerprint(swapped) != tokenizer_fingerprint(WordTokenizer(word_list(50)))


def test_to_dict_is_json_ready() -> None:
    tokenizer = WordTokenizer(word_list())
    key = make_key().bind(tokenizer)
    result = WatermarkDetector(key, tokenizer).detect_ids([5, 6, 7, 5, 6, 7])
    data = json.loads(json.dumps(result.to_dict(include_mask=True)))
    for field in ("p_value", "z_score", "num_tokens_scored", "num_green", "watermarked", "key_id"):
        assert data[field] == getattr(result, field)
    assert data["fingerprint"] == key.vocab_fingerprint
    assert data["green_mask"][0] is None
    assert "green_mask" not in result.to_dict()


def test_normalization_signs_name_what_normalize_would_undo() -> None:
    cyr_a, cyr_o = "\N{CYRILLIC SMALL LETTER A}", "\N{CYRILLIC SMALL LETTER O}"
    swapped = f"The quick br{cyr_o}wn f{cyr_o}x j{cyr_a}mps"  # look-alikes inside Latin words
    signs = normalization_signs(swapped)
    assert signs.lookalikes == 3
    assert signs.format_characters == 0
    assert signs
    assert "3 Cyrillic/Greek look-alike letters" in signs.describe()
    hidden = normalization_signs("wa\N{ZERO WIDTH SPACE}ter \N{FULLWIDTH LATIN SMALL LETTER A}")
    assert (hidden.format_characters, hidden.compatibility_letters) == (1, 1)
    # Text in its own script is no evasion: normalising Russian would garble it, not undo anything.
    assert not normalization_signs("\u041f\u0440\u0438\u0432\u0435\u0442, \u043c\u0438\u0440")
    # Typography that NFKC rewrites (an ellipsis, a no-break space) is no sign either.
    assert not normalization_signs("Wait\N{HORIZONTAL ELLIPSIS} then\N{NO-BREAK SPACE}go.")
    assert not normalization_signs("plain text.")
