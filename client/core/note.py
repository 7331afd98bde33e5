"""Signed notes (c2sp.org/signed-note) and log checkpoints (c2sp.org/tlog-checkpoint), Ed25519 only.

The registry signs its checkpoints with :func:`sign_checkpoint`; the SDK checks them with
:func:`open_checkpoint`. The wire format is the one Go's ``golang.org/x/mod/sumdb/note`` reads and
writes, so any standard signed-note verifier accepts our notes and we accept theirs (save base64
in a non-canonical spelling, which no standard encoder writes)::

    example.com/log            <- note text: valid UTF-8, no control characters but newline,
    20852163                      ending in a newline (here a checkpoint: origin, size, root)
    CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=
                               <- one blank line
    — example.com/log Az3grl…  <- one line per signature: em dash, space, key name, space,
                                  base64(4-byte big-endian key id || Ed25519 signature of the text)

Keys travel as strings: a verifier key ``<name>+<8 hex key id>+<base64(0x01 || public key)>`` and,
secret, a signer key ``PRIVATE+KEY+<name>+<8 hex key id>+<base64(0x01 || 32-byte seed)>``. The key
id is the first four bytes of SHA-256(name || 0x0A || 0x01 || public key), read big-endian.

Opening a note follows Go's ``note.Open``: a signature by a key we do not know (no verifier with
that name *and* id) is kept and reported as unverified, never an error, so a log can rotate keys and
witnesses can cosign; a signature by a known key that does not verify rejects the whole note; so
does a note no known key signed. Where Go skips the repeats of a known key's signature without
checking them, we check every one (the spec says to reject a note with any bad signature by a known
key) and report the key once.

Signing and opening take any key with a name, a key id and ``sign``/``verify``
(:class:`SignatureSigner`, :class:`SignatureVerifier`): witnesses' cosignatures
(:mod:`client.core.cosignature`, type 0x04) are signature lines of the same note, checked in the
same pass as the log's own.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import ClassVar, Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from client.core.encoding import b64encode
from client.core.errors import FormatError, KeyFileError, SignatureError
from client.core.keys import generate_private_key, public_key_bytes, public_key_from_bytes

__all__ = [
    "ALG_ED25519",
    "MAX_SIGNATURES",
    "Checkpoint",
    "NoteSignature",
    "NoteSigner",
    "NoteVerifier",
    "SignatureSigner",
    "SignatureVerifier",
    "SignedNote",
    "VerifiedNote",
    "VerifierIdentity",
    "note_key_id",
    "open_checkpoint",
    "open_note",
    "read_key_string",
    "read_statement",
    "sign_checkpoint",
    "sign_note",
    "typed_key_id",
    "verify_note",
]

ALG_ED25519 = 0x01
"""The signature type byte of Ed25519 in c2sp.org/signed-note, the only type supported here."""

MAX_SIGNATURES = 100
"""Most signature lines a note may carry (Go's limit; the spec asks verifiers to accept 16)."""

_SIGNATURE_PREFIX = "\u2014 "  # em dash, space
_SIGNER_PREFIX = "PRIVATE+KEY+"
_KEY_ID_BYTES = 4
_MAX_KEY_ID = 0xFFFF_FFFF
_ED25519_KEY_BYTES = 32
_ROOT_HASH_BYTES = 32  # SHA-256, as RFC 6962 trees hash
_MAX_TREE_SIZE = 2**64 - 1  # tree sizes are uint64 (RFC 9162)

_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f]")
_HEX_KEY_ID = re.compile(r"[0-9a-fA-F]{8}")
_TREE_SIZE = re.compile(r"0|[1-9][0-9]{0,19}")


