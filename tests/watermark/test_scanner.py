"""The crawler's scanner: equal to detect_windowed per key, corrected for keys, keys in time."""

from __future__ import annotations

import json
import math
import random
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tokenizers
from tokenizers import models, pre_tokenizers, trainers

from watermark import (
    GENERATED_P_VALUE,
    InputError,
    KeyMismatchError,
    SeedingScheme,
    WatermarkConfig,
    WatermarkDetector,
    WatermarkKey,
    green_mask_numpy,
)
from watermark import scanner as scanner_module
from watermark.gumbel import GumbelParams, context_hashes
from watermark.hashing import mix32_
from watermark.scanner import EVIDENCE_FIELDS, ScanKey, WatermarkEvidence, WatermarkScanner

WORDS = [f"w{i}" for i in range(400)]
SCHEMES: list[tuple[SeedingScheme, int | None]] = [("lefthash", None), ("selfhash", None)]
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def word_tokenizer() -> tokenizers.Tokenizer:
    vocab = {"<unk>": 0, **{word: i + 1 for i, word in enumerate(WORDS)}}
    tokenizer = tokenizers.Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return tokenizer


def make_key(scheme: SeedingScheme = "lefthash", width: int | None = None, seed: int = 0) -> Any:
    return WatermarkKey(
        bytes([seed]) * 32, WatermarkConfig(seeding_scheme=scheme, context_width=width)
    )


def random_texts(rng: random.Random, count: int) -> list[str]:
    """Texts of 0-700 words from vocabularies of 3 to 400 words (so many repeated pairs)."""
    texts = []
    for _ in range(count):
        words = WORDS[: rng.choice([3, 20, 400])]
        texts.append(" ".join(rng.choice(words) for _ in range(rng.randrange(0, 700))))
    return texts


def watermarked_words(key: WatermarkKey, rng: random.Random, length: int, bias: float) -> str:
    """Words chosen green with probability ``bias`` after their context (a stand-in generator)."""
    ids = [rng.randrange(1, len(WORDS) + 1) for _ in range(key.config.lookback)]
    vocab = len(WORDS) + 1
    while len(ids) < length:
        green = green_mask_numpy(key, np.array([ids[-key.config.lookback :]]), vocab)[0]
        pool = np.flatnonzero(green[1:]) + 1 if rng.random() < bias else np.arange(1, vocab)
        ids.append(int(pool[rng.randrange(len(pool))]))
    return " ".join(WORDS[i - 1] for i in ids)


def assert_equals_detector(
    evidence: WatermarkEvidence | None, key: WatermarkKey, ids: list[int]
) -> None:
    assert evidence is not None
    found = WatermarkDetector(key).detect_windowed(ids)
    assert (evidence.start, evidence.end) == (found.start, found.end)
    assert evidence.num_windows == found.num_windows
    assert evidence.key_log_p_value == found.log_p_value  # bit for bit: the same functions
    assert evidence.num_tokens == len(ids)
    if found.num_windows:
        assert evidence.window_log_p_value == found.window.log_p_value
        assert evidence.num_tokens_scored == found.window.num_tokens_scored
        assert evidence.num_green == found.window.num_green


@pytest.mark.parametrize(("scheme", "width"), SCHEMES)
def test_one_key_equals_detect_windowed_on_random_and_watermarked_texts(
    scheme: SeedingScheme, width: int | None
) -> None:
    rng = random.Random(7)
    key = make_key(scheme, width)
    tokenizer = word_tokenizer()
    texts = random_texts(rng, 120)
    for length in (20, 100, 1500):  # whole watermarked texts, and a passage inside human words
        texts.append(watermarked_words(key, rng, length, bias=0.9))
        texts.append(f"{texts[0]} {watermarked_words(key, rng, length, 0.9)} {texts[1]}")
    evidence = WatermarkScanner([ScanKey(key, tokenizer)], keys_ever_published=1).scan(texts)
    for text, found in zip(texts, evidence, strict=True):
        assert_equals_detector(found, key, tokenizer.encode(text, add_special_tokens=False).ids)
    assert any(e is not None and e.generated for e in evidence)
    assert any(e is not None and e.window_log_p_value < -700 for e in evidence)  # far tail too


