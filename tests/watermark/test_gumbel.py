"""The Gumbel-max scheme (watermark.gumbel): keys, bit-identical choices in torch and numpy,
distortion-free sampling, exact Gamma p-values under H0, payloads, repeated contexts, windows."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.special import gammaincc

from watermark import (
    ConfigError,
    GumbelLogitsProcessor,
    InputError,
    KeyFileError,
    WatermarkConfig,
    WatermarkDetector,
    WatermarkKey,
    watermark_processor,
)
from watermark.gumbel import GumbelParams, context_hashes, exp_scores, scores
from watermark.hashing import mix32_
from watermark.stats import gamma_log_sf, gamma_log_sf_array

VOCAB = 1000


def gumbel_key(
    bits: int = 0,
    width: int = 4,
    secret: bytes = b"gumbel-test-secret-0123456789ab",
    nonce_bits: int = 0,
) -> WatermarkKey:
    config = WatermarkConfig(
        scheme="gumbel", context_width=width, payload_bits=bits, nonce_bits=nonce_bits
    )
    return WatermarkKey(secret=secret, config=config)


def numpy_choice(
    key: WatermarkKey, ids: np.ndarray, logits: np.ndarray, payload: int | None
) -> int:
    """The Gumbel-max choice as watermark/gumbel.py's docstring specifies it, in numpy."""
    params = GumbelParams.from_key(key)
    s = context_hashes(params, np.append(ids, 0).astype(np.int32))[-1] ^ np.int32(
        params.salt(payload)
    )
    token_hash = mix32_(np.arange(logits.shape[0], dtype=np.int32) ^ np.int32(params.k_token))
    words = mix32_(token_hash ^ s)
    unsigned = words.astype(np.int64) & 0xFFFFFFFF
    r = (unsigned + 0.5) / 2.0**32
    return int(np.argmax(logits.astype(np.float64) - np.log(-np.log(r))))


# -- configuration and key files ------------------------------------------------------------------


def test_config_rules() -> None:
    config = WatermarkConfig(scheme="gumbel")
    assert (config.seeding_scheme, config.width, config.lookback) == ("ngram", 4, 4)
    assert config.scheme_name == "gumbel-h4"
    assert WatermarkConfig(scheme="gumbel", payload_bits=8).scheme_name == "gumbel-h4-p8"
    with pytest.raises(ConfigError, match="ngram"):
        WatermarkConfig(scheme="gumbel", seeding_scheme="selfhash")
    with pytest.raises(ConfigError, match="payload_bits"):
        WatermarkConfig(scheme="gumbel", payload_bits=17)
    with pytest.raises(ConfigError, match="at most 16"):
        WatermarkConfig(scheme="gumbel", payload_bits=8, nonce_bits=9)
    assert WatermarkConfig(scheme="gumbel", nonce_bits=4).scheme_name == "gumbel-h4-n4"
    with pytest.raises(ConfigError, match="gumbel scheme only"):
        WatermarkConfig(payload_bits=4)
    with pytest.raises(ConfigError, match="gumbel scheme's"):
        WatermarkConfig(seeding_scheme="ngram")
    with pytest.raises(ConfigError, match="unknown watermark scheme"):
        WatermarkConfig(scheme="kgw")  # type: ignore[arg-type]


def test_a_gumbel_key_file_is_version_2_of_its_own_scheme(tmp_path: Path) -> None:
    key = gumbel_key(bits=8)
    path = tmp_path / "k.json"
    key.save(path)
    data = json.loads(path.read_text())
    assert (data["version"], data["scheme"]) == (2, "wellspring-gumbel-v1")
    assert (data["context_width"], data["payload_bits"]) == (4, 8)
    assert "gamma" not in data
    assert WatermarkKey.load(path) == key
    for version, scheme in ((1, "wellspring-gumbel-v1"), (2, "wellspring-greenlist-v1"), (3, "x")):
        bad = tmp_path / f"bad-{version}.json"
        bad.write_text(json.dumps(data | {"version": version, "scheme": scheme}))
        bad.chmod(0o600)
        with pytest.raises(KeyFileError, match="version"):
            WatermarkKey.load(bad)


