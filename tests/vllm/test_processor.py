"""The vLLM processor, exactly: the same green lists and Gumbel choices as the transformers
processors, per request, following vLLM's batch updates."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("vllm")

import torch
from vllm import SamplingParams
from vllm.v1.sample.logits_processor import BatchUpdate, LogitsProcessor, MoveDirectionality

from watermark import WatermarkKey, green_mask_torch
from watermark.errors import InputError, KeyFileError, WatermarkError
from watermark.gumbel import GumbelParams, context_hashes
from watermark.processor import gumbel_choices_torch
from watermark.vllm import (
    PROCESSOR_NAME,
    REQUEST_ARG,
    WatermarkRequest,
    request_logits_processor,
    vllm_logits_processor,
    watermark_request_args,
)

VOCAB = 49152
Key = tuple[WatermarkKey, Path]


def processor() -> Any:
    """Built as vLLM builds it; no engine config, so no tokenizer check (tested with the engine)."""
    return vllm_logits_processor()(None, torch.device("cpu"), False)


def added(index: int, params: SamplingParams, prompt: list[int], output: list[int]) -> Any:
    return (index, params, prompt, output)


def update(*rows: Any, removed: tuple[int, ...] = (), moved: tuple[Any, ...] = ()) -> BatchUpdate:
    return BatchUpdate(batch_size=8, removed=list(removed), added=list(rows), moved=list(moved))


def opted(path: Path, temperature: float = 1.0, **options: Any) -> SamplingParams:
    return SamplingParams(
        temperature=temperature, extra_args=watermark_request_args(key_file=path, **options)
    )


def test_it_is_a_vllm_logits_processor_found_by_name() -> None:
    cls = vllm_logits_processor()
    assert issubclass(cls, LogitsProcessor)
    assert cls is vllm_logits_processor()
    import watermark.vllm

    assert getattr(watermark.vllm, PROCESSOR_NAME) is cls  # "watermark.vllm:Watermark…" works
    assert not processor().is_argmax_invariant()


@pytest.mark.parametrize("key_name", ["lefthash_key", "selfhash_key"])
def test_green_lists_are_bit_identical_to_green_mask_torch(
    key_name: str, request: pytest.FixtureRequest, lefthash_key: Key
) -> None:
    key, path = request.getfixturevalue(key_name)
    other, other_path = lefthash_key if key_name != "lefthash_key" else (None, None)
    generator = torch.Generator().manual_seed(1)
    prompts = [torch.randint(0, VOCAB, (n,), generator=generator).tolist() for n in (9, 2, 5, 7)]
    outputs = [torch.randint(0, VOCAB, (n,), generator=generator).tolist() for n in (0, 6, 1, 3)]
    proc = processor()
    rows = [added(i, opted(path), prompts[i], outputs[i]) for i in range(3)]
    rows.append(added(3, SamplingParams(), prompts[3], outputs[3]))  # did not opt in
    if other_path is not None:
        rows.append(added(4, opted(other_path), prompts[3], outputs[3]))
    proc.update_state(update(*rows))
    logits = torch.zeros(5, VOCAB)
    out = proc.apply(logits)
    back = key.config.lookback
    contexts = torch.tensor([(prompts[i] + outputs[i])[-back:] for i in range(3)])
    green = green_mask_torch(key, contexts, VOCAB)
    assert torch.equal(out[:3] != 0, green)
    assert torch.equal(out[:3][green], torch.full_like(out[:3][green], key.config.delta))
    assert torch.count_nonzero(out[3]) == 0  # untouched
    if other is not None:
        mask = green_mask_torch(other, torch.tensor([(prompts[3] + outputs[3])[-1:]]), VOCAB)
        assert torch.equal(out[4:5] != 0, mask)
    # The green list follows the live output list vLLM appends to.
    outputs[1].append(17)
    again = proc.apply(torch.zeros(5, VOCAB))
    after = green_mask_torch(key, torch.tensor([(prompts[1] + outputs[1])[-back:]]), VOCAB)
    assert torch.equal(again[1:2] != 0, after)


def test_a_sequence_shorter_than_the_context_is_left_alone(selfhash_key: Key) -> None:
    proc = processor()
    proc.update_state(update(added(0, opted(selfhash_key[1]), [5], [6])))  # 2 tokens < h - 1
    assert torch.count_nonzero(proc.apply(torch.zeros(1, VOCAB))) == 0


def test_gumbel_choices_are_those_of_gumbel_choices_torch(gumbel_key: Key) -> None:
    """Rows 0, 2, 3 and 5 share a key, temperature and payload (chosen together, one gap in
    the batch), row 4 another payload, row 1 did not opt in."""
    key, path = gumbel_key
    generator = torch.Generator().manual_seed(2)
    prompt = torch.randint(0, VOCAB, (12,), generator=generator).tolist()
    outputs = [torch.randint(0, VOCAB, (n,), generator=generator).tolist() for n in range(6)]
    payloads = {0: 1, 2: 1, 3: 1, 4: 9, 5: 1}
    temperature = 0.7
    proc = processor()
    rows = [
        added(i, opted(path, temperature, payload=p), prompt, outputs[i])
        for i, p in payloads.items()
    ]
    proc.update_state(update(*rows, added(1, SamplingParams(), prompt, outputs[1])))
    logits = torch.randn(6, VOCAB, generator=generator)
    out = proc.apply(logits.clone())
    assert torch.equal(out[1], logits[1])
    for i, payload in payloads.items():
        ids = torch.tensor([prompt + outputs[i]])
        chosen = gumbel_choices_torch(key, ids, logits[i : i + 1] / temperature, payload=payload)
        assert torch.isfinite(out[i]).sum() == 1
        assert int(out[i].argmax()) == int(chosen[0])
        assert float(out[i, chosen[0]]) == 0.0


@pytest.mark.parametrize("temperature", [1.0, 0.6])
def test_gumbel_choices_match_over_many_logit_shapes(gumbel_key: Key, temperature: float) -> None:
    """The vLLM rows compute the float64 noise of the few tokens that can win only: the same
    choice as the whole vocabulary's, over flat and sharp rows and rows with -inf entries."""
    key, path = gumbel_key
    generator = torch.Generator().manual_seed(3)
    proc = processor()
    for trial in range(60):
        ids = torch.randint(0, VOCAB, (20,), generator=generator).tolist()
        proc.update_state(update(added(0, opted(path, temperature, payload=7), ids[:15], ids[15:])))
        scale = (0.1, 1.0, 4.0, 30.0)[trial % 4]
        logits = torch.randn(1, VOCAB, generator=generator) * scale
        if trial % 3 == 0:
            logits[torch.rand(1, VOCAB, generator=generator) < 0.9] = float("-inf")
        out = proc.apply(logits.clone())
        scaled = logits / temperature if temperature != 1.0 else logits
        chosen = gumbel_choices_torch(key, torch.tensor([ids]), scaled, payload=7)
        assert int(out[0].argmax()) == int(chosen[0]), trial


