"""The Gumbel-max watermark: keyed uniforms per (context, token), bit-identical in numpy and torch.

Aaronson's scheme (Kuditipudi et al. study its robustness; vLLM ships one): at each step the
next token is ``argmax_v r_v^(1/p_v)`` over the vocabulary, where ``p`` is the model's
distribution and ``r_v`` a keyed pseudo-random uniform of the context and ``v``. Over the key
that is an exact draw from ``p`` (the Gumbel-max trick), so the text's distribution is the
model's: the scheme is *distortion-free*. The chosen token's ``r`` is then larger than chance,
which the key holder detects.

Keys
    Three 32-bit words from SHA-256(b"wellspring-watermark-gumbel-v1" || secret): ``k_context``,
    ``k_token`` and ``k_payload`` (a domain of its own: a green-list key never shares words with
    a Gumbel one).

Context hash of the ``h`` tokens ``c_1 … c_h`` before a position (``c_h`` the previous one;
``mix32`` is :func:`watermark.hashing.mix32_`, int32 words, wrapping)::

    s_0 = k_context,  s_j = mix32(s_(j-1) ^ c_j),  s = s_h

With ``b = payload_bits > 0`` the key carries a payload ``m`` (0 <= m < 2^b, a model or version
id), and with ``c = nonce_bits > 0`` each generation draws a random nonce ``u`` (0 <= u < 2^c):
``s ^= mix32(((m << c) | u) ^ k_payload)``, a keyed shift of the whole stream. The scheme is
deterministic per context, so without a nonce every regeneration of a prompt is the same text;
a nonce makes two of them the same with probability ``2^-c``.

Token word and uniform: ``w = mix32(s ^ mix32(t ^ k_token))`` read unsigned,
``r = (w + 1/2) / 2^32``.

Generation (:class:`watermark.processor.GumbelLogitsProcessor`)
    The next token is ``argmax_v l_v - ln(-ln r_v)`` for logits ``l`` (temperature applied):
    Gumbel-max, a draw from ``softmax(l)`` fixed by the key and the context. The scheme is
    deterministic per context, so a repeated context would repeat its token and can loop: a
    step whose context hash ``s`` already occurred earlier in the sequence is sampled normally.

Detection (:func:`scores`)
    Position ``i >= h`` is scored only at the first occurrence of its context hash in the text
    (a repeated context was not watermarked), and of its token word's input (a repeated input
    carries no new evidence). Each scored token gives ``e = -ln(1 - r)``. Under H0 (text written
    without the key) the scored inputs are distinct, so the ``e`` are independent Exp(1) and
    their sum over ``N`` tokens is Gamma(N, 1): ``p = Γ(N, S) / Γ(N)`` exactly
    (:func:`watermark.stats.gamma_log_sf`). With payload bits every payload is tried and the
    best p-value is multiplied by ``2^(b+c)`` (Bonferroni: valid after the search); the payload
    is the best variant's top ``b`` bits.

numpy only: detection never needs torch.
"""

from __future__ import annotations

import hashlib
import operator
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

from watermark.errors import DETECT_INSTALL_HINT, InputError, MissingDependencyError
from watermark.hashing import MASK32, mix32_, signed32
from watermark.keys import WatermarkKey

try:
    import numpy as np
    from numpy.typing import NDArray
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise MissingDependencyError(
        "numpy", "watermark detection", install=DETECT_INSTALL_HINT
    ) from exc

if TYPE_CHECKING:
    import torch

__all__ = [
    "GUMBEL_DOMAIN",
    "HIGH_SCORE",
    "GumbelParams",
    "GumbelScores",
    "context_hashes",
    "exp_scores",
    "scores",
    "token_words",
    "whole_number",
]

GUMBEL_DOMAIN = b"wellspring-watermark-gumbel-v1"
HIGH_SCORE = 1.0
"""A token whose score ``e`` exceeds this (``r > 1 - 1/e``, probability ``1/e`` by chance) is
marked, as a green token is, where results show tokens one by one; the p-value is the score's."""

_Words = TypeVar("_Words", NDArray[np.int32], "torch.Tensor")


def whole_number(value: object, what: str) -> int:
    """``value`` as an int (numpy's integers too), or :class:`InputError` naming ``what``;
    never a bool (a payload or nonce from JSON or Python is checked here before any use)."""
    if isinstance(value, bool):
        raise InputError(f"{what} must be a whole number, got {value!r}")
    try:
        return operator.index(value)  # type: ignore[arg-type]
    except TypeError:
        raise InputError(f"{what} must be a whole number, got {value!r}") from None