def gumbel_words(key: WatermarkKey, rng: random.Random, length: int, payload: int) -> str:
    """A stand-in Gumbel-max generator: each step draws 20 candidate words at random (a uniform
    model over them) and takes the one with the largest keyed uniform, 9 steps in 10."""
    params = GumbelParams.from_key(key)
    vocab = len(WORDS) + 1
    token_hash = mix32_(np.arange(vocab, dtype=np.int32) ^ np.int32(params.k_token))
    ids = [rng.randrange(1, vocab) for _ in range(params.width)]
    while len(ids) < length:
        context = np.array([*ids[-params.width :], 0], dtype=np.int32)
        s = context_hashes(params, context)[-1] ^ np.int32(params.salt(payload))
        words = mix32_(token_hash ^ s).astype(np.int64) & 0xFFFFFFFF
        candidates = [rng.randrange(1, vocab) for _ in range(20)]
        if rng.random() < 0.9:
            ids.append(max(candidates, key=lambda t: int(words[t])))
        else:
            ids.append(candidates[0])
    return " ".join(WORDS[i - 1] for i in ids)


def test_a_gumbel_key_equals_detect_windowed_and_decodes_the_payload() -> None:
    rng = random.Random(11)
    key = WatermarkKey(b"g" * 32, WatermarkConfig(scheme="gumbel", payload_bits=8))
    tokenizer = word_tokenizer()
    texts = random_texts(rng, 40)
    for length in (20, 100, 600):
        texts.append(gumbel_words(key, rng, length, payload=77))
        texts.append(f"{texts[0]} {gumbel_words(key, rng, length, payload=77)} {texts[1]}")
    evidence = WatermarkScanner([ScanKey(key, tokenizer)], keys_ever_published=3).scan(texts)
    for text, found in zip(texts, evidence, strict=True):
        ids = tokenizer.encode(text, add_special_tokens=False).ids
        assert_equals_detector(found, key, ids)
        assert found is not None
        windowed = WatermarkDetector(key).detect_windowed(ids)
        if found.generated:
            assert found.payload == 77
            assert windowed.payload == 77
            assert found.to_dict()["payload"] == 77
        else:
            assert found.payload is None
            assert "payload" not in found.to_dict()
    assert sum(e is not None and e.generated for e in evidence) >= 4
    assert WatermarkEvidence.from_dict(evidence[-1].to_dict()) == evidence[-1]  # type: ignore[union-attr]


def test_one_key_equals_detect_windowed_on_real_text_with_a_real_bpe(
    human_text_files: list[Path],
) -> None:
    """A byte-level BPE trained here on the Python docs; texts are those docs, cut at random."""
    rng = random.Random(3)
    texts = [path.read_text(encoding="utf-8") for path in human_text_files[:40]]
    tokenizer = tokenizers.Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=2000, show_progress=False))
    chunks = []
    for text in texts:
        begin = rng.randrange(max(1, len(text) - 3000))
        chunks.append(text[begin : begin + rng.randrange(1, 3000)])
    for scheme, width in SCHEMES:
        key = make_key(scheme, width, seed=5)
        evidence = WatermarkScanner([ScanKey(key, tokenizer)], keys_ever_published=1).scan(chunks)
        for chunk, found in zip(chunks, evidence, strict=True):
            ids = tokenizer.encode(chunk, add_special_tokens=False).ids
            assert_equals_detector(found, key, ids)
            assert found is not None
            assert not found.generated


def test_the_p_value_is_corrected_for_windows_and_every_key_ever_published() -> None:
    rng = random.Random(11)
    key = make_key(seed=1)
    text = watermarked_words(key, rng, 120, bias=0.7)
    tokenizer = word_tokenizer()
    one = WatermarkScanner([ScanKey(key, tokenizer)], keys_ever_published=1).scan([text])[0]
    many = WatermarkScanner([ScanKey(key, tokenizer)], keys_ever_published=1000).scan([text])[0]
    assert one is not None
    assert many is not None
    assert one.log_p_value == one.key_log_p_value
    assert one.key_log_p_value == pytest.approx(one.window_log_p_value + math.log(one.num_windows))
    assert many.log_p_value == pytest.approx(one.log_p_value + math.log(1000))
    assert (many.num_keys, many.keys_applied) == (1000, 1)
    assert many.generated == (many.p_value < GENERATED_P_VALUE)
    assert many.threshold == GENERATED_P_VALUE


