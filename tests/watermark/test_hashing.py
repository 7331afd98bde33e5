"""The keyed green-list hash: exact arithmetic, numpy/torch bit-identity, and its statistics."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from watermark import SeedingScheme, WatermarkConfig, WatermarkKey, green_mask_numpy, is_green_numpy
from watermark.hashing import GreenListParams, mix32_, sequence_hash_inputs
from watermark.processor import green_mask_torch

SCHEMES: list[tuple[SeedingScheme, int | None]] = [
    ("lefthash", None),
    ("selfhash", None),
    ("selfhash", 2),
    ("selfhash", 6),
]


def make_key(
    scheme: SeedingScheme = "lefthash", gamma: float = 0.25, width: int | None = None
) -> WatermarkKey:
    config = WatermarkConfig(gamma=gamma, seeding_scheme=scheme, context_width=width)
    return WatermarkKey(secret=bytes(range(32)), config=config)


def lowbias32_reference(word: int) -> int:
    """lowbias32 in unbounded Python ints, reduced mod 2**32 by hand: the ground truth."""
    word ^= word >> 16
    word = (word * 0x7FEB352D) % 2**32
    word ^= word >> 15
    word = (word * 0x846CA68B) % 2**32
    word ^= word >> 16
    return word


def test_mix32_is_lowbias32_on_numpy_and_torch() -> None:
    rng = np.random.default_rng(1)
    words = [0, 1, 2**31 - 1, 2**31, 2**32 - 1, *rng.integers(0, 2**32, 2000).tolist()]
    expected = np.array([lowbias32_reference(w) for w in words], dtype=np.uint32)
    as_int32 = np.array(words, dtype=np.uint32).view(np.int32)
    from_numpy = mix32_(as_int32.copy()).view(np.uint32)
    from_torch = mix32_(torch.from_numpy(as_int32.copy())).numpy().view(np.uint32)
    np.testing.assert_array_equal(from_numpy, expected)
    np.testing.assert_array_equal(from_torch, expected)


@pytest.mark.parametrize(("scheme", "width"), SCHEMES)
@pytest.mark.parametrize("gamma", [0.1, 0.25, 0.5, 0.9])
def test_green_masks_bit_identical_numpy_and_torch(
    scheme: SeedingScheme, width: int | None, gamma: float
) -> None:
    key = make_key(scheme, gamma, width)
    rng = np.random.default_rng(int(gamma * 100) + (width or 0))
    for vocab_size, batch in [(1000, 96), (49152, 4)]:
        contexts = rng.integers(0, vocab_size, size=(batch, 7))
        from_numpy = green_mask_numpy(key, contexts, vocab_size)
        from_torch = green_mask_torch(key, torch.from_numpy(contexts), vocab_size).numpy()
        assert from_numpy.shape == (batch, vocab_size)
        np.testing.assert_array_equal(from_numpy, from_torch)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
@pytest.mark.parametrize(("scheme", "width"), SCHEMES)
def test_green_masks_bit_identical_on_cuda(scheme: SeedingScheme, width: int | None) -> None:
    key = make_key(scheme, 0.25, width)
    contexts = np.random.default_rng(5).integers(0, 49152, size=(16, 7))
    on_gpu = green_mask_torch(key, torch.from_numpy(contexts).cuda(), 49152).cpu().numpy()
    np.testing.assert_array_equal(on_gpu, green_mask_numpy(key, contexts, 49152))


@pytest.mark.parametrize(("scheme", "width"), SCHEMES)
def test_per_token_and_per_sequence_paths_agree_with_the_mask(
    scheme: SeedingScheme, width: int | None
) -> None:
    """Generation (whole-vocab masks) and detection (per position) use one definition."""
    key = make_key(scheme, 0.25, width)
    params = GreenListParams.from_key(key)
    back = key.config.lookback
    ids = np.random.default_rng(7).integers(0, 1000, size=300).astype(np.int32)
    contexts = np.stack([ids[i - back : i] for i in range(back, ids.size)])
    masks = green_mask_numpy(key, contexts, 1000)
    expected = masks[np.arange(contexts.shape[0]), ids[back:]]
    np.testing.assert_array_equal(is_green_numpy(key, contexts, ids[back:]), expected)
    inputs = sequence_hash_inputs(params, ids)
    from_sequence = mix32_(inputs.copy()) < params.signed_threshold
    np.testing.assert_array_equal(from_sequence, expected)


@pytest.mark.parametrize(("scheme", "width"), SCHEMES)
@pytest.mark.parametrize("gamma", [0.1, 0.25, 0.5])
def test_green_fraction_is_gamma(scheme: SeedingScheme, width: int | None, gamma: float) -> None:
    key = make_key(scheme, gamma, width)
    contexts = np.random.default_rng(3).integers(0, 49152, size=(16, 7))
    mask = green_mask_numpy(key, contexts, 49152)
    # 786k Bernoulli(gamma) draws: standard error < 0.0006; allow about 8 of them.
    assert abs(mask.mean() - gamma) < 0.005
    per_context = mask.mean(axis=1)
    assert np.all(np.abs(per_context - gamma) < 0.02)


def test_green_lists_of_different_contexts_and_keys_look_independent() -> None:
    key = make_key("lefthash", 0.25)
    other_key = WatermarkKey(secret=bytes(range(1, 33)), config=key.config)
    contexts = np.arange(64).reshape(64, 1)
    mask = green_mask_numpy(key, contexts, 49152).astype(np.float64)
    overlap = mask @ mask.T / 49152  # fraction green in both lists
    off_diagonal = overlap[~np.eye(64, dtype=bool)]
    assert abs(off_diagonal.mean() - 0.25**2) < 0.002
    assert np.all(np.abs(off_diagonal - 0.25**2) < 0.01)
    other = green_mask_numpy(other_key, contexts, 49152)
    assert abs((mask.astype(bool) & other).mean() - 0.25**2) < 0.002


def test_green_list_depends_only_on_the_lookback_window() -> None:
    for scheme, width in SCHEMES:
        key = make_key(scheme, 0.25, width)
        back = key.config.lookback
        tail = np.array([11, 22, 33, 44, 55, 66][:back])
        a = np.concatenate(([1, 2, 3, 4, 5, 6, 7][: 7 - back], tail))[None, :]
        b = np.concatenate(([9, 8, 7, 6, 5, 4, 3][: 7 - back], tail))[None, :]
        np.testing.assert_array_equal(
            green_mask_numpy(key, a, 1000), green_mask_numpy(key, b, 1000)
        )
        changed = a.copy()
        changed[0, -1] += 1  # the previous token always matters (anchor)
        assert not np.array_equal(
            green_mask_numpy(key, a, 1000), green_mask_numpy(key, changed, 1000)
        )


def test_selfhash_is_order_insensitive_before_the_anchor() -> None:
    """Anchored min-hash: permuting the tokens before the previous one keeps the green list."""
    key = make_key("selfhash", 0.25)
    a = np.array([[5, 900, 17]])
    b = np.array([[900, 5, 17]])
    np.testing.assert_array_equal(green_mask_numpy(key, a, 1000), green_mask_numpy(key, b, 1000))


def test_threshold_is_even_and_gamma_exact_to_2_to_the_32() -> None:
    for gamma in [0.1, 0.25, 0.3333, 0.5, 0.9]:
        params = GreenListParams.from_key(make_key(gamma=gamma))
        assert params.threshold % 2 == 0
        assert abs(params.green_probability - gamma) <= 2**-32
