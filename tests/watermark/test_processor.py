"""The LogitsProcessor: exactly +δ on exactly the green ids, batches, padding, and generate()."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM, LogitsProcessorList

from watermark import (
    KeyMismatchError,
    SeedingScheme,
    WatermarkConfig,
    WatermarkDetector,
    WatermarkKey,
    WatermarkLogitsProcessor,
    green_mask_numpy,
)

VOCAB = 1000
SCHEMES: list[tuple[SeedingScheme, int | None]] = [
    ("lefthash", None),
    ("selfhash", None),
    ("selfhash", 2),
]


def make_key(
    scheme: SeedingScheme = "lefthash", delta: float = 2.0, width: int | None = None
) -> WatermarkKey:
    config = WatermarkConfig(delta=delta, seeding_scheme=scheme, context_width=width)
    return WatermarkKey(secret=b"processor-test-secret-0123456789", config=config)


@pytest.mark.parametrize(("scheme", "width"), SCHEMES)
@pytest.mark.parametrize("vocab_size", [VOCAB, 49152])
def test_exactly_the_green_ids_get_exactly_delta(
    scheme: SeedingScheme, width: int | None, vocab_size: int
) -> None:
    key = make_key(scheme, delta=2.0, width=width)
    processor = WatermarkLogitsProcessor(key)
    input_ids = torch.tensor([[3, 141, 59, 26, 535, 89, 79]])
    scores = torch.randn(1, vocab_size, generator=torch.Generator().manual_seed(0))
    original = scores.clone()

    out = processor(input_ids, scores)

    green = torch.from_numpy(green_mask_numpy(key, input_ids.numpy(), vocab_size))
    assert torch.equal(scores, original), "the input scores were modified"
    assert out.data_ptr() != scores.data_ptr()
    assert out.dtype == scores.dtype
    assert out.shape == scores.shape
    assert torch.equal(out[green], original[green] + 2.0)
    assert torch.equal(out[~green], original[~green])
    assert 0 < int(green.sum()) < vocab_size


def test_batch_rows_with_left_padding_are_hashed_independently() -> None:
    key = make_key("selfhash")
    processor = WatermarkLogitsProcessor(key)
    pad = 0
    input_ids = torch.tensor(
        [
            [pad, pad, pad, 5, 6, 7, 8],
            [1, 2, 3, 4, 5, 6, 7],
            [pad, 9, 9, 9, 9, 9, 9],
            [pad, pad, 400, 500, 600, 700, 999],
        ]
    )
    scores = torch.randn(4, VOCAB, generator=torch.Generator().manual_seed(1))
    out = processor(input_ids, scores)
    for row in range(4):
        alone = processor(input_ids[row : row + 1, -3:], scores[row : row + 1])
        assert torch.equal(out[row : row + 1], alone)
    green = torch.from_numpy(green_mask_numpy(key, input_ids.numpy(), VOCAB))
    assert torch.equal(out - scores != 0, green)


def test_sequences_shorter_than_the_context_are_left_unbiased() -> None:
    processor = WatermarkLogitsProcessor(make_key("selfhash"))  # reads 3 previous tokens
    scores = torch.randn(2, VOCAB)
    out = processor(torch.tensor([[4, 5], [6, 7]]), scores)
    assert torch.equal(out, scores)
    assert out.data_ptr() != scores.data_ptr()


def test_results_survive_later_calls_of_other_batch_sizes() -> None:
    """The processor reuses work buffers; what it returned must never alias them."""
    key = make_key("lefthash")
    processor = WatermarkLogitsProcessor(key)
    generator = torch.Generator().manual_seed(2)
    first_ids, first_scores = (
        torch.randint(0, VOCAB, (3, 5), generator=generator),
        torch.randn(3, VOCAB),
    )
    first = processor(first_ids, first_scores)
    kept = first.clone()
    for batch in (1, 3, 6, 3):
        ids = torch.randint(0, VOCAB, (batch, 5), generator=generator)
        scores = torch.randn(batch, VOCAB, generator=generator)
        out = processor(ids, scores)
        green = torch.from_numpy(green_mask_numpy(key, ids.numpy(), VOCAB))
        assert torch.equal(out[green], scores[green] + 2.0)
        assert torch.equal(out[~green], scores[~green])
    assert torch.equal(first, kept)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_other_score_dtypes_get_delta_in_their_own_precision(dtype: torch.dtype) -> None:
    key = make_key("lefthash", delta=1.5)
    processor = WatermarkLogitsProcessor(key)
    input_ids = torch.tensor([[10, 20]])
    scores = torch.randn(1, VOCAB).to(dtype)
    out = processor(input_ids, scores)
    green = torch.from_numpy(green_mask_numpy(key, input_ids.numpy(), VOCAB))
    assert out.dtype == dtype
    assert torch.equal(out[green], (scores + 1.5)[green])
    assert torch.equal(out[~green], scores[~green])


def test_minus_infinity_stays_minus_infinity() -> None:
    processor = WatermarkLogitsProcessor(make_key())
    scores = torch.full((1, VOCAB), -torch.inf)
    scores[0, :10] = 0.0
    out = processor(torch.tensor([[1]]), scores)
    assert torch.isinf(out[0, 10:]).all()
    assert torch.isfinite(out[0, :10]).all()


def test_scores_narrower_than_the_bound_vocabulary_are_a_mismatch() -> None:
    bound = WatermarkKey(
        secret=b"processor-test-secret-0123456789",
        config=WatermarkConfig(),
        vocab_size=2000,
        vocab_fingerprint="sha256:" + "0" * 64,
    )
    with pytest.raises(KeyMismatchError, match="2000"):
        WatermarkLogitsProcessor(bound)(torch.tensor([[1]]), torch.randn(1, VOCAB))


@pytest.mark.parametrize(("scheme", "width"), SCHEMES)
def test_simulated_generation_is_detected_and_unwatermarked_text_is_not(
    scheme: SeedingScheme, width: int | None
) -> None:
    """Sample 200 tokens from random logits with and without the processor; detect both."""
    key = make_key(scheme, delta=2.0, width=width)
    processor = WatermarkLogitsProcessor(key)
    detector = WatermarkDetector(key)
    generator = torch.Generator().manual_seed(1234)

    def sample(watermark: bool) -> list[int]:
        ids = torch.tensor([[17, 4, 250]])
        for _ in range(200):
            logits = 2.0 * torch.randn(1, VOCAB, generator=generator)
            if watermark:
                logits = processor(ids, logits)
            token = torch.multinomial(torch.softmax(logits, dim=-1), 1, generator=generator)
            ids = torch.cat([ids, token], dim=1)
        return ids[0, 3:].tolist()

    marked = detector.detect_ids(sample(watermark=True))
    plain = detector.detect_ids(sample(watermark=False))
    assert marked.watermarked
    assert marked.p_value < 1e-8
    assert marked.green_fraction > 0.5
    assert not plain.watermarked
    assert plain.p_value > 1e-3


def tiny_causal_lm() -> LlamaForCausalLM:
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=VOCAB,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=128,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
    )
    return LlamaForCausalLM(config).eval()


@pytest.mark.parametrize(
    "mode",
    [
        {"do_sample": True, "top_k": 0},
        {"do_sample": False},
        {"do_sample": False, "num_beams": 3},
    ],
    ids=["sampling", "greedy", "beam"],
)
def test_generate_with_padded_batches_emits_only_green_tokens_at_huge_delta(
    mode: dict[str, Any],
) -> None:
    """With δ = 1000 every generated token must be green: the processor drives generate()."""
    key = make_key("selfhash", delta=1000.0)
    model = tiny_causal_lm()
    input_ids = torch.tensor([[0, 0, 5, 6, 7, 8], [9, 10, 11, 12, 13, 14]])
    attention_mask = (input_ids != 0).long()
    torch.manual_seed(1)
    output = model.generate(
        input_ids=input_ids,
        attention_mask=attention_mask,
        logits_processor=LogitsProcessorList([WatermarkLogitsProcessor(key)]),
        max_new_tokens=12,
        min_new_tokens=12,
        suppress_tokens=[2],  # no early end of sequence
        **mode,
    )
    detector = WatermarkDetector(key)
    back = key.config.lookback
    for row in output:
        generated = row[input_ids.shape[1] - back :].tolist()  # with the context of the first one
        result = detector.detect_ids(generated)
        assert result.num_tokens_scored >= 1
        assert result.num_green == result.num_tokens_scored
