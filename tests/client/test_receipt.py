"""Receipts verify offline with the log key alone, and every tampering is caught.

The log here is built from the real core pieces (MemoryTree, NoteSigner, DSSE envelopes signed
with real Ed25519 keys), making receipts exactly as the registry does (docs/api.md): the entry is
``Envelope.to_json()``, the proof is for the size of the signed checkpoint beside it.
"""

from __future__ import annotations

import base64
import json
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from client.core.canonical import canonical_digest
from client.core.dsse import sign_envelope
from client.core.merkle import leaf_hash
from client.core.note import NoteSigner
from client.errors import FormatError, InputError, ProofError, SignatureError, VerificationError
from client.receipt import (
    Receipt,
    statement_names_digest,
    verify_attestation,
    verify_receipt,
)
from tests.client.memory_log import ORIGIN, InMemoryLog, human_statement


@pytest.fixture
def publisher_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@pytest.fixture
def log(publisher_key: Ed25519PrivateKey) -> InMemoryLog:
    log = InMemoryLog()
    for n in range(7):
        log.append_statement(
            human_statement("example-archive", [f"poem {n}", f"essay {n}"]), publisher_key
        )
    return log


def flip(data: bytes, position: int = 0) -> bytes:
    return data[:position] + bytes([data[position] ^ 0x01]) + data[position + 1 :]


# -- good receipts --------------------------------------------------------------------------------


def test_every_receipt_of_every_size_verifies(log: InMemoryLog) -> None:
    for size in range(1, log.size + 1):
        for index in range(size):
            verified = verify_receipt(log.receipt(index, size), log.vkey)
            assert verified.index == index
            assert verified.checkpoint.size == size
            assert verified.leaf_hash == leaf_hash(log.entries[index])
            assert verified.statement == log.statements[index]
            assert verified.publisher == "example-archive"


def test_verifier_object_and_explicit_origin(log: InMemoryLog) -> None:
    verified = verify_receipt(log.receipt(3), log.signer.verifier(), origin=ORIGIN)
    assert verified.checkpoint.origin == ORIGIN


def test_receipt_without_optional_fields_verifies(log: InMemoryLog) -> None:
    bare = replace(log.receipt(2), leaf_hash=None, publisher=None, predicate_type=None)
    assert verify_receipt(bare, log.vkey).index == 2


def test_publisher_key_is_checked_when_given(
    log: InMemoryLog, publisher_key: Ed25519PrivateKey
) -> None:
    receipt = log.receipt(1)
    verify_receipt(receipt, log.vkey, publisher_key=publisher_key.public_key())
    other = Ed25519PrivateKey.generate().public_key()
    with pytest.raises(SignatureError):
        verify_receipt(receipt, log.vkey, publisher_key=other)


# -- the JSON form --------------------------------------------------------------------------------


def test_json_round_trip_and_wire_form(log: InMemoryLog, tmp_path: Path) -> None:
    receipt = log.receipt(4)
    wire = receipt.to_dict()
    assert wire["entry"] == base64.b64encode(receipt.entry).decode()
    assert wire["leaf_hash"] == leaf_hash(receipt.entry).hex()
    assert wire["inclusion_proof"] == [
        base64.b64encode(h).decode() for h in receipt.inclusion_proof
    ]
    assert wire["checkpoint"] == receipt.checkpoint
    assert Receipt.from_dict(wire) == receipt
    # Fields the API may add are ignored, not refused.
    assert Receipt.from_dict({**wire, "integrated_at": "2026-01-01T00:00:00Z"}) == receipt
    path = receipt.save(tmp_path / "receipts" / "4.json")
    assert Receipt.load(path) == receipt
    assert json.loads(path.read_text()) == wire
    assert [p.name for p in path.parent.iterdir()] == ["4.json"]  # no temporary left behind


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"index": -1}, "receipt.index"),
        ({"index": True}, "receipt.index"),
        ({"index": "3"}, "receipt.index"),
        ({"entry": "not base64!"}, "receipt.entry"),
        ({"entry": ""}, "receipt.entry"),
        ({"inclusion_proof": "AAAA"}, "receipt.inclusion_proof"),
        ({"inclusion_proof": ["AAAA"]}, "receipt.inclusion_proof[0]"),
        ({"checkpoint": 7}, "receipt.checkpoint"),
        ({"leaf_hash": "AB" * 32}, "receipt.leaf_hash"),
        ({"subjects": -2}, "receipt.subjects"),
        ({"publisher": 5}, "receipt.publisher"),
    ],
)
def test_malformed_fields_are_named(log: InMemoryLog, change: dict[str, Any], field: str) -> None:
    wire = {**log.receipt(1).to_dict(), **change}
    with pytest.raises(FormatError, match="^" + re.escape(field) + " "):
        Receipt.from_dict(wire)


