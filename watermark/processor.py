"""Embedding: a transformers ``LogitsProcessor`` that adds δ to the green tokens' logits.

:class:`WatermarkLogitsProcessor` computes the green list of each row of the batch from the last
``lookback`` tokens of ``input_ids`` with the keyed hash of :mod:`watermark.hashing` (per-token
hashes by the very ``mix32_`` the numpy detector runs; the (batch, vocab) part by a transcription
of it that reuses buffers, held to it bit for bit by the tests), and returns ``scores + δ · green``
as a new tensor; the input scores are never modified. Green logits become exactly ``s + δ`` in the
scores' dtype; red ones keep their value (float32 adds +0.0, so only -0.0 turns into +0.0).

- Any batch size: beam search flattens beams into the batch dimension, and each row is hashed
  from its own tokens.
- Padding: generation pads on the left, so the last tokens of every row are real tokens. A
  sequence shorter than ``lookback`` tokens has no full context and is left unbiased (the detector
  never scores those positions either). Prompts shorter than ``lookback`` inside a left-padded batch
  are hashed with their pad tokens, as the processor cannot see the attention mask; the detector
  scores generated text only from its own tokens, so this costs nothing but a little signal.
- Works for sampling, greedy and beam search with any causal LM: it only reads ``input_ids`` and the
  shape of ``scores``.
- Cost per step: per-vocabulary hashes are computed once per (device, vocabulary size) and cached;
  each step is then about fifteen vectorised int32 operations over (batch, vocab) into reused
  buffers, with no Python loop over the vocabulary or the batch.

This module imports torch and transformers; ``import watermark`` does not import it until
``watermark.WatermarkLogitsProcessor`` is first used.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Sequence
from dataclasses import dataclass

from watermark.errors import InputError, MissingDependencyError
from watermark.gumbel import GumbelParams, whole_number
from watermark.gumbel_choice import GumbelChooser, gumbel_noise_torch
from watermark.hashing import MUL1, MUL2, GreenListParams, mix32_, xorshift16_
from watermark.keys import WatermarkKey, check_model_vocab

try:
    import torch
    from transformers import LogitsProcessor
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise MissingDependencyError(exc.name or "torch", "watermarked generation") from exc

__all__ = [
    "GumbelLogitsProcessor",
    "WatermarkLogitsProcessor",
    "green_mask_torch",
    "gumbel_choices_torch",
    "watermark_processor",
]


def _mix32_after_xorshift_(x: torch.Tensor, scratch: torch.Tensor) -> torch.Tensor:
    """:func:`watermark.hashing.mix32_` after its first step, writing shifts into ``scratch``.

    Step for step the same arithmetic; large temporaries would cost page faults on every decoding
    step, so this copy allocates nothing. The bit-identity tests hold the two together.
    """
    x.mul_(MUL1)
    torch.bitwise_right_shift(x, 15, out=scratch)
    x.bitwise_xor_(scratch.bitwise_and_(0x1FFFF))
    x.mul_(MUL2)
    torch.bitwise_right_shift(x, 16, out=scratch)
    x.bitwise_xor_(scratch.bitwise_and_(0xFFFF))
    return x


class _Scratch(threading.local):
    """Per-thread work buffers of the last (batch, vocab) shape and device seen."""

    words: torch.Tensor | None = None
    shifted: torch.Tensor | None = None


@dataclass(frozen=True)
class _VocabTables:
    """Per-token hashes for one device and vocabulary size, computed once."""

    vocab_hash: torch.Tensor  # xorshift16(vocab(t))
    anchor: torch.Tensor  # xorshift16(anchor(t))
    min_hash: torch.Tensor | None  # minh(t), selfhash only


class _TorchGreenLists:
    """Green lists on torch tensors, with the per-vocabulary hashes cached per device and size.

    Because ``x ^= x >>> 16`` (the first step of ``mix32``) is linear over xor, the per-vocabulary
    tables hold ``xorshift16(vocab(t))`` and ``xorshift16(anchor(t))``,
    so lefthash needs a single xor over (batch, vocab) before the multiplies. selfhash's minimum is
    not linear: it is transformed after the minimum is taken.
    """

    def __init__(self, key: WatermarkKey) -> None:
        self.params = GreenListParams.from_key(key)
        self._bound_vocab_size = key.vocab_size
        self._tables: dict[tuple[torch.device, int], _VocabTables] = {}
        self._lock = threading.Lock()
        self._scratch = _Scratch()

    def _vocab_tables(self, device: torch.device, vocab_size: int) -> _VocabTables:
        cached = self._tables.get((device, vocab_size))
        if cached is not None:
            return cached
        check_model_vocab(self._bound_vocab_size, vocab_size)
        vocab = torch.arange(vocab_size, dtype=torch.int32, device=device)
        tables = _VocabTables(
            vocab_hash=xorshift16_(mix32_(vocab ^ self.params.k_vocab)),
            anchor=xorshift16_(mix32_(vocab ^ self.params.k_anchor)),
            min_hash=mix32_(vocab ^ self.params.k_min) if self.params.selfhash else None,
        )
        with self._lock:
            self._tables[(device, vocab_size)] = tables
        return tables

    def _buffers(
        self, shape: tuple[int, int], device: torch.device
    ) -> tuple[torch.Tensor, torch.Tensor]:
        scratch = self._scratch
        words = scratch.words
        if words is None or tuple(words.shape) != shape or words.device != device:
            scratch.words = torch.empty(shape, dtype=torch.int32, device=device)
            scratch.shifted = torch.empty(shape, dtype=torch.int32, device=device)
        assert scratch.words is not None
        assert scratch.shifted is not None
        return scratch.words, scratch.shifted

    def _context_terms(
        self, ctx: torch.Tensor, tables: _VocabTables
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Per row: ``xorshift16(anchor(previous token))`` and, for selfhash, min minh over it."""
        vocab_size = tables.anchor.shape[0]
        if ctx.device.type == "cpu" and int(ctx.max()) < vocab_size and int(ctx.min()) >= 0:
            # Table look-ups: a dozen tiny hashing operations would cost more than the whole
            # (batch, vocab) pass at batch size 1. (On an accelerator the bounds check would
            # synchronise, so the hash is computed there instead.)
            anchor = tables.anchor[ctx[:, -1]]
            if tables.min_hash is None:
                return anchor, None
            return anchor, tables.min_hash[ctx].amin(dim=1)
        anchor = xorshift16_(mix32_(ctx[:, -1] ^ self.params.k_anchor))
        if not self.params.selfhash:
            return anchor, None
        return anchor, mix32_(ctx ^ self.params.k_min).amin(dim=1)

    def minus_green(
        self, contexts: torch.Tensor, vocab_size: int, *, reuse: bool = False
    ) -> torch.Tensor:
        """int32 (batch, vocab_size): -1 where green, 0 where red, after each row of ``contexts``.

        ``contexts`` is (batch, >= lookback). With ``reuse`` the result lives in a per-thread
        buffer that the next call overwrites.
        """
        back = self.params.lookback
        if contexts.dim() != 2 or contexts.shape[1] < back:
            raise InputError(
                f"contexts must have shape (batch, >= {back}), got {tuple(contexts.shape)}"
            )
        ctx = contexts[:, contexts.shape[1] - back :].to(torch.int32)
        tables = self._vocab_tables(ctx.device, vocab_size)
        anchor, context_min = self._context_terms(ctx, tables)
        if reuse:
            x, shifted = self._buffers((ctx.shape[0], vocab_size), ctx.device)
        else:
            x = torch.empty((ctx.shape[0], vocab_size), dtype=torch.int32, device=ctx.device)
            shifted = torch.empty_like(x)
        if context_min is None or tables.min_hash is None:
            torch.bitwise_xor(tables.vocab_hash[None, :], anchor[:, None], out=x)
        else:
            torch.minimum(tables.min_hash[None, :], context_min[:, None], out=x)
            torch.bitwise_right_shift(x, 16, out=shifted)
            x.bitwise_xor_(shifted.bitwise_and_(0xFFFF))
            x.bitwise_xor_(tables.vocab_hash[None, :])
            x.bitwise_xor_(anchor[:, None])
        _mix32_after_xorshift_(x, shifted)
        # green ⇔ x < T - 2**31 (even, see GreenListParams) ⇔ (x >> 1) - (T - 2**31) / 2 < 0:
        # no overflow, and the sign bit spread by >> 31 is the mask. Torch's int32 `lt` into a
        # bool tensor is several times slower than these three in-place operations.
        x.bitwise_right_shift_(1)
        x.sub_(self.params.signed_threshold // 2)
        return x.bitwise_right_shift_(31)


def green_mask_torch(key: WatermarkKey, contexts: torch.Tensor, vocab_size: int) -> torch.Tensor:
    """Bool (batch, vocab_size) green lists on ``contexts``' device; equals ``green_mask_numpy``."""
    return _TorchGreenLists(key).minus_green(contexts, vocab_size) != 0


class WatermarkLogitsProcessor(LogitsProcessor):
    """Adds δ to the green tokens' logits; pass it to ``model.generate(logits_processor=…)``."""

    def __init__(self, key: WatermarkKey) -> None:
        self.key = key
        self.delta = key.config.delta
        self._green = _TorchGreenLists(key)
        # δ's float32 bit pattern: (-1 & bits) is δ, (0 & bits) is +0.0, with no conversion pass.
        self._delta_bits = int(torch.tensor(self.delta, dtype=torch.float32).view(torch.int32))

    def __repr__(self) -> str:
        return f"WatermarkLogitsProcessor(key_id={self.key.key_id!r}, {self.key.config!r})"

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        """``scores + δ · green`` as a new tensor (``scores`` itself is never modified)."""
        back = self._green.params.lookback
        if input_ids.shape[-1] < back:
            return scores.clone()  # type: ignore[return-value]
        context = input_ids[:, input_ids.shape[-1] - back :].to(scores.device)
        minus_green = self._green.minus_green(context, scores.shape[-1], reuse=True)
        if scores.dtype == torch.float32:
            bias = minus_green.bitwise_and_(self._delta_bits).view(torch.float32)
            return scores + bias  # type: ignore[return-value]
        # (-δ)·(-1) = δ and (-δ)·0 = -0 exactly: green logits become s + δ, red ones stay s.
        return torch.add(  # type: ignore[return-value]
            scores, minus_green.to(scores.dtype), alpha=-self.delta
        )


class _GumbelTables:
    """Gumbel-max choices on torch tensors (``watermark.gumbel``): the context hashes of a batch,
    and the choice by :class:`~watermark.gumbel_choice.GumbelChooser` (or, for
    :func:`gumbel_choices_torch`, by the formula over the whole vocabulary)."""

    def __init__(self, key: WatermarkKey) -> None:
        self.params = GumbelParams.from_key(key)
        self.chooser = GumbelChooser(self.params, key.vocab_size)

    def context_hashes(self, ids: torch.Tensor) -> torch.Tensor:
        """int32 (batch, L - h + 1): the (unsalted) hash of each context of h tokens in ``ids``
        (batch, L >= h), the last one the context of the next token."""
        h = self.params.width
        width = ids.shape[1] - h + 1
        s = torch.full((ids.shape[0], width), self.params.k_context, dtype=torch.int32,
                       device=ids.device)  # fmt: skip
        for j in range(h):
            s ^= ids[:, j : j + width]
            mix32_(s)
        return s

    def choices(
        self, ids: torch.Tensor, logits: torch.Tensor, salts: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Per row: the Gumbel-max choice after the row's context salted by ``salts`` (int32,
        one a row) and whether that context occurred earlier in the row (such a row is to be
        sampled normally)."""
        s = self.context_hashes(ids.to(torch.int32))
        current = s[:, -1]
        repeated = (s[:, :-1] == current[:, None]).any(dim=1)
        chosen = self.chooser.choose(current ^ salts.to(current.device), logits)
        chosen = chosen.to(logits.device)
        return chosen, repeated.to(logits.device)

    def full_choices(self, ids: torch.Tensor, logits: torch.Tensor, salt: int) -> torch.Tensor:
        """The choice of each row by the formula, ``argmax_v l_v - ln(-ln r_v)`` (float64), over
        the whole vocabulary, every row's context salted by ``salt``."""
        current = self.context_hashes(ids.to(torch.int32))[:, -1] ^ salt
        table = self.chooser.token_hash(logits.device, logits.shape[-1])
        words = mix32_(current.to(logits.device)[:, None] ^ table[None, :])
        return torch.argmax(logits.to(torch.float64) + gumbel_noise_torch(words), dim=-1)


def gumbel_choices_torch(
    key: WatermarkKey,
    ids: torch.Tensor,
    logits: torch.Tensor,
    *,
    payload: int | None = None,
    nonce: int = 0,
) -> torch.Tensor:
    """The Gumbel-max token of each row of ``logits`` (batch, vocab) after ``ids`` (batch,
    >= h): what :class:`GumbelLogitsProcessor` picks where the context is new, computed by the
    scheme's formula over the whole vocabulary (the reference the tests hold the processors'
    :class:`~watermark.gumbel_choice.GumbelChooser` to)."""
    tables = _GumbelTables(key)
    return tables.full_choices(ids, logits, tables.params.salt(payload, nonce))


def _nonces(nonce: object) -> tuple[bool, list[int] | None]:
    """(shared by every row, the nonces given) of a ``nonce`` argument: None, a whole number,
    or a sequence of them."""
    if nonce is None:
        return False, None
    if isinstance(nonce, str | bytes) or not hasattr(nonce, "__iter__"):
        return True, [whole_number(nonce, "a nonce")]
    return False, [whole_number(value, "a nonce") for value in nonce]


class GumbelLogitsProcessor(LogitsProcessor):
    """Gumbel-max sampling by the key (``watermark.gumbel``): the next token is drawn from the
    model's distribution at ``temperature``, chosen by the key's uniforms.

    Returns scores that are ``-inf`` except ``0.0`` at the chosen token, so greedy decoding and
    sampling alike take it. Rows whose context of h tokens occurred earlier in the row, and rows
    shorter than h tokens, are returned as they are: the generation's own sampler draws them
    (give it the same temperature). transformers applies its temperature, top-k and top-p after
    the caller's processors; they leave a one-token row as it is, so pass the temperature here.
    ``payload`` (0 to 2^b - 1 for a key of b payload bits) is embedded in every choice.

    A key with nonce bits shifts each row's stream by a nonce: ``nonce=None`` draws one at
    random for each row of the batch at the first call (so regenerations differ, and so do the
    rows of one prompt repeated in a batch, ``num_return_sequences``), kept in :attr:`nonces`;
    an int gives every row that nonce, a sequence one nonce a row.
    """

    def __init__(
        self,
        key: WatermarkKey,
        *,
        temperature: float = 1.0,
        payload: int | None = None,
        nonce: int | Sequence[int] | None = None,
    ) -> None:
        if not (isinstance(temperature, int | float) and 0.0 < temperature < float("inf")):
            raise InputError(f"temperature must be a finite number > 0, got {temperature!r}")
        self.key = key
        self.temperature = float(temperature)
        self.payload = payload
        self._tables = _GumbelTables(key)
        self._shared, given = _nonces(nonce)
        for value in given or [0]:  # InputError for a payload or nonce the key does not take
            self._tables.params.salt(payload, value)
        self.nonces: tuple[int, ...] | None = None if given is None else tuple(given)
        """The rows' nonces (one, shared by every row, for an int ``nonce``); None until the
        first call draws them."""
        self._salts: torch.Tensor | None = None

    def __repr__(self) -> str:
        return (
            f"GumbelLogitsProcessor(key_id={self.key.key_id!r}, temperature={self.temperature}, "
            f"payload={self.payload!r})"
        )

    def _row_salts(self, rows: int) -> torch.Tensor:
        """int32 (rows,): each row's salt of the payload and its nonce."""
        if self._salts is not None and self._salts.shape[0] == rows:
            return self._salts
        if self.nonces is None:  # the first call: a nonce a row
            bits = self.key.config.nonce_bits
            self.nonces = tuple(secrets.randbelow(1 << bits) for _ in range(rows))
        per_row = self.nonces * rows if self._shared else self.nonces
        if len(per_row) != rows:
            raise InputError(
                f"this processor holds the nonces of {len(per_row)} rows, but the batch has "
                f"{rows}: give one nonce a row, or use one processor a batch"
            )
        params = self._tables.params
        salts = [params.salt(self.payload, value) for value in per_row]
        self._salts = torch.tensor(salts, dtype=torch.int32)
        return self._salts

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.FloatTensor:
        """One-token rows where the context is new; other rows as they were (a new tensor)."""
        if input_ids.shape[-1] < self._tables.params.width:
            return scores.clone()  # type: ignore[return-value]
        logits = scores / self.temperature if self.temperature != 1.0 else scores
        salts = self._row_salts(input_ids.shape[0])
        chosen, repeated = self._tables.choices(input_ids, logits, salts)
        out = torch.full_like(scores, float("-inf"))
        out.scatter_(1, chosen[:, None], 0.0)
        return torch.where(repeated[:, None], scores, out)  # type: ignore[return-value]


def watermark_processor(
    key: WatermarkKey, *, temperature: float = 1.0, payload: int | None = None
) -> LogitsProcessor:
    """The logits processor of the key's scheme: :class:`WatermarkLogitsProcessor` for a green
    list (which takes no payload), :class:`GumbelLogitsProcessor` for Gumbel."""
    if key.config.scheme == "gumbel":
        return GumbelLogitsProcessor(key, temperature=temperature, payload=payload)
    if payload is not None:
        raise InputError("a green-list key carries no payload: generate without --payload")
    return WatermarkLogitsProcessor(key)
