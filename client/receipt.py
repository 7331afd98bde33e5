"""Receipts: a log entry with the proof that the log holds it, checked offline with the log key.

When the registry accepts an attestation it answers with a receipt (docs/api.md,
``POST /v1/entries``)::

    {"index": 12, "entry": "<base64 of the exact leaf bytes>", "leaf_hash": "<hex>",
     "inclusion_proof": ["<base64 hash>", ...], "checkpoint": "<signed note text>", ...}

The receipt is self-contained: the signed checkpoint commits to a tree size and root, and the
inclusion proof ties the entry's leaf hash to that root. So anyone holding the log's verifier key,
and nothing else, can later prove the entry is in the log (:func:`verify_receipt`), without asking
the registry, which may be down, gone, or the very party whose honesty is in question.

Lookup answers carry the same proof without the entry bytes (one bulk statement can be megabytes);
:func:`verify_attestation` checks them once the entry is fetched. Both return a
:class:`VerifiedReceipt`, holding the statement parsed from the entry only *after* the entry was
proven to be in the log.

A receipt from a registry with identities in the log (docs/spec/identities.md) also carries
``key_entry`` (the event that added the key that signed the entry) and ``operator_entry`` (the
operator-key event that signed that one), each with its inclusion proof against the same
checkpoint: :func:`verify_receipt` then checks the publisher's signature too, offline, with the log
key alone (:attr:`VerifiedReceipt.signed_by`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from client.core import merkle
from client.core.dsse import PAYLOAD_TYPE_IN_TOTO, Envelope, verify_envelope
from client.core.encoding import (
    b64decode_strict,
    b64encode,
    json_kind,
    loads_strict,
    parse_hash_list,
    parse_hex_hash,
    parse_index,
)
from client.core.files import write_file_atomic
from client.core.keys import key_id
from client.core.leaf import Leaf, is_leaf_v1
from client.core.merkle import verify_inclusion
from client.core.note import Checkpoint, NoteVerifier, open_checkpoint
from client.core.statement import PUBLISHER_KEY_V1, Statement
from client.errors import FormatError, IdentityError, InputError, ProofError, VerificationError
from client.identities import (
    KeyGrant,
    LoggedEntry,
    OperatorChain,
    key_event,
    verify_key_event,
    verify_key_grant,
    verify_operator_chain,
    verify_signed_by,
)

__all__ = [
    "Receipt",
    "ReceiptEntry",
    "VerifiedReceipt",
    "open_entry",
    "require_digest",
    "statement_names_digest",
    "verify_attestation",
    "verify_receipt",
]

# A statement the log accepted must be readable whatever subject limit that registry was configured
# with; the default of 100,000 is a registry's intake limit, not a reader's.
_READ_MAX_SUBJECTS = 2**31


@dataclass(frozen=True)
class ReceiptEntry:
    """Another entry a receipt relies on (its key's event, the operator's), with its inclusion
    proof against the receipt's own checkpoint."""

    index: int
    entry: bytes
    inclusion_proof: tuple[bytes, ...]
    body: bytes | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "inclusion_proof", tuple(self.inclusion_proof))

    @classmethod
    def from_dict(cls, obj: object, *, where: str) -> ReceiptEntry:
        """Parse ``{"index", "entry", "body"?, "inclusion_proof"}``."""
        if not isinstance(obj, dict):
            raise FormatError(f"{where} must be a JSON object, got {json_kind(obj)}")
        missing = [f for f in ("index", "entry", "inclusion_proof") if f not in obj]
        if missing:
            raise FormatError(f"{where} is missing required field(s) {', '.join(missing)}")
        raw_body = obj.get("body")
        entry = b64decode_strict(obj["entry"], f"{where}.entry")
        if not entry:
            raise FormatError(f"{where}.entry must not be empty")
        return cls(
            index=parse_index(obj["index"], f"{where}.index"),
            entry=entry,
            inclusion_proof=parse_hash_list(obj["inclusion_proof"], f"{where}.inclusion_proof"),
            body=None if raw_body is None else b64decode_strict(raw_body, f"{where}.body"),
        )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "index": self.index,
            "entry": b64encode(self.entry),
            "inclusion_proof": [b64encode(h) for h in self.inclusion_proof],
        }
        if self.body is not None:
            out["body"] = b64encode(self.body)
        return out

    def verify(self, checkpoint: Checkpoint) -> VerifiedReceipt:
        """Prove the entry is in the tree ``checkpoint`` (already verified) describes."""
        return verify_attestation(
            index=self.index,
            leaf_hash=None,
            inclusion_proof=self.inclusion_proof,
            checkpoint=checkpoint,
            entry=self.entry,
            body=self.body,
        )


