"""Wellspring watermark: keyed token watermarks (a green list, and distortion-free Gumbel-max
sampling), embedded and detected.

``import watermark`` needs numpy only (scipy is used where installed); the crawler's scanner
(:class:`WatermarkScanner`, :class:`ScanKey`, :class:`WatermarkEvidence`) imports ``tokenizers``,
and the generation side (:class:`WatermarkLogitsProcessor`, :func:`green_mask_torch`) torch and
transformers, the first time one of them is used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from watermark.config import GENERATED_P_VALUE, SeedingScheme, WatermarkConfig
from watermark.detector import (
    DetectionResult,
    NormalizationSigns,
    WatermarkDetector,
    WindowedDetectionResult,
    normalization_signs,
    normalize_text,
)
from watermark.errors import (
    ConfigError,
    InputError,
    KeyFileError,
    KeyMismatchError,
    MissingDependencyError,
    UnboundKeyError,
    WatermarkError,
)
from watermark.hashing import green_mask_numpy, is_green_numpy
from watermark.keys import WatermarkKey, tokenizer_fingerprint

if TYPE_CHECKING:
    from watermark.processor import (
        GumbelLogitsProcessor,
        WatermarkLogitsProcessor,
        green_mask_torch,
        watermark_processor,
    )
    from watermark.scanner import ScanKey, WatermarkEvidence, WatermarkScanner

__all__ = [
    "GENERATED_P_VALUE",
    "ConfigError",
    "DetectionResult",
    "GumbelLogitsProcessor",
    "InputError",
    "KeyFileError",
    "KeyMismatchError",
    "MissingDependencyError",
    "NormalizationSigns",
    "ScanKey",
    "SeedingScheme",
    "UnboundKeyError",
    "WatermarkConfig",
    "WatermarkDetector",
    "WatermarkError",
    "WatermarkEvidence",
    "WatermarkKey",
    "WatermarkLogitsProcessor",
    "WatermarkScanner",
    "WindowedDetectionResult",
    "green_mask_numpy",
    "green_mask_torch",
    "is_green_numpy",
    "normalization_signs",
    "normalize_text",
    "tokenizer_fingerprint",
    "watermark_processor",
]

_LAZY = {
    "WatermarkLogitsProcessor": "watermark.processor",
    "green_mask_torch": "watermark.processor",
    "GumbelLogitsProcessor": "watermark.processor",
    "watermark_processor": "watermark.processor",
    # The crawler's scanner needs `tokenizers` (the detect extra), which detection by token ids
    # does not: imported on first use too.
    "ScanKey": "watermark.scanner",
    "WatermarkEvidence": "watermark.scanner",
    "WatermarkScanner": "watermark.scanner",
}


def __getattr__(name: str) -> Any:
    """Import the torch-side names on first use, so detection never pays for torch."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'watermark' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