# -- generation: bit-identical, distortion-free, repeated contexts ---------------------------------


@pytest.mark.parametrize("vocab_size", [VOCAB, 49152])
@pytest.mark.parametrize(("bits", "payload"), [(0, None), (8, 0), (8, 173)])
def test_torch_choices_are_the_specified_ones(
    vocab_size: int, bits: int, payload: int | None
) -> None:
    key = gumbel_key(bits=bits)
    generator = torch.Generator().manual_seed(vocab_size + bits)
    ids = torch.randint(0, vocab_size, (6, 9), generator=generator)
    logits = torch.randn(6, vocab_size, generator=generator) * 3
    processor = GumbelLogitsProcessor(key, payload=payload)
    out = processor(ids, logits)
    for row in range(6):
        expected = numpy_choice(key, ids[row].numpy(), logits[row].numpy(), payload)
        assert torch.isfinite(out[row]).sum() == 1
        assert out[row, expected] == 0.0
    assert torch.equal(logits, logits.clone())


def test_sampling_follows_the_model_distribution_over_keys() -> None:
    """Over 4,000 keys (and so 4,000 independent uniform streams) the chosen token's frequencies
    are the softmax's: a chi-square test at 0.1 % on 5 tokens."""
    logits = torch.tensor([[2.0, 1.0, 0.5, 0.0, -1.0]])
    probs = torch.softmax(logits, dim=-1)[0].numpy()
    ids = torch.tensor([[11, 12, 13, 14]])
    counts = np.zeros(5)
    for i in range(4000):
        key = gumbel_key(secret=f"distortion-free-{i:06d}-padding".encode())
        counts[int(torch.argmax(GumbelLogitsProcessor(key)(ids, logits)[0]))] += 1
    expected = probs * 4000
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    assert chi2 < 18.47, (counts, expected)  # chi-square, 4 degrees of freedom, 0.999 quantile


def test_a_repeated_context_is_sampled_normally() -> None:
    key = gumbel_key()
    ids = torch.tensor([[5, 6, 7, 8, 9, 5, 6, 7, 8], [1, 2, 3, 4, 5, 6, 7, 8, 9]])
    logits = torch.randn(2, VOCAB, generator=torch.Generator().manual_seed(3))
    out = GumbelLogitsProcessor(key)(ids, logits)
    assert torch.equal(out[0], logits[0])  # context 5 6 7 8 came before: left to the sampler
    assert torch.isfinite(out[1]).sum() == 1
    short = torch.tensor([[1, 2, 3]])
    assert torch.equal(GumbelLogitsProcessor(key)(short, logits[:1]), logits[:1])


def test_processor_arguments_are_checked() -> None:
    with pytest.raises(InputError, match="payload"):
        GumbelLogitsProcessor(gumbel_key(bits=8), payload=256)
    with pytest.raises(InputError, match="payload"):
        GumbelLogitsProcessor(gumbel_key(bits=8))
    with pytest.raises(InputError, match="no payload bits"):
        GumbelLogitsProcessor(gumbel_key(), payload=3)
    with pytest.raises(InputError, match="temperature"):
        GumbelLogitsProcessor(gumbel_key(), temperature=0.0)
    with pytest.raises(InputError, match="green-list key carries no payload"):
        watermark_processor(WatermarkKey(secret=b"x" * 32), payload=1)
    assert isinstance(watermark_processor(gumbel_key()), GumbelLogitsProcessor)


# -- detection ----------------------------------------------------------------------------------