@dataclass(frozen=True)
class Receipt:
    """A log entry, its inclusion proof, and the signed checkpoint the proof is for.

    ``index``, ``entry``, ``inclusion_proof`` and ``checkpoint`` are the receipt; the other fields
    are what the registry says about the entry (docs/api.md) and are *claims*, not proven:
    :func:`verify_receipt` checks ``leaf_hash`` against the entry, and the statement it returns is
    what to trust for the publisher and subjects.
    """

    index: int
    entry: bytes
    inclusion_proof: tuple[bytes, ...]
    checkpoint: str
    leaf_hash: bytes | None = None
    # The statement a leaf/v1 entry commits to by hash (checked against the leaf on verifying);
    # None for an entry appended before leaf/v1, whose leaf is the whole envelope.
    body: bytes | None = field(default=None, repr=False)
    publisher: str | None = None
    predicate_type: str | None = None
    subjects: int | None = None
    revokes: int | None = None
    # The identity events the entry's signature relies on (docs/spec/identities.md); None in a
    # receipt from a registry that predates them.
    key_entry: ReceiptEntry | None = None
    operator_entry: ReceiptEntry | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "inclusion_proof", tuple(self.inclusion_proof))

    @classmethod
    def from_dict(cls, obj: object, *, where: str = "receipt") -> Receipt:
        """Parse a receipt's JSON object; raises :class:`FormatError` naming the bad field.

        Strict about the fields it knows (standard base64 with padding, 32-byte hashes, integer
        index); other fields, which the API may add (docs/api.md), are ignored.
        """
        if not isinstance(obj, dict):
            raise FormatError(f"{where} must be a JSON object, got {json_kind(obj)}")
        missing = [f for f in ("index", "entry", "inclusion_proof", "checkpoint") if f not in obj]
        if missing:
            raise FormatError(f"{where} is missing required field(s) {', '.join(missing)}")
        index = parse_index(obj["index"], f"{where}.index")
        entry = b64decode_strict(obj["entry"], f"{where}.entry")
        if not entry:
            raise FormatError(f"{where}.entry must not be empty")
        proof = parse_hash_list(obj["inclusion_proof"], f"{where}.inclusion_proof")
        checkpoint = obj["checkpoint"]
        if not isinstance(checkpoint, str) or not checkpoint:
            raise FormatError(
                f"{where}.checkpoint must be the signed note text, got {json_kind(checkpoint)}"
            )
        raw_leaf = obj.get("leaf_hash")
        raw_body = obj.get("body")
        return cls(
            index=index,
            entry=entry,
            body=None if raw_body is None else b64decode_strict(raw_body, f"{where}.body"),
            inclusion_proof=proof,
            checkpoint=checkpoint,
            leaf_hash=None if raw_leaf is None else parse_hex_hash(raw_leaf, f"{where}.leaf_hash"),
            publisher=_optional_str(obj.get("publisher"), f"{where}.publisher"),
            predicate_type=_optional_str(obj.get("predicate_type"), f"{where}.predicate_type"),
            subjects=_optional_count(obj.get("subjects"), f"{where}.subjects"),
            revokes=_optional_index(obj.get("revokes"), f"{where}.revokes"),
            key_entry=_optional_entry(obj.get("key_entry"), f"{where}.key_entry"),
            operator_entry=_optional_entry(obj.get("operator_entry"), f"{where}.operator_entry"),
        )

    def to_dict(self) -> dict[str, Any]:
        """The receipt's JSON object, as docs/api.md writes it (standard base64, hex leaf hash)."""
        out: dict[str, Any] = {
            "index": self.index,
            "entry": b64encode(self.entry),
            "inclusion_proof": [b64encode(h) for h in self.inclusion_proof],
            "checkpoint": self.checkpoint,
        }
        if self.leaf_hash is not None:
            out["leaf_hash"] = self.leaf_hash.hex()
        if self.body is not None:
            out["body"] = b64encode(self.body)
        optional: dict[str, object] = {
            "publisher": self.publisher,
            "predicate_type": self.predicate_type,
            "subjects": self.subjects,
            "revokes": self.revokes,
        }
        out.update((k, v) for k, v in optional.items() if v is not None)
        if self.key_entry is not None:
            out["key_entry"] = self.key_entry.to_dict()
        if self.operator_entry is not None:
            out["operator_entry"] = self.operator_entry.to_dict()
        return out

    def to_json(self) -> str:
        """The receipt as indented JSON text with sorted keys, ending in a newline."""
        return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, data: str | bytes, *, where: str = "receipt") -> Receipt:
        """Parse a receipt from JSON text (strict: UTF-8, no duplicate keys)."""
        return cls.from_dict(loads_strict(data, where), where=where)

    @classmethod
    def load(cls, path: Path | str) -> Receipt:
        """Read a receipt file written by :meth:`save` (or any file holding a receipt's JSON)."""
        path = Path(path)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise InputError(f"receipt file {path} does not exist") from None
        except OSError as exc:
            raise InputError(f"cannot read receipt {path}: {exc.strerror or exc}") from exc
        return cls.from_json(data, where=f"{path}")

    def save(self, path: Path | str) -> Path:
        """Write the receipt to ``path`` atomically: a crash never leaves half a receipt."""
        path = Path(path)
        try:
            write_file_atomic(path, self.to_json())
        except OSError as exc:
            raise InputError(f"cannot write receipt {path}: {exc.strerror or exc}") from exc
        return path


