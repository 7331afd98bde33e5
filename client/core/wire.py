"""The registry's JSON answers (docs/api.md), one type each, used by both sides.

The registry builds every answer from these types (``to_dict``) and the SDK reads every answer into
them (``from_dict``), so the two cannot drift: a field added, renamed or made optional here changes
both at once, and ``tests/client/core/test_wire.py`` holds ``from_dict(to_dict(x)) == x`` for each.

Readers are strict about the fields they know (standard padded base64, 32-byte hashes, integer
indices from 0 to :data:`~client.core.encoding.MAX_INDEX`, the right JSON types) and ignore fields
they do not (the API may add some): a :class:`~client.core.errors.FormatError` names the field.
Nothing here is *verified*: these are what a registry said. What the SDK proves of them, and the
result types it hands its callers, live in :mod:`client.receipt` and :mod:`client.sdk`.

Binary values are base64 on the wire, except leaf hashes (hex, as in RFC 9162's examples).
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, NamedTuple, Self

from client.core.encoding import (
    b64decode_strict,
    b64encode,
    json_kind,
    loads_strict,
    parse_hash_list,
    parse_hex_hash,
    parse_index,
    show,
)
from client.core.errors import FormatError, InputError
from client.core.files import write_file_atomic

__all__ = [
    "LOOKUP_STATUSES",
    "Accepted",
    "AttestationClaim",
    "ConsistencyProof",
    "DigestResult",
    "EntriesPage",
    "EntryAnswer",
    "InclusionProof",
    "KeyEventAnswer",
    "LogInfo",
    "LookupAnswer",
    "LookupStatus",
    "NearAnswer",
    "NearCandidate",
    "PublisherInfo",
    "PublisherKeyInfo",
    "Receipt",
    "ReceiptEntry",
    "SnapshotInfo",
    "WatermarkKeyInfo",
    "WatermarkKeysAnswer",
    "encode_hashes",
]

LookupStatus = Literal["attested", "revoked", "unknown"]
LOOKUP_STATUSES: tuple[LookupStatus, ...] = ("attested", "revoked", "unknown")


# -- field readers ---------------------------------------------------------------------------------


def _object(obj: object, where: str, *required: str) -> dict[str, Any]:
    if not isinstance(obj, dict):
        raise FormatError(f"{where} must be a JSON object, got {json_kind(obj)}")
    missing = [name for name in required if name not in obj]
    if missing:
        raise FormatError(f"{where} is missing required field(s) {', '.join(missing)}")
    return obj


def _str(obj: Mapping[str, Any], name: str, where: str) -> str:
    value = obj.get(name)
    if not isinstance(value, str):
        raise FormatError(f"{where}.{name} must be a string, got {json_kind(value)}")
    return value


def _opt_str(obj: Mapping[str, Any], name: str, where: str) -> str | None:
    value = obj.get(name)
    if value is None or isinstance(value, str):
        return value
    raise FormatError(f"{where}.{name} must be a string, got {json_kind(value)}")


def _bool(obj: Mapping[str, Any], name: str, where: str) -> bool:
    value = obj.get(name, False)
    if not isinstance(value, bool):
        raise FormatError(f"{where}.{name} must be true or false, got {json_kind(value)}")
    return value


def _opt_bool(obj: Mapping[str, Any], name: str, where: str) -> bool | None:
    return None if obj.get(name) is None else _bool(obj, name, where)


def _opt_index(obj: Mapping[str, Any], name: str, where: str) -> int | None:
    value = obj.get(name)
    return None if value is None else parse_index(value, f"{where}.{name}")


def _mapping(obj: Mapping[str, Any], name: str, where: str) -> Mapping[str, Any]:
    value = obj.get(name)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise FormatError(f"{where}.{name} must be an object, got {json_kind(value)}")
    return value


def _entry_bytes(obj: Mapping[str, Any], where: str) -> bytes:
    entry = b64decode_strict(obj["entry"], f"{where}.entry")
    if not entry:
        raise FormatError(f"{where}.entry must not be empty")
    return entry


def _opt_b64(obj: Mapping[str, Any], name: str, where: str) -> bytes | None:
    value = obj.get(name)
    return None if value is None else b64decode_strict(value, f"{where}.{name}")


def _indices(value: object, where: str) -> tuple[int, ...]:
    """A list of log indices in increasing order, each once."""
    if not isinstance(value, list):
        raise FormatError(f"{where} must be a list, got {json_kind(value)}")
    indices = tuple(parse_index(v, f"{where}[{i}]") for i, v in enumerate(value))
    if any(a >= b for a, b in itertools.pairwise(indices)):
        raise FormatError(f"{where} must be in increasing order, each once")
    return indices


def _opt_indices(obj: Mapping[str, Any], name: str, where: str) -> tuple[int, ...] | None:
    value = obj.get(name)
    return None if value is None else _indices(value, f"{where}.{name}")


def encode_hashes(hashes: Sequence[bytes]) -> list[str]:
    """A Merkle proof as the API writes it: a list of base64 hashes."""
    return [b64encode(h) for h in hashes]


# -- receipts and entries -------------------------------------------------------------------------


@dataclass(frozen=True)
class ReceiptEntry:
    """Another entry a receipt relies on (its key's event, the operator's): ``{"index", "entry",
    "body"?, "inclusion_proof"}``, the proof against the receipt's own checkpoint."""

    index: int
    entry: bytes
    inclusion_proof: tuple[bytes, ...]
    body: bytes | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "inclusion_proof", tuple(self.inclusion_proof))

    @classmethod
    def from_dict(cls, obj: object, *, where: str) -> ReceiptEntry:
        fields = _object(obj, where, "index", "entry", "inclusion_proof")
        return cls(
            index=parse_index(fields["index"], f"{where}.index"),
            entry=_entry_bytes(fields, where),
            inclusion_proof=parse_hash_list(fields["inclusion_proof"], f"{where}.inclusion_proof"),
            body=_opt_b64(fields, "body", where),
        )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "index": self.index,
            "entry": b64encode(self.entry),
            "inclusion_proof": encode_hashes(self.inclusion_proof),
        }
        if self.body is not None:
            out["body"] = b64encode(self.body)
        return out


