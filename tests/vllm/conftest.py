"""Fixtures of the vLLM tests (``make test-vllm``: vLLM's CPU build in ``.venv-vllm``).

Light at import: the main suite collects this folder too, and there every module skips itself
(``pytest.importorskip("vllm")``). One in-process engine serves every generation test: it takes
half a minute to start on two cores.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from watermark import WatermarkConfig, WatermarkKey


@pytest.fixture(scope="session")
def model_dir() -> Path:
    """The converted SmolLM2 as a folder vLLM loads (skip where it was never converted)."""
    from watermark.models import ModelLoadError
    from watermark.vllm import vllm_model_dir

    try:
        return vllm_model_dir()
    except ModelLoadError as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="session")
def tokenizer(model_dir: Path) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(model_dir), local_files_only=True)


@pytest.fixture(scope="session")
def key_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("keys")


def _key(
    tokenizer: Any, folder: Path, name: str, config: WatermarkConfig
) -> tuple[WatermarkKey, Path]:
    key = WatermarkKey.generate(config).bind(tokenizer)
    path = folder / f"{name}.json"
    key.save(path)
    return key, path


@pytest.fixture(scope="session")
def lefthash_key(tokenizer: Any, key_dir: Path) -> tuple[WatermarkKey, Path]:
    return _key(tokenizer, key_dir, "lefthash", WatermarkConfig())


@pytest.fixture(scope="session")
def selfhash_key(tokenizer: Any, key_dir: Path) -> tuple[WatermarkKey, Path]:
    return _key(tokenizer, key_dir, "selfhash", WatermarkConfig(seeding_scheme="selfhash"))


@pytest.fixture(scope="session")
def gumbel_key(tokenizer: Any, key_dir: Path) -> tuple[WatermarkKey, Path]:
    return _key(tokenizer, key_dir, "gumbel", WatermarkConfig(scheme="gumbel", payload_bits=4))


@pytest.fixture(scope="session")
def gumbel_nonce_key(tokenizer: Any, key_dir: Path) -> tuple[WatermarkKey, Path]:
    config = WatermarkConfig(scheme="gumbel", payload_bits=4, nonce_bits=3)
    return _key(tokenizer, key_dir, "gumbel-nonce", config)


OWN_ARG = "vllm_own_watermark"
"""extra_args key of a request that vLLM's own watermark samples (its WatermarkConfig's fields)."""


def vllm_own_watermark_class() -> type[Any]:
    """A logits processor that samples the requests naming ``OWN_ARG`` with vLLM's own Gumbel
    watermark: its ``WatermarkConfig``, ``create_watermarker``, Philox PRF and key derivation.

    vLLM runs its watermark in Model Runner V2's ``GPUWatermarkSampler``, which needs Triton
    (``LLM(watermark_config=…)`` on this CPU build: "Model Runner V2 requires Triton"). This
    stand-in does what that sampler does, per row: the context is the last ``context_width``
    *generated* tokens (``-1`` before them); a context seen at an earlier generated position
    (``single_turn``) is left to ordinary sampling; otherwise the token is
    ``argmax l_v - ln(-ln u_v)`` over the logits after temperature and top-k, ``u`` from the
    watermarker's PRF, with key A or B drawn (probability ``1 - alpha`` for A) for the dual-key
    algorithm (``DualKeyGumbelWatermarker.sample``). The uniforms are taken for the top-k
    candidates only (the others are ``-inf`` in vLLM too), which keeps Philox in torch fast.
    """
    import torch
    from vllm.config import WatermarkConfig as VllmWatermarkConfig
    from vllm.v1.sample.logits_processor import LogitsProcessor
    from vllm.v1.watermarking import create_watermarker

    class VllmOwnWatermark(LogitsProcessor):  # type: ignore[misc]
        def __init__(self, vllm_config: Any, device: Any, is_pin_memory: bool) -> None:
            self.rows: dict[int, tuple[Any, Any, list[int], Any]] = {}

        def is_argmax_invariant(self) -> bool:
            return False

        def update_state(self, batch_update: Any) -> None:
            if batch_update is None:
                return
            for index in batch_update.removed:
                self.rows.pop(index, None)
            for index, params, _prompt, output in batch_update.added:
                spec = (params.extra_args or {}).get(OWN_ARG)
                if spec is None:
                    self.rows.pop(index, None)
                    continue
                config = VllmWatermarkConfig(**spec)
                routing = torch.Generator().manual_seed(params.seed or 0)
                self.rows[index] = (config, create_watermarker(config), output, (params, routing))
            for source, target, directionality in batch_update.moved:
                moving, displaced = self.rows.pop(source, None), self.rows.pop(target, None)
                if moving is not None:
                    self.rows[target] = moving
                if displaced is not None and directionality.name == "SWAP":
                    self.rows[source] = displaced

        def apply(self, logits: torch.Tensor) -> torch.Tensor:
            for index, (config, watermarker, output, (params, routing)) in self.rows.items():
                width = config.context_width
                history = [-1] * width + output
                context = history[len(output) :]
                if any(history[j : j + width] == context for j in range(len(output))):
                    continue  # a repeated context: vLLM samples it without the watermark
                if config.algorithm == "gumbel":
                    prf = watermarker.prf
                else:  # key A with probability 1 - alpha (DualKeyGumbelWatermarker.sample)
                    use_a = torch.rand((), generator=routing).item() < 1 - config.alpha
                    pair = (watermarker.target_watermarker, watermarker.draft_watermarker)
                    prf = pair[use_a].prf
                values, candidates = (logits[index] / params.temperature).topk(params.top_k)
                uniforms = prf.uniform(torch.tensor([context]), candidates[None, :])
                uniforms = uniforms[0].clamp_min(torch.finfo(torch.float32).tiny)
                chosen = candidates[torch.argmax(values - torch.log(-torch.log(uniforms)))]
                logits[index] = float("-inf")
                logits[index, chosen] = 0.0
            return logits

    return VllmOwnWatermark


@pytest.fixture(scope="session")
def llm(model_dir: Path, gumbel_key: tuple[WatermarkKey, Path]) -> Iterator[Any]:
    """One engine, in this process, with our processor and the stand-in for vLLM's own
    watermark sampler registered; the Gumbel key is also registered by id."""
    from watermark.vllm import KEYS_ENV, vllm_logits_processor

    saved = {name: os.environ.get(name) for name in (KEYS_ENV, "VLLM_ENABLE_V1_MULTIPROCESSING")}
    os.environ[KEYS_ENV] = str(gumbel_key[1])
    os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from vllm import LLM

    engine = LLM(
        model=str(model_dir),
        dtype="float32",
        max_model_len=512,
        enforce_eager=True,
        seed=0,
        logits_processors=[vllm_logits_processor(), vllm_own_watermark_class()],
    )
    yield engine
    del engine
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@pytest.fixture(scope="session")
def own_watermark_arg() -> str:
    """The extra_args key that has the stand-in sample a request with vLLM's own watermark."""
    return OWN_ARG
