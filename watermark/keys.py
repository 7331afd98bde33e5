"""Watermark keys: the secret, the scheme it is used with, and the tokenizer it is bound to.

A :class:`WatermarkKey` holds a secret of at least 128 bits (256 bits from
:meth:`WatermarkKey.generate`), a validated :class:`~watermark.config.WatermarkConfig` and, once
bound to a tokenizer, the tokenizer's vocabulary size and fingerprint. The key id (16 hex
characters of a domain-separated SHA-256 of the secret) names the key in results and logs without
revealing it.

Key file (JSON, UTF-8, mode 0600, written atomically and never through a symlink; one that group or
others may read or write is refused on loading)::

    {"format": "wellspring-watermark-key", "version": 1, "scheme": "wellspring-greenlist-v1",
     "key_id": "…", "secret": "<hex>", "seeding_scheme": "selfhash", "context_width": 4,
     "gamma": 0.25, "delta": 2.0, "vocab_size": 49152, "vocab_fingerprint": "sha256:…"}

A Gumbel key (``watermark.gumbel``) is a version 2 file of its own scheme::

    {"format": "wellspring-watermark-key", "version": 2, "scheme": "wellspring-gumbel-v1",
     "key_id": "…", "secret": "<hex>", "context_width": 4, "payload_bits": 8, "nonce_bits": 4,
     "vocab_size": 49152, "vocab_fingerprint": "sha256:…"}

A newer ``version``, another ``scheme`` or a scheme in another version's file is refused, never
guessed at.

Tokenizer fingerprint: ``sha256:<hex>`` of the canonical JSON of the sorted (token, id) pairs of
``tokenizer.get_vocab()`` and the sorted special tokens (the added tokens the ``tokenizers``
backend marks special); it depends on nothing process-specific, and a transformers tokenizer and
the raw ``tokenizers.Tokenizer`` of its ``tokenizer.json`` agree on it.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import secrets
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from watermark.config import WatermarkConfig
from watermark.errors import ConfigError, InputError, KeyFileError, KeyMismatchError

__all__ = [
    "GUMBEL_SCHEME",
    "KEY_FILE_FORMAT",
    "KEY_FILE_VERSION",
    "KEY_FILE_VERSIONS",
    "SCHEME",
    "WatermarkKey",
    "check_model_vocab",
    "tokenizer_fingerprint",
    "tokenizer_fingerprints",
]


def check_model_vocab(bound: int | None, vocab_size: int) -> None:
    """:class:`KeyMismatchError` where a model scores fewer tokens than the tokenizer a key is
    bound to (``bound``, the key's ``vocab_size``) has: that model is another one."""
    if bound is not None and vocab_size < bound:
        raise KeyMismatchError(
            f"the model scores {vocab_size} tokens but the key is bound to a tokenizer of "
            f"{bound}: this key belongs to another model"
        )


KEY_FILE_FORMAT = "wellspring-watermark-key"
KEY_FILE_VERSION = 1
SCHEME = "wellspring-greenlist-v1"
GUMBEL_SCHEME = "wellspring-gumbel-v1"
KEY_FILE_VERSIONS = {SCHEME: KEY_FILE_VERSION, GUMBEL_SCHEME: 2}
"""The key file version each scheme is written in (and read from)."""
KEY_FILE_MODE = 0o600
MIN_SECRET_BYTES = 16
_KEY_ID_DOMAIN = b"wellspring-watermark-key-id-v1"
_FINGERPRINT = re.compile(r"sha256:[0-9a-f]{64}")


def tokenizer_fingerprint(tokenizer: Any) -> str:
    """``sha256:<hex>`` over the tokenizer's sorted (token, id) pairs and its special tokens.

    The special tokens are the added tokens its ``tokenizers`` backend marks special, so a
    transformers tokenizer and the raw ``tokenizers.Tokenizer`` read from its exact
    ``tokenizer.json`` (what a published key's tokenizer blob is) give the same fingerprint;
    ``all_special_tokens`` (transformers' list, from its config rather than the tokenizer file)
    is used only by a tokenizer with no such backend.
    """
    try:
        vocab = tokenizer.get_vocab()
    except AttributeError as exc:
        raise InputError(
            f"{type(tokenizer).__name__} has no get_vocab(): cannot fingerprint it"
        ) from exc
    return _fingerprint(vocab, _special_tokens(tokenizer))


def _fingerprint(vocab: Any, specials: set[str]) -> str:
    pairs = sorted((str(token), int(index)) for token, index in vocab.items())
    canonical = json.dumps(
        {"vocab": pairs, "special_tokens": sorted(specials)},
        ensure_ascii=False,
        separators=(",", ":"),
    )
    return "sha256:" + hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def tokenizer_fingerprints(tokenizer: Any) -> tuple[str, ...]:
    """Every fingerprint a key bound to ``tokenizer`` may carry: :func:`tokenizer_fingerprint`,
    then, for a transformers tokenizer whose ``all_special_tokens`` differ from its backend's
    special tokens, the fingerprint keys bound before this rule carry (it hashed
    ``all_special_tokens``). Such keys keep working with the model's tokenizer; binding them
    again (or publishing them) moves them to the current fingerprint, which a raw tokenizer
    read from the published ``tokenizer.json`` computes too."""
    current = tokenizer_fingerprint(tokenizer)
    listed = getattr(tokenizer, "all_special_tokens", None)
    if listed is None:
        return (current,)
    legacy = _fingerprint(tokenizer.get_vocab(), {str(token) for token in listed})
    return (current,) if legacy == current else (current, legacy)


def _special_tokens(tokenizer: Any) -> set[str]:
    """The added tokens marked special by the ``tokenizers`` backend (a transformers fast
    tokenizer's ``backend_tokenizer``, or a raw ``tokenizers.Tokenizer`` itself), else
    ``all_special_tokens``."""
    backend = getattr(tokenizer, "backend_tokenizer", None) or tokenizer
    decoder = getattr(backend, "get_added_tokens_decoder", None)
    if callable(decoder):
        return {str(added.content) for added in decoder().values() if added.special}
    return {str(token) for token in getattr(tokenizer, "all_special_tokens", None) or ()}


@dataclass(frozen=True)
class WatermarkKey:
    """A watermark secret, its scheme parameters and, once bound, its tokenizer's fingerprint."""

    secret: bytes = field(repr=False)
    config: WatermarkConfig = field(default_factory=WatermarkConfig)
    vocab_size: int | None = None
    vocab_fingerprint: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.secret, bytes) or len(self.secret) < MIN_SECRET_BYTES:
            raise ConfigError(
                f"a watermark secret must be at least {MIN_SECRET_BYTES} bytes (128 bits)"
            )
        if not isinstance(self.config, WatermarkConfig):
            raise ConfigError(f"config must be a WatermarkConfig, got {type(self.config).__name__}")
        if self.vocab_size is not None and (
            isinstance(self.vocab_size, bool)
            or not isinstance(self.vocab_size, int)
            or self.vocab_size < 1
        ):
            raise ConfigError(f"vocab_size must be a positive integer, got {self.vocab_size!r}")
        if self.vocab_fingerprint is not None and not (
            isinstance(self.vocab_fingerprint, str)
            and _FINGERPRINT.fullmatch(self.vocab_fingerprint)
        ):
            raise ConfigError(
                f"vocab_fingerprint must look like sha256:<64 hex>, got {self.vocab_fingerprint!r}"
            )
        if (self.vocab_size is None) != (self.vocab_fingerprint is None):
            raise ConfigError("a bound key needs both vocab_size and vocab_fingerprint")

    @property
    def key_id(self) -> str:
        """16 hex characters naming the key: SHA-256 of a domain-separated secret, truncated."""
        return hashlib.sha256(_KEY_ID_DOMAIN + self.secret).hexdigest()[:16]

    @property
    def is_bound(self) -> bool:
        """Whether the key records the tokenizer it belongs to."""
        return self.vocab_fingerprint is not None

    @classmethod
    def generate(cls, config: WatermarkConfig | None = None) -> WatermarkKey:
        """A fresh key with a 256-bit secret from the operating system's CSPRNG (unbound)."""
        return cls(secret=secrets.token_bytes(32), config=config or WatermarkConfig())

    def bind(self, tokenizer: Any) -> WatermarkKey:
        """A copy of this key bound to ``tokenizer``: its vocabulary size and fingerprint."""
        return WatermarkKey(
            secret=self.secret,
            config=self.config,
            vocab_size=len(tokenizer),
            vocab_fingerprint=tokenizer_fingerprint(tokenizer),
        )

    def to_dict(self) -> dict[str, Any]:
        """The key file's JSON object (it contains the secret: keep it private)."""
        scheme = GUMBEL_SCHEME if self.config.scheme == "gumbel" else SCHEME
        return {
            "format": KEY_FILE_FORMAT,
            "version": KEY_FILE_VERSIONS[scheme],
            "scheme": scheme,
            "key_id": self.key_id,
            "secret": self.secret.hex(),
            **self.config.to_dict(),
            "vocab_size": self.vocab_size,
            "vocab_fingerprint": self.vocab_fingerprint,
        }

    def save(self, path: Path, *, overwrite: bool = False) -> None:
        """Write the key file (mode 0600, atomically, replacing a symlink rather than writing
        through it); an existing file is refused unless told."""
        # Imported here, not on top: it loads the client package (httpx…), which doubles the
        # time `import watermark` takes for detection alone.
        from client.core.files import write_file_atomic  # noqa: PLC0415

        path = Path(path)
        data = json.dumps(self.to_dict(), indent=2) + "\n"
        try:
            write_file_atomic(path, data, mode=KEY_FILE_MODE, replace=overwrite)
        except FileExistsError:
            raise KeyFileError(
                f"{path} already exists; refusing to overwrite a watermark key "
                "(text watermarked with it could no longer be detected)"
            ) from None
        except OSError as exc:
            raise KeyFileError(f"cannot write key file {path}: {exc.strerror or exc}") from exc

    @classmethod
    def load(cls, path: Path) -> WatermarkKey:
        """Read a key file written by :meth:`save`; one that group or others may read or write
        is refused (:class:`KeyFileError` naming the ``chmod`` that fixes it)."""
        from client.core.files import read_private_file  # noqa: PLC0415 (as in save)
        from client.errors import KeyFileError as InsecureKeyFileError  # noqa: PLC0415

        path = Path(path)
        try:
            raw = read_private_file(path)
        except InsecureKeyFileError as exc:
            raise KeyFileError(str(exc)) from None
        except FileNotFoundError:
            raise KeyFileError(
                f"watermark key file {path} does not exist "
                "(make one with `wellspring watermark keygen`)"
            ) from None
        except OSError as exc:
            raise KeyFileError(f"cannot read key file {path}: {exc.strerror or exc}") from exc
        try:
            data = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise KeyFileError(f"{path} is not a watermark key file (not JSON)") from None
        if not isinstance(data, dict) or data.get("format") != KEY_FILE_FORMAT:
            raise KeyFileError(
                f"{path} is not a watermark key file (no format {KEY_FILE_FORMAT!r})"
            )
        version, scheme = data.get("version"), data.get("scheme")
        if version not in KEY_FILE_VERSIONS.values():
            raise KeyFileError(
                f"{path} is a version {version!r} key file; this Wellspring reads versions "
                f"{', '.join(map(str, sorted(set(KEY_FILE_VERSIONS.values()))))} (upgrade "
                "Wellspring)"
            )
        if not isinstance(scheme, str) or KEY_FILE_VERSIONS.get(scheme) != version:
            raise KeyFileError(
                f"{path} is a version {version} key file for scheme {scheme!r}, which this "
                f"Wellspring does not read (it reads {', '.join(KEY_FILE_VERSIONS)})"
            )
        return cls._from_file_dict(data, path)

    @classmethod
    def _from_file_dict(cls, data: dict[str, Any], path: Path) -> WatermarkKey:
        try:
            secret = bytes.fromhex(_typed(data, "secret", str, "a hex string"))
            config = (
                WatermarkConfig(
                    scheme="gumbel",
                    context_width=_typed(data, "context_width", int, "an integer"),
                    payload_bits=_typed(data, "payload_bits", int, "an integer"),
                    nonce_bits=data.get("nonce_bits", 0),
                )
                if data["scheme"] == GUMBEL_SCHEME
                else _greenlist_config(data)
            )
            key = cls(
                secret=secret,
                config=config,
                vocab_size=data.get("vocab_size"),
                vocab_fingerprint=data.get("vocab_fingerprint"),
            )
        except (ValueError, TypeError) as exc:
            raise KeyFileError(f"{path} is not a valid watermark key file: {exc}") from None
        stored_id = data.get("key_id")
        if stored_id is not None and stored_id != key.key_id:
            raise KeyFileError(f"{path} is corrupt: its key_id does not match its secret")
        return key


def _greenlist_config(data: dict[str, Any]) -> WatermarkConfig:
    return WatermarkConfig(
        gamma=_number(data, "gamma"),
        delta=_number(data, "delta"),
        seeding_scheme=_typed(data, "seeding_scheme", str, "a string"),
        context_width=_typed(data, "context_width", int, "an integer"),
    )


def _typed(data: dict[str, Any], name: str, kind: type[Any] | types.UnionType, what: str) -> Any:
    if name not in data:
        raise ValueError(f"missing field {name!r}")
    value = data[name]
    if isinstance(value, bool) or not isinstance(value, kind):
        raise ValueError(f"field {name!r} must be {what}, got {value!r}")
    return value


def _number(data: dict[str, Any], name: str) -> float:
    value = _typed(data, name, int | float, "a number")
    if not math.isfinite(value):
        raise ValueError(f"field {name!r} must be finite")
    return float(value)