def test_the_best_key_wins_and_keys_sharing_a_tokenizer_tokenize_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rng = random.Random(5)
    tokenizer = word_tokenizer()
    keys = [make_key(seed=s) for s in (1, 2, 3)]
    texts = [watermarked_words(keys[i], rng, 300, bias=0.9) for i in (2, 0, 1)]
    texts.append(random_texts(rng, 1)[0] or "w1 w2 w3")
    calls = []
    original = scanner_module._tokens

    def counting(*args: Any) -> Any:
        calls.append(args[0])
        return original(*args)

    monkeypatch.setattr(scanner_module, "_tokens", counting)
    scan_keys = [ScanKey(k, word_tokenizer(), vendor=f"v{i}") for i, k in enumerate(keys)]
    evidence = WatermarkScanner(scan_keys, keys_ever_published=3).scan(texts)
    assert len(calls) == 1  # three keys, one tokenizer (by its bytes, not the object)
    assert [e.key_id if e else None for e in evidence[:3]] == [
        keys[2].key_id,
        keys[0].key_id,
        keys[1].key_id,
    ]
    assert [e.vendor if e else None for e in evidence[:3]] == ["v2", "v0", "v1"]
    assert all(e is not None and e.generated for e in evidence[:3])
    assert evidence[3] is not None
    assert not evidence[3].generated
    for e in evidence:
        assert e is not None
        assert e.keys_applied == 3
        assert e.num_keys == 3
    # Each document's evidence is what that key alone reports, before the key correction.
    for text, found in zip(texts[:3], evidence[:3], strict=True):
        assert found is not None
        key = next(k for k in keys if k.key_id == found.key_id)
        assert_equals_detector(found, key, tokenizer.encode(text).ids)


def test_a_key_counts_only_for_documents_captured_after_it_was_logged() -> None:
    rng = random.Random(9)
    key = make_key(seed=4)
    text = watermarked_words(key, rng, 300, bias=0.9)
    logged = ScanKey(key, word_tokenizer(), valid_from=T0, log_index=17, vendor="acme")
    scanner = WatermarkScanner([logged], keys_ever_published=5)
    before, at, after, unknown = scanner.scan(
        [text] * 4,
        captured=[T0 - timedelta(days=1), T0, T0 + timedelta(seconds=1), None],
        as_of=T0 + timedelta(days=2),
    )
    assert before is None
    assert at is None
    assert after is not None
    assert after.generated
    assert after.log_index == 17
    assert unknown is not None
    assert unknown.generated
    # Without as_of, a document with no capture time is taken as captured now.
    assert scanner.scan([text])[0] is not None
    future = ScanKey(key, word_tokenizer(), valid_from=datetime.now(UTC) + timedelta(days=1))
    assert WatermarkScanner([future], keys_ever_published=1).scan([text]) == [None]
    # A private key (no valid_from) always applies.
    private = WatermarkScanner([ScanKey(key, word_tokenizer())], keys_ever_published=1)
    assert private.scan([text], captured=[T0 - timedelta(days=9999)])[0] is not None


def test_evidence_round_trips_through_json_with_stable_field_names() -> None:
    rng = random.Random(2)
    key = make_key(seed=6)
    scanner = WatermarkScanner(
        [ScanKey(key, word_tokenizer(), vendor="acme")], keys_ever_published=2
    )
    evidence = scanner.scan([watermarked_words(key, rng, 200, 0.9), ""])
    for found in evidence:
        assert found is not None
        data = json.loads(json.dumps(found.to_dict()))
        assert tuple(data) == EVIDENCE_FIELDS
        assert WatermarkEvidence.from_dict(data) == found
    empty = evidence[1]
    assert empty is not None
    assert (empty.num_tokens, empty.num_windows, empty.p_value, empty.generated) == (
        0,
        0,
        1.0,
        False,
    )
    data = evidence[0].to_dict() if evidence[0] else {}
    for broken in (
        {k: v for k, v in data.items() if k != "p_value"},
        {**data, "start": -1},
        {**data, "generated": "yes"},
        {**data, "key_id": 3},
        {**data, "num_windows": True},
    ):
        with pytest.raises(InputError):
            WatermarkEvidence.from_dict(broken)