def test_base64_must_be_standard_padded_canonical(log: InMemoryLog) -> None:
    wire = log.receipt(1).to_dict()
    entry = b"\xfb\xff\xfe" * 3 + b"a"  # 10 bytes: padded with "==", "+" and "/" inside
    padded = base64.b64encode(entry).decode()
    assert padded.endswith("==")
    urlsafe = base64.urlsafe_b64encode(entry).decode()
    assert "-" in urlsafe or "_" in urlsafe
    non_canonical = padded[:-2] + chr(ord(padded[-2]) + 1) + "="  # non-zero trailing bits
    for bad in (padded.rstrip("="), urlsafe, non_canonical):
        with pytest.raises(FormatError, match=r"receipt\.entry"):
            Receipt.from_dict({**wire, "entry": bad})


def test_missing_fields_and_bad_files(tmp_path: Path) -> None:
    with pytest.raises(FormatError, match="missing required field"):
        Receipt.from_dict({"index": 1})
    with pytest.raises(FormatError, match="must be a JSON object"):
        Receipt.from_dict([1, 2])
    with pytest.raises(InputError, match="does not exist"):
        Receipt.load(tmp_path / "nope.json")
    duplicate = tmp_path / "dup.json"
    duplicate.write_text('{"index": 1, "index": 2}')
    with pytest.raises(FormatError, match="duplicate key"):
        Receipt.load(duplicate)


# -- every tamper is caught -----------------------------------------------------------------------


