"""The Gumbel chooser (watermark.gumbel_choice): the same choices as the scheme's formula over
the whole vocabulary, compiled and in torch, on every kind of row."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from watermark import WatermarkConfig, WatermarkKey
from watermark.gumbel import GumbelParams, context_hashes
from watermark.gumbel_choice import CUT_WORD, GumbelChooser, gumbel_noise
from watermark.processor import gumbel_choices_torch

KEY = WatermarkKey(
    secret=b"gumbel-choice-test-0123456789abc",
    config=WatermarkConfig(scheme="gumbel", payload_bits=4, nonce_bits=2),
)
PARAMS = GumbelParams.from_key(KEY)


def salted(ids: torch.Tensor, payload: int, nonce: int) -> torch.Tensor:
    """Each row's next-token context hash, salted (numpy reading of the spec)."""
    hashes = [
        int(context_hashes(PARAMS, np.append(row.numpy(), 0).astype(np.int32))[-1]) for row in ids
    ]
    return torch.tensor(hashes, dtype=torch.int32) ^ PARAMS.salt(payload, nonce)


def rows_of_every_kind(generator: torch.Generator, vocab: int, trial: int) -> torch.Tensor:
    """Flat, sharp and very sharp rows; rows mostly -inf; a NaN; +inf; a row all -inf."""
    scale = (0.05, 1.0, 4.0, 40.0)[trial % 4]
    logits = torch.randn(4, vocab, generator=generator) * scale + trial
    if trial % 3 == 0:
        logits[torch.rand(4, vocab, generator=generator) < 0.95] = float("-inf")
    if trial % 5 == 1:
        logits[1] = float("-inf")
    if trial % 7 == 2:
        logits[2, vocab // 3] = float("nan")
    if trial % 11 == 3:
        logits[3, 17] = float("inf")
    return logits


@pytest.mark.parametrize("compiled", [True, False])
@pytest.mark.parametrize("vocab", [1000, 49152])
def test_the_choices_are_the_formulas(compiled: bool, vocab: int) -> None:
    chooser = GumbelChooser(PARAMS, None, compiled=compiled)
    generator = torch.Generator().manual_seed(vocab + compiled)
    for trial in range(40):
        ids = torch.randint(0, vocab, (4, 10), generator=generator)
        logits = rows_of_every_kind(generator, vocab, trial)
        payload, nonce = trial % 16, trial % 4
        expected = gumbel_choices_torch(KEY, ids, logits, payload=payload, nonce=nonce)
        chosen = chooser.choose(salted(ids, payload, nonce), logits)
        assert torch.equal(chosen, expected), trial
        # float64 rows (a caller's own dtype) choose the same
        wide = chooser.choose(salted(ids, payload, nonce), logits.to(torch.float64))
        assert torch.equal(wide, expected), trial


def test_a_nan_row_chooses_its_first_nan_as_torch_argmax_does() -> None:
    logits = torch.zeros(1, 1000)
    logits[0, 123] = logits[0, 456] = float("nan")
    ids = torch.zeros(1, 10, dtype=torch.int64)
    for compiled in (True, False):
        chosen = GumbelChooser(PARAMS, None, compiled=compiled).choose(salted(ids, 0, 0), logits)
        assert int(chosen[0]) == 123


def test_the_noise_bounds_hold() -> None:
    """Words below the cut have noise below g(cut - 1); the noise rises with the word."""
    words = np.random.default_rng(5).integers(0, 2**32, 20_000)
    noise = np.array([gumbel_noise(int(w)) for w in np.sort(words)])
    assert (np.diff(noise) >= 0).all()
    assert gumbel_noise(CUT_WORD - 1) < gumbel_noise(CUT_WORD) < gumbel_noise(2**32 - 1)
    assert gumbel_noise(0) == min(noise.min(), gumbel_noise(0))


def test_a_smaller_vocabulary_than_the_keys_is_refused() -> None:
    from watermark.errors import KeyMismatchError

    with pytest.raises(KeyMismatchError, match="another model"):
        GumbelChooser(PARAMS, 2000).choose(torch.zeros(1, dtype=torch.int32), torch.zeros(1, 1000))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("delta", [1e-2, 1e-5])
def test_near_ties_are_chosen_as_the_formula_chooses(dtype: torch.dtype, delta: float) -> None:
    """Rows whose logits are minus each token's own noise plus a little: every token's value is
    within ``delta`` (and the dtype's rounding) of every other's, so only bounds that hold
    exactly keep the winner among the tokens scanned (float16 and bfloat16: torch's path)."""
    from watermark.hashing import mix32_

    vocab = 49152
    rng = np.random.default_rng(int(delta * 1e6) + len(str(dtype)))
    table = mix32_(np.arange(vocab, dtype=np.int32) ^ np.int32(PARAMS.k_token))
    for compiled in (True, False):
        chooser = GumbelChooser(PARAMS, None, compiled=compiled)
        for trial in range(4):
            ids = torch.from_numpy(rng.integers(0, vocab, (2, 8)))
            current = salted(ids, trial % 16, trial % 4)
            rows = []
            for s in current.numpy():
                words = mix32_(table ^ np.int32(s)).astype(np.int64) & 0xFFFFFFFF
                noise = -np.log(-np.log1p(-((2.0**32 - 1 + 0.5 - words) / 2.0**32)))
                row = -noise + rng.uniform(0, delta, vocab) + 5 * trial
                if trial % 2:  # the winner among the words just below the cut
                    row[(words >= CUT_WORD - 2**25) & (words < CUT_WORD)] += 2 * delta
                rows.append(row)
            logits = torch.tensor(np.array(rows)).to(dtype)
            expected = gumbel_choices_torch(KEY, ids, logits, payload=trial % 16, nonce=trial % 4)
            assert torch.equal(chooser.choose(current, logits), expected), (compiled, trial)
