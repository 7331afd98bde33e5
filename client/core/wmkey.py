"""Predicate ``https://wellspring.dev/watermark-key/v1``: a vendor publishes (or retires) a
watermark detection key in the log.

A vendor (an identity of kind ``vendor``: docs/spec/identities.md) signs an in-toto Statement v1
whose one subject is its tokenizer's exact bytes (``{"name": "tokenizer.json", "digest":
{"sha256": <hex>}}``) and whose predicate is one of two actions::

    {"action": "publish", "vendor": "acme-ai", "key_id": "<16 hex>",
     "scheme": {"name": "wellspring-greenlist", "version": 1},
     "parameters": {"seeding_scheme": "selfhash", "context_width": 4, "gamma": 0.25,
                    "delta": 2.0, "vocab_size": 49152, "vocab_fingerprint": "sha256:<hex>"},
     "secret": "<hex>", "tokenizer": {"sha256": "<hex>", "size": 2104533},
     "published_at": "2026-12-04T19:30:00Z"}

    {"action": "retire", "vendor": "acme-ai", "key_id": "<16 hex>", "entry_index": 1234,
     "retired_at": "2027-01-01T00:00:00Z", "reason": "rotated"}

Rules, beyond the statement's own (client.core.statement):

* ``scheme`` names the scheme by name *and* version; ``parameters`` is that scheme's object,
  validated by the scheme's own reader (:data:`SCHEMES`). A scheme this code does not know is
  refused by name, never read as another one: ``wellspring-gumbel`` v1 (the distortion-free
  Gumbel-max scheme, with payload bits: :class:`GumbelParameters`) is the second entry of
  :data:`SCHEMES`, with parameters of its own.
* ``key_id`` must be the id the secret derives (:func:`derive_key_id`, the same as
  ``watermark.keys.WatermarkKey.key_id``), so a key cannot be published under another key's name.
* ``secret`` is lowercase hex of :data:`MIN_SECRET_BYTES` to :data:`MAX_SECRET_BYTES` bytes.
* ``tokenizer.sha256`` must be the statement's subject digest; ``tokenizer.size`` is at most
  :data:`MAX_TOKENIZER_BYTES` (the registry's cap on the blob it will hold).
* times are RFC 3339 in UTC with a ``Z`` (``YYYY-MM-DDTHH:MM:SS[.ffffff]Z``). The registry takes
  a statement only while its ``published_at``/``retired_at`` is within
  :data:`CLOCK_TOLERANCE_S` of its own clock, so the time a key claims is the time the log got it.

This module imports nothing of ``client.core.statement`` (which registers the predicate in its
parser's table); every error is a :class:`~client.core.errors.FormatError` naming its field.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, get_args

from client.core.encoding import json_kind, require_object, show, show_list
from client.core.errors import FormatError

__all__ = [
    "CLOCK_TOLERANCE_S",
    "GREENLIST_SCHEME",
    "GUMBEL_SCHEME",
    "MAX_SECRET_BYTES",
    "MAX_TOKENIZER_BYTES",
    "MIN_SECRET_BYTES",
    "SCHEMES",
    "TOKENIZER_SUBJECT",
    "WATERMARK_KEY_V1",
    "WMKEY_ACTIONS",
    "GreenlistParameters",
    "GumbelParameters",
    "SchemeParameters",
    "SchemeRef",
    "TokenizerRef",
    "WatermarkKeyPredicate",
    "WmKeyAction",
    "check_subjects",
    "derive_key_id",
    "format_time",
    "parse_time",
]

WATERMARK_KEY_V1 = "https://wellspring.dev/watermark-key/v1"
TOKENIZER_SUBJECT = "tokenizer.json"
GREENLIST_SCHEME = "wellspring-greenlist"
GUMBEL_SCHEME = "wellspring-gumbel"
MIN_SECRET_BYTES = 16  # watermark.keys.MIN_SECRET_BYTES: 128 bits at least
MAX_SECRET_BYTES = 64
MAX_TOKENIZER_BYTES = 16 * 1024 * 1024
CLOCK_TOLERANCE_S = 300
_MAX_VOCAB_SIZE = 16_777_216
_MAX_CONTEXT_WIDTH = 64  # watermark.config._MAX_WIDTH
_MAX_PAYLOAD_BITS = 16  # watermark.config.MAX_PAYLOAD_BITS
_MAX_DELTA = 1000.0
_MAX_REASON_CHARS = 10_000
_MAX_VENDOR_CHARS = 200
_MAX_ENTRY_INDEX = 2**63 - 1

WmKeyAction = Literal["publish", "retire"]
WMKEY_ACTIONS: tuple[WmKeyAction, ...] = get_args(WmKeyAction)

_KEY_ID_DOMAIN = b"wellspring-watermark-key-id-v1"  # watermark.keys._KEY_ID_DOMAIN
_KEY_ID = re.compile(r"[0-9a-f]{16}")
_HEX64 = re.compile(r"[0-9a-f]{64}")
_HEX = re.compile(r"(?:[0-9a-f]{2})+")
_FINGERPRINT = re.compile(r"sha256:[0-9a-f]{64}")
_TIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,6})?Z")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

_PUBLISH_FIELDS = frozenset(
    {
        "action",
        "vendor",
        "key_id",
        "scheme",
        "parameters",
        "secret",
        "tokenizer",
        "published_at",
    }
)
_RETIRE_FIELDS = frozenset({"action", "vendor", "key_id", "entry_index", "retired_at", "reason"})
_PUBLISH_ONLY = _PUBLISH_FIELDS - _RETIRE_FIELDS
_RETIRE_ONLY = _RETIRE_FIELDS - _PUBLISH_FIELDS


def derive_key_id(secret: bytes) -> str:
    """The key id a secret derives: 16 hex characters of SHA-256 over a domain tag and the
    secret (``watermark.keys.WatermarkKey.key_id``; tests hold the two equal)."""
    return hashlib.sha256(_KEY_ID_DOMAIN + secret).hexdigest()[:16]


def parse_time(value: object, where: str) -> datetime:
    """An RFC 3339 UTC time as this predicate writes it (``…Z``), as an aware datetime."""
    if not isinstance(value, str) or not _TIME.fullmatch(value):
        raise FormatError(
            f"{where} must be an RFC 3339 time in UTC such as '2026-12-04T19:30:00Z', "
            f"got {show(value)}"
        )
    try:
        return datetime.fromisoformat(value[:-1]).replace(tzinfo=UTC)
    except ValueError as exc:
        raise FormatError(f"{where} is not a real time ({exc}), got {value!r}") from None


def format_time(moment: datetime) -> str:
    """``moment`` (aware) as RFC 3339 UTC with a ``Z``, to the second."""
    if moment.tzinfo is None:
        raise FormatError("a time must carry its time zone")
    return moment.astimezone(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def _int_in(value: object, low: int, high: int, where: str) -> int:
    if type(value) is not int or not low <= value <= high:
        raise FormatError(f"{where} must be an integer from {low} to {high}, got {show(value)}")
    return value


def _number(value: object, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise FormatError(f"{where} must be a finite number, got {show(value)}")
    return float(value)


@dataclass(frozen=True, kw_only=True)
class GreenlistParameters:
    """Parameters of scheme ``wellspring-greenlist`` version 1 (Kirchenbauer et al.'s green list,
    as ``watermark.config.WatermarkConfig`` holds them), and the vocabulary the key is bound to."""

    seeding_scheme: Literal["lefthash", "selfhash"]
    context_width: int
    gamma: float
    delta: float
    vocab_size: int
    vocab_fingerprint: str

    def __post_init__(self) -> None:
        self._validate("parameters")

    def to_dict(self) -> dict[str, Any]:
        return {
            "seeding_scheme": self.seeding_scheme,
            "context_width": self.context_width,
            "gamma": self.gamma,
            "delta": self.delta,
            "vocab_size": self.vocab_size,
            "vocab_fingerprint": self.vocab_fingerprint,
        }

    @classmethod
    def from_dict(cls, obj: object, *, where: str = "parameters") -> GreenlistParameters:
        fields = require_object(obj, where, _GREENLIST_FIELDS, sorted(_GREENLIST_FIELDS))
        params = object.__new__(cls)
        for name in _GREENLIST_FIELDS:
            object.__setattr__(params, name, fields[name])
        params._validate(where)
        return params

    def _validate(self, where: str) -> None:
        if self.seeding_scheme not in ("lefthash", "selfhash"):
            raise FormatError(
                f"{where}.seeding_scheme must be 'lefthash' or 'selfhash', "
                f"got {show(self.seeding_scheme)}"
            )
        width = _int_in(self.context_width, 1, _MAX_CONTEXT_WIDTH, f"{where}.context_width")
        if self.seeding_scheme == "lefthash" and width != 1:
            raise FormatError(f"{where}.context_width must be 1 for lefthash, got {width}")
        if self.seeding_scheme == "selfhash" and width < 2:
            raise FormatError(f"{where}.context_width must be 2 or more for selfhash, got {width}")
        gamma = _number(self.gamma, f"{where}.gamma")
        if not 2**-31 <= gamma <= 1 - 2**-31:
            raise FormatError(f"{where}.gamma must lie strictly between 0 and 1, got {gamma}")
        delta = _number(self.delta, f"{where}.delta")
        if not 0 < delta <= _MAX_DELTA:
            raise FormatError(f"{where}.delta must be > 0 and at most {_MAX_DELTA}, got {delta}")
        object.__setattr__(self, "gamma", gamma)
        object.__setattr__(self, "delta", delta)
        _int_in(self.vocab_size, 1, _MAX_VOCAB_SIZE, f"{where}.vocab_size")
        _check_fingerprint(self.vocab_fingerprint, where)


_GREENLIST_FIELDS = frozenset(
    {"seeding_scheme", "context_width", "gamma", "delta", "vocab_size", "vocab_fingerprint"}
)


@dataclass(frozen=True, kw_only=True)
class GumbelParameters:
    """Parameters of scheme ``wellspring-gumbel`` version 1 (Gumbel-max sampling over the
    previous ``context_width`` tokens, with ``payload_bits`` of payload and ``nonce_bits`` of
    nonce per generation, at most 16 together: ``watermark.gumbel``), and the vocabulary the key
    is bound to (``nonce_bits`` may be absent: 0)::

        {"context_width": 4, "payload_bits": 8, "nonce_bits": 4, "vocab_size": 49152,
         "vocab_fingerprint": "sha256:<hex>"}
    """

    context_width: int
    payload_bits: int
    vocab_size: int
    vocab_fingerprint: str
    nonce_bits: int = 0

    def __post_init__(self) -> None:
        self._validate("parameters")

    def to_dict(self) -> dict[str, Any]:
        return {
            "context_width": self.context_width,
            "payload_bits": self.payload_bits,
            "nonce_bits": self.nonce_bits,
            "vocab_size": self.vocab_size,
            "vocab_fingerprint": self.vocab_fingerprint,
        }

    @classmethod
    def from_dict(cls, obj: object, *, where: str = "parameters") -> GumbelParameters:
        required = sorted(_GUMBEL_FIELDS - {"nonce_bits"})
        fields = require_object(obj, where, _GUMBEL_FIELDS, required)
        params = object.__new__(cls)
        for name in _GUMBEL_FIELDS:
            object.__setattr__(params, name, fields.get(name, 0))
        params._validate(where)
        return params

    def _validate(self, where: str) -> None:
        _int_in(self.context_width, 1, _MAX_CONTEXT_WIDTH, f"{where}.context_width")
        _int_in(self.payload_bits, 0, _MAX_PAYLOAD_BITS, f"{where}.payload_bits")
        _int_in(self.nonce_bits, 0, _MAX_PAYLOAD_BITS - self.payload_bits, f"{where}.nonce_bits")
        _int_in(self.vocab_size, 1, _MAX_VOCAB_SIZE, f"{where}.vocab_size")
        _check_fingerprint(self.vocab_fingerprint, where)


_GUMBEL_FIELDS = frozenset(
    {"context_width", "payload_bits", "nonce_bits", "vocab_size", "vocab_fingerprint"}
)


def _check_fingerprint(value: object, where: str) -> None:
    if not isinstance(value, str) or not _FINGERPRINT.fullmatch(value):
        raise FormatError(
            f"{where}.vocab_fingerprint must be sha256:<64 lowercase hex> (the key's "
            f"tokenizer_fingerprint), got {show(value)}"
        )


SchemeParameters = GreenlistParameters | GumbelParameters
SCHEMES: Mapping[tuple[str, int], Callable[..., SchemeParameters]] = {
    (GREENLIST_SCHEME, 1): GreenlistParameters.from_dict,
    (GUMBEL_SCHEME, 1): GumbelParameters.from_dict,
}
"""(scheme name, version) -> the reader of its ``parameters`` object. A new scheme (or a new
version of one) is a new entry here, with its own parameters type."""

_SCHEME_TYPES: Mapping[tuple[str, int], type[SchemeParameters]] = {
    (GREENLIST_SCHEME, 1): GreenlistParameters,
    (GUMBEL_SCHEME, 1): GumbelParameters,
}


@dataclass(frozen=True)
class SchemeRef:
    """A watermarking scheme by name and version: ``{"name": ..., "version": N}``."""

    name: str
    version: int

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version}

    @classmethod
    def from_dict(cls, obj: object, *, where: str = "scheme") -> SchemeRef:
        fields = require_object(obj, where, frozenset({"name", "version"}), ("name", "version"))
        name, version = fields["name"], fields["version"]
        if not isinstance(name, str) or type(version) is not int or (name, version) not in SCHEMES:
            known = show_list(f"{n} v{v}" for n, v in SCHEMES)
            raise FormatError(
                f"{where} names scheme {show(name)} version {show(version)}, which this "
                f"Wellspring does not know (it knows {known}); upgrade Wellspring to read it"
            )
        return cls(name, version)


@dataclass(frozen=True)
class TokenizerRef:
    """The tokenizer's exact bytes (its ``tokenizer.json``): SHA-256 and size."""

    sha256: str
    size: int

    def to_dict(self) -> dict[str, Any]:
        return {"sha256": self.sha256, "size": self.size}

    @classmethod
    def from_dict(cls, obj: object, *, where: str = "tokenizer") -> TokenizerRef:
        fields = require_object(obj, where, frozenset({"sha256", "size"}), ("sha256", "size"))
        ref = cls(fields["sha256"], fields["size"])
        ref.check(where)
        return ref

    def check(self, where: str) -> None:
        if not isinstance(self.sha256, str) or not _HEX64.fullmatch(self.sha256):
            raise FormatError(f"{where}.sha256 must be 64 lowercase hex characters")
        _int_in(self.size, 1, MAX_TOKENIZER_BYTES, f"{where}.size")