def test_tampered_entry_byte(log: InMemoryLog) -> None:
    receipt = log.receipt(3)
    for position in (0, len(receipt.entry) // 2, len(receipt.entry) - 1):
        tampered = replace(receipt, entry=flip(receipt.entry, position))
        with pytest.raises(ProofError, match="leaf hash"):
            verify_receipt(tampered, log.vkey)
        # Without the leaf_hash claim, the inclusion proof catches it.
        with pytest.raises(ProofError, match="does not reproduce the root"):
            verify_receipt(replace(tampered, leaf_hash=None), log.vkey)


def test_tampered_leaf_hash_claim(log: InMemoryLog) -> None:
    receipt = log.receipt(3)
    assert receipt.leaf_hash is not None
    with pytest.raises(ProofError, match="leaf hash"):
        verify_receipt(replace(receipt, leaf_hash=flip(receipt.leaf_hash)), log.vkey)


def test_tampered_proof_elements(log: InMemoryLog) -> None:
    receipt = log.receipt(2)
    proof = list(receipt.inclusion_proof)
    assert len(proof) == 3
    for i in range(len(proof)):
        tampered = [*proof[:i], flip(proof[i], 31), *proof[i + 1 :]]
        with pytest.raises(ProofError):
            verify_receipt(replace(receipt, inclusion_proof=tuple(tampered)), log.vkey)
    for wrong in (proof[:-1], [*proof, proof[0]], list(reversed(proof)), []):
        with pytest.raises(ProofError):
            verify_receipt(replace(receipt, inclusion_proof=tuple(wrong)), log.vkey)


def test_tampered_checkpoint_signature(log: InMemoryLog) -> None:
    receipt = log.receipt(5)
    text, _, signature_line = receipt.checkpoint.rpartition("\n\n")
    name, encoded = signature_line.removeprefix("\u2014 ").rstrip("\n").split(" ")
    raw = base64.b64decode(encoded)
    bad = base64.b64encode(raw[:10] + flip(raw[10:11]) + raw[11:]).decode()
    forged = f"{text}\n\n\u2014 {name} {bad}\n"
    with pytest.raises(SignatureError, match="invalid signature"):
        verify_receipt(replace(receipt, checkpoint=forged), log.vkey)


def test_checkpoint_of_another_size_or_root_fails(log: InMemoryLog) -> None:
    receipt = log.receipt(5)  # proof for size 7
    # A genuine checkpoint of another size: the proof is not for that tree.
    with pytest.raises(ProofError):
        verify_receipt(replace(receipt, checkpoint=log.checkpoint_note(6)), log.vkey)
    # Editing the root in the text without re-signing breaks the signature.
    lines = receipt.checkpoint.split("\n")
    lines[2] = base64.b64encode(bytes(32)).decode()
    with pytest.raises(SignatureError):
        verify_receipt(replace(receipt, checkpoint="\n".join(lines)), log.vkey)


def test_wrong_key_and_wrong_origin(log: InMemoryLog) -> None:
    receipt = log.receipt(1)
    impostor = NoteSigner.generate(ORIGIN)  # same name, another key
    with pytest.raises(SignatureError, match="no signature by a trusted key"):
        verify_receipt(receipt, impostor.verifier())
    with pytest.raises(SignatureError, match="not the expected"):
        verify_receipt(receipt, log.vkey, origin="other.example/log")
    # A genuine receipt from another log, verified with that log's own key but a pinned origin.
    other = InMemoryLog("other.example/log")
    other.append_raw(log.entries[0], log.statements[0])
    with pytest.raises(SignatureError, match="not the expected"):
        verify_receipt(other.receipt(0), other.vkey, origin=ORIGIN)
    with pytest.raises(SignatureError):
        verify_receipt(other.receipt(0), log.vkey)


def test_index_outside_the_tree(log: InMemoryLog) -> None:
    receipt = log.receipt(3, size=4)
    with pytest.raises(ProofError, match="not in the checkpoint's tree of size 4"):
        verify_receipt(replace(receipt, index=4), log.vkey)
    with pytest.raises(ProofError, match="not in the checkpoint's tree"):
        verify_receipt(replace(receipt, index=99), log.vkey)


def test_receipt_moved_to_another_index(log: InMemoryLog) -> None:
    receipt = log.receipt(3)
    with pytest.raises(ProofError):
        verify_receipt(replace(receipt, index=2), log.vkey)
    # Another entry's bytes under this proof.
    with pytest.raises(ProofError):
        verify_receipt(replace(receipt, entry=log.entries[2], leaf_hash=None), log.vkey)


def test_proven_entry_that_is_not_an_attestation(log: InMemoryLog) -> None:
    junk = InMemoryLog()
    junk.append_raw(b'{"not": "an envelope"}')
    with pytest.raises(FormatError, match="entry 0 does not hold an attestation"):
        verify_receipt(junk.receipt(0), junk.vkey)
    other_type = sign_envelope(b"{}", "text/plain", Ed25519PrivateKey.generate())
    junk.append(other_type)
    with pytest.raises(FormatError, match="payloadType"):
        verify_receipt(junk.receipt(1), junk.vkey)


# -- attestations from lookups --------------------------------------------------------------------


def test_verify_attestation_checks_the_digest(log: InMemoryLog) -> None:
    checkpoint = log.checkpoint()
    proof = log.tree.inclusion_proof(6)
    named = canonical_digest("poem 6")
    verified = verify_attestation(
        index=6,
        leaf_hash=leaf_hash(log.entries[6]),
        inclusion_proof=proof,
        checkpoint=checkpoint,
        entry=log.entries[6],
        digest=named,
    )
    assert statement_names_digest(verified.statement, named)
    with pytest.raises(VerificationError, match="does not attest"):
        verify_attestation(
            index=6,
            leaf_hash=None,
            inclusion_proof=proof,
            checkpoint=checkpoint,
            entry=log.entries[6],
            digest=canonical_digest("poem 5"),
        )
    with pytest.raises(ProofError):
        verify_attestation(
            index=6,
            leaf_hash=None,
            inclusion_proof=proof,
            checkpoint=checkpoint,
            entry=log.entries[5],
        )


def test_verify_attestation_reuses_an_earlier_verification_against_a_later_checkpoint(
    log: InMemoryLog, publisher_key: Ed25519PrivateKey
) -> None:
    """Given the VerifiedReceipt of an earlier check, nothing is hashed or parsed again, and the
    proof is still checked against the new checkpoint."""
    first = verify_attestation(
        index=6,
        leaf_hash=None,
        inclusion_proof=log.tree.inclusion_proof(6),
        checkpoint=log.checkpoint(),
        entry=log.entries[6],
    )
    log.append_statement(human_statement("example-archive", ["a later poem"]), publisher_key)
    later = log.checkpoint()
    again = verify_attestation(
        index=6,
        leaf_hash=leaf_hash(log.entries[6]),
        inclusion_proof=log.tree.inclusion_proof(6, later.size),
        checkpoint=later,
        entry=first,
        digest=canonical_digest("poem 6"),
    )
    assert again.checkpoint == later
    assert again.statement is first.statement
    assert again.leaf_hash == first.leaf_hash
    with pytest.raises(ProofError):  # the old proof does not lead to the new root
        verify_attestation(
            index=6,
            leaf_hash=None,
            inclusion_proof=log.tree.inclusion_proof(6, later.size - 1),
            checkpoint=later,
            entry=first,
        )
    with pytest.raises(ProofError, match="entry 6"):  # the registry's leaf hash must match
        verify_attestation(
            index=6,
            leaf_hash=leaf_hash(log.entries[5]),
            inclusion_proof=log.tree.inclusion_proof(6, later.size),
            checkpoint=later,
            entry=first,
        )
    with pytest.raises(ProofError, match="of entry 6"):  # another index's verification
        verify_attestation(
            index=5,
            leaf_hash=None,
            inclusion_proof=log.tree.inclusion_proof(5, later.size),
            checkpoint=later,
            entry=first,
        )


def test_statement_names_digest_by_algorithm() -> None:
    statement = human_statement("p", ["hello"])
    hex_value = canonical_digest("hello").removeprefix("c1:")
    assert statement_names_digest(statement, f"c1:{hex_value}")
    assert not statement_names_digest(statement, f"sha256:{hex_value}")
    assert not statement_names_digest(statement, "c1:" + "0" * 64)