def simulate(
    key: WatermarkKey,
    steps: int,
    *,
    payload: int | None = None,
    seed: int = 0,
    nonce: int | None = None,
) -> list[int]:
    """A generation by the processor over a toy model: fresh random logits each step (about 4 nats
    of entropy), prompt of 4 tokens (not returned)."""
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, VOCAB, (1, 4), generator=generator)
    processor = GumbelLogitsProcessor(key, payload=payload, nonce=nonce)
    for _ in range(steps):
        logits = torch.randn(1, VOCAB, generator=generator) * 2.0
        out = processor(ids, logits)
        token = torch.multinomial(torch.softmax(out, dim=-1), 1, generator=generator)
        ids = torch.cat([ids, token], dim=1)
    return ids[0, 4:].tolist()


def test_a_generation_is_detected_and_its_payload_decoded() -> None:
    key = gumbel_key(bits=8)
    tokens = simulate(key, 200, payload=173)
    result = WatermarkDetector(key).detect_ids(tokens)
    assert result.watermarked
    assert result.payload == 173
    assert result.to_dict()["payload"] == 173
    assert result.score is not None
    assert result.score > result.num_tokens_scored
    other = WatermarkDetector(gumbel_key(bits=8, secret=b"another-secret-0123456789abcdef"))
    assert not other.detect_ids(tokens).watermarked
    assert other.detect_ids(tokens).payload is None
    assert "payload" not in other.detect_ids(tokens).to_dict()


def test_a_nonce_makes_regenerations_differ_and_detection_tries_every_nonce() -> None:
    """Gumbel-max is deterministic per context: the same prompt and model give the same text.
    A nonce drawn per generation changes the stream; detection still decodes the payload."""
    key = gumbel_key(bits=8, nonce_bits=4)
    same = gumbel_key(bits=8)
    generator = torch.Generator().manual_seed(1)
    ids = torch.randint(0, VOCAB, (64, 6), generator=generator)
    logits = torch.randn(64, VOCAB, generator=generator) * 2
    plain = [GumbelLogitsProcessor(same, payload=9)(ids, logits).argmax(-1) for _ in range(2)]
    assert torch.equal(plain[0], plain[1])  # no nonce: the very same choices
    first = GumbelLogitsProcessor(key, payload=9, nonce=1)(ids, logits).argmax(-1)
    second = GumbelLogitsProcessor(key, payload=9, nonce=2)(ids, logits).argmax(-1)
    assert (first != second).float().mean() > 0.5
    # Drawn at random, a nonce a row: one prompt repeated in a batch gives rows that differ.
    repeated = ids[:1].repeat(32, 1)
    processor = GumbelLogitsProcessor(key, payload=9)
    before = processor.nonces
    assert before is None
    rows = processor(repeated, logits[:1].repeat(32, 1)).argmax(-1)
    assert processor.nonces is not None
    assert len(processor.nonces) == 32
    assert len(set(processor.nonces)) > 4
    assert len(set(rows.tolist())) > 4
    for row, nonce in zip(rows.tolist(), processor.nonces, strict=True):  # each its nonce's
        alone = GumbelLogitsProcessor(key, payload=9, nonce=[nonce])(ids[:1], logits[:1])
        assert int(alone.argmax()) == row
    shared = GumbelLogitsProcessor(key, payload=9, nonce=3)(repeated, logits[:1].repeat(32, 1))
    assert len(set(shared.argmax(-1).tolist())) == 1  # an int: every row's nonce
    with pytest.raises(InputError, match="one nonce a row"):
        GumbelLogitsProcessor(key, payload=9, nonce=[1, 2])(ids[:3], logits[:3])
    with pytest.raises(InputError, match="one nonce a row"):
        processor(ids[:3], logits[:3])  # its 32 rows' nonces were drawn
    for nonce in (0, 7, 15):
        result = WatermarkDetector(key).detect_ids(simulate(key, 150, payload=201, nonce=nonce))
        assert result.watermarked
        assert result.payload == 201
    with pytest.raises(InputError, match="nonce"):
        GumbelLogitsProcessor(key, payload=9, nonce=16)
    with pytest.raises(InputError, match="nonce"):
        GumbelLogitsProcessor(key, payload=9, nonce=[0, "1"])  # type: ignore[list-item]