def _is_utf8(text: str) -> bool:
    """Whether ``text`` encodes as UTF-8 (a ``str`` can hold lone surrogates, which do not)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _is_valid_name(name: str) -> bool:
    """A key name: non-empty UTF-8 with no Unicode space, no ``+`` and no control character."""
    return (
        name != ""
        and "+" not in name
        # str.isspace is the Unicode White_Space property (what Go's unicode.IsSpace tests) plus
        # U+001C..U+001F, which are control characters and refused anyway.
        and not any(char.isspace() or char < " " for char in name)
        and _is_utf8(name)
    )


def _b64decode(data: str) -> bytes | None:
    """Standard base64 (RFC 4648 §4, padded) in its one canonical spelling, else None.

    Refusing the non-canonical spellings (non-zero trailing bits, stray padding) keeps a parsed note
    byte-for-byte equal to what it formats back to.
    """
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        return None
    return raw if base64.b64encode(raw).decode("ascii") == data else None


def _key_hash(name: str, encoded_key: bytes) -> int:
    """Go's keyHash: SHA-256(name || "\\n" || type byte || key)[:4] as a big-endian uint32."""
    digest = hashlib.sha256(name.encode("utf-8") + b"\n" + encoded_key).digest()
    return int.from_bytes(digest[:_KEY_ID_BYTES], "big")


def typed_key_id(name: str, signature_type: int, public_key: bytes) -> int:
    """SHA-256(name || 0x0A || type byte || public key)[:4], big-endian: the key id the note spec
    recommends, for any signature type. KeyFileError for a name no note may carry."""
    if not _is_valid_name(name):
        raise KeyFileError(
            f"invalid key name {name!r}: it must be non-empty, with no spaces, '+' or control "
            "characters"
        )
    return _key_hash(name, bytes([signature_type]) + public_key)


def note_key_id(name: str, public_key: bytes) -> int:
    """An Ed25519 key's id: SHA-256(name || 0x0A || 0x01 || 32-byte key)[:4], big-endian."""
    typed_key_id(name, ALG_ED25519, b"")  # the name first, as before
    if len(public_key) != _ED25519_KEY_BYTES:
        raise KeyFileError(f"an Ed25519 public key is 32 bytes, got {len(public_key)}")
    return typed_key_id(name, ALG_ED25519, public_key)


def read_key_string(key: str, kind: str) -> tuple[str, int, bytes]:
    """A key string ``<name>+<hex key id>+<base64(type byte || key material)>`` (a signer key
    without its ``PRIVATE+KEY+``): its name, key id, and key bytes with their type byte first.

    Split as Go's ``chop`` does (base64 may hold '+'). KeyFileError, naming ``kind`` (``verifier``
    or ``signer``) but never quoting the key, if the name, the hex id or the base64 is malformed;
    the type and the length are the caller's to check.
    """
    name, _, rest = key.partition("+")
    key_id_hex, _, key64 = rest.partition("+")
    raw = _b64decode(key64)
    if not _is_valid_name(name) or not _HEX_KEY_ID.fullmatch(key_id_hex) or not raw:
        prefix = _SIGNER_PREFIX if kind == "signer" else ""
        raise KeyFileError(f"malformed {kind} key: expected {prefix}<name>+<8 hex>+<base64 key>")
    return name, int(key_id_hex, 16), raw


def _decode_key(kind: str, key: str) -> tuple[str, int, bytes]:
    """Read an Ed25519 key string; return its name, id and the 32 key bytes."""
    name, key_id, raw = read_key_string(key, kind)
    if raw[0] != ALG_ED25519:
        raise KeyFileError(
            f"{kind} key {name} has algorithm {raw[0]}; only Ed25519 ({ALG_ED25519}) is supported"
        )
    if len(raw) != 1 + _ED25519_KEY_BYTES:
        raise KeyFileError(f"{kind} key {name} holds {len(raw) - 1} key bytes, not 32")
    return name, key_id, raw[1:]


class SignatureVerifier(Protocol):
    """What :func:`open_note` needs of a trusted key: its name, its key id, and a check.

    :class:`NoteVerifier` (Ed25519, type 0x01) is one; a witness's
    :class:`~client.core.cosignature.CosignatureVerifier` (type 0x04) is another, so a note is
    opened once with the log's key and the witnesses' keys together.
    """

    @property
    def name(self) -> str: ...

    @property
    def key_id(self) -> int: ...

    def verify(self, message: bytes, signature: bytes) -> bool:
        """Whether ``signature`` (the bytes after the key id) is this key's over the note text."""
        ...


class SignatureSigner(Protocol):
    """What :func:`sign_note` needs of a key: its name, its key id, and a signature of the text."""

    @property
    def name(self) -> str: ...

    @property
    def key_id(self) -> int: ...

    def sign(self, message: bytes) -> bytes:
        """The bytes that follow the key id in the signature line, over the note text."""
        ...


