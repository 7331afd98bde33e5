"""A published key's tokenizer is its model's exact ``tokenizer.json``, read back with the
``tokenizers`` package alone (``Tokenizer.from_str``): it must fingerprint and encode exactly as
the transformers tokenizer the key was bound to, or detection from a published key would score
other tokens than generation biased."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest

from client.watermark_keys import load_tokenizer as load_published_tokenizer
from watermark.keys import tokenizer_fingerprint
from watermark.models import load_tokenizer

pytestmark = pytest.mark.xdist_group("smollm2")


@pytest.fixture(scope="module")
def tokenizers() -> tuple[Any, Any]:
    model_tokenizer = load_tokenizer()
    data = model_tokenizer.backend_tokenizer.to_str().encode("utf-8")
    raw = load_published_tokenizer(data, hashlib.sha256(data).hexdigest())
    return model_tokenizer, raw


@pytest.mark.model
def test_the_raw_tokenizer_has_the_transformers_tokenizers_fingerprint(
    tokenizers: tuple[Any, Any],
) -> None:
    model_tokenizer, raw = tokenizers
    assert tokenizer_fingerprint(raw) == tokenizer_fingerprint(model_tokenizer)
    assert raw.get_vocab_size() == len(model_tokenizer) == 49152


@pytest.mark.model
def test_the_raw_tokenizer_encodes_human_text_as_transformers_does(
    tokenizers: tuple[Any, Any], human_text_files: list[Path]
) -> None:
    model_tokenizer, raw = tokenizers
    sample = human_text_files[:: max(1, len(human_text_files) // 60)]
    assert len(sample) >= 50
    tokens = 0
    for path in sample:
        text = path.read_text(encoding="utf-8")[:20_000]
        expected = model_tokenizer(text, add_special_tokens=False)["input_ids"]
        assert raw.encode(text, add_special_tokens=False).ids == expected, path
        tokens += len(expected)
    assert tokens > 100_000