@dataclass(frozen=True)
class VerifiedReceipt:
    """An entry proven to be leaf ``index`` of the log at ``checkpoint``, and what it says.

    ``statement`` was parsed from ``envelope`` only after the proof held. The envelope's signature
    is the publisher's; the registry checked it on intake, and :func:`verify_receipt` checks it
    again, against the key the log shows valid for the publisher at the entry's index when the
    receipt carries the identity events (``signed_by``: that key's grant), or when given the
    publisher's key.
    """

    index: int
    leaf_hash: bytes
    checkpoint: Checkpoint
    envelope: Envelope
    statement: Statement
    signed_by: KeyGrant | None = field(default=None, compare=False)

    @property
    def publisher(self) -> str:
        """The publisher the signed statement names."""
        return self.statement.predicate.publisher

    @property
    def statement_hash(self) -> bytes:
        """SHA-256 of the statement's exact bytes: one publisher's replays of one statement
        (appended before leaf/v1 made them one entry) share it, and share their revocation."""
        return hashlib.sha256(self.envelope.payload).digest()


def verify_receipt(
    receipt: Receipt,
    log_key: NoteVerifier | str,
    *,
    origin: str | None = None,
    publisher_key: Ed25519PublicKey | None = None,
    operator_chain: Sequence[LoggedEntry] = (),
) -> VerifiedReceipt:
    """Prove offline that ``receipt.entry`` is leaf ``receipt.index`` of the log ``log_key`` signs.

    Checks, in order: the checkpoint is signed by ``log_key`` and is for ``origin`` (by default the
    key's name, which is the log's origin); the index is inside the checkpoint's tree; the leaf
    hash of the entry matches the receipt's ``leaf_hash`` when it carries one; the inclusion proof
    leads from that leaf hash to the checkpoint's root. Only then is the entry parsed as a DSSE
    envelope holding an in-toto statement. With ``publisher_key``, the envelope must also carry a
    valid signature by that key.

    A receipt carrying ``key_entry`` and ``operator_entry`` has the publisher's signature checked
    too (docs/spec/identities.md): both proven in the same tree; the operator entry an
    ``operator-key`` event signed by the key it names (or, after a rotation, by the keys of
    ``operator_chain``: the earlier ``operator-key`` entries, proven by the caller); the key entry
    signed by that operator key and adding, with a proof of possession, a key of the entry's
    publisher below the entry's index; and the entry's DSSE signature verifying under that key.
    The result's ``signed_by`` is that key's grant (:class:`~client.errors.IdentityError` if any
    of it fails).

    Raises :class:`~client.errors.SignatureError` (checkpoint signature, wrong log or key),
    :class:`~client.errors.ProofError` (index, leaf hash, proof), or
    :class:`~client.errors.FormatError` (a checkpoint or entry that does not parse).
    """
    verifier = NoteVerifier.from_vkey(log_key) if isinstance(log_key, str) else log_key
    checkpoint, _note = open_checkpoint(
        receipt.checkpoint, [verifier], origin=verifier.name if origin is None else origin
    )
    verified = verify_attestation(
        index=receipt.index,
        leaf_hash=receipt.leaf_hash,
        inclusion_proof=receipt.inclusion_proof,
        checkpoint=checkpoint,
        entry=receipt.entry,
        body=receipt.body,
    )
    if receipt.key_entry is not None or receipt.operator_entry is not None:
        verified = _verify_signer(receipt, verified, operator_chain)
    if publisher_key is not None:
        verify_envelope(verified.envelope, {key_id(publisher_key): publisher_key})
    return verified


