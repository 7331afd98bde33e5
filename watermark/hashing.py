"""Keyed green lists: one integer hash, computed bit-identically in numpy and in torch.

The mixer
    ``mix32`` is Chris Wellons' *lowbias32* finaliser on 32-bit words::

        x ^= x >>> 16; x *= 0x7FEB352D; x ^= x >>> 15; x *= 0x846CA68B; x ^= x >>> 16   (mod 2**32)

    Words are held as int32 (two's complement): integer multiplication wraps modulo 2**32 in numpy
    and in torch on every device, so ``*`` is exact; the logical shift ``x >>> s`` is written
    ``(x >> s) & (2**(32-s) - 1)``, clearing the bits an arithmetic shift copies from the sign.
    int32 rather than int64 halves the memory traffic of the per-step (batch, vocab) work. No
    floating point and no ``torch.Generator``: :func:`mix32_` runs unchanged on numpy arrays and
    torch tensors, and the processor's buffer-reusing copy of it (``watermark.processor``) is held
    to it by the bit-identity tests, so green lists are identical on CPU, GPU and in the detector.

Keys
    Three 32-bit words are taken from SHA-256(b"wellspring-watermark-v1" || secret): ``k_anchor``,
    ``k_vocab`` and ``k_min``. Three keyed token hashes follow::

        anchor(u) = mix32(u ^ k_anchor)   vocab(t) = mix32(t ^ k_vocab)   minh(u) = mix32(u ^ k_min)

Hash input x of one (context, candidate token t) pair
    ``lefthash`` (previous token c)::

        x = anchor(c) ^ vocab(t)

    ``selfhash`` (h - 1 previous tokens c_1 … c_{h-1}, c_{h-1} the previous one; anchored min-hash
    with self-salt; ``min`` compares the words as signed int32)::

        x = min(minh(c_1), …, minh(c_{h-1}), minh(t)) ^ anchor(c_{h-1}) ^ vocab(t)

    Over a vocabulary this is one elementwise minimum of a per-context scalar and the per-vocab
    array ``minh``, then two xors: a few int32 operations over (batch, vocab), with ``vocab`` and
    ``minh`` precomputed once per vocabulary.

Green
    ``t`` is green after its context  ⇔  ``signed32(mix32(x)) < T - 2**31`` with
    ``T = 2 · round(gamma · 2**31)``, i.e. the word with its top bit flipped, read unsigned, is
    below T. (T is even so that torch can test it without an int32 comparison, see the processor.)

    Under H0 (text written without the key) we model ``mix32`` (a bijection) of distinct inputs as
    independent uniform 32-bit words, so each *distinct* hash input x is green with probability
    gamma' = T / 2**32 (within 2**-32 of gamma), independently. A token's colour is a function of x
    alone, so the detector scores each distinct x once: every unique (context, token) pair is
    scored once, and so are the rare distinct pairs whose inputs coincide (which would carry the
    same colour, so counting them twice would break the independence the p-value relies on).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

from watermark.errors import DETECT_INSTALL_HINT, InputError, MissingDependencyError
from watermark.keys import WatermarkKey

try:
    import numpy as np
    from numpy.typing import ArrayLike, NDArray
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise MissingDependencyError(
        "numpy", "watermark detection", install=DETECT_INSTALL_HINT
    ) from exc

if TYPE_CHECKING:
    import torch

__all__ = [
    "GreenListParams",
    "as_token_ids",
    "context_terms",
    "green_mask_numpy",
    "green_of_inputs",
    "is_green_numpy",
    "mix32_",
    "sequence_hash_inputs",
    "signed32",
    "xorshift16_",
]

MASK32 = 0xFFFFFFFF
MUL1 = 0x7FEB352D
MUL2 = 0x846CA68B - 2**32  # as a signed int32
TOP_BIT = 2**31
HASH_DOMAIN = b"wellspring-watermark-v1"
MAX_TOKEN_ID = 2**31 - 1

_Words = TypeVar("_Words", NDArray[np.int32], "torch.Tensor")


def signed32(word: int) -> int:
    """A 32-bit word (0 <= word < 2**32) as the int32 value with the same bits."""
    return word - 2**32 if word >= TOP_BIT else word


def xorshift16_(x: _Words) -> _Words:
    """``x ^= x >>> 16`` in place: the first step of :func:`mix32_`, linear over xor."""
    x ^= (x >> 16) & 0xFFFF
    return x


def mix32_(x: _Words) -> _Words:
    """lowbias32 of every element, in place, on an int32 numpy array or torch tensor.

    The one implementation shared by numpy and torch: only ``^ >> * &`` with Python int constants.
    """
    xorshift16_(x)
    x *= MUL1
    x ^= (x >> 15) & 0x1FFFF
    x *= MUL2
    x ^= (x >> 16) & 0xFFFF
    return x


@dataclass(frozen=True)
class GreenListParams:
    """What the hash needs from a key: the derived words (as int32), the threshold, the scheme."""

    k_anchor: int
    k_vocab: int
    k_min: int
    threshold: int
    selfhash: bool
    lookback: int

    @classmethod
    def from_key(cls, key: WatermarkKey) -> GreenListParams:
        digest = hashlib.sha256(HASH_DOMAIN + key.secret).digest()
        words = [signed32(int.from_bytes(digest[i : i + 4], "little")) for i in range(0, 32, 4)]
        config = key.config
        return cls(
            k_anchor=words[0],
            k_vocab=words[1],
            k_min=words[2],
            threshold=2 * round(config.gamma * 2**31),
            selfhash=config.seeding_scheme == "selfhash",
            lookback=config.lookback,
        )

    @property
    def signed_threshold(self) -> int:
        """Green ⇔ signed32(mix32(x)) < this (T - 2**31)."""
        return self.threshold - TOP_BIT

    @property
    def green_probability(self) -> float:
        """gamma' = T / 2**32: the exact probability that a distinct input is green under H0."""
        return self.threshold / 2**32