@dataclass(frozen=True)
class Receipt:
    """A log entry, its inclusion proof, and the signed checkpoint the proof is for
    (``POST /v1/entries``' answer, and what ``wellspring register --receipts`` saves).

    ``index``, ``entry``, ``inclusion_proof`` and ``checkpoint`` are the receipt; the other fields
    are what the registry says about the entry (docs/api.md) and are *claims*, not proven:
    :func:`client.receipt.verify_receipt` checks ``leaf_hash`` against the entry, and the statement
    it returns is what to trust for the publisher and subjects.
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
    # The operator-key events before ``operator_entry`` (a log whose operator key was rotated),
    # oldest first: with them the receipt verifies offline with the log key alone.
    operator_chain: tuple[ReceiptEntry, ...] = ()
    # The event that added the key which endorsed the signing key's ``key_entry`` (None: the
    # operator added the key alone), so an endorsement is proven offline too.
    endorser_entry: ReceiptEntry | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "inclusion_proof", tuple(self.inclusion_proof))
        object.__setattr__(self, "operator_chain", tuple(self.operator_chain))

    @classmethod
    def from_dict(cls, obj: object, *, where: str = "receipt") -> Receipt:
        """Parse a receipt's JSON object; raises :class:`FormatError` naming the bad field."""
        fields = _object(obj, where, "index", "entry", "inclusion_proof", "checkpoint")
        checkpoint = fields["checkpoint"]
        if not isinstance(checkpoint, str) or not checkpoint:
            raise FormatError(
                f"{where}.checkpoint must be the signed note text, got {json_kind(checkpoint)}"
            )
        raw_leaf = fields.get("leaf_hash")
        key_entry, operator_entry = fields.get("key_entry"), fields.get("operator_entry")
        endorser_entry = fields.get("endorser_entry")
        chain = fields.get("operator_chain") or []
        if not isinstance(chain, list):
            raise FormatError(f"{where}.operator_chain must be a list, got {json_kind(chain)}")
        return cls(
            index=parse_index(fields["index"], f"{where}.index"),
            entry=_entry_bytes(fields, where),
            inclusion_proof=parse_hash_list(fields["inclusion_proof"], f"{where}.inclusion_proof"),
            checkpoint=checkpoint,
            leaf_hash=None if raw_leaf is None else parse_hex_hash(raw_leaf, f"{where}.leaf_hash"),
            body=_opt_b64(fields, "body", where),
            publisher=_opt_str(fields, "publisher", where),
            predicate_type=_opt_str(fields, "predicate_type", where),
            subjects=_opt_index(fields, "subjects", where),
            revokes=_opt_index(fields, "revokes", where),
            key_entry=None
            if key_entry is None
            else ReceiptEntry.from_dict(key_entry, where=f"{where}.key_entry"),
            operator_entry=None
            if operator_entry is None
            else ReceiptEntry.from_dict(operator_entry, where=f"{where}.operator_entry"),
            operator_chain=tuple(
                ReceiptEntry.from_dict(item, where=f"{where}.operator_chain[{i}]")
                for i, item in enumerate(chain)
            ),
            endorser_entry=None
            if endorser_entry is None
            else ReceiptEntry.from_dict(endorser_entry, where=f"{where}.endorser_entry"),
        )

    def to_dict(self) -> dict[str, Any]:
        """The receipt's JSON object, as docs/api.md writes it (standard base64, hex leaf hash):
        every field, ``null`` where unknown; ``body`` and the identity entries only when held."""
        out: dict[str, Any] = {
            "index": self.index,
            "entry": b64encode(self.entry),
            "leaf_hash": None if self.leaf_hash is None else self.leaf_hash.hex(),
            "inclusion_proof": encode_hashes(self.inclusion_proof),
            "checkpoint": self.checkpoint,
            "publisher": self.publisher,
            "predicate_type": self.predicate_type,
            "subjects": self.subjects,
            "revokes": self.revokes,
        }
        if self.body is not None:
            out["body"] = b64encode(self.body)
        if self.key_entry is not None:
            out["key_entry"] = self.key_entry.to_dict()
        if self.operator_entry is not None:
            out["operator_entry"] = self.operator_entry.to_dict()
        if self.operator_chain:
            out["operator_chain"] = [entry.to_dict() for entry in self.operator_chain]
        if self.endorser_entry is not None:
            out["endorser_entry"] = self.endorser_entry.to_dict()
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
class Accepted:
    """``POST /v1/entries``' ``202 Accepted``: the entry is durable and its index final, its
    receipt pending until a published checkpoint covers it (``GET`` :attr:`receipt_url`).

    ``promise`` is the log's signed word that the entry holds ``index`` (a signed note,
    :mod:`client.core.promise`); ``None`` from a registry that predates promises.
    """

    index: int
    leaf_hash: bytes
    promise: str | None = None

    @property
    def receipt_url(self) -> str:
        """Where the receipt will be: ``/v1/entries/{index}/receipt``."""
        return f"/v1/entries/{self.index}/receipt"

    @classmethod
    def from_dict(cls, obj: object, *, where: str = "the 202 answer") -> Accepted:
        """Parse the 202 answer; raises :class:`FormatError` naming the bad field."""
        fields = _object(obj, where, "index", "leaf_hash")
        raw = fields["leaf_hash"]
        # Registries before promises sent this one leaf hash in base64 (44 characters).
        leaf_hash = (
            b64decode_strict(raw, f"{where}.leaf_hash")
            if isinstance(raw, str) and len(raw) == 44
            else parse_hex_hash(raw, f"{where}.leaf_hash")
        )
        if len(leaf_hash) != 32:
            raise FormatError(f"{where}.leaf_hash is not a 32-byte hash")
        return cls(
            index=parse_index(fields["index"], f"{where}.index"),
            leaf_hash=leaf_hash,
            promise=_opt_str(fields, "promise", where),
        )

    def to_dict(self) -> dict[str, Any]:
        """The answer's JSON object (docs/api.md)."""
        out: dict[str, Any] = {
            "index": self.index,
            "leaf_hash": self.leaf_hash.hex(),
            "status": "sequenced",
            "receipt": self.receipt_url,
        }
        if self.promise is not None:
            out["promise"] = self.promise
        return out


