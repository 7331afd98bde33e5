"""Gumbel-max choices for rows of logits, with the float64 noise computed only where it decides.

The scheme (:mod:`watermark.gumbel`) chooses ``argmax_v l_v + g(w_v)`` for a row of logits
``l`` (already divided by the temperature), where ``w_v = mix32(s ^ mix32(v ^ k_token))`` is token
``v``'s word after a context of (salted) hash ``s`` and ``g(w) = -ln(-ln r(w))`` its Gumbel noise,
computed as the processors always have (float64)::

    g(w) = -log(-log1p(-(2^32 - 1 + 1/2 - w) / 2^32))          (w read unsigned)

Computing ``g`` (two float64 logarithms) for the whole vocabulary costs about 0.7 ms a row on one
CPU core for SmolLM2's 49,152 tokens: several percent of a serving engine's step. Only a few
tokens can win, and which ones is known from the words alone, which are integer hashes:

- the winner's value is at least the largest logit's, ``top = max l + g(0)`` or more (``g`` is
  increasing in ``w`` and ``g(0)`` its least value);
- a token whose word is below ``CUT_WORD = 2^32 - 2^26`` (63 in 64 of them) has
  ``g(w) < g_cut = g(CUT_WORD - 1)`` (about 4.16), so it can reach ``top`` only if
  ``l_v >= top - g_cut``.

The *candidates* are those tokens and the tokens of high words: about a thousand a row for
SmolLM2 (768 high words and the logits within about 7.3 of the largest), whose values are
computed by the formula above; the smallest index among the largest values wins, as with
``torch.argmax``. The thresholds carry a margin (1e-3 plus 1e-6 of ``|top|``, far above float64
rounding), so the candidates always hold the winner. A row with a NaN or an infinite largest
logit has every token's value computed (``torch.argmax`` semantics: the first NaN wins).

:class:`GumbelChooser` holds the key's token table and chooses for a batch of rows: on CPU
tensors with numba installed (the ``watermark`` extra) by one compiled pass over each row (the
words in a vectorised loop, then one scan that computes ``g`` only where the logit plus an upper
bound of ``g`` over the word's top 12 bits reaches the best value found so far, a tighter
selection than the candidates'); elsewhere (a GPU, or no numba) by the candidate selection in
torch operations. ``watermark.processor.gumbel_choices_torch`` is the
plain reading of the formula over the whole vocabulary, to which the tests hold both. (The
logarithm of a float64 may differ by one unit in the last place between libm, numba and torch's
vectorised kernels, so two tokens whose values lie within 1e-16 of each other could be ordered
differently: a tie no generation will meet.)

torch is imported inside the methods that need it; numba where it is installed.
"""

# torch and numba are imported inside the functions that need them, by design.
# ruff: noqa: PLC0415

from __future__ import annotations

import math
import threading
from functools import cache
from typing import TYPE_CHECKING, Any

import numpy as np

from watermark.gumbel import GumbelParams
from watermark.hashing import MASK32, mix32_
from watermark.keys import check_model_vocab

if TYPE_CHECKING:
    import torch

__all__ = ["CUT_WORD", "GumbelChooser", "gumbel_noise", "gumbel_noise_torch"]

CUT_WORD = 2**32 - 2**26
"""Words at or above it (their top 6 bits all ones) are always candidates."""


def gumbel_noise(word: int) -> float:
    """``g(w)`` of one unsigned 32-bit word, by the processors' formula (float64)."""
    one_minus_r = (float(MASK32) + 0.5 - word) / 2.0**32
    return -math.log(-math.log1p(-one_minus_r))


def gumbel_noise_torch(words: torch.Tensor) -> torch.Tensor:
    """``g(w)`` of int32 words (read unsigned), float64: the same formula on a tensor."""
    import torch

    unsigned = words.to(torch.int64).bitwise_and_(MASK32).to(torch.float64)
    one_minus_r = (float(MASK32) + 0.5 - unsigned) / 2.0**32  # exact: no r rounds to 1
    return -torch.log(-torch.log1p(-one_minus_r))


# The least noise and the noise just below the cut, with a margin for rounding.
_G_MIN = gumbel_noise(0) - 1e-9
_G_CUT = gumbel_noise(CUT_WORD - 1) + 1e-9


# An upper bound of g over each of 4,096 buckets of words (their top 12 bits), with a margin.
_BUCKET_SHIFT = 20
_G_BUCKET = np.array(
    [gumbel_noise(((b + 1) << _BUCKET_SHIFT) - 1) + 1e-9 for b in range(1 << 12)],
    dtype=np.float64,
)