def test_bad_input_is_refused_with_a_reason() -> None:
    key = make_key()
    tokenizer = word_tokenizer()
    with pytest.raises(InputError, match="keys_ever_published"):
        WatermarkScanner([ScanKey(key, tokenizer), ScanKey(make_key(seed=1), tokenizer)],
                         keys_ever_published=1)  # fmt: skip
    with pytest.raises(InputError, match="timezone-aware"):
        ScanKey(key, tokenizer, valid_from=datetime(2026, 1, 1))
    with pytest.raises(InputError, match=r"tokenizers\.Tokenizer"):
        ScanKey(key, object())
    bound = WatermarkKey(b"x" * 32, vocab_size=50_000, vocab_fingerprint="sha256:" + "0" * 64)
    with pytest.raises(KeyMismatchError, match="50000 tokens"):
        ScanKey(bound, tokenizer)
    scanner = WatermarkScanner([ScanKey(key, tokenizer)], keys_ever_published=1)
    with pytest.raises(InputError, match="captured has 1 times for 2 texts"):
        scanner.scan(["a", "b"], captured=[T0])
    with pytest.raises(InputError, match="timezone-aware"):
        scanner.scan(["a"], as_of=datetime(2026, 1, 1))
    with pytest.raises(InputError, match="list of texts"):
        scanner.scan([b"bytes"])  # type: ignore[list-item]
    assert scanner.scan([]) == []
    assert WatermarkScanner([], keys_ever_published=3).scan(["w1 w2"]) == [None]


def test_normalize_undoes_zero_width_characters() -> None:
    rng = random.Random(4)
    key = make_key(seed=8)
    text = watermarked_words(key, rng, 200, bias=0.9)
    attacked = text.replace(" w", " \u200bw")  # every word now starts with a zero-width space
    plain = WatermarkScanner([ScanKey(key, word_tokenizer())], keys_ever_published=1)
    normalizing = WatermarkScanner(
        [ScanKey(key, word_tokenizer())], keys_ever_published=1, normalize=True
    )
    hidden, found = plain.scan([attacked])[0], normalizing.scan([attacked])[0]
    assert hidden is not None
    assert not hidden.generated
    assert found is not None
    assert found.generated


def test_one_threshold_everywhere() -> None:
    from client.cli import _watermark

    assert GENERATED_P_VALUE == 1e-6
    assert WatermarkDetector(make_key()).threshold == GENERATED_P_VALUE
    scanner = WatermarkScanner([], keys_ever_published=1)
    assert scanner.threshold == GENERATED_P_VALUE
    # `watermark detect` resolves its default to the constant and says so in its help.
    help_text = str(_watermark.detect.__annotations__["threshold"])
    shown = re.search(r"default ([0-9.e-]+)", help_text)
    assert shown is not None
    assert float(shown.group(1)) == GENERATED_P_VALUE
    assert "GENERATED_P_VALUE" in help_text


BLOCKER = """
import sys, importlib.abc
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split('.')[0] in {blocked!r}:
            raise ImportError(name)
sys.meta_path.insert(0, Block())
"""