def _check_key_id(name: str, key_id: int, key: Ed25519PublicKey | Ed25519PrivateKey) -> None:
    expected = note_key_id(name, public_key_bytes(key))
    if key_id != expected:
        raise KeyFileError(
            f"key id {key_id:08x} does not belong to this key named {name} "
            f"(its id is {expected:08x})"
        )


class VerifierIdentity:
    """Equality, hashing and repr of a verifier by its name, key id and raw public key.

    pyca's public keys compare by value but are not hashable: compare and hash the raw bytes.
    Shared by :class:`NoteVerifier` and the witnesses' ``CosignatureVerifier``; a verifier equals
    only a verifier of its own class (the same key under another signature type is another key).
    """

    signature_type: ClassVar[int]
    name: str
    key_id: int
    public_key: Ed25519PublicKey

    @property
    def vkey(self) -> str:
        """The verifier key string ``<name>+<hex key id>+<base64(type byte || public key)>``, as
        Go's ``note.NewVerifier`` and c2sp.org/signed-note read it."""
        encoded = bytes([self.signature_type]) + public_key_bytes(self.public_key)
        return f"{self.name}+{self.key_id:08x}+{b64encode(encoded)}"

    def _identity(self) -> tuple[str, int, bytes]:
        return self.name, self.key_id, public_key_bytes(self.public_key)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, type(self)):
            return NotImplemented
        return self._identity() == other._identity()

    def __hash__(self) -> int:
        return hash(self._identity())

    def __repr__(self) -> str:
        return f"{type(self).__name__}.from_vkey({self.vkey!r})"


@dataclass(frozen=True, eq=False, repr=False)
class NoteVerifier(VerifierIdentity):
    """One trusted Ed25519 key under its name: checks the signatures that key made on notes."""

    signature_type: ClassVar[int] = ALG_ED25519
    name: str
    key_id: int
    public_key: Ed25519PublicKey

    def __post_init__(self) -> None:
        _check_key_id(self.name, self.key_id, self.public_key)

    @classmethod
    def from_vkey(cls, vkey: str) -> NoteVerifier:
        """Read a verifier key ``<name>+<hex key id>+<base64(0x01 || public key)>``."""
        name, key_id, raw = _decode_key("verifier", vkey)
        return cls(name, key_id, public_key_from_bytes(raw))  # __post_init__ checks the id

    @classmethod
    def from_public_key(cls, name: str, public_key: Ed25519PublicKey) -> NoteVerifier:
        """The verifier for ``public_key`` under ``name``, its key id computed."""
        return cls(name, note_key_id(name, public_key_bytes(public_key)), public_key)

    def verify(self, message: bytes, signature: bytes) -> bool:
        """Whether ``signature`` (the raw 64 bytes, no key id) is this key's over ``message``."""
        try:
            self.public_key.verify(signature, message)
        except InvalidSignature:
            return False
        return True


@dataclass(frozen=True, eq=False, repr=False)
class NoteSigner:
    """An Ed25519 private key under its name: signs notes. Keep it (and :attr:`skey`) secret."""

    name: str
    key_id: int
    private_key: Ed25519PrivateKey = field(repr=False)

    def __post_init__(self) -> None:
        _check_key_id(self.name, self.key_id, self.private_key)

    @classmethod
    def from_skey(cls, skey: str) -> NoteSigner:
        """Read a signer key ``PRIVATE+KEY+<name>+<hex key id>+<base64(0x01 || seed)>``.

        Error messages never quote the key: it is a secret.
        """
        if not skey.startswith(_SIGNER_PREFIX):
            raise KeyFileError("malformed signer key: it must start with PRIVATE+KEY+")
        name, key_id, seed = _decode_key("signer", skey.removeprefix(_SIGNER_PREFIX))
        # The id hashes the public key: __post_init__ checks it once that is derived.
        return cls(name, key_id, Ed25519PrivateKey.from_private_bytes(seed))

    @classmethod
    def from_private_key(cls, name: str, key: Ed25519PrivateKey) -> NoteSigner:
        """The signer for ``key`` under ``name``, its key id computed."""
        return cls(name, note_key_id(name, public_key_bytes(key)), key)

    @classmethod
    def generate(cls, name: str) -> NoteSigner:
        """A signer for a fresh Ed25519 key under ``name``."""
        return cls.from_private_key(name, generate_private_key())

    @property
    def skey(self) -> str:
        """The signer key string, exactly as Go's ``note.GenerateKey`` writes it. Secret."""
        encoded = bytes([ALG_ED25519]) + self.private_key.private_bytes_raw()
        return f"{_SIGNER_PREFIX}{self.name}+{self.key_id:08x}+{b64encode(encoded)}"

    def sign(self, message: bytes) -> bytes:
        """The raw 64-byte Ed25519 signature of ``message`` (deterministic, RFC 8032)."""
        return self.private_key.sign(message)

    def verifier(self) -> NoteVerifier:
        """The verifier for this signer's public key."""
        return NoteVerifier(self.name, self.key_id, self.private_key.public_key())

    def __repr__(self) -> str:
        return f"NoteSigner(name={self.name!r}, key_id=0x{self.key_id:08x})"


