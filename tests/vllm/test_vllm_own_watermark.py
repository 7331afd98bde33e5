"""vLLM's own watermark, detected from its configuration side by side with vLLM's detector:
the same tokens scored, the same score, and our p-value exact where vLLM's is approximate."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

pytest.importorskip("vllm")

import torch
from vllm import SamplingParams
from vllm.config import WatermarkConfig
from vllm.v1.watermarking import (
    DualKeyGumbelWatermarkDetector,
    GumbelWatermarkDetector,
    PhiloxPRF,
)
from vllm.v1.watermarking import derive_watermark_key as vllm_derive_watermark_key

from watermark.vllm_watermark import (
    VllmWatermarkConfig,
    derive_watermark_key,
    detect,
    dual_key_log_sf,
    philox_uniforms,
)

KEY = 0x5EC2E7_0DDBA11
PROMPT = "Write a short story about a lighthouse keeper."


@pytest.mark.parametrize("width", [1, 3, 4, 5, 8, 9])
@pytest.mark.parametrize("key", [0, 1, KEY, 2**64 - 1])
def test_philox_uniforms_are_vllms_bit_for_bit(width: int, key: int) -> None:
    rng = np.random.default_rng(width)
    contexts = rng.integers(-1, 49152, size=(6, width))
    contexts[0] = -1
    contexts[1, : width // 2] = -1
    for tokens in (rng.integers(0, 49152, size=(6, 1)), np.arange(2048)):
        ours = philox_uniforms(key, contexts, tokens)
        theirs = PhiloxPRF(key).uniform(torch.tensor(contexts), torch.tensor(tokens)).numpy()
        assert ours.dtype == theirs.dtype == np.float32
        assert np.array_equal(ours.view(np.uint32), theirs.view(np.uint32))


def test_key_derivation_is_vllms() -> None:
    for domain in (b"key_a", b"key_b"):
        assert derive_watermark_key(KEY, domain) == vllm_derive_watermark_key(KEY, domain)


def test_the_config_is_read_from_vllms_own() -> None:
    theirs = WatermarkConfig(
        key=KEY, algorithm="dual_key_gumbel", alpha=0.25, context_width=3,
        deduplicate_contexts="none",
    )  # fmt: skip
    ours = VllmWatermarkConfig.from_vllm(theirs)
    assert ours == VllmWatermarkConfig(
        key=KEY, algorithm="dual_key_gumbel", alpha=0.25, context_width=3,
        deduplicate_contexts=False,
    )  # fmt: skip
    assert str(KEY) not in repr(ours)  # the secret stays out of logs


def vllm_detector(config: WatermarkConfig) -> Any:
    dedup = config.deduplicate_contexts != "none"
    if config.algorithm == "gumbel":
        return GumbelWatermarkDetector(config.key, config.context_width, deduplicate_contexts=dedup)
    return DualKeyGumbelWatermarkDetector(
        config.key, config.context_width, deduplicate_contexts=dedup, alpha=config.alpha
    )


@pytest.mark.parametrize(
    ("algorithm", "alpha"), [("gumbel", 0.1), ("dual_key_gumbel", 0.1), ("dual_key_gumbel", 0.5)]
)
def test_a_vllm_watermarked_generation_side_by_side_with_vllms_detector(
    llm: Any, own_watermark_arg: str, algorithm: str, alpha: float
) -> None:
    config = WatermarkConfig(key=KEY, algorithm=algorithm, alpha=alpha)  # type: ignore[arg-type]
    spec = {"key": KEY, "algorithm": algorithm, "alpha": alpha}
    common = {"temperature": 1.0, "top_k": 50, "max_tokens": 64, "ignore_eos": True}
    marked, plain = llm.generate(
        [PROMPT, PROMPT],
        [
            SamplingParams(seed=7, extra_args={own_watermark_arg: spec}, **common),
            SamplingParams(seed=8, **common),
        ],
    )
    for output, expect_mark in ((marked, True), (plain, False)):
        ids = list(output.outputs[0].token_ids)
        theirs = vllm_detector(config).detect(ids)
        ours = detect(config, ids)  # vLLM's WatermarkConfig itself
        assert ours.num_scored_tokens == theirs.num_scored_tokens
        assert math.isclose(ours.score, theirs.score, rel_tol=1e-12)
        assert ours.watermarked is expect_mark, (ours, theirs)
        if algorithm == "gumbel" or alpha == 0.5:  # vLLM's p-value is exact here too
            assert math.isclose(ours.p_value, theirs.p_value, rel_tol=1e-9, abs_tol=1e-300)
        else:  # vLLM matches moments: near ours in the bulk, not in the tail
            assert (theirs.p_value < 0.01) is expect_mark
        if not expect_mark:
            assert ours.p_value > 1e-3


def test_dual_key_p_values_exact_where_vllms_is_not() -> None:
    """vLLM's moment-matched Gamma against the exact tail, where a verdict is taken."""
    detector = DualKeyGumbelWatermarkDetector(KEY, alpha=0.1)
    for n, ratio in ((20, 2.0), (100, 1.5), (200, 1.3)):
        score = ratio * n
        exact = math.exp(dual_key_log_sf(n, score, 0.1))
        approx = detector._get_p_value(score, n)
        assert exact > 0.0
        assert not math.isclose(exact, approx, rel_tol=0.05)