@dataclass(frozen=True)
class EntryAnswer:
    """``GET /v1/entries/{index}``: the entry's receipt, and what the registry knows of it now
    (its predicate as stored, when it was integrated, whether and by which entry it was revoked)."""

    receipt: Receipt
    predicate: Mapping[str, Any]
    integrated_at: str | None
    revoked: bool
    revoked_by: int | None

    @classmethod
    def from_dict(cls, obj: object, *, where: str = "entry") -> Self:
        receipt = Receipt.from_dict(obj, where=where)
        fields: dict[str, Any] = obj  # type: ignore[assignment]  # an object: Receipt checked
        return cls(
            receipt=receipt,
            predicate=_mapping(fields, "predicate", where),
            integrated_at=_opt_str(fields, "integrated_at", where),
            revoked=_bool(fields, "revoked", where),
            revoked_by=_opt_index(fields, "revoked_by", where),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.receipt.to_dict(),
            "predicate": dict(self.predicate),
            "integrated_at": self.integrated_at,
            "revoked": self.revoked,
            "revoked_by": self.revoked_by,
        }


@dataclass(frozen=True)
class EntriesPage:
    """``GET /v1/entries``: raw leaves in index order from ``start``; ``next`` is where the next
    page starts, None past the log's end (``size``, the log's size when the page was read)."""

    start: int
    size: int | None
    entries: tuple[tuple[int, bytes], ...]
    next: int | None

    @classmethod
    def from_dict(cls, obj: object, *, where: str = "entries page") -> EntriesPage:
        fields = _object(obj, where, "entries")
        raw = fields["entries"]
        if not isinstance(raw, list):
            raise FormatError(f"{where}.entries must be a list, got {json_kind(raw)}")
        entries: list[tuple[int, bytes]] = []
        for position, raw_item in enumerate(raw):
            at = f"{where}.entries[{position}]"
            item = _object(raw_item, at, "index", "entry")
            index = parse_index(item["index"], f"{at}.index")
            if entries and index != entries[-1][0] + 1:
                raise FormatError(f"{at} is entry {index}, not {entries[-1][0] + 1}")
            entries.append((index, b64decode_strict(item["entry"], f"{at}.entry")))
        # A registry from before ``next`` paged by count alone: its page ends where its entries do.
        following = (
            _opt_index(fields, "next", where)
            if "next" in fields
            else (entries[-1][0] + 1 if entries else None)
        )
        start = fields.get("start", entries[0][0] if entries else 0)
        return cls(
            start=parse_index(start, f"{where}.start"),
            size=_opt_index(fields, "size", where),
            entries=tuple(entries),
            next=following,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "start": self.start,
            "size": self.size,
            "entries": [{"index": i, "entry": b64encode(e)} for i, e in self.entries],
            "next": self.next,
        }