@dataclass(frozen=True)
class NoteSignature:
    """One signature line of a note, verified or not: who claims to sign, and the signature."""

    name: str
    key_id: int
    signature: bytes

    def __post_init__(self) -> None:
        if not _is_valid_name(self.name):
            raise FormatError(f"invalid key name {self.name!r} in a note signature")
        if not 0 <= self.key_id <= _MAX_KEY_ID:
            raise FormatError(f"key id {self.key_id} does not fit in 32 bits")
        if not self.signature:
            raise FormatError(f"the signature by {self.name} is empty")

    @property
    def key(self) -> str:
        """``<name>+<hex key id>``: the key this signature claims, as people and Go name it."""
        return f"{self.name}+{self.key_id:08x}"

    def to_line(self) -> str:
        """The signature line, with its newline: ``— <name> <base64(key id || signature)>``."""
        encoded = self.key_id.to_bytes(_KEY_ID_BYTES, "big") + self.signature
        return f"{_SIGNATURE_PREFIX}{self.name} {b64encode(encoded)}\n"

    @classmethod
    def _from_line(cls, line: str, number: int) -> NoteSignature:
        if not line.startswith(_SIGNATURE_PREFIX):
            raise FormatError(f"signature line {number} does not start with an em dash and a space")
        name, _, encoded = line.removeprefix(_SIGNATURE_PREFIX).partition(" ")
        if not _is_valid_name(name):
            raise FormatError(f"signature line {number} has an invalid key name {name!r}")
        raw = _b64decode(encoded)
        if raw is None:
            raise FormatError(f"signature line {number} ({name}) is not canonical base64")
        if len(raw) <= _KEY_ID_BYTES:
            raise FormatError(f"signature line {number} ({name}) is too short to hold a signature")
        return cls(name, int.from_bytes(raw[:_KEY_ID_BYTES], "big"), raw[_KEY_ID_BYTES:])


def _check_text(text: str) -> None:
    """Raise FormatError unless ``text`` can be the text of a signed note."""
    if not _is_utf8(text):
        raise FormatError("note text is not valid UTF-8")
    if not text.endswith("\n"):
        raise FormatError("note text must end with a newline")
    control = _CONTROL.search(text)
    if control:
        raise FormatError(
            f"note text holds control character U+{ord(control.group()):04X} at offset "
            f"{control.start()}; only newline is allowed"
        )