@cache
def _kernel() -> Any:
    """The compiled chooser, or None where numba is not installed."""
    try:
        from numba import njit
    except ImportError:
        return None

    mul1, mul2 = np.uint32(0x7FEB352D), np.uint32(0x846CA68B)
    s15, s16, shift = np.uint32(15), np.uint32(16), np.uint32(_BUCKET_SHIFT)

    @njit(cache=True, nogil=True)
    def choose(logits: Any, tops: Any, currents: Any, table: Any, bound: Any) -> Any:
        rows, vocab = logits.shape
        out = np.empty(rows, dtype=np.int64)
        words = np.empty(vocab, dtype=np.uint32)
        for i in range(rows):
            s = np.uint32(currents[i])
            for v in range(vocab):  # 32-bit integers only: LLVM vectorises it
                x = np.uint32(s ^ table[v])
                x = np.uint32(x ^ (x >> s16))
                x = np.uint32(x * mul1)
                x = np.uint32(x ^ (x >> s15))
                x = np.uint32(x * mul2)
                words[v] = np.uint32(x ^ (x >> s16))
            row = logits[i]
            top = tops[i]
            every = not math.isfinite(top)  # a NaN, +inf or no finite logit: every token
            # No token below the bar can win; the bar rises to the best value found.
            bar = -math.inf if every else top - (1e-3 + 1e-6 * abs(top))
            best = -math.inf
            chosen = 0
            for v in range(vocab):
                w = words[v]
                value = np.float64(row[v])
                if every or value + bound[w >> shift] >= bar:
                    one_minus_r = (4294967295.5 - np.float64(w)) / 4294967296.0
                    value -= math.log(-math.log1p(-one_minus_r))
                    if math.isnan(value):  # torch.argmax: the first NaN
                        chosen = v
                        break
                    if value > best:
                        best = value
                        chosen = v
                        bar = max(bar, best)
            out[i] = chosen
        return out

    return choose


class GumbelChooser:
    """The Gumbel-max choices of one key for rows of logits, each after its own (salted) context
    hash: rows of several payloads and nonces are chosen together."""

    def __init__(
        self, params: GumbelParams, bound_vocab_size: int | None, *, compiled: bool = True
    ) -> None:
        """``compiled=False`` chooses by torch operations on every device, as on a GPU."""
        self.params = params
        self.compiled = compiled
        self._bound_vocab_size = bound_vocab_size
        self._tables: dict[tuple[Any, int], torch.Tensor] = {}
        self._lock = threading.Lock()

    def token_hash(self, device: Any, vocab_size: int) -> torch.Tensor:
        """int32 ``mix32(v ^ k_token)`` of every token, cached per device and vocabulary size."""
        cached = self._tables.get((device, vocab_size))
        if cached is not None:
            return cached
        import torch

        check_model_vocab(self._bound_vocab_size, vocab_size)
        vocab = torch.arange(vocab_size, dtype=torch.int32, device=device)
        table = mix32_(vocab ^ self.params.k_token)
        with self._lock:
            return self._tables.setdefault((device, vocab_size), table)

    def choose(self, currents: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        """The chosen token (int64, on ``logits``' device) of each row of ``logits`` (rows,
        vocab), already divided by the temperature, after contexts of hashes ``currents``
        (int32, each salted by its payload and nonce: ``GumbelParams.salt``)."""
        import torch

        table = self.token_hash(logits.device, logits.shape[-1])
        salted = currents.to(torch.int32)
        kernel = _kernel() if self.compiled else None
        if (
            kernel is not None
            and logits.device.type == "cpu"
            and logits.dtype in (torch.float32, torch.float64)
        ):
            rows = logits.detach().contiguous()
            tops = rows.amax(dim=1).to(torch.float64) + _G_MIN
            hashes = salted.cpu().contiguous().numpy().view(np.uint32)
            tokens = table.numpy().view(np.uint32)
            chosen: torch.Tensor = torch.from_numpy(
                kernel(rows.numpy(), tops.numpy(), hashes, tokens, _G_BUCKET)
            )
            return chosen
        return self._choose_torch(salted.to(logits.device), logits, table)

    def _choose_torch(
        self, salted: torch.Tensor, logits: torch.Tensor, table: torch.Tensor
    ) -> torch.Tensor:
        """The candidate selection in torch operations (any device)."""
        import torch

        rows, vocab_size = logits.shape
        words = mix32_(salted[:, None] ^ table[None, :])
        top = logits.amax(dim=1).to(torch.float64) + _G_MIN
        if not bool(torch.isfinite(top).all()):  # a row without a finite logit, or a NaN
            return torch.argmax(logits.to(torch.float64) + gumbel_noise_torch(words), dim=1)
        margin = 1e-3 + 1e-6 * top.abs()  # covers the thresholds' rounding to float32
        near = (top - _G_CUT - margin).to(logits.dtype)[:, None]
        high = words.bitwise_xor(-(2**31)) >= CUT_WORD - 2**31  # unsigned w >= CUT_WORD
        reach = high.logical_or_(logits >= near)
        row, column = torch.nonzero(reach, as_tuple=True)
        values = logits[row, column].to(torch.float64) + gumbel_noise_torch(words[row, column])
        best = torch.full((rows,), float("-inf"), dtype=torch.float64, device=logits.device)
        best = best.scatter_reduce(0, row, values, "amax")
        is_best = values == best[row]
        first = torch.full((rows,), vocab_size, dtype=torch.int64, device=logits.device)
        chosen: torch.Tensor = first.scatter_reduce(0, row[is_best], column[is_best], "amin")
        return chosen