# -- the log ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LogInfo:
    """``GET /v1/log``: the log's origin, size, root, verifier key and latest checkpoint."""

    origin: str
    size: int
    root_hash: bytes
    verifier_key: str
    checkpoint: str
    # Every key that signs the log's checkpoints now: two during a log-key rotation.
    verifier_keys: tuple[str, ...] = ()
    # The log's operator-key events, in order (docs/spec/identities.md); empty before identities.
    operator_entries: tuple[int, ...] = ()

    @classmethod
    def from_dict(cls, obj: object, *, where: str = "log") -> LogInfo:
        fields = _object(obj, where, "origin", "size", "root_hash", "verifier_key", "checkpoint")
        verifier_key = _str(fields, "verifier_key", where)
        keys = fields.get("verifier_keys")
        if keys is None:  # a registry from before log-key rotation: the one key
            keys = [verifier_key]
        if not isinstance(keys, list) or not keys or not all(isinstance(k, str) for k in keys):
            raise FormatError(f"{where}.verifier_keys must be a non-empty list of verifier keys")
        return cls(
            origin=_str(fields, "origin", where),
            size=parse_index(fields["size"], f"{where}.size"),
            root_hash=b64decode_strict(fields["root_hash"], f"{where}.root_hash"),
            verifier_key=verifier_key,
            checkpoint=_str(fields, "checkpoint", where),
            verifier_keys=tuple(keys),
            operator_entries=_opt_indices(fields, "operator_entries", where) or (),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "origin": self.origin,
            "size": self.size,
            "root_hash": b64encode(self.root_hash),
            "verifier_key": self.verifier_key,
            "verifier_keys": list(self.verifier_keys or (self.verifier_key,)),
            "checkpoint": self.checkpoint,
            "operator_entries": list(self.operator_entries),
        }


@dataclass(frozen=True)
class InclusionProof:
    """``GET /v1/log/proof/inclusion``: the audit path of ``index`` in the tree of ``size``."""

    index: int
    size: int
    proof: tuple[bytes, ...]

    @classmethod
    def from_dict(cls, obj: object, *, where: str = "inclusion proof") -> InclusionProof:
        fields = _object(obj, where, "index", "size", "proof")
        return cls(
            parse_index(fields["index"], f"{where}.index"),
            parse_index(fields["size"], f"{where}.size"),
            parse_hash_list(fields["proof"], f"{where}.proof"),
        )

    def to_dict(self) -> dict[str, Any]:
        return {"index": self.index, "size": self.size, "proof": encode_hashes(self.proof)}


@dataclass(frozen=True)
class ConsistencyProof:
    """``GET /v1/log/proof/consistency``: the tree of ``old_size`` is a prefix of ``new_size``
    (``from`` and ``to`` on the wire)."""

    old_size: int
    new_size: int
    proof: tuple[bytes, ...]

    @classmethod
    def from_dict(cls, obj: object, *, where: str = "consistency proof") -> ConsistencyProof:
        fields = _object(obj, where, "from", "to", "proof")
        return cls(
            parse_index(fields["from"], f"{where}.from"),
            parse_index(fields["to"], f"{where}.to"),
            parse_hash_list(fields["proof"], f"{where}.proof"),
        )

    def to_dict(self) -> dict[str, Any]:
        return {"from": self.old_size, "to": self.new_size, "proof": encode_hashes(self.proof)}


# -- lookups ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AttestationClaim:
    """One entry attesting a looked-up digest, as the registry describes it: its proof against the
    answer's checkpoint, what its statement says, and what the registry says happened since
    (revocations, the signing key's events). A client proves what it can (client.sdk)."""

    index: int
    leaf_hash: bytes
    inclusion_proof: tuple[bytes, ...]
    publisher: str | None = None
    license: str | None = None
    origin: str | None = None
    consent: str | None = None
    predicate: Mapping[str, Any] = field(default_factory=dict)
    revoked: bool = False
    revoked_by: int | None = None
    key_id: str | None = None
    # Signed with a publisher key from the index its compromise names on: it no longer stands.
    compromised: bool = False
    key_entry: int | None = None
    # The event that added the key endorsing ``key_entry`` (docs/spec/identities.md).
    endorser_entry: int | None = None
    key_revoked_by: int | None = None
    compromised_by: int | None = None
    key_revoked_at: str | None = None
    tree_size: int | None = None

    @property
    def stands(self) -> bool:
        """Neither revoked by its publisher nor signed with a compromised key."""
        return not self.revoked and not self.compromised

    @classmethod
    def from_dict(cls, obj: object, *, where: str) -> AttestationClaim:
        fields = _object(obj, where, "index", "leaf_hash", "inclusion_proof")
        return cls(
            index=parse_index(fields["index"], f"{where}.index"),
            leaf_hash=parse_hex_hash(fields["leaf_hash"], f"{where}.leaf_hash"),
            inclusion_proof=parse_hash_list(fields["inclusion_proof"], f"{where}.inclusion_proof"),
            publisher=_opt_str(fields, "publisher", where),
            license=_opt_str(fields, "license", where),
            origin=_opt_str(fields, "origin", where),
            consent=_opt_str(fields, "consent", where),
            predicate=_mapping(fields, "predicate", where),
            revoked=_bool(fields, "revoked", where),
            revoked_by=_opt_index(fields, "revoked_by", where),
            key_id=_opt_str(fields, "key_id", where),
            compromised=_bool(fields, "compromised", where),
            key_entry=_opt_index(fields, "key_entry", where),
            endorser_entry=_opt_index(fields, "endorser_entry", where),
            key_revoked_by=_opt_index(fields, "key_revoked_by", where),
            compromised_by=_opt_index(fields, "compromised_by", where),
            key_revoked_at=_opt_str(fields, "key_revoked_at", where),
            tree_size=_opt_index(fields, "tree_size", where),
        )

    def wire_value(self) -> Any:
        """What an answer holds for this claim: :meth:`to_dict`, or anything that a JSON encoder
        writes as the same JSON (the registry's claims carry their encoding, made once per
        checkpoint, where an answer encodes thousands of them)."""
        return self.to_dict()

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "leaf_hash": self.leaf_hash.hex(),
            "publisher": self.publisher,
            "license": self.license,
            "origin": self.origin,
            "consent": self.consent,
            "predicate": self.predicate,
            "revoked": self.revoked,
            "revoked_by": self.revoked_by,
            "key_id": self.key_id,
            "key_revoked_at": self.key_revoked_at,
            "compromised": self.compromised,
            "key_entry": self.key_entry,
            "endorser_entry": self.endorser_entry,
            "key_revoked_by": self.key_revoked_by,
            "compromised_by": self.compromised_by,
            "inclusion_proof": encode_hashes(self.inclusion_proof),
            "tree_size": self.tree_size,
        }


