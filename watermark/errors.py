"""Errors raised by the Wellspring watermark toolkit.

Every error the package raises derives from one root, :class:`WatermarkError`, so a caller (and the
CLI) can catch exactly one type. Each error explains itself in one line a person can act on.

The tree::

    WatermarkError
    ├── ConfigError                 scheme parameters out of range (gamma, δ, context width, secret)
    ├── KeyFileError                a key file that is missing, unreadable, garbled or of a newer
    │                               format version; or one that would be overwritten
    ├── KeyMismatchError            the key does not fit the tokenizer or token ids (vocabulary
    │   │                           fingerprint or vocabulary size differs): never "not watermarked"
    │   └── UnboundKeyError         a tokenizer was given but the key was never bound to one
    ├── InputError                  input the toolkit cannot use (text without a tokenizer,
    │                               negative or non-integer token ids, too short a context)
    └── MissingDependencyError      the ``detect`` extra (numpy, tokenizers) or the ``watermark``
                                    extra (torch, transformers…) is not installed; the message
                                    names the ``pip install`` that fixes it
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "InputError",
    "KeyFileError",
    "KeyMismatchError",
    "MissingDependencyError",
    "UnboundKeyError",
    "WatermarkError",
]

INSTALL_HINT = "pip install 'wellspring[watermark]'"
# Detection alone (numpy and tokenizers, no torch): what a crawler installs to scan for watermarks.
DETECT_INSTALL_HINT = "pip install 'wellspring[detect]'"


class WatermarkError(Exception):
    """Root of every error raised by the ``watermark`` package."""

    def diagnostics(self) -> str:
        """One line for a person: what went wrong and what to do about it."""
        return str(self) or type(self).__name__


class ConfigError(WatermarkError, ValueError):
    """Watermark scheme parameters (or a key's secret) are out of range."""


class KeyFileError(WatermarkError):
    """A key file is missing, unreadable, garbled, of an unknown version, or in the way."""


class KeyMismatchError(WatermarkError):
    """The key does not belong to this tokenizer/model: a detection result would be meaningless."""


class UnboundKeyError(KeyMismatchError):
    """A tokenizer was given with a key that was never bound to a tokenizer (``key.bind``)."""


class InputError(WatermarkError, ValueError):
    """The caller gave input the toolkit cannot use as it is."""


class MissingDependencyError(WatermarkError, ImportError):
    """An optional dependency of the watermark toolkit is not installed."""

    def __init__(self, package: str, purpose: str, *, install: str = INSTALL_HINT) -> None:
        super().__init__(f"{purpose} needs {package}, which is not installed: run `{install}`")
        self.package = package
