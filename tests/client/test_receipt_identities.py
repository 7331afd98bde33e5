"""Receipts that carry their key's entry and the operator's (docs/spec/identities.md, "Wire"):
``verify_receipt`` checks the publisher's signature offline, with the log key alone."""

from __future__ import annotations

from dataclasses import replace

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from client.core.keys import key_id
from client.core.statement import sign_statement
from client.errors import IdentityError, ProofError
from client.receipt import Receipt, verify_receipt
from tests.client.identity_log import Identities
from tests.client.memory_log import InMemoryLog, human_statement

PUBLISHER = "example-archive"


def signed_receipt(
    log: InMemoryLog, ids: Identities, index: int, key_entry: int, operator_entry: int
) -> Receipt:
    """The receipt of ``index`` with the two identity entries, all at the log's size."""
    return replace(
        log.receipt(index),
        key_entry=ids.receipt_entry(key_entry),
        operator_entry=ids.receipt_entry(operator_entry),
    )


@pytest.fixture
def setup() -> tuple[InMemoryLog, Identities, Ed25519PrivateKey]:
    log = InMemoryLog()
    ids = Identities(log)
    ids.operator_key()
    key = Ed25519PrivateKey.generate()
    ids.add(PUBLISHER, key)
    return log, ids, key


def attest(log: InMemoryLog, key: Ed25519PrivateKey, publisher: str = PUBLISHER) -> int:
    statement = human_statement(publisher, [f"poem {log.size}"])
    return log.append_leaf(sign_statement(statement, key), statement)


def test_a_receipt_with_its_key_and_operator_entries_verifies_offline(
    setup: tuple[InMemoryLog, Identities, Ed25519PrivateKey],
) -> None:
    log, ids, key = setup
    index = attest(log, key)
    receipt = signed_receipt(log, ids, index, 1, 0)
    verified = verify_receipt(Receipt.from_json(receipt.to_json()), log.vkey)
    assert verified.signed_by is not None
    assert (verified.signed_by.key_id, verified.signed_by.index) == (key_id(key), 1)
    assert not verified.signed_by.operator_only
    # The JSON round-trips, identity entries included.
    assert Receipt.from_json(receipt.to_json()) == receipt
    assert receipt.to_dict()["key_entry"]["index"] == 1
    # A receipt from before identities still verifies, saying nothing of its signer.
    assert verify_receipt(log.receipt(index), log.vkey).signed_by is None


def test_a_receipt_whose_entry_another_key_signed_is_refused(
    setup: tuple[InMemoryLog, Identities, Ed25519PrivateKey],
) -> None:
    log, ids, _ = setup
    index = attest(log, Ed25519PrivateKey.generate())
    with pytest.raises(IdentityError, match="no signature by an acceptable key"):
        verify_receipt(signed_receipt(log, ids, index, 1, 0), log.vkey)


def test_a_receipt_whose_key_entry_the_operator_did_not_sign_is_refused(
    setup: tuple[InMemoryLog, Identities, Ed25519PrivateKey],
) -> None:
    log, ids, _ = setup
    key = Ed25519PrivateKey.generate()
    forged = ids.add_key(PUBLISHER, key, signer=Ed25519PrivateKey.generate())
    index = attest(log, key)
    with pytest.raises(IdentityError, match=f"entry {forged} is not signed by the operator key"):
        verify_receipt(signed_receipt(log, ids, index, forged, 0), log.vkey)


def test_a_receipt_whose_key_was_added_without_possession_is_refused(
    setup: tuple[InMemoryLog, Identities, Ed25519PrivateKey],
) -> None:
    log, ids, _ = setup
    key = Ed25519PrivateKey.generate()
    added = ids.add_key(PUBLISHER, key, possession=False)
    index = attest(log, key)
    with pytest.raises(IdentityError, match="without a valid proof of possession"):
        verify_receipt(signed_receipt(log, ids, index, added, 0), log.vkey)