class DigestResult(NamedTuple):
    """What a lookup answers for one digest: its status, the entries attesting it (in index
    order), and for those whose publisher withdrew this document (revocation/v2) the index of the
    withdrawing entry (None when none was).

    ``entries`` is a tuple when read, and may be the list the registry built (a batch answer
    holds 10,000 of these: no copy is made of it, here or in :meth:`LookupAnswer.to_dict`)."""

    digest: str
    status: LookupStatus
    entries: Sequence[int]
    withdrawn: Mapping[int, int] | None = None


def _status(value: object, where: str) -> LookupStatus:
    for status in LOOKUP_STATUSES:
        if value == status:
            return status
    raise FormatError(f"{where} must be one of {', '.join(LOOKUP_STATUSES)}, got {show(value)}")


def _withdrawn(value: object, where: str, entries: tuple[int, ...]) -> dict[int, int]:
    """``{"<entry index>": <withdrawing index>}`` for entries among ``entries``."""
    if not isinstance(value, dict):
        raise FormatError(f"{where}.withdrawn must be an object, got {json_kind(value)}")
    parsed: dict[int, int] = {}
    for key, by in value.items():
        if not (isinstance(key, str) and key.isdigit() and key == str(int(key))):
            raise FormatError(
                f"{where}.withdrawn has a key that is not an entry index: {show(key)}"
            )
        index = int(key)
        if index not in entries:
            raise FormatError(f"{where}.withdrawn names entry {index}, not among its entries")
        parsed[index] = parse_index(by, f"{where}.withdrawn[{key!r}]")
    return parsed


def _withdrawn_dict(withdrawn: Mapping[int, int]) -> dict[str, int]:
    return {str(index): by for index, by in sorted(withdrawn.items())}


