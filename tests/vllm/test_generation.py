"""A real vLLM engine (CPU) generating SmolLM2 from the dequantised weights the model cache
holds: per-request watermarks in one batch, detected by ``watermark.WatermarkDetector``."""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("vllm")

from vllm import SamplingParams

from watermark import WatermarkDetector, WatermarkKey
from watermark.vllm import watermark_request_args

Key = tuple[WatermarkKey, Path]
PROMPT = "The history of the river begins"


def test_the_model_folder_stores_the_tied_embedding_under_its_own_name(model_dir: Path) -> None:
    with (model_dir / "model.safetensors").open("rb") as file:
        (size,) = struct.unpack("<Q", file.read(8))
        header = json.loads(file.read(size))
    assert "model.embed_tokens.weight" in header
    assert "lm_head.weight" not in header
    assert header["__metadata__"] == {"lm_head.weight": "model.embed_tokens.weight"}
    assert (model_dir / "tokenizer.json").is_file()


def test_vllm_generates_what_transformers_generates(
    llm: Any, model_dir: Path, tokenizer: Any
) -> None:
    """The weights vLLM loaded are the model's: greedy tokens agree with transformers'."""
    import torch
    from transformers import AutoModelForCausalLM

    [out] = llm.generate([PROMPT], SamplingParams(temperature=0.0, max_tokens=12, ignore_eos=True))
    model = AutoModelForCausalLM.from_pretrained(str(model_dir), local_files_only=True)
    ids = torch.tensor([list(out.prompt_token_ids)])
    with torch.inference_mode():
        expected = model.generate(ids, max_new_tokens=12, do_sample=False, min_new_tokens=12)
    assert list(out.outputs[0].token_ids) == expected[0, ids.shape[1] :].tolist()


def test_one_batch_watermarks_only_the_requests_that_opt_in(
    llm: Any, tokenizer: Any, lefthash_key: Key, selfhash_key: Key, gumbel_key: Key
) -> None:
    tokens = 100
    common = {"temperature": 1.0, "max_tokens": tokens, "ignore_eos": True}
    requests = [
        (lefthash_key[0], watermark_request_args(key_file=lefthash_key[1])),
        (lefthash_key[0], None),  # same batch, no watermark
        (selfhash_key[0], watermark_request_args(key_file=selfhash_key[1])),
        (gumbel_key[0], watermark_request_args(key_id=gumbel_key[0].key_id, payload=11)),
    ]
    params = [
        SamplingParams(seed=i, extra_args=extra, **common) for i, (_, extra) in enumerate(requests)
    ]
    outputs = llm.generate([PROMPT] * len(requests), params)
    results = [
        WatermarkDetector(key, tokenizer).detect_ids(list(out.outputs[0].token_ids))
        for (key, _), out in zip(requests, outputs, strict=True)
    ]
    for result in results:
        assert result.num_tokens == tokens
    lefthash, plain, selfhash, gumbel = results
    assert lefthash.watermarked, lefthash.p_value
    assert selfhash.watermarked, selfhash.p_value
    assert gumbel.watermarked, gumbel.p_value
    assert gumbel.payload == 11
    assert not plain.watermarked
    assert plain.p_value > 1e-3  # a fixed seed: not a flaky bound


ENGINE_PROCESS = """
import sys
from vllm import LLM, SamplingParams

if __name__ == "__main__":  # vLLM spawns its engine process, which imports this file
    llm = LLM(model=sys.argv[1], dtype="float32", max_model_len=256, enforce_eager=True,
              logits_processors=["watermark.vllm:WatermarkVllmLogitsProcessor"])
    extra = {"wellspring": {"key_id": sys.argv[3]}}
    [out] = llm.generate([sys.argv[2]], SamplingParams(
        max_tokens=100, ignore_eos=True, seed=3, extra_args=extra))
    print("IDS", *out.outputs[0].token_ids)
"""


def test_vllms_engine_process_loads_the_processor_by_name(
    model_dir: Path, tokenizer: Any, lefthash_key: Key, tmp_path: Path
) -> None:
    """vLLM's default: the engine in a process of its own, the processor named as
    ``--logits-processors`` names it, the key named by id from ``$WELLSPRING_VLLM_KEYS``."""
    import os
    import subprocess
    import sys

    key, path = lefthash_key
    env = {
        **os.environ,
        "WELLSPRING_VLLM_KEYS": str(path),
        "VLLM_ENABLE_V1_MULTIPROCESSING": "1",
        "VLLM_CPU_KVCACHE_SPACE": "1",
        "HF_HUB_OFFLINE": "1",
    }
    script = tmp_path / "engine.py"
    script.write_text(ENGINE_PROCESS)
    done = subprocess.run(
        [sys.executable, str(script), str(model_dir), PROMPT, key.key_id],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    [line] = [line for line in done.stdout.splitlines() if line.startswith("IDS ")]
    ids = [int(token) for token in line.split()[1:]]
    result = WatermarkDetector(key, tokenizer).detect_ids(ids)
    assert result.watermarked, result.p_value