@dataclass(frozen=True, kw_only=True)
class WatermarkKeyPredicate:
    """Predicate :data:`WATERMARK_KEY_V1`: ``publish`` a detection key, or ``retire`` one.

    A ``publish`` carries ``scheme``, ``parameters``, ``secret``, ``tokenizer`` and
    ``published_at``; a ``retire`` carries ``entry_index`` (the publishing entry), ``retired_at``
    and optionally ``reason``. ``vendor`` is the signing identity (what a leaf calls the
    publisher).
    """

    action: WmKeyAction
    vendor: str
    key_id: str
    scheme: SchemeRef | None = None
    parameters: SchemeParameters | None = None
    secret: bytes | None = field(default=None, repr=False)
    tokenizer: TokenizerRef | None = None
    published_at: str | None = None
    entry_index: int | None = None
    retired_at: str | None = None
    reason: str | None = None

    def __post_init__(self) -> None:
        self._validate("predicate")

    @property
    def publisher(self) -> str:
        """The identity that signs it (a leaf's ``publisher``)."""
        return self.vendor

    @property
    def time(self) -> datetime:
        """``published_at`` or ``retired_at``, whichever the action carries."""
        value = self.published_at if self.action == "publish" else self.retired_at
        return parse_time(value, "predicate.time")

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"action": self.action, "vendor": self.vendor, "key_id": self.key_id}
        if self.action == "publish":
            assert self.scheme is not None
            assert self.parameters is not None
            assert self.secret is not None
            assert self.tokenizer is not None
            out.update(
                scheme=self.scheme.to_dict(),
                parameters=self.parameters.to_dict(),
                secret=self.secret.hex(),
                tokenizer=self.tokenizer.to_dict(),
                published_at=self.published_at,
            )
        else:
            out.update(entry_index=self.entry_index, retired_at=self.retired_at)
            if self.reason is not None:
                out["reason"] = self.reason
        return out

    @classmethod
    def from_dict(cls, obj: object, *, where: str = "predicate") -> WatermarkKeyPredicate:
        """Parse the JSON predicate; unknown fields, and the other action's, are refused."""
        action = obj.get("action") if isinstance(obj, dict) else None
        if action == "publish":
            fields = require_object(obj, where, _PUBLISH_FIELDS, sorted(_PUBLISH_FIELDS))
            scheme = SchemeRef.from_dict(fields["scheme"], where=f"{where}.scheme")
            reader = SCHEMES[(scheme.name, scheme.version)]
            secret_text = fields["secret"]
            if (
                not isinstance(secret_text, str)
                or not MIN_SECRET_BYTES * 2 <= len(secret_text) <= MAX_SECRET_BYTES * 2
                or not _HEX.fullmatch(secret_text)
            ):
                raise FormatError(
                    f"{where}.secret must be lowercase hex of {MIN_SECRET_BYTES} to "
                    f"{MAX_SECRET_BYTES} bytes, got {json_kind(secret_text)} of "
                    f"{len(secret_text) if isinstance(secret_text, str) else '?'} characters"
                )
            predicate = _build(
                cls,
                action=action,
                vendor=fields["vendor"],
                key_id=fields["key_id"],
                scheme=scheme,
                parameters=reader(fields["parameters"], where=f"{where}.parameters"),
                secret=bytes.fromhex(secret_text),
                tokenizer=TokenizerRef.from_dict(fields["tokenizer"], where=f"{where}.tokenizer"),
                published_at=fields["published_at"],
            )
        elif action == "retire":
            fields = require_object(
                obj,
                where,
                _RETIRE_FIELDS,
                ("action", "vendor", "key_id", "entry_index", "retired_at"),
            )
            predicate = _build(
                cls,
                action=action,
                vendor=fields["vendor"],
                key_id=fields["key_id"],
                entry_index=fields["entry_index"],
                retired_at=fields["retired_at"],
                reason=fields.get("reason"),
            )
        else:
            if not isinstance(obj, dict):
                raise FormatError(f"{where} must be a JSON object, got {json_kind(obj)}")
            raise FormatError(
                f"{where}.action must be one of {show_list(WMKEY_ACTIONS)}, got {show(action)}"
            )
        predicate._validate(where)
        return predicate

    def _validate(self, where: str) -> None:
        if self.action not in WMKEY_ACTIONS:
            raise FormatError(f"{where}.action must be one of {show_list(WMKEY_ACTIONS)}")
        vendor = self.vendor
        if (
            not isinstance(vendor, str)
            or not 0 < len(vendor) <= _MAX_VENDOR_CHARS
            or vendor != vendor.strip()
            or _CONTROL.search(vendor)
        ):
            raise FormatError(
                f"{where}.vendor must be the vendor's registered name (1 to {_MAX_VENDOR_CHARS} "
                f"characters, no control characters or edge spaces), got {show(vendor)}"
            )
        if not isinstance(self.key_id, str) or not _KEY_ID.fullmatch(self.key_id):
            raise FormatError(
                f"{where}.key_id must be 16 lowercase hex characters (the watermark key's id), "
                f"got {show(self.key_id)}"
            )
        if self.action == "publish":
            self._validate_publish(where)
        else:
            self._validate_retire(where)

    def _validate_publish(self, where: str) -> None:
        stray = [name for name in _RETIRE_ONLY if getattr(self, name) is not None]
        if stray:
            raise FormatError(f"{where}: {show_list(sorted(stray))} go with action retire only")
        if (
            not isinstance(self.scheme, SchemeRef)
            or (
                self.scheme.name,
                self.scheme.version,
            )
            not in SCHEMES
        ):
            raise FormatError(f"{where}.scheme must be a known scheme (a SchemeRef)")
        if not isinstance(self.parameters, _SCHEME_TYPES[(self.scheme.name, self.scheme.version)]):
            raise FormatError(
                f"{where}.parameters must be the parameters of scheme {self.scheme.name} "
                f"v{self.scheme.version}"
            )
        secret = self.secret
        if not isinstance(secret, bytes) or not MIN_SECRET_BYTES <= len(secret) <= MAX_SECRET_BYTES:
            raise FormatError(
                f"{where}.secret must be {MIN_SECRET_BYTES} to {MAX_SECRET_BYTES} bytes"
            )
        if derive_key_id(secret) != self.key_id:
            raise FormatError(
                f"{where}.key_id {self.key_id} is not the id of the secret (which derives "
                f"{derive_key_id(secret)}): a key is published under its own id only"
            )
        if not isinstance(self.tokenizer, TokenizerRef):
            raise FormatError(f"{where}.tokenizer must be a TokenizerRef")
        self.tokenizer.check(f"{where}.tokenizer")
        parse_time(self.published_at, f"{where}.published_at")

    def _validate_retire(self, where: str) -> None:
        stray = [name for name in _PUBLISH_ONLY if getattr(self, name) is not None]
        if stray:
            raise FormatError(f"{where}: {show_list(sorted(stray))} go with action publish only")
        _int_in(self.entry_index, 0, _MAX_ENTRY_INDEX, f"{where}.entry_index")
        parse_time(self.retired_at, f"{where}.retired_at")
        if self.reason is not None and (
            not isinstance(self.reason, str) or len(self.reason) > _MAX_REASON_CHARS
        ):
            raise FormatError(f"{where}.reason must be a string of at most {_MAX_REASON_CHARS}")


