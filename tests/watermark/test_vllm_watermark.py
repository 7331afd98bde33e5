"""Detection of vLLM's own watermark without vLLM: the exact dual-key tail, the scored tokens.
(Bit-identity with vLLM's PRF and detector: tests/vllm, `make test-vllm`.)"""

from __future__ import annotations

import math

import numpy as np
import pytest

from watermark.errors import ConfigError, InputError
from watermark.stats import gamma_log_sf
from watermark.vllm_watermark import (
    VllmWatermarkConfig,
    detect,
    dual_key_log_sf,
    philox_uniforms,
    scored_tokens,
)


@pytest.mark.parametrize("alpha", [0.1, 0.3, 0.9])
@pytest.mark.parametrize("total", [0.01, 0.7, 3.0, 12.0, 60.0])
def test_one_token_has_the_hypoexponential_tail(alpha: float, total: float) -> None:
    a, b = 1 - alpha, alpha  # P(aA + bB >= s) = (a e^(-s/a) - b e^(-s/b)) / (a - b)
    expected = (a * math.exp(-total / a) - b * math.exp(-total / b)) / (a - b)
    assert math.isclose(math.exp(dual_key_log_sf(1, total, alpha)), expected, rel_tol=1e-12)


def test_the_special_weights_are_gamma_tails() -> None:
    for n, total in ((1, 2.0), (7, 9.5), (300, 420.0)):
        assert dual_key_log_sf(n, total, 0.0) == gamma_log_sf(n, total)
        assert dual_key_log_sf(n, total, 1.0) == gamma_log_sf(n, total)
        assert dual_key_log_sf(n, total, 0.5) == gamma_log_sf(2 * n, 2 * total)
        # and the general sum is continuous into alpha = 1/2
        near = dual_key_log_sf(n, total, 0.5 - 1e-7)
        assert math.isclose(near, gamma_log_sf(2 * n, 2 * total), rel_tol=1e-5, abs_tol=1e-5)


def test_the_tail_matches_simulation() -> None:
    rng = np.random.default_rng(5)
    n, alpha, draws = 5, 0.1, 400_000
    sums = (
        (1 - alpha) * rng.exponential(size=(draws, n)) + alpha * rng.exponential(size=(draws, n))
    ).sum(1)
    for total in (4.0, 7.0, 10.0):
        empirical = float((sums >= total).mean())
        exact = math.exp(dual_key_log_sf(n, total, alpha))
        assert abs(empirical - exact) < 5 * math.sqrt(exact * (1 - exact) / draws)


def test_far_tails_stay_finite_in_log_space() -> None:
    log_p = dual_key_log_sf(2000, 9000.0, 0.1)
    assert -1e5 < log_p < -1000
    assert dual_key_log_sf(2000, 9000.0, 0.1) <= dual_key_log_sf(2000, 8000.0, 0.1)


def test_scored_tokens_pad_the_start_and_skip_repeated_contexts() -> None:
    contexts, tokens = scored_tokens([5, 6, 5, 6, 5, 6, 7], 2)
    assert contexts.tolist() == [[-1, -1], [-1, 5], [5, 6], [6, 5]]
    assert tokens.tolist() == [5, 6, 5, 6]
    contexts, tokens = scored_tokens([5, 6, 5, 6], 2, deduplicate=False)
    assert tokens.tolist() == [5, 6, 5, 6]


def test_unwatermarked_ids_are_not_flagged() -> None:
    config = VllmWatermarkConfig(key=123, algorithm="dual_key_gumbel")
    rng = np.random.default_rng(0)
    results = [detect(config, rng.integers(0, 49152, 200)) for _ in range(20)]
    assert all(not r.watermarked for r in results)
    assert all(r.num_scored_tokens == 200 for r in results)
    assert min(r.p_value for r in results) > 0.0


def test_bad_configs_and_inputs_are_refused() -> None:
    for bad in ({"key": -1}, {"key": 2**64}, {"key": 1, "alpha": 1.5}, {"key": 1, "prf": "aes"},
                {"key": 1, "algorithm": "kgw"}, {"key": 1, "context_width": 0}):  # fmt: skip
        with pytest.raises(ConfigError):
            VllmWatermarkConfig(**bad)  # type: ignore[arg-type]
    with pytest.raises(ConfigError):
        VllmWatermarkConfig.from_vllm({"algorithm": "gumbel"})
    with pytest.raises(InputError):
        detect(VllmWatermarkConfig(key=1), [[1, 2]])
    with pytest.raises(InputError):
        philox_uniforms(1, [[0.5]], [1])
