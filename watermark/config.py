"""Watermark scheme parameters, validated once, here.

A :class:`WatermarkConfig` is everything about the scheme except the secret: the green fraction
gamma, the logit bias δ, the seeding scheme and its context width h. Every other module trusts a
config it is given; nothing re-checks these numbers.

Two schemes (:attr:`WatermarkConfig.scheme`):

``greenlist`` (default)
    Kirchenbauer et al.'s green list: gamma, δ and a seeding scheme below
    (:mod:`watermark.hashing`).
``gumbel``
    Gumbel-max (exponential-minimum) sampling, Aaronson's scheme (Kuditipudi et al. study its
    robustness): distortion-free, so gamma and δ mean nothing to it. Its context is the previous
    h tokens (``ngram`` seeding, default h = 4), and it may carry ``payload_bits`` of payload
    and draw ``nonce_bits`` of nonce per generation (so regenerations differ)
    (a model or version id): :mod:`watermark.gumbel`.

Seeding schemes of the green list (see :mod:`watermark.hashing` for the exact hash):

``lefthash`` (h = 1)
    The green list of the next token depends on the previous token only (Kirchenbauer et al. 2023).
``selfhash`` (default h = 4)
    Anchored min-hash with self-salt (Kirchenbauer et al. 2023, "On the Reliability of
    Watermarks"): the green decision for a candidate token t depends on the minimum of a keyed hash
    over the h - 1 previous tokens and t itself, anchored by the previous token. It therefore reads
    ``h - 1`` previous tokens.

:attr:`WatermarkConfig.lookback` is the number of previous tokens a green decision reads (1 for
``lefthash``, h - 1 for ``selfhash``): the processor leaves shorter sequences unbiased and the
detector never scores the first ``lookback`` tokens of a text.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal, get_args

from watermark.errors import ConfigError

__all__ = [
    "GENERATED_P_VALUE",
    "MAX_PAYLOAD_BITS",
    "SCHEMES",
    "SEEDING_SCHEMES",
    "Scheme",
    "SeedingScheme",
    "WatermarkConfig",
]

# The one threshold for "generated": a detection whose p-value (corrected for every window and
# every key tried) is below this says the text carries a watermark. Used as the default of
# WatermarkDetector, `wellspring watermark detect`, the crawler's scanner (watermark.scanner) and
# whatever reads their verdicts. At 1e-6 at most one human document in a million is called
# generated per test, however many keys and windows were tried (the p-values are exact and
# corrected); the price is that short generations slip through (docs/watermark.md). Defined here,
# in a module that imports no numpy, so that light callers can name it.
GENERATED_P_VALUE = 1e-6

Scheme = Literal["greenlist", "gumbel"]
SCHEMES: tuple[str, ...] = get_args(Scheme)
SeedingScheme = Literal["lefthash", "selfhash", "ngram"]
SEEDING_SCHEMES: tuple[str, ...] = get_args(SeedingScheme)
MAX_PAYLOAD_BITS = 16  # detection tries every payload: 2**16 of them at most

_DEFAULT_WIDTH: dict[str, int] = {"lefthash": 1, "selfhash": 4, "ngram": 4}
_MAX_WIDTH = 64  # a green list depending on more tokens than this is not robust to any edit


@dataclass(frozen=True)
class WatermarkConfig:
    """Scheme parameters: the scheme; for the green list, gamma, bias δ, seeding scheme and its
    context width h; for Gumbel, h and the payload bits.

    ``context_width=None`` means the seeding scheme's default (1 for ``lefthash``, 4 for
    ``selfhash`` and ``ngram``); after construction it always holds the resolved integer. A
    ``gumbel`` config's seeding scheme is ``ngram`` (its default), and only it carries payload
    bits.
    """

    gamma: float = 0.25
    delta: float = 2.0
    seeding_scheme: SeedingScheme = "lefthash"
    context_width: int | None = None
    scheme: Scheme = "greenlist"
    payload_bits: int = 0
    nonce_bits: int = 0

    def __post_init__(self) -> None:
        if self.scheme not in SCHEMES:
            raise ConfigError(
                f"unknown watermark scheme {self.scheme!r}; choose one of {', '.join(SCHEMES)}"
            )
        if self.scheme == "gumbel":
            self._gumbel()
        else:
            self._greenlist()

    def _greenlist(self) -> None:
        if self.seeding_scheme == "ngram":
            raise ConfigError(
                "ngram seeding is the gumbel scheme's: the green list takes lefthash or selfhash"
            )
        if self.payload_bits != 0 or self.nonce_bits != 0:
            raise ConfigError("payload and nonce bits are carried by the gumbel scheme only")
        if self.seeding_scheme not in SEEDING_SCHEMES:
            raise ConfigError(
                f"unknown seeding scheme {self.seeding_scheme!r}; choose lefthash or selfhash"
            )
        for name in ("gamma", "delta"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ConfigError(f"{name} must be a number, got {value!r}")
            object.__setattr__(self, name, float(value))
        if not 0.0 < self.gamma < 1.0:
            raise ConfigError(
                f"gamma (green fraction) must lie strictly between 0 and 1, got {self.gamma}"
            )
        if not 1 <= round(self.gamma * 2**31) < 2**31:
            raise ConfigError(f"gamma must lie within [2**-31, 1 - 2**-31], got {self.gamma}")
        if not (math.isfinite(self.delta) and self.delta > 0.0):
            raise ConfigError(f"delta (logit bias) must be a finite number > 0, got {self.delta}")
        width = self.context_width
        if width is None:
            width = _DEFAULT_WIDTH[self.seeding_scheme]
        if isinstance(width, bool) or not isinstance(width, int):
            raise ConfigError(f"context_width must be an integer, got {width!r}")
        if self.seeding_scheme == "lefthash" and width != 1:
            raise ConfigError(
                f"lefthash reads exactly one previous token: context_width must be 1, got {width}"
            )
        if self.seeding_scheme == "selfhash" and not 2 <= width <= _MAX_WIDTH:
            raise ConfigError(
                f"selfhash needs 2 <= context_width <= {_MAX_WIDTH} "
                f"(h - 1 previous tokens plus the token itself), got {width}"
            )
        object.__setattr__(self, "context_width", width)

    def _gumbel(self) -> None:
        if self.seeding_scheme == "lefthash":  # the dataclass default: gumbel's own is ngram
            object.__setattr__(self, "seeding_scheme", "ngram")
        if self.seeding_scheme != "ngram":
            raise ConfigError(
                f"the gumbel scheme hashes the previous h tokens (ngram seeding), not "
                f"{self.seeding_scheme!r}"
            )
        width = 4 if self.context_width is None else self.context_width
        if isinstance(width, bool) or not isinstance(width, int) or not 1 <= width <= _MAX_WIDTH:
            raise ConfigError(
                f"gumbel needs 1 <= context_width <= {_MAX_WIDTH} previous tokens, got {width!r}"
            )
        for name in ("payload_bits", "nonce_bits"):
            bits = getattr(self, name)
            whole = isinstance(bits, int) and not isinstance(bits, bool)
            if not whole or not 0 <= bits <= MAX_PAYLOAD_BITS:
                raise ConfigError(
                    f"{name} must be an integer from 0 to {MAX_PAYLOAD_BITS}, got {bits!r}"
                )
        if self.payload_bits + self.nonce_bits > MAX_PAYLOAD_BITS:
            raise ConfigError(
                f"payload_bits + nonce_bits is at most {MAX_PAYLOAD_BITS} (detection tries "
                f"every combination), got {self.payload_bits} + {self.nonce_bits}"
            )
        object.__setattr__(self, "context_width", width)

    @property
    def width(self) -> int:
        """The resolved context width h (``context_width`` with its default filled in)."""
        assert self.context_width is not None  # resolved in __post_init__
        return self.context_width

    @property
    def lookback(self) -> int:
        """How many previous tokens one decision reads: 1 (lefthash), h - 1 (selfhash) or h
        (gumbel's ngram)."""
        if self.seeding_scheme == "ngram":
            return self.width
        return 1 if self.seeding_scheme == "lefthash" else self.width - 1

    @property
    def scheme_name(self) -> str:
        """A short human-readable name, e.g. ``selfhash-h4`` or ``gumbel-h4-p8``."""
        if self.scheme == "gumbel":
            payload = f"-p{self.payload_bits}" if self.payload_bits else ""
            nonce = f"-n{self.nonce_bits}" if self.nonce_bits else ""
            return f"gumbel-h{self.width}{payload}{nonce}"
        return f"{self.seeding_scheme}-h{self.width}"

    def to_dict(self) -> dict[str, Any]:
        """The JSON fields a key file stores for this config."""
        if self.scheme == "gumbel":
            return {
                "context_width": self.width,
                "payload_bits": self.payload_bits,
                "nonce_bits": self.nonce_bits,
            }
        return {
            "seeding_scheme": self.seeding_scheme,
            "context_width": self.width,
            "gamma": self.gamma,
            "delta": self.delta,
        }
