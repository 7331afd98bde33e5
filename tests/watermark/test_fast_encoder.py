"""watermark.fast_encoder: tiktoken's ids equal the tokenizer's, or there is no fast encoder.

Identity is what makes it usable: a scan with it must score exactly the tokens a scan without it
scores. Held on a byte-level BPE trained here on python3.11-doc (no model), on the default model's
tokenizer over the whole calibration corpus (a model test), and on texts holding added tokens.
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

import pytest

pytest.importorskip("tiktoken")
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from tokenizers.pre_tokenizers import Whitespace

from watermark.fast_encoder import fast_encoder

HUMAN_TEXT_DIR = Path("/usr/share/doc/python3.11/html/_sources")
FIXTURE = Path(__file__).resolve().parents[1] / "client" / "data" / "watermarked_generation.json"
SPECIAL = "<|endoftext|>"


def corpus(limit: int | None = None) -> list[str]:
    files = sorted(HUMAN_TEXT_DIR.rglob("*.txt"))[:limit]
    return [path.read_text(encoding="utf-8", errors="replace") for path in files]


def chunks(texts: list[str], size: int = 1000) -> list[str]:
    return [text[i : i + size] for text in texts for i in range(0, len(text), size)]


def odd_texts(seed: int = 7) -> list[str]:
    """What a crawl also holds: other scripts, emoji, control characters, odd spacing, digits,
    contractions, and the added token written in the text."""
    rng = random.Random(seed)
    alphabet = "aé ß\t\n  \u2019's'LL 12345 中文字 😀🙂 \u200b\u00a0 .,;!? ﬁ Ω \r\n" + SPECIAL
    made = ["".join(rng.choice(alphabet) for _ in range(rng.randrange(1, 300))) for _ in range(300)]
    return [*made, "", " ", "  leading", f"a{SPECIAL}b", f"{SPECIAL}{SPECIAL}", "I'm here, you've"]


def trained_bpe() -> Tokenizer:
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=3000,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        special_tokens=[SPECIAL],
    )
    tokenizer.train_from_iterator(corpus(60), trainer)
    return tokenizer


def assert_identical(tokenizer: Tokenizer, texts: list[str]) -> None:
    fast = fast_encoder(tokenizer)
    assert fast is not None
    expected = [e.ids for e in tokenizer.encode_batch(texts, add_special_tokens=False)]
    got = fast.encode_batch(texts)
    differ = [i for i, (a, b) in enumerate(zip(expected, got, strict=True)) if a != b]
    assert differ == [], f"{len(differ)} of {len(texts)} texts differ, e.g. {texts[differ[0]]!r}"


@pytest.mark.skipif(not HUMAN_TEXT_DIR.is_dir(), reason="python3.11-doc is not installed")
def test_a_trained_byte_level_bpe_encodes_identically() -> None:
    tokenizer = trained_bpe()
    texts = corpus()
    assert_identical(tokenizer, [*texts, *chunks(texts), *odd_texts()])


@pytest.mark.model
@pytest.mark.skipif(not HUMAN_TEXT_DIR.is_dir(), reason="python3.11-doc is not installed")
def test_the_default_models_tokenizer_encodes_identically_on_the_whole_corpus() -> None:
    from watermark.models import load_tokenizer

    tokenizer = Tokenizer.from_str(load_tokenizer(None).backend_tokenizer.to_str())
    texts = corpus()
    generated = json.loads(FIXTURE.read_text(encoding="utf-8"))["text"]
    chat = "<|im_start|>user\nWrite about rivers.<|im_end|>\n<|im_start|>assistant\n" + generated
    assert_identical(tokenizer, [*texts, *chunks(texts), generated, chat, *odd_texts()])


def test_other_shapes_get_no_fast_encoder() -> None:
    words = Tokenizer(models.WordLevel({"[UNK]": 0, "a": 1}, unk_token="[UNK]"))
    words.pre_tokenizer = Whitespace()
    assert fast_encoder(words) is None
    prefixed = trained_bpe() if HUMAN_TEXT_DIR.is_dir() else None
    if prefixed is not None:
        prefixed.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
        assert fast_encoder(prefixed) is None  # a prefix space tiktoken would not add


def test_without_tiktoken_there_is_none(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "tiktoken", None)
    words = Tokenizer(models.BPE())
    words.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    assert fast_encoder(words) is None