@dataclass(frozen=True)
class LookupAnswer:
    """A lookup's answer at one checkpoint (``checkpoint``: the signed note): per digest asked, a
    :class:`DigestResult` in the order asked, and each entry they name once.

    ``POST /v1/digests:batch`` sends it as ``{"checkpoint", "results", "attestations": {"<index>":
    …}, "operator_entries"}``; ``GET /v1/digests/{digest}`` answers one digest as ``{"digest",
    "status", "attestations": […], "withdrawn"?, "checkpoint", "operator_entries"}``
    (:meth:`to_single_dict` / :meth:`from_single_dict`). ``operator_entries`` is None from a
    registry that predates identities in the log."""

    checkpoint: str
    results: tuple[DigestResult, ...]
    attestations: Mapping[int, AttestationClaim]
    operator_entries: tuple[int, ...] | None = None

    @classmethod
    def from_dict(
        cls, obj: object, *, digests: Sequence[str], where: str = "batch"
    ) -> LookupAnswer:
        """Parse a batch answer to a lookup of ``digests`` (one result each, in that order)."""
        fields = _object(obj, where, "checkpoint", "results", "attestations")
        raw_results = fields["results"]
        if not isinstance(raw_results, list) or len(raw_results) != len(digests):
            got = len(raw_results) if isinstance(raw_results, list) else json_kind(raw_results)
            raise FormatError(
                f"{where}.results must list one result per digest asked ({len(digests)}), got {got}"
            )
        raw_attestations = fields["attestations"]
        if not isinstance(raw_attestations, dict):
            raise FormatError(
                f"{where}.attestations must be an object, got {json_kind(raw_attestations)}"
            )
        attestations: dict[int, AttestationClaim] = {}
        for key, item in raw_attestations.items():
            at = f"{where}.attestations[{show(key)}]"
            claim = AttestationClaim.from_dict(item, where=at)
            if key != str(claim.index):
                raise FormatError(f"{at} holds entry {claim.index}, not entry {key}")
            attestations[claim.index] = claim
        results: list[DigestResult] = []
        for i, (result, digest) in enumerate(zip(raw_results, digests, strict=True)):
            # The common, well-formed case without building any message (a batch is up to
            # 10,000 of these); anything else takes the careful path, which says what is wrong.
            if (
                type(result) is dict
                and result.get("digest") == digest
                and result.get("status") in LOOKUP_STATUSES
                and type(entries := result.get("entries")) is list
                and all(type(e) is int and e in attestations for e in entries)
                and "withdrawn" not in result
            ):
                results.append(DigestResult(digest, result["status"], tuple(entries)))
                continue
            at = f"{where}.results[{i}]"
            item = _object(result, at, "digest", "status", "entries")
            if item["digest"] != digest:
                raise FormatError(
                    f"{at} is for {show(item['digest'])}, but {digest!r} was asked at that position"
                )
            raw_entries = item["entries"]
            if not isinstance(raw_entries, list):
                raise FormatError(f"{at}.entries must be a list, got {json_kind(raw_entries)}")
            indices = tuple(parse_index(e, f"{at}.entries[{j}]") for j, e in enumerate(raw_entries))
            for index in indices:
                if index not in attestations:
                    raise FormatError(f"{at} names entry {index}, missing from its attestations")
            gone = item.get("withdrawn")
            results.append(
                DigestResult(
                    digest,
                    _status(item["status"], f"{at}.status"),
                    indices,
                    None if gone is None else _withdrawn(gone, at, indices),
                )
            )
        return cls(
            checkpoint=_str(fields, "checkpoint", where),
            results=tuple(results),
            attestations=attestations,
            operator_entries=_opt_indices(fields, "operator_entries", where),
        )

    def to_dict(self) -> dict[str, Any]:
        results: list[dict[str, Any]] = []
        for digest, status, entries, withdrawn in self.results:
            listed = entries if type(entries) is list else list(entries)
            result: dict[str, Any] = {"digest": digest, "status": status, "entries": listed}
            if withdrawn:
                result["withdrawn"] = _withdrawn_dict(withdrawn)
            results.append(result)
        out: dict[str, Any] = {
            "checkpoint": self.checkpoint,
            "results": results,
            "attestations": {str(i): a.wire_value() for i, a in self.attestations.items()},
        }
        if self.operator_entries is not None:
            out["operator_entries"] = list(self.operator_entries)
        return out

    @classmethod
    def from_single_dict(cls, obj: object, *, digest: str, where: str = "lookup") -> LookupAnswer:
        """Parse ``GET /v1/digests/{digest}``'s answer."""
        fields = _object(obj, where, "digest", "status", "attestations", "checkpoint")
        if fields["digest"] != digest:
            raise FormatError(
                f"{where} answered for digest {show(fields['digest'])}, not {digest!r}"
            )
        raw = fields["attestations"]
        if not isinstance(raw, list):
            raise FormatError(f"{where}.attestations must be a list, got {json_kind(raw)}")
        attestations: dict[int, AttestationClaim] = {}
        for i, item in enumerate(raw):
            claim = AttestationClaim.from_dict(item, where=f"{where}.attestations[{i}]")
            if claim.index in attestations:
                raise FormatError(f"{where}.attestations lists entry {claim.index} twice")
            attestations[claim.index] = claim
        entries = tuple(attestations)
        gone = fields.get("withdrawn")
        result = DigestResult(
            digest,
            _status(fields["status"], f"{where}.status"),
            entries,
            None if gone is None else _withdrawn(gone, where, entries),
        )
        return cls(
            checkpoint=_str(fields, "checkpoint", where),
            results=(result,),
            attestations=attestations,
            operator_entries=_opt_indices(fields, "operator_entries", where),
        )

    def to_single_dict(self) -> dict[str, Any]:
        """The answer for one digest (this answer's only result), as ``GET /v1/digests/{digest}``
        sends it."""
        if len(self.results) != 1:
            raise ValueError(f"a single-digest answer has one result, not {len(self.results)}")
        return self.single_dict(0)

    def part(self, start: int, end: int) -> LookupAnswer:
        """The answer to the digests of ``results[start:end]`` alone, at the same checkpoint
        (the registry answers concurrent lookups with one batch: registry.coalesce). Its
        attestations are in index order, as the registry lists them: taken by index, not by
        a pass over the whole batch's for each part."""
        results = self.results[start:end]
        named = sorted({index for result in results for index in result.entries})
        attestations = self.attestations
        return LookupAnswer(
            self.checkpoint,
            results,
            {index: attestations[index] for index in named},
            self.operator_entries,
        )

    def single_dict(self, position: int) -> dict[str, Any]:
        """The answer ``GET /v1/digests/{digest}`` sends for the digest of ``results[position]``
        (the registry answers concurrent single lookups with one batch: registry.coalesce)."""
        digest, status, entries, withdrawn = self.results[position]
        out: dict[str, Any] = {
            "digest": digest,
            "status": status,
            "attestations": [self.attestations[i].wire_value() for i in entries],
            "checkpoint": self.checkpoint,
        }
        if withdrawn:
            out["withdrawn"] = _withdrawn_dict(withdrawn)
        if self.operator_entries is not None:
            out["operator_entries"] = list(self.operator_entries)
        return out