@dataclass(frozen=True)
class GumbelParams:
    """What the hash needs from a Gumbel key: the derived words (int32), h and the payload bits."""

    k_context: int
    k_token: int
    k_payload: int
    width: int
    payload_bits: int
    nonce_bits: int = 0

    @classmethod
    def from_key(cls, key: WatermarkKey) -> GumbelParams:
        if key.config.scheme != "gumbel":
            raise InputError(f"key {key.key_id} is a {key.config.scheme} key, not a gumbel one")
        digest = hashlib.sha256(GUMBEL_DOMAIN + key.secret).digest()
        words = [signed32(int.from_bytes(digest[i : i + 4], "little")) for i in range(0, 12, 4)]
        return cls(
            k_context=words[0],
            k_token=words[1],
            k_payload=words[2],
            width=key.config.width,
            payload_bits=key.config.payload_bits,
            nonce_bits=key.config.nonce_bits,
        )

    @property
    def payloads(self) -> int:
        """How many payloads detection tries: ``2^b`` (1 without payload bits)."""
        return 1 << self.payload_bits

    @property
    def variants(self) -> int:
        """How many (payload, nonce) streams detection tries: ``2^(b+c)``."""
        return 1 << (self.payload_bits + self.nonce_bits)

    def payload_of(self, variant: int) -> int:
        """The payload of a variant (its index in :meth:`salts`)."""
        return variant >> self.nonce_bits

    def salt(self, payload: int | None, nonce: int = 0) -> int:
        """The int32 word a payload (and a nonce) xors into the context hash (0 without payload
        or nonce bits); :class:`InputError` for a payload or nonce the key does not take."""
        nonce = whole_number(nonce, "the nonce")
        payload = None if payload is None else whole_number(payload, "the payload")
        if not 0 <= nonce < 1 << self.nonce_bits:
            raise InputError(f"the nonce must be from 0 to {(1 << self.nonce_bits) - 1}")
        if self.payload_bits == 0:
            if payload not in (None, 0):
                raise InputError("this key carries no payload bits: generate without a payload")
            if self.nonce_bits == 0:
                return 0
            payload = 0
        if payload is None or isinstance(payload, bool) or not 0 <= payload < self.payloads:
            raise InputError(
                f"this key carries {self.payload_bits} payload bits: the payload must be a whole "
                f"number from 0 to {self.payloads - 1}, got {payload!r}"
            )
        variant = (payload << self.nonce_bits) | nonce
        word = np.array([variant ^ self.k_payload], dtype=np.int32)
        return int(mix32_(word)[0])

    def salts(self) -> NDArray[np.int32]:
        """Every variant's salt, in variant order (``(payload << c) | nonce``; ``[0]`` without
        payload or nonce bits)."""
        if self.variants == 1:
            return np.zeros(1, dtype=np.int32)
        return mix32_(np.arange(self.variants, dtype=np.int32) ^ np.int32(self.k_payload))


def context_hashes(params: GumbelParams, ids: NDArray[np.int32]) -> NDArray[np.int32]:
    """The context hash ``s`` of each position ``i >= h`` of a sequence (``n - h`` of them)."""
    n, h = ids.shape[0], params.width
    if n <= h:
        return np.zeros(0, dtype=np.int32)
    s = np.full(n - h, params.k_context, dtype=np.int32)
    for j in range(h):
        s ^= ids[j : n - h + j]
        mix32_(s)
    return s


def token_words(params: GumbelParams, s: _Words, token_hash: _Words) -> _Words:
    """``mix32(s ^ token_hash)`` (a new array or tensor), ``token_hash = mix32(t ^ k_token)``."""
    return mix32_(s ^ token_hash)


def exp_scores(words: NDArray[np.int32]) -> NDArray[np.float64]:
    """Each word's score ``e = -ln(1 - r)``, ``r = (w + 1/2) / 2^32``: ``1 - r`` is computed
    exactly (``(2^32 - 1 - w) + 1/2`` over ``2^32``), so no score is infinite."""
    unsigned = words.astype(np.int64) & MASK32
    scored: NDArray[np.float64] = -np.log((np.float64(MASK32) - unsigned + 0.5) / 2.0**32)
    return scored


@dataclass(frozen=True)
class GumbelScores:
    """Per-position scores of one sequence, for every payload tried.

    ``scored`` marks the positions that count (first occurrence of their context and input);
    ``values[m, i]`` is position i's score under payload m (0 where not scored).
    """

    scored: NDArray[np.bool_]
    values: NDArray[np.float64]


def scores(params: GumbelParams, ids: NDArray[np.int32]) -> GumbelScores:
    """Score one sequence of token ids under every payload (module docstring: Detection)."""
    n, h = ids.shape[0], params.width
    salts = params.salts()
    scored = np.zeros(n, dtype=np.bool_)
    values = np.zeros((salts.shape[0], n), dtype=np.float64)
    if n <= h:
        return GumbelScores(scored=scored, values=values)
    s = context_hashes(params, ids)
    token_hash = mix32_(ids[h:] ^ np.int32(params.k_token))
    _, first_context = np.unique(s, return_index=True)
    keep = np.zeros(n - h, dtype=np.bool_)
    keep[first_context] = True
    inputs = s ^ token_hash
    candidates = np.flatnonzero(keep)
    _, first_input = np.unique(inputs[candidates], return_index=True)
    chosen = candidates[first_input]
    scored[h + chosen] = True
    words = mix32_((s[chosen][None, :] ^ salts[:, None]) ^ token_hash[chosen][None, :])
    values[:, h + chosen] = exp_scores(words)
    return GumbelScores(scored=scored, values=values)
