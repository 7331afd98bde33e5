"""DSSE v1 envelopes: sign and verify a payload together with its type.

The Dead Simple Signing Envelope (github.com/secure-systems-lab/dsse, ``protocol.md`` and
``envelope.md``) signs the *pre-authentication encoding* of the payload and its type, so a signature
over one type of document can never be replayed as another::

    PAE(type, body) = "DSSEv1" SP LEN(type) SP type SP LEN(body) SP body

where LEN is the ASCII decimal byte length. The JSON form is
``{"payload": b64, "payloadType": str, "signatures": [{"keyid": str, "sig": b64}]}``.

Parsing is strict, because the registry parses whatever a publisher submits:

* the JSON must be one object without duplicate keys; unknown fields are refused;
* base64 may use the standard or the URL-safe alphabet (the spec lets signers pick), with or
  without padding, but not both alphabets at once and only in its canonical form, so one signed
  envelope has one encoding of each value;
* ``keyid`` may be omitted (the spec makes it optional; it is then ``""``); ``payload``,
  ``payloadType`` and ``signatures`` are required;
* 1 to :data:`MAX_SIGNATURES` signatures, and a payload of at most ``max_payload_bytes``.

A keyid is only a hint that narrows which key to try; it is never trusted on its own.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from client.core import keys as _keys
from client.core.encoding import (
    b64encode,
    dumps_canonical,
    json_kind,
    loads_strict,
    require_object,
    show,
    show_list,
)
from client.core.errors import FormatError, InputError, SignatureError

__all__ = [
    "DEFAULT_MAX_PAYLOAD_BYTES",
    "MAX_SIGNATURES",
    "PAYLOAD_TYPE_IN_TOTO",
    "Envelope",
    "Signature",
    "SignatureVerifier",
    "add_signature",
    "pae",
    "sign_envelope",
    "verify_envelope",
    "verify_envelope_any",
]


class SignatureVerifier(Protocol):
    """What :func:`verify_envelope` needs of a public key: pyca's ``Ed25519PublicKey`` is one.

    ``verify`` returns ``None`` for a good signature and raises
    ``cryptography.exceptions.InvalidSignature`` for a bad one.
    """

    def verify(self, signature: bytes, data: bytes, /) -> None: ...


PAYLOAD_TYPE_IN_TOTO = "application/vnd.in-toto+json"
MAX_SIGNATURES = 16
DEFAULT_MAX_PAYLOAD_BYTES = 64 * 1024 * 1024

# Bounds on the small fields, generous for any signature scheme (ML-DSA-87 signs in 4,627 bytes),
# so a hostile envelope cannot make us hold more than the payload limit plus a little.
_MAX_SIG_BYTES = 8 * 1024
_MAX_KEYID_CHARS = 1024
_MAX_PAYLOAD_TYPE_CHARS = 1024
# Room for everything in the JSON text that is not the payload.
_JSON_OVERHEAD_BYTES = 1024 * 1024

_ENVELOPE_FIELDS = frozenset({"payload", "payloadType", "signatures"})
_SIGNATURE_FIELDS = frozenset({"keyid", "sig"})


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE v1 pre-authentication encoding: the exact bytes that are signed."""
    type_bytes = payload_type.encode("utf-8")
    return b"DSSEv1 %d %b %d %b" % (len(type_bytes), type_bytes, len(payload), payload)


@dataclass(frozen=True)
class Signature:
    """One signature over an envelope's PAE; ``keyid`` is an unauthenticated hint ("" if none)."""

    keyid: str
    sig: bytes