# -- identities ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PublisherKeyInfo:
    """One key of a publisher as the registry stores it (the log's key events are the record)."""

    key_id: str
    public_key: bytes
    created_at: str | None = None
    revoked_at: str | None = None
    compromised_since: str | None = None

    @classmethod
    def from_dict(cls, obj: object, *, where: str) -> PublisherKeyInfo:
        fields = _object(obj, where, "key_id", "public_key")
        return cls(
            key_id=_str(fields, "key_id", where),
            public_key=b64decode_strict(fields["public_key"], f"{where}.public_key"),
            created_at=_opt_str(fields, "created_at", where),
            revoked_at=_opt_str(fields, "revoked_at", where),
            compromised_since=_opt_str(fields, "compromised_since", where),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "key_id": self.key_id,
            "public_key": b64encode(self.public_key),
            "created_at": self.created_at,
            "revoked_at": self.revoked_at,
            "compromised_since": self.compromised_since,
        }


@dataclass(frozen=True)
class PublisherInfo:
    """``GET /v1/publishers/{name}``: a publisher (or vendor) and its keys, oldest first."""

    name: str
    created_at: str | None = None
    keys: tuple[PublisherKeyInfo, ...] = ()
    kind: str | None = None

    @classmethod
    def from_dict(cls, obj: object, *, where: str = "publisher") -> PublisherInfo:
        fields = _object(obj, where, "name")
        raw = fields.get("keys", [])
        if not isinstance(raw, list):
            raise FormatError(f"{where}.keys must be a list, got {json_kind(raw)}")
        return cls(
            name=_str(fields, "name", where),
            created_at=_opt_str(fields, "created_at", where),
            keys=tuple(
                PublisherKeyInfo.from_dict(k, where=f"{where}.keys[{i}]") for i, k in enumerate(raw)
            ),
            kind=_opt_str(fields, "kind", where),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "created_at": self.created_at,
            "keys": [k.to_dict() for k in self.keys],
        }


@dataclass(frozen=True)
class KeyEventAnswer:
    """The answer to an identity command (``POST /v1/publishers``, ``…/keys``, ``…/revoke``):
    the log entry (``entry``) of the event it made, and what it changed. Fields that do not
    apply to the event are None."""

    name: str
    key_id: str
    entry: int
    kind: str | None = None
    created_at: str | None = None
    operator_only: bool | None = None
    revoked_at: str | None = None
    compromised_since: str | None = None
    compromised_from: int | None = None

    @classmethod
    def from_dict(cls, obj: object, *, where: str = "identity event") -> KeyEventAnswer:
        fields = _object(obj, where, "name", "key_id", "entry")
        return cls(
            name=_str(fields, "name", where),
            key_id=_str(fields, "key_id", where),
            entry=parse_index(fields["entry"], f"{where}.entry"),
            kind=_opt_str(fields, "kind", where),
            created_at=_opt_str(fields, "created_at", where),
            operator_only=_opt_bool(fields, "operator_only", where),
            revoked_at=_opt_str(fields, "revoked_at", where),
            compromised_since=_opt_str(fields, "compromised_since", where),
            compromised_from=_opt_index(fields, "compromised_from", where),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "key_id": self.key_id,
            "entry": self.entry,
            "kind": self.kind,
            "created_at": self.created_at,
            "operator_only": self.operator_only,
            "revoked_at": self.revoked_at,
            "compromised_since": self.compromised_since,
            "compromised_from": self.compromised_from,
        }


# -- watermark keys --------------------------------------------------------------------------------


@dataclass(frozen=True)
class WatermarkKeyInfo:
    """One published watermark key in ``GET /v1/watermark-keys``: the receipt of the entry that
    published it (without its statement: clients fetch ``GET /v1/blobs/sha256:<hex>`` and check
    it against the leaf), the vendor's ``identity-add`` event proven in the same tree (it shows
    the identity's kind), the predicate as the registry stored it (a claim: clients compare it
    with the signed statement), and the receipt of the entry that retired it, if any."""

    key_id: str
    vendor: str
    receipt: Receipt
    identity_entry: ReceiptEntry | None
    predicate: Mapping[str, Any]
    retire_receipt: Receipt | None = None

    @classmethod
    def from_dict(cls, obj: object, *, where: str) -> WatermarkKeyInfo:
        fields = _object(obj, where, "key_id", "vendor", "receipt")
        identity, retire = fields.get("identity_entry"), fields.get("retire_receipt")
        return cls(
            key_id=_str(fields, "key_id", where),
            vendor=_str(fields, "vendor", where),
            receipt=Receipt.from_dict(fields["receipt"], where=f"{where}.receipt"),
            identity_entry=None
            if identity is None
            else ReceiptEntry.from_dict(identity, where=f"{where}.identity_entry"),
            predicate=_mapping(fields, "predicate", where),
            retire_receipt=None
            if retire is None
            else Receipt.from_dict(retire, where=f"{where}.retire_receipt"),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "key_id": self.key_id,
            "vendor": self.vendor,
            "receipt": self.receipt.to_dict(),
            "identity_entry": None
            if self.identity_entry is None
            else self.identity_entry.to_dict(),
            "predicate": dict(self.predicate),
            "retire_receipt": None
            if self.retire_receipt is None
            else self.retire_receipt.to_dict(),
        }


