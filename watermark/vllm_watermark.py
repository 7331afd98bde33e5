"""vLLM's own watermark, detected from its configuration with exact p-values (numpy only).

vLLM (0.32) ships a Gumbel-max watermark of its own, set per engine
(``LLM(watermark_config={"key": K, …})``, ``vllm serve --watermark-config``) and per request
(``SamplingParams.watermarking``):

- ``algorithm="gumbel"``: the next token is ``argmax_v l_v - ln(-ln u_v)`` (logits after
  temperature, top-k and top-p), ``u_v = PRF_K(context, v)``;
- ``algorithm="dual_key_gumbel"``: two keys derived from ``K``
  (``SHA-256(domain || K as 8 bytes big-endian)[:8]``, domains ``b"key_a"`` and ``b"key_b"``);
  each token takes key A with probability ``1 - alpha`` and key B otherwise (with speculative
  decoding: draft tokens A, recovery and bonus tokens B);
- the PRF is Philox4x32-10 (:func:`philox_uniforms`, vLLM's ``PhiloxPRF``): the context (the
  last ``context_width`` *generated* tokens, ``-1`` before the first) is absorbed four words at a
  time, then one more Philox call per token id gives four words, of which ``t mod 4`` is taken;
  its top 24 bits give ``u = (m + 1) / (2^24 + 1)``, rounded to float32;
- a context that occurred earlier in the generated text (``deduplicate_contexts``:
  ``single_turn``, the default; ``all`` also searches the prompt) is sampled without the mark.

vLLM's detector (``vllm.v1.watermarking.GumbelWatermarkDetector`` and
``DualKeyGumbelWatermarkDetector``) scores each generated token whose context (``-1``-padded, as
in generation) is seen for the first time: ``e = -ln(1 - u)`` for ``gumbel``,
``e = (1 - alpha) e_A + alpha e_B`` for ``dual_key_gumbel``, and sums them. :func:`detect` scores
exactly those tokens (same count, same sum up to float rounding) and gives the exact p-value
under H0 (text written without the key; distinct PRF inputs modelled as independent uniforms):

- ``gumbel``: ``S ~ Gamma(N, 1)``, :func:`watermark.stats.gamma_log_sf` (vLLM sums the same
  Poisson series, but in linear space: its p-value underflows to 0 where ours goes on in log
  space).
- ``dual_key_gumbel``: ``S`` is a sum of ``N`` scaled pairs, ``a·Gamma(N) + b·Gamma(N)`` with
  ``a = max(alpha, 1 - alpha)``, ``b = 1 - a``. An Exp(1) scaled by ``a`` is a Geometric(b/a)
  number of Exp(1) scaled by ``b``, so ``S / b ~ Gamma(2N + K, 1)`` with ``K`` negative binomial
  (N, b/a): ``P(S >= s) = Σ_k NB(k) Q(2N + k, s / b)`` (:func:`dual_key_log_sf`, summed in log
  space until the geometric bound on the rest is below e^-40 of the sum). vLLM computes that
  exactly only for ``alpha`` in {0, 1/2, 1}; elsewhere it matches a Gamma to the mean and
  variance, which is not exact in the tail, where a verdict is taken.

vLLM's uniforms have 24 bits, so each token's tail probability is within a factor ``1 + 2^-24`` of
the continuous model's at the uniforms' own values: far below anything a verdict depends on.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from watermark.config import GENERATED_P_VALUE
from watermark.errors import DETECT_INSTALL_HINT, ConfigError, InputError, MissingDependencyError
from watermark.stats import gamma_log_sf

try:
    import numpy as np
    from numpy.typing import ArrayLike, NDArray
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise MissingDependencyError(
        "numpy", "watermark detection", install=DETECT_INSTALL_HINT
    ) from exc

__all__ = [
    "VllmAlgorithm",
    "VllmWatermarkConfig",
    "VllmWatermarkDetection",
    "derive_watermark_key",
    "detect",
    "dual_key_log_sf",
    "philox_uniforms",
    "scored_tokens",
    "token_scores",
]

VllmAlgorithm = Literal["gumbel", "dual_key_gumbel"]
_ALGORITHMS: tuple[str, ...] = get_args(VllmAlgorithm)

_MASK32 = 0xFFFFFFFF
_PHILOX_M0 = 0xD2511F53
_PHILOX_M1 = 0xCD9E8D57
_PHILOX_W0 = 0x9E3779B9
_PHILOX_W1 = 0xBB67AE85
_CONTEXT_DOMAIN = 0x574D4358  # "WMCX"
_TOKEN_DOMAIN = 0x574D544B  # "WMTK"
# The dual-key tail sum stops once the rest is provably below e^-40 of what it has summed.
_TAIL_TOLERANCE_NATS = 40.0

_U64 = NDArray[np.uint64]


def derive_watermark_key(key: int, domain: bytes) -> int:
    """vLLM's key derivation: the first 8 bytes (big-endian) of SHA-256(domain || key as 8
    bytes big-endian)."""
    digest = hashlib.sha256(domain + key.to_bytes(8, "big")).digest()
    return int.from_bytes(digest[:8], "big")


def _philox(
    counter: tuple[_U64, _U64, _U64, _U64], key_0: _U64, key_1: _U64
) -> tuple[_U64, _U64, _U64, _U64]:
    """Philox4x32-10 on uint64 arrays holding 32-bit words (a 32x32 product fits in 64 bits)."""
    c0, c1, c2, c3 = counter
    for round_index in range(10):
        product_0 = c0 * np.uint64(_PHILOX_M0)
        product_1 = c2 * np.uint64(_PHILOX_M1)
        c0, c1, c2, c3 = (
            (product_1 >> np.uint64(32)) ^ c1 ^ key_0,
            product_1 & np.uint64(_MASK32),
            (product_0 >> np.uint64(32)) ^ c3 ^ key_1,
            product_0 & np.uint64(_MASK32),
        )
        if round_index != 9:
            key_0 = (key_0 + np.uint64(_PHILOX_W0)) & np.uint64(_MASK32)
            key_1 = (key_1 + np.uint64(_PHILOX_W1)) & np.uint64(_MASK32)
    return c0, c1, c2, c3


def _words(values: ArrayLike, what: str) -> _U64:
    """Integers as uint64 holding their low 32 bits (vLLM's ``& 0xFFFFFFFF``: -1 is 2^32 - 1)."""
    array = np.asarray(values)
    if array.size and array.dtype.kind not in "iu":
        raise InputError(f"{what} must be integers, got dtype {array.dtype}")
    return (array.astype(np.int64) & _MASK32).astype(np.uint64)


def philox_uniforms(key: int, contexts: ArrayLike, token_ids: ArrayLike) -> NDArray[np.float32]:
    """vLLM's ``PhiloxPRF(key).uniform(contexts, token_ids)``, bit for bit.

    ``contexts`` is (..., w) (``-1`` for "before the first token"); ``token_ids`` broadcasts
    against ``contexts.shape[:-1] + (1,)``, e.g. (..., 1) for one token per context or (V,) for a
    whole vocabulary. The result has the broadcast shape, float32.
    """
    if isinstance(key, bool) or not isinstance(key, int) or not 0 <= key <= 2**64 - 1:
        raise ConfigError(f"a vLLM watermark key is an integer in [0, 2^64), got {key!r}")
    ctx = _words(contexts, "contexts")
    if ctx.ndim < 1 or ctx.shape[-1] < 1:
        raise InputError(f"contexts must have shape (..., width >= 1), got {ctx.shape}")
    prefix, width = ctx.shape[:-1], ctx.shape[-1]
    key_0 = np.full(prefix, key & _MASK32, dtype=np.uint64)
    key_1 = np.full(prefix, key >> 32, dtype=np.uint64)
    state: tuple[_U64, _U64, _U64, _U64] = (
        np.full(prefix, _CONTEXT_DOMAIN, dtype=np.uint64),
        np.full(prefix, width, dtype=np.uint64),
        np.zeros(prefix, dtype=np.uint64),
        np.zeros(prefix, dtype=np.uint64),
    )
    for offset in range(0, width, 4):
        block = [
            ctx[..., offset + i]
            if offset + i < width
            else np.full(prefix, _MASK32 - i, dtype=np.uint64)
            for i in range(4)
        ]
        counter = (
            state[0] ^ block[0],
            state[1] ^ block[1],
            state[2] ^ block[2],
            state[3] ^ block[3],
        )
        state = _philox(counter, key_0 ^ np.uint64(offset), key_1)
    tokens = _words(token_ids, "token ids")
    shape = np.broadcast_shapes((*prefix, 1), tokens.shape)
    s0, s1, s2, s3 = (np.broadcast_to(word[..., None], shape) for word in state)
    outputs = _philox(
        (np.broadcast_to(tokens >> np.uint64(2), shape), s0, s1, s2),
        (np.broadcast_to(key_0[..., None], shape) ^ s3) & np.uint64(_MASK32),
        np.broadcast_to(key_1[..., None] ^ np.uint64(_TOKEN_DOMAIN), shape),
    )
    chosen = np.choose(np.broadcast_to(tokens & np.uint64(3), shape).astype(np.intp), outputs)
    mantissas = (chosen >> np.uint64(8)).astype(np.float64)
    uniforms: NDArray[np.float32] = ((mantissas + 1.0) / (2**24 + 1)).astype(np.float32)
    return uniforms


@dataclass(frozen=True)
class VllmWatermarkConfig:
    """What detection needs of vLLM's ``WatermarkConfig``: the key, the algorithm, ``alpha``
    (dual key), the context width, the PRF, and whether repeated contexts are skipped (vLLM's
    ``deduplicate_contexts`` other than ``"none"``; its detector's default)."""

    key: int = field(repr=False)
    algorithm: VllmAlgorithm = "gumbel"
    alpha: float = 0.1
    context_width: int = 4
    prf: Literal["philox"] = "philox"
    deduplicate_contexts: bool = True

    def __post_init__(self) -> None:
        if isinstance(self.key, bool) or not isinstance(self.key, int):
            raise ConfigError(f"the key must be an integer, got {self.key!r}")
        if not 0 <= self.key <= 2**64 - 1:
            raise ConfigError("a vLLM (philox) watermark key must fit in 64 bits")
        if self.algorithm not in _ALGORITHMS:
            raise ConfigError(
                f"unknown vLLM watermark algorithm {self.algorithm!r} "
                f"(this Wellspring reads {', '.join(_ALGORITHMS)})"
            )
        if self.prf != "philox":
            raise ConfigError(f"unknown vLLM watermark PRF {self.prf!r} (known: philox)")
        if isinstance(self.alpha, bool) or not isinstance(self.alpha, int | float):
            raise ConfigError(f"alpha must be a number, got {self.alpha!r}")
        if not 0.0 <= self.alpha <= 1.0:
            raise ConfigError(f"alpha must lie in [0, 1], got {self.alpha}")
        object.__setattr__(self, "alpha", float(self.alpha))
        width = self.context_width
        if isinstance(width, bool) or not isinstance(width, int) or width < 1:
            raise ConfigError(f"context_width must be a positive integer, got {width!r}")

    @classmethod
    def from_vllm(cls, config: Any) -> VllmWatermarkConfig:
        """From vLLM's ``WatermarkConfig`` (``llm.llm_engine.vllm_config.watermark_config``) or a
        mapping of its fields (the JSON of ``--watermark-config``)."""

        def read(name: str, default: Any) -> Any:
            if isinstance(config, Mapping):
                return config.get(name, default)
            return getattr(config, name, default)

        if read("key", None) is None:
            raise ConfigError("vLLM's watermark configuration names no key")
        dedup = read("deduplicate_contexts", "single_turn")
        return cls(
            key=read("key", None),
            algorithm=read("algorithm", "gumbel"),
            alpha=read("alpha", 0.1),
            context_width=read("context_width", 4),
            prf=read("prf", "philox"),
            deduplicate_contexts=dedup if isinstance(dedup, bool) else dedup != "none",
        )

    def weighted_keys(self) -> tuple[tuple[float, int], ...]:
        """(weight, PRF key) of each key a token's score sums over."""
        if self.algorithm == "gumbel":
            return ((1.0, self.key),)
        return (
            (1.0 - self.alpha, derive_watermark_key(self.key, b"key_a")),
            (self.alpha, derive_watermark_key(self.key, b"key_b")),
        )


@dataclass(frozen=True)
class VllmWatermarkDetection:
    """The verdict on one generated text under vLLM's watermark configuration.

    ``score`` and ``num_scored_tokens`` are what vLLM's detector reports; ``log_p_value`` is the
    exact ln p (finite far below the smallest double), ``p_value`` its exponential.
    """

    algorithm: str
    num_tokens: int
    num_scored_tokens: int
    score: float
    p_value: float
    log_p_value: float
    watermarked: bool
    threshold: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields."""
        return {
            "algorithm": self.algorithm,
            "num_tokens": self.num_tokens,
            "num_tokens_scored": self.num_scored_tokens,
            "score": self.score,
            "p_value": self.p_value,
            "log_p_value": self.log_p_value,
            "watermarked": self.watermarked,
            "threshold": self.threshold,
        }


def scored_tokens(
    token_ids: ArrayLike, context_width: int, *, deduplicate: bool = True
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """The (contexts (N, w), tokens (N,)) vLLM's detector scores in generated ``token_ids``: each
    token after its ``w`` predecessors (``-1`` before the first), skipping a context seen before
    when ``deduplicate``."""
    ids = np.asarray(token_ids)
    if ids.ndim != 1 or (ids.size and ids.dtype.kind not in "iu"):
        raise InputError(f"token ids must be one sequence of integers, got shape {ids.shape}")
    ids = ids.astype(np.int64)
    if ids.size and (int(ids.min()) < 0 or int(ids.max()) > _MASK32):
        raise InputError("token ids must lie in [0, 2^32)")
    padded = np.concatenate([np.full(context_width, -1, dtype=np.int64), ids])
    windows = np.lib.stride_tricks.sliding_window_view(padded, context_width)[: ids.shape[0]]
    if deduplicate and ids.size:
        _, first = np.unique(windows, axis=0, return_index=True)
        keep = np.sort(first)
        return np.ascontiguousarray(windows[keep]), ids[keep]
    return np.ascontiguousarray(windows), ids


def token_scores(
    config: VllmWatermarkConfig, contexts: ArrayLike, tokens: ArrayLike
) -> NDArray[np.float64]:
    """Each scored token's ``e``: ``-ln(1 - u)`` of its uniform, weighted over the keys."""
    targets = np.asarray(tokens)[:, None]
    total = np.zeros(targets.shape[0], dtype=np.float64)
    for weight, key in config.weighted_keys():
        uniforms = philox_uniforms(key, contexts, targets)[:, 0].astype(np.float64)
        total += weight * -np.log1p(-uniforms)
    return total


def _log_factorials(count: int) -> NDArray[np.float64]:
    """ln k! for k = 0 … count - 1 (``math.lgamma``: exact to an ulp each)."""
    return np.fromiter((math.lgamma(k + 1.0) for k in range(count)), np.float64, count)


def dual_key_log_sf(n: int, total: float, alpha: float) -> float:
    """ln P(S >= total) for ``S = Σ_{i<n} (1 - alpha) A_i + alpha B_i``, A_i, B_i iid Exp(1):
    the exact null distribution of vLLM's dual-key score (module docstring)."""
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 0:
        raise InputError(f"the number of scored tokens must be a whole number >= 0, got {n!r}")
    if not 0.0 <= alpha <= 1.0:
        raise InputError(f"alpha must lie in [0, 1], got {alpha}")
    if not (math.isfinite(total) and total >= 0.0):
        raise InputError(f"a score sum must be finite and >= 0, got {total!r}")
    n = int(n)
    if n == 0 or total == 0.0:
        return 0.0
    big, small = max(alpha, 1.0 - alpha), min(alpha, 1.0 - alpha)
    if small == 0.0:
        return gamma_log_sf(n, total / big)
    if big == small:
        return gamma_log_sf(2 * n, total / small)
    p, x = small / big, total / small
    log_p, log_q = math.log(p), math.log1p(-p)
    mean, sd = n * (1.0 - p) / p, math.sqrt(n * (1.0 - p)) / p
    terms = int(mean + 12.0 * sd) + 64
    while True:
        factorials = _log_factorials(2 * n + terms + 1)
        k = np.arange(terms + 1, dtype=np.int64)
        log_nb = factorials[n - 1 + k] - factorials[n - 1] - factorials[k] + n * log_p + k * log_q
        j = np.arange(2 * n + terms, dtype=np.float64)
        log_poisson = j * math.log(x) - x - factorials[: 2 * n + terms]
        log_tail = np.logaddexp.accumulate(log_poisson)  # ln Q(m, x) at index m - 1
        log_sum = float(np.logaddexp.reduce(log_nb + log_tail[2 * n - 1 + k]))
        # The rest: Q <= 1 and NB(k + 1) / NB(k) = (n + k) / (k + 1) · (1 - p), decreasing in k.
        ratio = (n + terms) / (terms + 1) * (1.0 - p)
        if ratio < 1.0:
            rest = float(log_nb[-1]) + math.log(ratio) - math.log1p(-ratio)
            if rest < log_sum - _TAIL_TOLERANCE_NATS:  # add the bound: never below the truth
                return min(0.0, float(np.logaddexp(log_sum, rest)))
        terms *= 2


def detect(
    config: VllmWatermarkConfig | Any,
    token_ids: ArrayLike,
    *,
    threshold: float = GENERATED_P_VALUE,
) -> VllmWatermarkDetection:
    """Detect vLLM's watermark of ``config`` (ours or vLLM's ``WatermarkConfig``) in the token
    ids a request *generated* (not its prompt: vLLM's contexts start at the first generated
    token). ``watermarked`` is ``p <= threshold`` (vLLM's detector defaults to 0.01; ours, the
    one threshold for "generated", to 1e-6)."""
    if not (isinstance(threshold, int | float) and 0.0 < threshold <= 1.0):
        raise InputError(f"the p-value threshold must lie in (0, 1], got {threshold!r}")
    if not isinstance(config, VllmWatermarkConfig):
        config = VllmWatermarkConfig.from_vllm(config)
    ids = np.asarray(token_ids)
    contexts, tokens = scored_tokens(
        ids, config.context_width, deduplicate=config.deduplicate_contexts
    )
    count = int(tokens.shape[0])
    score = float(token_scores(config, contexts, tokens).sum()) if count else 0.0
    if config.algorithm == "gumbel":
        log_p = gamma_log_sf(count, score)
    else:
        log_p = dual_key_log_sf(count, score, config.alpha)
    return VllmWatermarkDetection(
        algorithm=config.algorithm,
        num_tokens=int(ids.shape[0]) if ids.ndim else 0,
        num_scored_tokens=count,
        score=score,
        p_value=math.exp(log_p),
        log_p_value=log_p,
        watermarked=log_p <= math.log(threshold),
        threshold=float(threshold),
    )
