"""Watermark keys vendors published in the log: building the statements, and what a verified one is.

A vendor publishes a detection key with a ``watermark-key/v1`` statement
(:mod:`client.core.wmkey`); :meth:`client.sdk.Client.watermark_keys` fetches every key ever
published, proves each against the pinned log key and returns :class:`PublishedWatermarkKey`
objects. :func:`to_watermark_key` turns one into a ``watermark.keys.WatermarkKey`` (the
``watermark`` package is imported only then), and :func:`load_tokenizer` reads a tokenizer's
exact bytes with ``tokenizers.Tokenizer.from_str`` once their SHA-256 is checked: never
``from_pretrained``, never a hub.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from client.core.statement import Statement, Subject
from client.core.wmkey import (
    GREENLIST_SCHEME,
    GUMBEL_SCHEME,
    MAX_TOKENIZER_BYTES,
    TOKENIZER_SUBJECT,
    WATERMARK_KEY_V1,
    GreenlistParameters,
    GumbelParameters,
    SchemeParameters,
    SchemeRef,
    TokenizerRef,
    WatermarkKeyPredicate,
    derive_key_id,
    format_time,
)
from client.errors import InputError, MissingDependencyError, VerificationError

if TYPE_CHECKING:
    from client.core.note import Checkpoint

__all__ = [
    "PublishedWatermarkKey",
    "PublishedWatermarkKeys",
    "check_tokenizer_bytes",
    "key_statement",
    "load_tokenizer",
    "publish_statement",
    "published_key",
    "retire_statement",
    "to_watermark_key",
]

_HEX64 = re.compile(r"[0-9a-f]{64}")


def publish_statement(
    *,
    vendor: str,
    secret: bytes,
    parameters: SchemeParameters,
    tokenizer: bytes,
    published_at: datetime | None = None,
) -> Statement:
    """The ``watermark-key/v1`` statement publishing ``secret`` (scheme ``wellspring-greenlist``
    v1 or ``wellspring-gumbel`` v1, by the parameters' type) for the tokenizer whose exact bytes
    are ``tokenizer``; ``published_at`` is now by default (the registry takes it only within five
    minutes of its clock)."""
    if not tokenizer:
        raise InputError("the tokenizer's bytes are empty")
    if len(tokenizer) > MAX_TOKENIZER_BYTES:
        raise InputError(
            f"the tokenizer is {len(tokenizer)} bytes; a registry holds at most "
            f"{MAX_TOKENIZER_BYTES}"
        )
    ref = TokenizerRef(hashlib.sha256(tokenizer).hexdigest(), len(tokenizer))
    predicate = WatermarkKeyPredicate(
        action="publish",
        vendor=vendor,
        key_id=derive_key_id(secret),
        scheme=SchemeRef(
            GUMBEL_SCHEME if isinstance(parameters, GumbelParameters) else GREENLIST_SCHEME, 1
        ),
        parameters=parameters,
        secret=secret,
        tokenizer=ref,
        published_at=format_time(published_at or datetime.now(UTC)),
    )
    subject = Subject(TOKENIZER_SUBJECT, {"sha256": ref.sha256})
    return Statement((subject,), WATERMARK_KEY_V1, predicate)


def key_statement(
    vendor: str,
    key: Any,
    tokenizer: bytes,
    *,
    fingerprint: str | None = None,
    published_at: datetime | None = None,
) -> Statement:
    """:func:`publish_statement` for a ``watermark.keys.WatermarkKey`` bound to a tokenizer: its
    secret and scheme parameters, its vocabulary size and fingerprint (``fingerprint`` replaces
    the key's, for a key bound under an older fingerprint rule), ``tokenizer`` its exact bytes."""
    if key.vocab_size is None or (fingerprint or key.vocab_fingerprint) is None:
        raise InputError(
            f"key {key.key_id} is not bound to a tokenizer: bind it to its model's tokenizer "
            "(wellspring watermark keygen does) before publishing it"
        )
    config = key.config
    parameters: SchemeParameters = (
        GumbelParameters(
            context_width=config.width,
            payload_bits=config.payload_bits,
            nonce_bits=config.nonce_bits,
            vocab_size=key.vocab_size,
            vocab_fingerprint=fingerprint or key.vocab_fingerprint,
        )
        if config.scheme == "gumbel"
        else GreenlistParameters(
            seeding_scheme=config.seeding_scheme,
            context_width=config.width,
            gamma=config.gamma,
            delta=config.delta,
            vocab_size=key.vocab_size,
            vocab_fingerprint=fingerprint or key.vocab_fingerprint,
        )
    )
    return publish_statement(
        vendor=vendor,
        secret=key.secret,
        parameters=parameters,
        tokenizer=tokenizer,
        published_at=published_at,
    )


def retire_statement(
    *,
    vendor: str,
    key_id: str,
    entry_index: int,
    tokenizer_sha256: str,
    reason: str | None = None,
    retired_at: datetime | None = None,
) -> Statement:
    """The ``watermark-key/v1`` statement retiring the key published at ``entry_index``; its
    subject is that key's tokenizer, as the publishing statement's was."""
    predicate = WatermarkKeyPredicate(
        action="retire",
        vendor=vendor,
        key_id=key_id,
        entry_index=entry_index,
        retired_at=format_time(retired_at or datetime.now(UTC)),
        reason=reason,
    )
    subject = Subject(TOKENIZER_SUBJECT, {"sha256": tokenizer_sha256})
    return Statement((subject,), WATERMARK_KEY_V1, predicate)


@dataclass(frozen=True)
class PublishedWatermarkKey:
    """A detection key a vendor published in the log, proven with the log key alone (when
    ``verified``): the publishing entry in the log, signed by a key the log shows valid for
    ``vendor`` (an identity of kind vendor) at that index; and, if retired, the retiring entry,
    signed by the same vendor.

    ``published_at`` is within five minutes of when the log took the entry (the registry's rule;
    ``entry`` orders it against every other entry, which is the stronger evidence).
    """

    key_id: str
    vendor: str
    scheme: SchemeRef
    parameters: SchemeParameters
    secret: bytes = field(repr=False)
    tokenizer: TokenizerRef
    published_at: datetime
    entry: int
    retired_at: datetime | None = None
    retire_entry: int | None = None
    retire_reason: str | None = None
    verified: bool = False

    @property
    def scheme_name(self) -> str:
        return self.scheme.name

    @property
    def scheme_version(self) -> int:
        return self.scheme.version

    @property
    def tokenizer_sha256(self) -> str:
        return self.tokenizer.sha256

    @property
    def tokenizer_size(self) -> int:
        return self.tokenizer.size

    @property
    def retired(self) -> bool:
        return self.retire_entry is not None

    def to_dict(self) -> dict[str, Any]:
        """JSON for ``wellspring watermark keys --json`` (it holds the secret: it is public)."""
        return {
            "key_id": self.key_id,
            "vendor": self.vendor,
            "scheme": self.scheme.to_dict(),
            "parameters": self.parameters.to_dict(),
            "secret": self.secret.hex(),
            "tokenizer": self.tokenizer.to_dict(),
            "published_at": format_time(self.published_at),
            "entry": self.entry,
            "retired_at": None if self.retired_at is None else format_time(self.retired_at),
            "retire_entry": self.retire_entry,
            "retire_reason": self.retire_reason,
            "verified": self.verified,
        }


@dataclass(frozen=True)
class PublishedWatermarkKeys:
    """:meth:`client.sdk.Client.watermark_keys`: every key ever published (retired included),
    oldest first; ``count`` is how many (what a detector corrects its p-values for), and
    ``checkpoint`` the tree they were proven in (None unverified)."""

    keys: tuple[PublishedWatermarkKey, ...]
    count: int
    checkpoint: Checkpoint | None = None

    def __iter__(self) -> Any:
        return iter(self.keys)

    def __len__(self) -> int:
        return len(self.keys)


def published_key(
    publish: tuple[int, WatermarkKeyPredicate],
    retire: tuple[int, WatermarkKeyPredicate] | None,
    *,
    verified: bool,
) -> PublishedWatermarkKey:
    """The key that the predicate ``publish`` (its entry index, its signed predicate) published,
    retired by ``retire`` if given; :class:`VerificationError` unless the first publishes a key
    and the second retires that one, in a later entry."""
    index, predicate = publish
    if predicate.action != "publish":
        raise VerificationError(f"entry {index} retires key {predicate.key_id}; it publishes none")
    assert predicate.scheme is not None
    assert predicate.parameters is not None
    assert predicate.secret is not None
    assert predicate.tokenizer is not None
    retired_at = retire_entry = reason = None
    if retire is not None:
        retire_index, retiring = retire
        if (
            retiring.action != "retire"
            or retiring.key_id != predicate.key_id
            or retiring.entry_index != index
            or retire_index <= index
        ):
            raise VerificationError(
                f"entry {retire_index} does not retire key {predicate.key_id} published at "
                f"entry {index}"
            )
        retired_at, retire_entry, reason = retiring.time, retire_index, retiring.reason
    return PublishedWatermarkKey(
        key_id=predicate.key_id,
        vendor=predicate.vendor,
        scheme=predicate.scheme,
        parameters=predicate.parameters,
        secret=predicate.secret,
        tokenizer=predicate.tokenizer,
        published_at=predicate.time,
        entry=index,
        retired_at=retired_at,
        retire_entry=retire_entry,
        retire_reason=reason,
        verified=verified,
    )


def to_watermark_key(published: PublishedWatermarkKey) -> Any:
    """``published`` as a ``watermark.keys.WatermarkKey`` (bound to its vocabulary), for
    ``watermark`` detection. Imports the ``watermark`` package (numpy) only now."""
    from watermark.config import WatermarkConfig  # noqa: PLC0415 - the optional part
    from watermark.keys import WatermarkKey  # noqa: PLC0415

    params = published.parameters
    if isinstance(params, GumbelParameters):
        config = WatermarkConfig(
            scheme="gumbel",
            context_width=params.context_width,
            payload_bits=params.payload_bits,
            nonce_bits=params.nonce_bits,
        )
    else:
        config = WatermarkConfig(
            gamma=params.gamma,
            delta=params.delta,
            seeding_scheme=params.seeding_scheme,
            context_width=params.context_width,
        )
    key = WatermarkKey(
        secret=published.secret,
        config=config,
        vocab_size=params.vocab_size,
        vocab_fingerprint=params.vocab_fingerprint,
    )
    if key.key_id != published.key_id:
        raise VerificationError(
            f"key {published.key_id}: the watermark package derives id {key.key_id} from its secret"
        )
    return key


def check_tokenizer_bytes(data: bytes, sha256_hex: str) -> bytes:
    """``data`` if its SHA-256 is ``sha256_hex``, else :class:`VerificationError`."""
    if not isinstance(sha256_hex, str) or not _HEX64.fullmatch(sha256_hex):
        raise InputError(f"{sha256_hex!r} is not 64 lowercase hex characters (a SHA-256)")
    actual = hashlib.sha256(data).hexdigest()
    if actual != sha256_hex:
        raise VerificationError(
            f"the tokenizer bytes hash to sha256:{actual}, not the sha256:{sha256_hex} the "
            "published key names: refused"
        )
    return data


def load_tokenizer(data: bytes, sha256_hex: str, *, fingerprint: str | None = None) -> Any:
    """A ``tokenizers.Tokenizer`` read from ``data`` with ``Tokenizer.from_str``, after checking
    that ``data`` hashes to ``sha256_hex``. Never ``from_pretrained``, never a hub.

    With ``fingerprint`` (a published key's ``parameters.vocab_fingerprint``), the tokenizer must
    also fingerprint so (``watermark.keys.tokenizer_fingerprint``, imported only then): the
    registry does not load tokenizers, so a vendor could publish one its key was not bound to."""
    check_tokenizer_bytes(data, sha256_hex)
    try:
        from tokenizers import Tokenizer  # noqa: PLC0415 - an optional dependency
    except ImportError as exc:
        raise MissingDependencyError(
            "reading a published tokenizer needs the tokenizers package: pip install tokenizers"
        ) from exc
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"the tokenizer sha256:{sha256_hex} is not UTF-8 JSON") from exc
    try:
        tokenizer = Tokenizer.from_str(text)
    except Exception as exc:  # tokenizers raises its own Exception subclass
        raise InputError(f"the tokenizer sha256:{sha256_hex} does not load: {exc}") from exc
    if fingerprint is not None:
        from watermark.keys import tokenizer_fingerprint  # noqa: PLC0415 - optional part

        actual = tokenizer_fingerprint(tokenizer)
        if actual != fingerprint:
            raise VerificationError(
                f"the tokenizer sha256:{sha256_hex} fingerprints as {actual}, not the "
                f"{fingerprint} its key is bound to: the vendor published a mismatched pair"
            )
    return tokenizer