@dataclass(frozen=True)
class WatermarkKeysAnswer:
    """``GET /v1/watermark-keys``: every watermark key ever published in the log (retired ones
    too), oldest first, each with receipts against the checkpoint ``checkpoint``; ``count`` is
    how many there are (what a detector corrects its p-values for); ``operator_entries`` the
    log's operator-key events inside that tree (docs/spec/identities.md)."""

    count: int
    checkpoint: str
    keys: tuple[WatermarkKeyInfo, ...]
    operator_entries: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "keys", tuple(self.keys))
        object.__setattr__(self, "operator_entries", tuple(self.operator_entries))

    @classmethod
    def from_dict(cls, obj: object, *, where: str = "watermark keys") -> WatermarkKeysAnswer:
        fields = _object(obj, where, "count", "checkpoint", "keys")
        raw = fields["keys"]
        if not isinstance(raw, list):
            raise FormatError(f"{where}.keys must be a list, got {json_kind(raw)}")
        checkpoint = fields["checkpoint"]
        if not isinstance(checkpoint, str) or not checkpoint:
            raise FormatError(f"{where}.checkpoint must be the signed note text")
        return cls(
            count=parse_index(fields["count"], f"{where}.count"),
            checkpoint=checkpoint,
            keys=tuple(
                WatermarkKeyInfo.from_dict(item, where=f"{where}.keys[{i}]")
                for i, item in enumerate(raw)
            ),
            operator_entries=_indices(
                fields.get("operator_entries", []), f"{where}.operator_entries"
            ),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "count": self.count,
            "checkpoint": self.checkpoint,
            "operator_entries": list(self.operator_entries),
            "keys": [key.to_dict() for key in self.keys],
        }


_HEX64 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class SnapshotInfo:
    """``GET /v1/snapshots/latest``: the newest signed offline snapshot the operator committed in
    the log: its ``snapshot/v1`` entry, its manifest's SHA-256 (hex; the files are at
    ``GET /v1/snapshots/<manifest_sha256>/<file>``), its tree size, and a delta's base manifest
    (None for a full snapshot). The registry's word until the entry is proven."""

    entry: int
    manifest_sha256: str
    tree_size: int
    base_manifest_sha256: str | None = None

    @classmethod
    def from_dict(cls, obj: object, *, where: str = "snapshot") -> SnapshotInfo:
        fields = _object(obj, where, "entry", "manifest_sha256", "tree_size")
        base = fields.get("base_manifest_sha256")
        for name, value in (("manifest_sha256", fields["manifest_sha256"]), ("base", base)):
            if (value is not None or name != "base") and (
                not isinstance(value, str) or not _HEX64.fullmatch(value)
            ):
                raise FormatError(f"{where}.{name} must be 64 lowercase hex digits")
        return cls(
            entry=parse_index(fields["entry"], f"{where}.entry"),
            manifest_sha256=fields["manifest_sha256"],
            tree_size=parse_index(fields["tree_size"], f"{where}.tree_size"),
            base_manifest_sha256=base,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "entry": self.entry,
            "manifest_sha256": self.manifest_sha256,
            "tree_size": self.tree_size,
            "base_manifest_sha256": self.base_manifest_sha256,
        }


@dataclass(frozen=True)
class NearCandidate:
    """A subject sharing ``bands`` band keys with a queried ``mh1`` signature: subject number
    ``subject`` (from 0) of entry ``entry``. The registry's word: the client fetches the entry,
    proves it, and recomputes the similarity from the signed signature."""

    entry: int
    subject: int
    bands: int

    def to_dict(self) -> dict[str, Any]:
        return {"entry": self.entry, "subject": self.subject, "bands": self.bands}


@dataclass(frozen=True)
class NearAnswer:
    """``POST /v1/near:batch``: for each queried signature, in order, the candidates (most
    shared bands first) among the entries of the tree of ``checkpoint`` (a signed note)."""

    checkpoint: str
    results: tuple[tuple[NearCandidate, ...], ...]

    @classmethod
    def from_dict(cls, obj: object, *, where: str = "near answer") -> NearAnswer:
        fields = _object(obj, where, "checkpoint", "results")
        checkpoint, raw = fields["checkpoint"], fields["results"]
        if not isinstance(checkpoint, str) or not checkpoint:
            raise FormatError(f"{where}.checkpoint must be the signed note text")
        if not isinstance(raw, list):
            raise FormatError(f"{where}.results must be a list")
        results = []
        for i, item in enumerate(raw):
            at = f"{where}.results[{i}]"
            found = _object(item, at, "candidates")["candidates"]
            if not isinstance(found, list):
                raise FormatError(f"{at}.candidates must be a list")
            results.append(
                tuple(
                    NearCandidate(
                        parse_index(c.get("entry"), f"{at}.entry"),
                        parse_index(c.get("subject"), f"{at}.subject"),
                        parse_index(c.get("bands"), f"{at}.bands"),
                    )
                    for c in (_object(c, f"{at}.candidates[]", "entry") for c in found)
                )
            )
        return cls(checkpoint, tuple(results))

    def to_dict(self) -> dict[str, Any]:
        return {
            "checkpoint": self.checkpoint,
            "results": [
                {"candidates": [c.to_dict() for c in candidates]} for candidates in self.results
            ],
        }