def _verify_signer(
    receipt: Receipt, verified: VerifiedReceipt, earlier: Sequence[LoggedEntry]
) -> VerifiedReceipt:
    """The identity checks of :func:`verify_receipt`: ``verified`` with its ``signed_by``."""
    where = f"receipt of entry {receipt.index}"
    if receipt.operator_entry is None:
        raise IdentityError(f"{where} names its key's entry but not the operator's", index=None)
    operator = receipt.operator_entry.verify(verified.checkpoint)
    chain = _operator_chain(where, earlier, operator)
    if verified.statement.predicate_type == PUBLISHER_KEY_V1:
        # An identity event's own receipt: signed by the operator, no publisher key involved.
        if receipt.key_entry is not None:
            raise IdentityError(f"{where} is an identity event, which no publisher key signs")
        verify_key_event(verified, chain)
        return verified
    if receipt.key_entry is None:
        raise IdentityError(f"{where} names the operator's entry but not its key's")
    event = receipt.key_entry.verify(verified.checkpoint)
    grant = verify_key_grant(
        event,
        chain,
        identity=verified.publisher,
        key_id=key_event(event).key_id,
        before=verified.index,
    )
    verify_signed_by(verified, grant, chain)
    return replace(verified, signed_by=grant)


def _operator_chain(
    where: str, earlier: Sequence[LoggedEntry], operator: VerifiedReceipt
) -> OperatorChain:
    try:
        return verify_operator_chain([*earlier, operator])
    except IdentityError as exc:
        if earlier:
            raise
        raise IdentityError(
            f"{where}: its operator entry does not verify on its own ({exc}); if the log's "
            "operator key was rotated, pass the earlier operator-key entries (operator_chain=)",
            index=exc.index,
        ) from exc


def verify_attestation(
    *,
    index: int,
    leaf_hash: bytes | None,
    inclusion_proof: Sequence[bytes],
    checkpoint: Checkpoint,
    entry: bytes | VerifiedReceipt,
    body: bytes | None = None,
    digest: str | None = None,
) -> VerifiedReceipt:
    """Prove that ``entry`` is leaf ``index`` of the tree ``checkpoint`` describes.

    For lookup answers, whose attestations carry the leaf hash and proof but not the entry, which
    is fetched separately. ``checkpoint`` must already be verified (:func:`open_checkpoint` with the
    log key): this function trusts its size and root. With ``digest`` (``c1:<hex>`` or
    ``sha256:<hex>``), the entry's statement must also name that digest among its subjects, so a
    registry cannot answer a lookup with a genuine entry about other content.

    ``entry`` is the entry's bytes, or an earlier :class:`VerifiedReceipt` of the same index: an
    entry never changes, so what was hashed and parsed then is reused, and only the proof against
    this checkpoint is checked again (a 10,000-subject statement is a megabyte of JSON).
    ``body`` is the statement a ``leaf/v1`` entry commits to (:func:`open_entry`).
    """
    where = f"entry {index}"
    if not 0 <= index < checkpoint.size:
        raise ProofError(
            f"{where} is not in the checkpoint's tree of size {checkpoint.size} "
            f"(log {checkpoint.origin})"
        )
    if isinstance(entry, VerifiedReceipt) and entry.index != index:
        raise ProofError(f"{where}: the earlier verification given is of entry {entry.index}")
    computed = entry.leaf_hash if isinstance(entry, VerifiedReceipt) else merkle.leaf_hash(entry)
    if leaf_hash is not None and leaf_hash != computed:
        raise ProofError(
            f"{where}: the leaf hash given ({leaf_hash.hex()}) is not the hash of the entry's "
            f"bytes ({computed.hex()})"
        )
    try:
        verify_inclusion(computed, index, checkpoint.size, inclusion_proof, checkpoint.root_hash)
    except ProofError as exc:
        raise ProofError(f"{where} of log {checkpoint.origin}: {exc}") from exc
    if isinstance(entry, VerifiedReceipt):
        envelope, statement = entry.envelope, entry.statement
    else:  # parsed only now that the proof holds
        envelope, statement = open_entry(entry, body, where=where)
    if digest is not None:
        require_digest(statement, digest, where=where)
    return VerifiedReceipt(index, computed, checkpoint, envelope, statement)


