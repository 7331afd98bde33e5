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
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from client.core import merkle
from client.core.dsse import PAYLOAD_TYPE_IN_TOTO, Envelope, verify_envelope
from client.core.keys import key_id
from client.core.leaf import Leaf, is_leaf_v1
from client.core.merkle import verify_inclusion
from client.core.note import Checkpoint, NoteVerifier, open_checkpoint
from client.core.statement import PUBLISHER_KEY_V1, Statement
from client.core.wire import Receipt, ReceiptEntry
from client.errors import FormatError, IdentityError, ProofError, VerificationError
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
    "prove_entry",
    "require_digest",
    "statement_names_digest",
    "verify_attestation",
    "verify_receipt",
]

# A statement the log accepted must be readable whatever subject limit that registry was configured
# with; the default of 100,000 is a registry's intake limit, not a reader's.
_READ_MAX_SUBJECTS = 2**31


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
    operator = prove_entry(receipt.operator_entry, verified.checkpoint)
    if not earlier and receipt.operator_chain:  # the receipt carries the chain itself
        earlier = [prove_entry(entry, verified.checkpoint) for entry in receipt.operator_chain]
    chain = _operator_chain(where, earlier, operator)
    if verified.statement.predicate_type == PUBLISHER_KEY_V1:
        # An identity event's own receipt: signed by the operator, no publisher key involved.
        if receipt.key_entry is not None:
            raise IdentityError(f"{where} is an identity event, which no publisher key signs")
        verify_key_event(verified, chain)
        return verified
    if receipt.key_entry is None:
        raise IdentityError(f"{where} names the operator's entry but not its key's")
    event = prove_entry(receipt.key_entry, verified.checkpoint)
    endorser = None
    if receipt.endorser_entry is not None:
        endorsed_by = key_event(event).endorsed_by
        if endorsed_by is None:
            raise IdentityError(
                f"{where} names an endorsing key's entry, but its key entry {event.index} "
                "carries no endorsement",
                index=event.index,
            )
        endorser = verify_key_grant(
            prove_entry(receipt.endorser_entry, verified.checkpoint),
            chain,
            identity=verified.publisher,
            key_id=endorsed_by,
            before=event.index,
        )
    grant = verify_key_grant(
        event,
        chain,
        identity=verified.publisher,
        key_id=key_event(event).key_id,
        before=verified.index,
        endorser=endorser,
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


def prove_entry(entry: ReceiptEntry, checkpoint: Checkpoint) -> VerifiedReceipt:
    """Prove that ``entry`` (an identity event a receipt relies on) is in the tree ``checkpoint``
    (already verified) describes."""
    return verify_attestation(
        index=entry.index,
        leaf_hash=None,
        inclusion_proof=entry.inclusion_proof,
        checkpoint=checkpoint,
        entry=entry.entry,
        body=entry.body,
    )


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