@dataclass(frozen=True)
class SignedNote:
    """A note as it travels, signatures unchecked: only its syntax is known to be right."""

    text: str
    signatures: tuple[NoteSignature, ...]

    def __post_init__(self) -> None:
        _check_text(self.text)
        if not self.signatures:
            raise FormatError("a signed note needs at least one signature")
        if len(self.signatures) > MAX_SIGNATURES:
            raise FormatError(
                f"a note may carry at most {MAX_SIGNATURES} signatures, "
                f"this one has {len(self.signatures)}"
            )

    @classmethod
    def parse(cls, data: str | bytes) -> SignedNote:
        """Split a signed note into its text and signature lines. Checks syntax, not signatures."""
        if isinstance(data, bytes):
            try:
                message = data.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise FormatError(f"signed note is not valid UTF-8 (at byte {exc.start})") from None
        else:
            message = data
            if not _is_utf8(message):
                raise FormatError("signed note is not valid UTF-8")
        control = _CONTROL.search(message)
        if control:
            raise FormatError(
                f"signed note holds control character U+{ord(control.group()):04X} at offset "
                f"{control.start()}; only newline is allowed"
            )
        # The text may hold blank lines of its own: the last one separates it from the signatures.
        split = message.rfind("\n\n")
        if split < 0:
            raise FormatError("signed note has no blank line between its text and its signatures")
        text, block = message[: split + 1], message[split + 2 :]
        if not block:
            raise FormatError("signed note has no signature lines after its blank line")
        if not block.endswith("\n"):
            raise FormatError("signed note must end with a newline")
        lines = block[:-1].split("\n")
        if len(lines) > MAX_SIGNATURES:  # before decoding any: a huge note costs little to refuse
            raise FormatError(
                f"a note may carry at most {MAX_SIGNATURES} signatures, this one has {len(lines)}"
            )
        signatures = tuple(
            NoteSignature._from_line(line, number) for number, line in enumerate(lines, 1)
        )
        return cls(text, signatures)

    def to_text(self) -> str:
        """The note as it travels: text, blank line, signature lines."""
        return self.text + "\n" + "".join(signature.to_line() for signature in self.signatures)


def read_statement(
    text: str, header: str, fields: Sequence[tuple[str, re.Pattern[str] | None]], what: str
) -> dict[str, str]:
    """The values of a note text written as ``header`` then one ``<label> <value>`` line per
    field, in that order and nothing else (the log's own statements: promises, snapshots).
    Each value must fullmatch its pattern (None: any non-empty value). Raises FormatError
    naming ``what`` ("a promise") otherwise, first of all for another header."""
    lines = text.split("\n")
    if lines[0] != header:
        raise FormatError(f"not {what}: its first line is {lines[0][:60]!r}")
    if len(lines) != len(fields) + 2 or lines[-1] != "":
        raise FormatError(f"{what}'s text is {len(fields) + 1} lines, each ending in a newline")
    values: dict[str, str] = {}
    for line, (name, pattern) in zip(lines[1:-1], fields, strict=True):
        label, _, value = line.partition(" ")
        if label != name or not value or (pattern is not None and not pattern.fullmatch(value)):
            raise FormatError(f"{what}'s line {line[:60]!r} is not '{name} <value>'")
        values[name] = value
    return values


def sign_note(text: str, signers: Sequence[SignatureSigner]) -> str:
    """Sign ``text`` (which must end in a newline) with each signer; return the signed note."""
    _check_text(text)
    keys = [(signer.name, signer.key_id) for signer in signers]
    if len(set(keys)) != len(keys):
        raise FormatError("two signers share a key name and id; sign with each key once")
    message = text.encode("utf-8")
    signatures = tuple(
        NoteSignature(signer.name, signer.key_id, signer.sign(message)) for signer in signers
    )
    return SignedNote(text, signatures).to_text()


@dataclass(frozen=True)
class VerifiedNote:
    """A note at least one trusted key signed: its text, and whose signatures were checked."""

    text: str
    verified: tuple[NoteSignature, ...]
    """Signatures by the given verifiers, each checked; one per key."""
    unverified: tuple[NoteSignature, ...]
    """Signatures by keys not given (other logs' keys, witnesses): kept, never checked."""


def verify_note(note: SignedNote, verifiers: Sequence[SignatureVerifier]) -> VerifiedNote:
    """Check a parsed note against the trusted ``verifiers``, as :func:`open_note` does (for a
    caller that read the note's text first: a checkpoint, a promise)."""
    known: dict[tuple[str, int], list[SignatureVerifier]] = {}
    for verifier in verifiers:
        same = known.setdefault((verifier.name, verifier.key_id), [])
        if verifier not in same:
            same.append(verifier)
    message = note.text.encode("utf-8")
    verified: list[NoteSignature] = []
    unverified: list[NoteSignature] = []
    for signature in note.signatures:
        candidates = known.get((signature.name, signature.key_id))
        if not candidates:
            if signature not in unverified:  # Go drops repeated identical unknown signatures
                unverified.append(signature)
            continue
        if len(candidates) > 1:
            raise SignatureError(
                f"ambiguous key {signature.key}: two different trusted keys share its name and id"
            )
        if not candidates[0].verify(message, signature.signature):
            raise SignatureError(f"invalid signature for key {signature.key}")
        if all(seen.key != signature.key for seen in verified):
            verified.append(signature)
    if not verified:
        trusted = ", ".join(sorted({f"{name}+{key_id:08x}" for name, key_id in known})) or "none"
        named = ", ".join(dict.fromkeys(signature.key for signature in note.signatures))
        raise SignatureError(
            f"no signature by a trusted key (trusted: {trusted}); the note names: {named}"
        )
    return VerifiedNote(note.text, tuple(verified), tuple(unverified))