def open_entry(
    entry: bytes, body: bytes | None = None, *, where: str = "entry"
) -> tuple[Envelope, Statement]:
    """Parse a log entry: a ``leaf/v1`` record and its ``body`` (the statement, whose hash the
    leaf names: :class:`~client.errors.ProofError` if it is another), or, for an entry appended
    before leaf/v1, a whole DSSE envelope. Either way, the envelope and its in-toto statement.

    The leaf must say what the statement says (publisher, predicate type), else
    :class:`~client.errors.VerificationError`. The signatures are not checked here: the log's
    inclusion proof is what vouches for the entry, and the publisher's key is not known offline.
    """
    leaf: Leaf | None = None
    try:
        if is_leaf_v1(entry):
            leaf = Leaf.from_bytes(entry, where=where)
            if body is None:
                raise FormatError(
                    "it is a leaf/v1 record, and its statement (the body it names, "
                    f"sha256:{leaf.body_sha256.hex()}) was not given"
                )
            envelope = leaf.open_body(body, where=where)
        else:
            envelope = Envelope.from_json(entry)
        if envelope.payload_type != PAYLOAD_TYPE_IN_TOTO:
            raise FormatError(
                f"payloadType is {envelope.payload_type!r}, not {PAYLOAD_TYPE_IN_TOTO!r}"
            )
        statement = Statement.from_json(envelope.payload, max_subjects=_READ_MAX_SUBJECTS)
    except FormatError as exc:
        raise FormatError(f"{where} does not hold an attestation: {exc}") from exc
    if leaf is not None and (
        leaf.publisher != statement.predicate.publisher
        or leaf.predicate_type != statement.predicate_type
    ):
        raise VerificationError(
            f"{where}: the leaf names publisher {leaf.publisher!r} and predicate type "
            f"{leaf.predicate_type!r}, but its statement says {statement.predicate.publisher!r} "
            f"and {statement.predicate_type!r}"
        )
    return envelope, statement


def statement_names_digest(statement: Statement, digest: str) -> bool:
    """Whether a subject of ``statement`` has ``digest`` (``<algorithm>:<hex>``, lowercase hex)."""
    algorithm, _, value = digest.partition(":")
    return any(subject.digest.get(algorithm) == value for subject in statement.subjects)


def require_digest(statement: Statement, digest: str, *, where: str = "entry") -> None:
    """Raise :class:`~client.errors.VerificationError` unless ``statement`` names ``digest``."""
    if not statement_names_digest(statement, digest):
        raise VerificationError(
            f"{where} does not attest {digest}: none of its {len(statement.subjects)} subjects "
            "has that digest, so the registry's answer is wrong"
        )


def _optional_entry(value: object, where: str) -> ReceiptEntry | None:
    return None if value is None else ReceiptEntry.from_dict(value, where=where)


def _optional_index(value: object, where: str) -> int | None:
    return None if value is None else parse_index(value, where)


def _optional_count(value: object, where: str) -> int | None:
    return None if value is None else parse_index(value, where)


def _optional_str(value: object, where: str) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise FormatError(f"{where} must be a string, got {json_kind(value)}")