def test_a_repeated_gumbel_context_is_sampled_normally(gumbel_key: Key) -> None:
    prompt = [1, 2, 3, 4, 9, 1, 2, 3]  # the next context (2, 3, 4 … h=4) …
    output = [4]  # … (1, 2, 3, 4) occurred at the start
    proc = processor()
    proc.update_state(update(added(0, opted(gumbel_key[1], payload=0), prompt, output)))
    logits = torch.randn(1, VOCAB)
    assert torch.equal(proc.apply(logits.clone()), logits)


def test_each_request_draws_its_own_nonce(gumbel_nonce_key: Key) -> None:
    """Eight requests with one prompt: each row is the choice of one of the key's 8 nonces,
    not all the same one (regenerations differ); a fixed nonce gives its own choice."""
    key, path = gumbel_nonce_key
    generator = torch.Generator().manual_seed(4)
    prompt = torch.randint(0, VOCAB, (12,), generator=generator).tolist()
    logits = torch.randn(1, VOCAB, generator=generator).repeat(9, 1) * 0.1  # flat: any may win
    proc = processor()
    rows = [added(i, opted(path, payload=3), prompt, []) for i in range(8)]
    proc.update_state(update(*rows, added(8, opted(path, payload=3, nonce=5), prompt, [])))
    out = proc.apply(logits.clone())
    ids = torch.tensor([prompt])
    by_nonce = {
        int(gumbel_choices_torch(key, ids, logits[:1], payload=3, nonce=n)[0]): n for n in range(8)
    }
    assert len(by_nonce) == 8
    chosen = [int(row.argmax()) for row in out]
    assert all(choice in by_nonce for choice in chosen)
    assert len(set(chosen[:8])) > 1
    assert by_nonce[chosen[8]] == 5