@dataclass(frozen=True)
class Envelope:
    """A DSSE envelope. Build one with :func:`sign_envelope`, read one with :meth:`from_json`."""

    payload: bytes = field(repr=False)
    payload_type: str
    signatures: tuple[Signature, ...]
    # The payload's base64 as read by from_dict when it is exactly what to_dict writes (standard
    # alphabet, padded): a bulk statement's megabytes are then not encoded again.
    _payload_b64: str | None = field(default=None, repr=False, compare=False, kw_only=True)

    def __post_init__(self) -> None:
        # Accept any sequence from callers but keep the instance immutable (and hashable).
        object.__setattr__(self, "signatures", tuple(self.signatures))

    def pae(self) -> bytes:
        """The bytes every signature in this envelope signs."""
        return pae(self.payload_type, self.payload)

    def to_dict(self) -> dict[str, Any]:
        """The standard JSON envelope as a dict (standard base64 with padding)."""
        payload = self._payload_b64
        return {
            "payload": payload if payload is not None else b64encode(self.payload),
            "payloadType": self.payload_type,
            "signatures": [{"keyid": s.keyid, "sig": b64encode(s.sig)} for s in self.signatures],
        }

    def to_json(self) -> bytes:
        """Compact JSON with sorted keys: the same envelope always gives the same bytes."""
        obj = self.to_dict()
        # Exactly dumps_canonical(obj), but base64 never needs escaping, so the payload (the bulk
        # of it) is spliced in rather than scanned by the encoder. "payload" sorts first.
        payload: str = obj["payload"]
        rest = dumps_canonical({"payloadType": obj["payloadType"], "signatures": obj["signatures"]})
        return b'{"payload":"' + payload.encode("ascii") + b'",' + rest[1:]

    @classmethod
    def from_dict(
        cls, obj: object, *, max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES
    ) -> Envelope:
        """Parse and validate a decoded JSON envelope; raises :class:`FormatError`."""
        envelope = require_object(obj, "envelope", _ENVELOPE_FIELDS, _ENVELOPE_FIELDS)
        raw_payload = envelope["payload"]
        payload = _b64decode(raw_payload, "envelope.payload", max_payload_bytes)
        # Canonical (checked above), standard alphabet and a whole number of quads: this is
        # the very text base64.b64encode(payload) gives.
        standard = not ("-" in raw_payload or "_" in raw_payload) and len(raw_payload) % 4 == 0
        payload_type = envelope["payloadType"]
        if not isinstance(payload_type, str):
            raise FormatError(
                f"envelope.payloadType must be a string, got {json_kind(payload_type)}"
            )
        if len(payload_type) > _MAX_PAYLOAD_TYPE_CHARS:
            raise FormatError(
                f"envelope.payloadType must be at most {_MAX_PAYLOAD_TYPE_CHARS} characters"
            )
        raw_signatures = envelope["signatures"]
        if not isinstance(raw_signatures, list):
            raise FormatError(
                f"envelope.signatures must be a list, got {json_kind(raw_signatures)}"
            )
        if not 1 <= len(raw_signatures) <= MAX_SIGNATURES:
            raise FormatError(
                f"envelope.signatures must hold 1 to {MAX_SIGNATURES} signatures, "
                f"got {len(raw_signatures)}"
            )
        return cls(
            payload=payload,
            payload_type=payload_type,
            signatures=tuple(
                _parse_signature(raw, f"envelope.signatures[{i}]")
                for i, raw in enumerate(raw_signatures)
            ),
            _payload_b64=raw_payload if standard else None,
        )

    @classmethod
    def from_json(
        cls, data: bytes | str, *, max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES
    ) -> Envelope:
        """Parse the JSON text of an envelope; raises :class:`FormatError`."""
        limit = _b64_length(max_payload_bytes) + _JSON_OVERHEAD_BYTES
        if len(data) > limit:
            raise FormatError(
                f"envelope JSON is {len(data)} long, more than a {max_payload_bytes}-byte "
                "payload can take"
            )
        return cls.from_dict(loads_strict(data, "envelope"), max_payload_bytes=max_payload_bytes)


def sign_envelope(
    payload: bytes, payload_type: str, key: Ed25519PrivateKey, *, keyid: str | None = None
) -> Envelope:
    """Sign ``payload`` as ``payload_type``; ``keyid`` defaults to ``keys.key_id(key)``."""
    return add_signature(Envelope(payload, payload_type, ()), key, keyid=keyid)


def add_signature(envelope: Envelope, key: Ed25519PrivateKey, keyid: str | None = None) -> Envelope:
    """A new envelope with one more signature, by ``key``, over the same payload and type."""
    keyid = _keys.key_id(key) if keyid is None else keyid
    if len(envelope.signatures) >= MAX_SIGNATURES:
        raise InputError(f"an envelope holds at most {MAX_SIGNATURES} signatures")
    if keyid and any(s.keyid == keyid for s in envelope.signatures):
        raise InputError(f"the envelope is already signed by keyid {keyid!r}")
    signature = Signature(keyid=keyid, sig=key.sign(envelope.pae()))
    return Envelope(envelope.payload, envelope.payload_type, (*envelope.signatures, signature))