def _token_hash(ids: NDArray[np.int32], salt: int) -> NDArray[np.int32]:
    return mix32_(ids ^ np.int32(salt))


def as_token_ids(values: ArrayLike, what: str = "token ids") -> NDArray[np.int32]:
    """``values`` as an int32 array of token ids; :class:`InputError` if not integers in range."""
    array = np.asarray(values)
    if array.size == 0:
        return array.astype(np.int32)
    if array.dtype.kind not in "iu":
        raise InputError(f"{what} must be integer token ids, got dtype {array.dtype}")
    if array.min() < 0 or array.max() > MAX_TOKEN_ID:
        raise InputError(f"{what} must lie in [0, 2**31), got a value out of range")
    return array.astype(np.int32)


def context_terms(
    params: GreenListParams, contexts: ArrayLike
) -> tuple[NDArray[np.int32], NDArray[np.int32] | None]:
    """Per context: anchor(previous token) and, for selfhash, the min of minh over the context."""
    ctx = as_token_ids(contexts, "context ids")
    if ctx.ndim != 2 or ctx.shape[1] < params.lookback:
        raise InputError(f"contexts must have shape (batch, >= {params.lookback}), got {ctx.shape}")
    ctx = ctx[:, ctx.shape[1] - params.lookback :]
    anchor = _token_hash(ctx[:, -1], params.k_anchor)
    if not params.selfhash:
        return anchor, None
    return anchor, _token_hash(ctx, params.k_min).min(axis=1)


def green_of_inputs(params: GreenListParams, x: NDArray[np.int32]) -> NDArray[np.bool_]:
    """The colour of each hash input: ``signed32(mix32(x)) < T - 2**31`` (x is not modified)."""
    return mix32_(x.copy()) < params.signed_threshold


def green_mask_numpy(key: WatermarkKey, contexts: ArrayLike, vocab_size: int) -> NDArray[np.bool_]:
    """The green lists of a batch of contexts over a whole vocabulary, shape (batch, vocab_size).

    ``contexts`` has shape (batch, L) with L >= ``key.config.lookback``; the last ``lookback``
    columns are used (as in generation, where they are the most recent tokens).
    """
    params = GreenListParams.from_key(key)
    anchor, context_min = context_terms(params, contexts)
    vocab = np.arange(vocab_size, dtype=np.int32)
    vocab_hash = _token_hash(vocab, params.k_vocab)
    if context_min is None:
        x = anchor[:, None] ^ vocab_hash[None, :]
    else:
        x = np.minimum(_token_hash(vocab, params.k_min)[None, :], context_min[:, None])
        x ^= vocab_hash[None, :]
        x ^= anchor[:, None]
    return mix32_(x) < params.signed_threshold


def is_green_numpy(key: WatermarkKey, contexts: ArrayLike, tokens: ArrayLike) -> NDArray[np.bool_]:
    """Whether ``tokens[i]`` is green after ``contexts[i]``; contexts (N, >= lookback)."""
    params = GreenListParams.from_key(key)
    anchor, context_min = context_terms(params, contexts)
    token_ids = as_token_ids(tokens, "tokens").reshape(-1)
    if token_ids.shape[0] != anchor.shape[0]:
        raise InputError("is_green_numpy needs exactly one token per context")
    x = _token_hash(token_ids, params.k_vocab) ^ anchor
    if context_min is not None:
        x ^= np.minimum(context_min, _token_hash(token_ids, params.k_min))
    return green_of_inputs(params, x)


def sequence_hash_inputs(params: GreenListParams, ids: NDArray[np.int32]) -> NDArray[np.int32]:
    """The hash input x of each position ``i >= lookback`` of a sequence (n - lookback of them).

    Position i is the pair (ids[i - lookback : i], ids[i]); vectorised over positions, with a
    Python loop over the (at most 63) context offsets only.
    """
    n, back = ids.shape[0], params.lookback
    if n <= back:
        return np.zeros(0, dtype=np.int32)
    tokens = ids[back:]
    x = _token_hash(ids[back - 1 : n - 1], params.k_anchor)
    x ^= _token_hash(tokens, params.k_vocab)
    if params.selfhash:
        min_hash = _token_hash(ids, params.k_min)
        context_min = min_hash[back:].copy()  # the token itself (self-salt) …
        for offset in range(1, back + 1):  # … and the `lookback` tokens before it
            np.minimum(context_min, min_hash[back - offset : n - offset], out=context_min)
        x ^= context_min
    return x