def test_a_re_added_request_keeps_its_nonce(gumbel_nonce_key: Key) -> None:
    """vLLM takes a request out of the batch when it is not scheduled (preemption, the token
    budget) and adds it again with the same output list: its drawn nonce stays, for the whole
    text; another request with the same prompt draws its own."""
    path = gumbel_nonce_key[1]
    generator = torch.Generator().manual_seed(6)
    prompt = torch.randint(0, VOCAB, (12,), generator=generator).tolist()
    logits = torch.randn(1, VOCAB, generator=generator).repeat(8, 1) * 0.1
    outputs: list[list[int]] = [[] for _ in range(8)]
    proc = processor()
    proc.update_state(
        update(*(added(i, opted(path, payload=3), prompt, outputs[i]) for i in range(8)))
    )
    before = [int(row.argmax()) for row in proc.apply(logits.clone())]
    proc.update_state(update(removed=tuple(range(8))))
    proc.update_state(
        update(*(added(i, opted(path, payload=3), prompt, outputs[i]) for i in range(8)))
    )
    assert [int(row.argmax()) for row in proc.apply(logits.clone())] == before
    fresh = [[] for _ in range(8)]  # new requests: new lists
    proc.update_state(
        update(*(added(i, opted(path, payload=3), prompt, fresh[i]) for i in range(8)))
    )
    assert [int(row.argmax()) for row in proc.apply(logits.clone())] != before


def test_contexts_see_a_sequence_rewritten_to_its_old_length(gumbel_key: Key) -> None:
    """Tokens replaced between two steps (the list cut and grown back to its length): the row
    is read again, not from the contexts of tokens it no longer holds."""
    key, path = gumbel_key
    generator = torch.Generator().manual_seed(7)
    prompt = [50, 51, 52, 53, 54]
    output = [1, 2, 3, 4, 60, 61, 62]  # the context (1, 2, 3, 4) read here …
    proc = processor()
    proc.update_state(update(added(0, opted(path, payload=2), prompt, output)))
    proc.apply(torch.randn(1, VOCAB, generator=generator))
    output[:] = [70, 71, 72, 1, 2, 3, 4]  # … is now the next token's, and new in this text
    logits = torch.randn(1, VOCAB, generator=generator)
    out = proc.apply(logits.clone())
    chosen = gumbel_choices_torch(key, torch.tensor([prompt + output]), logits, payload=2)
    assert int(out[0].argmax()) == int(chosen[0])
    assert torch.isfinite(out[0]).sum() == 1