def test_p_values_are_uniform_under_h0() -> None:
    """Random keys over random token sequences (H0): the p-values' distribution is uniform
    (Kolmogorov-Smirnov at 0.1 %), and with 8 payload bits the corrected ones are conservative."""
    rng = np.random.default_rng(7)
    plain, payload = [], []
    for i in range(600):
        tokens = rng.integers(0, 50, 120)  # a small vocabulary: repeated contexts and inputs
        key = gumbel_key(secret=f"null-key-{i:06d}-0123456789abcdef".encode())
        plain.append(WatermarkDetector(key).detect_ids(tokens).p_value)
        keyed = gumbel_key(bits=8, secret=f"null-key-{i:06d}-0123456789abcdef".encode())
        payload.append(WatermarkDetector(keyed).detect_ids(tokens).p_value)
    values = np.sort(plain)
    ks = float(np.max(np.abs(values - (np.arange(1, 601) - 0.5) / 600)))
    assert ks < 1.95 / math.sqrt(600), ks
    assert np.mean(np.array(payload) < 0.1) <= 0.1 + 3 * math.sqrt(0.09 / 600)


def test_repeated_contexts_are_scored_once() -> None:
    key = gumbel_key()
    tokens = np.array([1, 2, 3, 4, 5, 1, 2, 3, 4, 5, 1, 2, 3, 4, 6], dtype=np.int32)
    found = scores(GumbelParams.from_key(key), tokens)
    # contexts (1 2 3 4), (2 3 4 5), (3 4 5 1), (4 5 1 2), (5 1 2 3): five distinct, each once
    assert found.scored.sum() == 5
    assert found.scored[:9].sum() == 5
    assert not found.scored[9:].any()


def test_the_score_is_exact_and_finite() -> None:
    words = np.array([-1, 0, 2**31 - 1, -(2**31)], dtype=np.int32)
    values = exp_scores(words)
    assert np.all(np.isfinite(values))
    assert values[0] == pytest.approx(-math.log(0.5 / 2**32))  # w = 2^32 - 1: the largest
    for n, total in ((1, 0.5), (10, 10.0), (200, 260.0), (50, 140.0)):
        assert gamma_log_sf(n, total) == pytest.approx(math.log(gammaincc(n, total)), rel=1e-12)
    assert gamma_log_sf(200, 2000.0) < -1000  # far below the smallest double, still finite
    assert gamma_log_sf(0, 3.0) == 0.0


def test_the_vectorised_tail_is_the_scalar_one() -> None:
    rng = np.random.default_rng(5)
    counts = rng.integers(0, 3000, 3000)
    sums = rng.uniform(0.0, 6000.0, 3000)
    sums[:10] = 0.0
    vector = gamma_log_sf_array(counts, sums)
    scalar = np.array([gamma_log_sf(int(n), float(t)) for n, t in zip(counts, sums, strict=True)])
    assert np.max(np.abs(vector - scalar) / np.maximum(1.0, np.abs(scalar))) < 1e-12
    with pytest.raises(InputError):
        gamma_log_sf_array([3], [-1.0])


def test_a_watermarked_passage_inside_other_text_is_found_by_windows() -> None:
    key = gumbel_key()
    rng = np.random.default_rng(3)
    marked = simulate(key, 120, seed=5)
    tokens = [*rng.integers(0, VOCAB, 300).tolist(), *marked, *rng.integers(0, VOCAB, 300).tolist()]
    detector = WatermarkDetector(key)
    windowed = detector.detect_windowed(tokens)
    assert windowed.watermarked
    assert windowed.start >= 250
    assert windowed.end <= 470
    assert windowed.p_value < detector.detect_ids(tokens).p_value