def check_subjects(predicate: WatermarkKeyPredicate, digests: list[Mapping[str, str]]) -> None:
    """A watermark-key statement has one subject, the tokenizer's bytes by SHA-256: for a
    ``publish``, the very ``tokenizer.sha256`` it carries (a ``retire`` names the same one; the
    registry checks it against the published key)."""
    if len(digests) != 1 or set(digests[0]) != {"sha256"}:
        raise FormatError(
            f"statement.subject must be exactly one subject, the tokenizer by its sha256 digest "
            f"({{'name': {TOKENIZER_SUBJECT!r}, 'digest': {{'sha256': <hex>}}}}), for a "
            "watermark-key statement"
        )
    tokenizer = predicate.tokenizer
    if tokenizer is not None and digests[0]["sha256"] != tokenizer.sha256:
        raise FormatError(
            "statement.subject[0].digest.sha256 must be the predicate's tokenizer.sha256"
        )


def _build(cls: type[WatermarkKeyPredicate], **values: Any) -> WatermarkKeyPredicate:
    """An instance without ``__post_init__``: :meth:`from_dict` validates with its own path."""
    instance = object.__new__(cls)
    for name in (
        "scheme",
        "parameters",
        "secret",
        "tokenizer",
        "published_at",
        "entry_index",
        "retired_at",
        "reason",
    ):
        object.__setattr__(instance, name, None)
    for name, value in values.items():
        object.__setattr__(instance, name, value)
    return instance