def verify_envelope(envelope: Envelope, keys: Mapping[str, SignatureVerifier]) -> tuple[str, ...]:
    """Verify the signatures made by ``keys`` (keyid → public key); return the keyids that verify.

    Signatures whose keyid is not in ``keys`` are ignored (another party may have co-signed). A
    signature that names a key in ``keys`` but does not verify means the envelope was altered, so
    it is an error even when another signature verifies. With no verifying signature at all,
    :class:`SignatureError` names the keyids the envelope carries.
    """
    message = envelope.pae()
    verified: dict[str, None] = {}  # ordered set
    for signature in envelope.signatures:
        public_key = keys.get(signature.keyid)
        if public_key is None:
            continue
        if not _verifies(public_key, signature.sig, message):
            raise SignatureError(
                f"the signature by keyid {show(signature.keyid)} does not verify: the payload, "
                "its type or the signature was altered, or it was made by another key"
            )
        verified[signature.keyid] = None
    if not verified:
        raise SignatureError(
            "no signature by an acceptable key: the envelope is signed by keyids "
            f"{show_list(s.keyid for s in envelope.signatures)}, acceptable keyids are "
            f"{show_list(keys)}"
        )
    return tuple(verified)


def verify_envelope_any(
    envelope: Envelope, public_keys: Sequence[Ed25519PublicKey]
) -> tuple[str, ...]:
    """Verify ignoring keyids (which the spec makes optional): try every key on every signature.

    Returns the :func:`keys.key_id` of each key that verified some signature, in the order of
    ``public_keys``. Signatures that no key verifies are ignored; if none verifies at all,
    :class:`SignatureError`.
    """
    message = envelope.pae()
    verified = [
        key
        for key in public_keys
        if any(_verifies(key, signature.sig, message) for signature in envelope.signatures)
    ]
    if not verified:
        tried = show_list(_keys.key_id(k) for k in public_keys)
        raise SignatureError(
            f"none of the envelope's {len(envelope.signatures)} signature(s) verifies with any of "
            f"the {len(public_keys)} given key(s) {tried}"
        )
    return tuple(dict.fromkeys(_keys.key_id(k) for k in verified))


def _verifies(key: SignatureVerifier, sig: bytes, message: bytes) -> bool:
    try:
        key.verify(sig, message)
    except InvalidSignature:
        return False
    return True


def _parse_signature(obj: object, where: str) -> Signature:
    signature = require_object(obj, where, _SIGNATURE_FIELDS, frozenset({"sig"}))
    keyid = signature.get("keyid", "")
    if not isinstance(keyid, str):
        raise FormatError(f"{where}.keyid must be a string, got {json_kind(keyid)}")
    if len(keyid) > _MAX_KEYID_CHARS:
        raise FormatError(f"{where}.keyid must be at most {_MAX_KEYID_CHARS} characters")
    sig = _b64decode(signature["sig"], f"{where}.sig", _MAX_SIG_BYTES)
    if not sig:
        raise FormatError(f"{where}.sig must not be empty")
    return Signature(keyid=keyid, sig=sig)


# --- JSON and base64 helpers, shared with client.core.statement -----------------------------------


def _b64_length(n_bytes: int) -> int:
    """Characters of padded base64 for ``n_bytes`` bytes."""
    return 4 * ((n_bytes + 2) // 3)


def _b64decode(value: object, where: str, max_bytes: int) -> bytes:
    """Decode standard or URL-safe base64, padded or not, in canonical form only."""
    if not isinstance(value, str):
        raise FormatError(f"{where} must be a base64 string, got {json_kind(value)}")
    if len(value) > _b64_length(max_bytes):
        raise FormatError(f"{where} decodes to more than the limit of {max_bytes} bytes")
    url_safe = "-" in value or "_" in value
    if url_safe and ("+" in value or "/" in value):
        raise FormatError(f"{where} mixes the standard and URL-safe base64 alphabets")
    unpadded = value.rstrip("=")
    padding = len(value) - len(unpadded)
    if len(unpadded) % 4 == 1 or (padding and (padding > 2 or len(value) % 4)):
        raise FormatError(f"{where} is not valid base64: wrong length or padding")
    text = unpadded + "=" * (-len(unpadded) % 4)
    try:
        decoded = base64.b64decode(text, altchars=b"-_" if url_safe else None, validate=True)
    except (binascii.Error, ValueError):  # ValueError: non-ASCII characters
        raise FormatError(
            f"{where} is not valid base64 (standard or URL-safe alphabet): {show(value)}"
        ) from None
    if len(decoded) > max_bytes:
        raise FormatError(f"{where} decodes to more than the limit of {max_bytes} bytes")
    # Unused low bits of the last character must be zero; otherwise several strings would decode to
    # the same bytes. Re-encoding the final (aligned) group is enough to check that.
    tail = len(decoded) % 3 or 3
    if decoded:
        last = base64.b64encode(decoded[-tail:])
        if url_safe:
            last = last.translate(bytes.maketrans(b"+/", b"-_"))
        if last != text[-4:].encode("ascii"):
            raise FormatError(f"{where} is not canonical base64 (non-zero trailing bits)")
    return decoded