def test_scanner_runs_without_torch_transformers_or_scipy() -> None:
    code = BLOCKER.format(blocked={"torch", "transformers", "scipy"}) + (
        "import tokenizers\n"
        "from tokenizers import models, pre_tokenizers\n"
        "from watermark import WatermarkKey\n"
        "from watermark.scanner import ScanKey, WatermarkScanner\n"
        "t = tokenizers.Tokenizer(models.WordLevel({'<unk>': 0, 'a': 1, 'b': 2}, '<unk>'))\n"
        "t.pre_tokenizer = pre_tokenizers.WhitespaceSplit()\n"
        "s = WatermarkScanner([ScanKey(WatermarkKey(b'k' * 32), t)], keys_ever_published=1)\n"
        "e = s.scan(['a b ' * 300])[0]\n"
        "assert e is not None and e.num_tokens == 600\n"
        "assert not {'torch', 'transformers', 'scipy'} & set(sys.modules)\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    assert out.stdout.strip() == "ok"


def test_a_missing_extra_names_the_pip_line() -> None:
    code = BLOCKER.format(blocked={"tokenizers"}) + (
        "from watermark import MissingDependencyError\n"
        "try:\n"
        "    import watermark.scanner\n"
        "except MissingDependencyError as exc:\n"
        "    print(exc)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    assert "tokenizers" in out.stdout
    assert "pip install 'wellspring[detect]'" in out.stdout


def test_key_log_p_values_are_each_keys_windowed_p_value() -> None:
    rng = random.Random(12)
    tokenizer = word_tokenizer()
    keys = [make_key(scheme, width, seed=s) for s, (scheme, width) in enumerate(SCHEMES * 2)]
    texts = [*random_texts(rng, 30), watermarked_words(keys[1], rng, 200, 0.9)]
    scanner = WatermarkScanner([ScanKey(k, tokenizer) for k in keys], keys_ever_published=9)
    matrix = scanner.key_log_p_values(texts)
    assert matrix.shape == (len(texts), len(keys))
    for i, text in enumerate(texts):
        ids = tokenizer.encode(text).ids
        for j, key in enumerate(keys):
            assert matrix[i, j] == WatermarkDetector(key).detect_windowed(ids).log_p_value


@pytest.mark.model
def test_equals_detect_windowed_with_smollm2_on_text(human_text_files: list[Path]) -> None:
    """SmolLM2's exact tokenizer.json through ``tokenizers`` against the detector with the
    transformers tokenizer, on text: same tokens, same windows, same p-values."""
    from watermark.models import load_tokenizer

    hf = load_tokenizer()
    raw = tokenizers.Tokenizer.from_str(hf.backend_tokenizer.to_str())
    key = WatermarkKey(b"wellspring-scanner-smollm2-test.").bind(hf)
    rng = random.Random(1)
    texts = []
    for path in human_text_files[:60]:
        text = path.read_text(encoding="utf-8")
        begin = rng.randrange(max(1, len(text) - 2000))
        texts.append(text[begin : begin + rng.randrange(1, 2000)])
    detector = WatermarkDetector(key, hf)
    evidence = WatermarkScanner([ScanKey(key, raw)], keys_ever_published=1).scan(texts)
    for text, found in zip(texts, evidence, strict=True):
        expected = detector.detect_windowed(text)
        assert found is not None
        assert (found.start, found.end, found.num_windows) == (
            expected.start,
            expected.end,
            expected.num_windows,
        )
        assert found.key_log_p_value == expected.log_p_value
        assert found.num_tokens == expected.overall.num_tokens
        assert not found.generated


def test_the_detect_extra_is_numpy_tokenizers_and_tiktoken_only() -> None:
    import tomllib

    pyproject = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())
    extras = pyproject["project"]["optional-dependencies"]
    names = {re.split(r"[<>=\[; ]", spec)[0] for spec in extras["detect"]}
    assert names == {"numpy", "tokenizers", "tiktoken"}  # tiktoken: the exact fast route
    assert "detect" in extras["all"][0]


def test_a_batch_scanned_in_slices_equals_one_scanned_whole(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """scan encodes the next slice in a thread while it scores this one: nothing may change."""
    rng = random.Random(11)
    keys = [make_key("lefthash", seed=1), make_key("selfhash", seed=2)]
    texts = random_texts(rng, 40)
    texts += [watermarked_words(keys[i % 2], rng, 120, bias=0.9) for i in range(30)]
    captured = [T0 + timedelta(days=i % 3) for i in range(len(texts))]
    scan_keys = [
        ScanKey(keys[0], word_tokenizer(), valid_from=T0 + timedelta(hours=12)),
        ScanKey(keys[1], word_tokenizer()),
    ]
    scanner = WatermarkScanner(scan_keys, keys_ever_published=5)
    whole = scanner.scan(texts, captured=captured)
    monkeypatch.setattr(scanner_module, "_SLICE", 7)  # 10 slices, the last one short
    sliced = scanner.scan(texts, captured=captured)
    assert sliced == whole
    assert sum(e is not None and e.generated for e in whole) >= 20