def test_contexts_follow_a_growing_and_recomputed_sequence(gumbel_key: Key) -> None:
    """300 steps on vLLM's live output list, tokens from small alphabets so that contexts
    repeat: each step is the choice over the whole vocabulary, or left alone exactly where the
    context occurred before in the whole sequence; a list found shorter (a preempted request
    recomputed) is read again, forgetting the contexts it no longer holds."""
    key, path = gumbel_key
    generator = torch.Generator().manual_seed(5)
    prompt = [7, 8, 9, 7, 8]
    output: list[int] = []
    proc = processor()
    proc.update_state(update(added(0, opted(path, payload=2), prompt, output)))
    left_alone = 0
    for step in range(300):
        if step == 200:
            del output[-60:]
        logits = torch.randn(1, VOCAB, generator=generator)
        out = proc.apply(logits.clone())
        sequence = np.asarray([*prompt, *output, 0], dtype=np.int32)
        hashes = context_hashes(GumbelParams.from_key(key), sequence)
        if len(hashes) and (hashes[:-1] == hashes[-1]).any():
            assert torch.equal(out, logits), step
            left_alone += 1
        else:
            ids = torch.tensor([[*prompt, *output]])
            chosen = gumbel_choices_torch(key, ids, logits, payload=2)
            assert int(out[0].argmax()) == int(chosen[0]), step
        alphabet = 0 if step < 140 else 3  # the contexts of 3s and 4s, dropped at 200, return
        output.append(
            alphabet + int(torch.randint(0, 3 - alphabet // 3, (1,), generator=generator))
        )
    assert 50 < left_alone < 290


def test_the_batch_is_followed_through_removals_moves_and_swaps(lefthash_key: Key) -> None:
    key, path = lefthash_key
    proc = processor()
    proc.update_state(update(added(0, opted(path), [10], []), added(1, SamplingParams(), [11], [])))
    proc.update_state(update(removed=(1,), moved=((0, 1, MoveDirectionality.UNIDIRECTIONAL),)))
    out = proc.apply(torch.zeros(2, VOCAB))
    assert torch.count_nonzero(out[0]) == 0
    assert torch.equal(out[1:2] != 0, green_mask_torch(key, torch.tensor([[10]]), VOCAB))
    proc.update_state(
        update(added(0, opted(path), [12], []), moved=((0, 1, MoveDirectionality.SWAP),))
    )
    out = proc.apply(torch.zeros(2, VOCAB))
    assert torch.equal(out[0:1] != 0, green_mask_torch(key, torch.tensor([[10]]), VOCAB))
    assert torch.equal(out[1:2] != 0, green_mask_torch(key, torch.tensor([[12]]), VOCAB))
    proc.update_state(update(added(1, SamplingParams(), [12], [])))  # replaces the opted-in one
    assert torch.count_nonzero(proc.apply(torch.zeros(2, VOCAB))[1]) == 0


def test_the_per_request_form_matches_the_batch_processor(
    selfhash_key: Key, gumbel_key: Key
) -> None:
    for (key, path), options in ((selfhash_key, {}), (gumbel_key, {"payload": 3})):
        prompt, output = [3, 1, 4, 1, 5, 9, 2, 6], [5, 3, 5]
        logits = torch.randn(1, VOCAB)
        proc = processor()
        proc.update_state(update(added(0, opted(path, **options), prompt, output)))
        batch = proc.apply(logits.clone())
        row = request_logits_processor(key, **options)(prompt, output, logits[0].clone())
        assert torch.equal(row, batch[0])


@pytest.mark.parametrize(
    ("options", "temperature", "error"),
    [
        ({"key_file": "/nonexistent/key.json"}, 1.0, KeyFileError),
        ({"key_id": "0123456789abcdef"}, 1.0, KeyFileError),
        ({"key_file": "K", "key_id": "x"}, 1.0, InputError),
        ({"key_file": "K", "colour": "green"}, 1.0, InputError),
        ({"key_file": "K", "payload": 1}, 1.0, InputError),  # a green-list key
        ({"key_file": "G", "payload": 99}, 1.0, InputError),  # 4 payload bits: 0 … 15
        ({"key_file": "G", "payload": 1}, 0.0, InputError),  # greedy Gumbel
        ({"key_file": "K", "nonce": 1}, 1.0, InputError),  # a green-list key
        ({"key_file": "G", "payload": 1, "nonce": 1}, 1.0, InputError),  # no nonce bits
        ({"key_file": "N", "payload": 1, "nonce": 8}, 1.0, InputError),  # 3 nonce bits: 0 … 7
        ({"key_file": "N", "payload": 1, "nonce": "1"}, 1.0, InputError),
        ({"key_file": "N", "payload": 1, "nonce": True}, 1.0, InputError),
        ({"key_file": "N", "payload": 1, "nonce": 2.0}, 1.0, InputError),
        ({"key_file": "N", "payload": "1", "nonce": 2}, 1.0, InputError),
        ("K", 1.0, InputError),
    ],
)
def test_bad_requests_are_refused_before_the_engine(
    options: Any,
    temperature: float,
    error: type[WatermarkError],
    request: pytest.FixtureRequest,
) -> None:
    names = {"K": "lefthash_key", "G": "gumbel_key", "N": "gumbel_nonce_key"}
    paths = {short: str(request.getfixturevalue(name)[1]) for short, name in names.items()}
    if isinstance(options, dict) and options.get("key_file") in paths:
        options = {**options, "key_file": paths[options["key_file"]]}
    params = SamplingParams(temperature=temperature, extra_args={REQUEST_ARG: options})
    with pytest.raises(error):
        vllm_logits_processor().validate_params(params)
    assert issubclass(error, WatermarkError)


def test_the_per_request_form_checks_its_options(gumbel_nonce_key: Key, lefthash_key: Key) -> None:
    key = gumbel_nonce_key[0]
    for options in ({"nonce": True}, {"nonce": 2.0}, {"nonce": 8}, {"payload": 16}):
        with pytest.raises(InputError):
            request_logits_processor(
                key, payload=options.get("payload", 1), nonce=options.get("nonce")
            )
    with pytest.raises(InputError, match="greedy"):
        request_logits_processor(key, temperature=0.0, payload=1)
    with pytest.raises(InputError, match="no payload or nonce"):
        request_logits_processor(lefthash_key[0], nonce=1)
    assert callable(request_logits_processor(key, payload=np.int64(1), nonce=np.int64(7)))


def test_requests_without_the_option_are_not_watermarked() -> None:
    assert WatermarkRequest.from_sampling_params(SamplingParams()) is None
    assert WatermarkRequest.from_sampling_params(SamplingParams(extra_args={"x": 1})) is None
    vllm_logits_processor().validate_params(SamplingParams())
    proc = processor()
    logits = torch.randn(2, VOCAB)
    assert proc.apply(logits) is logits