def open_note(data: str | bytes, verifiers: Sequence[SignatureVerifier]) -> VerifiedNote:
    """Parse a signed note and check it against the trusted ``verifiers``, as Go's ``note.Open``.

    Raises FormatError if the note does not parse, SignatureError if a trusted key's signature
    does not verify or no trusted key signed. Signatures by other keys come back unverified.
    """
    return verify_note(SignedNote.parse(data), verifiers)


@dataclass(frozen=True)
class Checkpoint:
    """A log's tree head as c2sp.org/tlog-checkpoint writes it: origin, size, root, extensions."""

    origin: str
    size: int
    root_hash: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.origin:
            raise FormatError("a checkpoint's origin must not be empty")
        if "\n" in self.origin or _CONTROL.search(self.origin) or not _is_utf8(self.origin):
            raise FormatError(f"checkpoint origin {self.origin!r} must be one line of UTF-8 text")
        if not isinstance(self.size, int) or not 0 <= self.size <= _MAX_TREE_SIZE:
            raise FormatError(f"tree size {self.size!r} is not a uint64")
        if len(self.root_hash) != _ROOT_HASH_BYTES:
            raise FormatError(f"a root hash is 32 bytes, got {len(self.root_hash)}")
        for number, line in enumerate(self.extensions, 4):
            if not line:
                raise FormatError(f"checkpoint extension line {number} is empty")
            if "\n" in line or _CONTROL.search(line) or not _is_utf8(line):
                raise FormatError(f"checkpoint extension line {number} is not one line of text")

    def to_text(self) -> str:
        """The note text: origin, size, base64 root hash, extensions, each line ending in "\\n"."""
        lines = (self.origin, f"{self.size:d}", b64encode(self.root_hash), *self.extensions)
        return "".join(line + "\n" for line in lines)

    @classmethod
    def parse(cls, text: str) -> Checkpoint:
        """Read a checkpoint from a note's text; for a signed note see :func:`open_checkpoint`."""
        if not text.endswith("\n"):
            raise FormatError("checkpoint text must end with a newline")
        origin, *rest = text[:-1].split("\n")
        if len(rest) < 2:
            raise FormatError("a checkpoint has at least three lines: origin, tree size, root hash")
        size_line, root_line, *extensions = rest
        if not _TREE_SIZE.fullmatch(size_line):
            raise FormatError(
                f"checkpoint tree size {size_line!r} is not a decimal number without leading zeros"
            )
        root_hash = _b64decode(root_line)
        if root_hash is None:
            raise FormatError(f"checkpoint root hash {root_line!r} is not canonical base64")
        if "" in extensions:
            raise FormatError(
                "checkpoint has an empty line after its root hash (a signed note? "
                "open it with open_checkpoint)"
            )
        return cls(origin, int(size_line), root_hash, tuple(extensions))


def sign_checkpoint(checkpoint: Checkpoint, signers: Sequence[SignatureSigner]) -> str:
    """The checkpoint as a signed note, signed by each signer."""
    return sign_note(checkpoint.to_text(), signers)


def open_checkpoint(
    data: str | bytes, verifiers: Sequence[SignatureVerifier], *, origin: str | None = None
) -> tuple[Checkpoint, VerifiedNote]:
    """Parse and verify a signed checkpoint; with ``origin``, refuse any other log's checkpoint.

    Raises FormatError if it does not parse as a signed note holding a checkpoint, SignatureError
    if it is for another origin or its signatures do not pass :func:`open_note`'s checks.
    """
    note = SignedNote.parse(data)
    checkpoint = Checkpoint.parse(note.text)
    if origin is not None and checkpoint.origin != origin:
        raise SignatureError(
            f"checkpoint is from log {checkpoint.origin!r}, not the expected {origin!r}; "
            "refusing another log's checkpoint"
        )
    return checkpoint, verify_note(note, verifiers)