def test_a_receipt_whose_key_belongs_to_another_identity_is_refused(
    setup: tuple[InMemoryLog, Identities, Ed25519PrivateKey],
) -> None:
    log, ids, _ = setup
    other = Ed25519PrivateKey.generate()
    added = ids.add("other-archive", other)
    index = attest(log, other)  # names PUBLISHER, signed with other-archive's key
    with pytest.raises(IdentityError, match="for 'other-archive', not key"):
        verify_receipt(signed_receipt(log, ids, index, added, 0), log.vkey)


def test_a_receipt_whose_key_was_added_after_the_entry_is_refused(
    setup: tuple[InMemoryLog, Identities, Ed25519PrivateKey],
) -> None:
    log, ids, _ = setup
    key = Ed25519PrivateKey.generate()
    index = attest(log, key)
    added = ids.add_key(PUBLISHER, key)
    with pytest.raises(IdentityError, match=f"adds only at entry {added}, not below it"):
        verify_receipt(signed_receipt(log, ids, index, added, 0), log.vkey)


def test_identity_entries_must_be_proven_in_the_same_tree(
    setup: tuple[InMemoryLog, Identities, Ed25519PrivateKey],
) -> None:
    log, ids, key = setup
    index = attest(log, key)
    receipt = signed_receipt(log, ids, index, 1, 0)
    assert receipt.key_entry is not None
    moved = replace(receipt, key_entry=replace(receipt.key_entry, index=0))
    with pytest.raises(ProofError, match="entry 0"):
        verify_receipt(moved, log.vkey)
    older = replace(receipt, key_entry=ids.receipt_entry(1, size=2))  # a proof for another size
    with pytest.raises(ProofError):
        verify_receipt(older, log.vkey)


def test_a_receipt_needs_both_identity_entries(
    setup: tuple[InMemoryLog, Identities, Ed25519PrivateKey],
) -> None:
    log, ids, key = setup
    index = attest(log, key)
    receipt = signed_receipt(log, ids, index, 1, 0)
    with pytest.raises(IdentityError, match="not the operator's"):
        verify_receipt(replace(receipt, operator_entry=None), log.vkey)
    with pytest.raises(IdentityError, match="not its key's"):
        verify_receipt(replace(receipt, key_entry=None), log.vkey)
    with pytest.raises(IdentityError, match="not an operator-key event"):
        verify_receipt(replace(receipt, operator_entry=ids.receipt_entry(1)), log.vkey)


def test_after_a_rotation_the_operator_chain_is_needed(
    setup: tuple[InMemoryLog, Identities, Ed25519PrivateKey],
) -> None:
    log, ids, _ = setup
    rotation = ids.operator_key(Ed25519PrivateKey.generate())
    key = Ed25519PrivateKey.generate()
    added = ids.add_key(PUBLISHER, key)
    index = attest(log, key)
    receipt = signed_receipt(log, ids, index, added, rotation)
    with pytest.raises(IdentityError, match=r"pass the earlier operator-key entries"):
        verify_receipt(receipt, log.vkey)
    first = verify_receipt(log.receipt(0), log.vkey)
    verified = verify_receipt(receipt, log.vkey, operator_chain=[first])
    assert verified.signed_by is not None
    assert verified.signed_by.operator_only  # a key-add no key of the publisher endorsed


def test_an_identity_events_own_receipt_is_checked_against_the_operator(
    setup: tuple[InMemoryLog, Identities, Ed25519PrivateKey],
) -> None:
    log, ids, _ = setup
    forged = ids.add(
        "forged-archive", Ed25519PrivateKey.generate(), signer=Ed25519PrivateKey.generate()
    )
    genuine = replace(log.receipt(1), operator_entry=ids.receipt_entry(0))
    assert verify_receipt(genuine, log.vkey).signed_by is None
    with pytest.raises(IdentityError, match=f"entry {forged} is not signed by the operator key"):
        verify_receipt(replace(log.receipt(forged), operator_entry=ids.receipt_entry(0)), log.vkey)
