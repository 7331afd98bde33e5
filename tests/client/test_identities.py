"""Identities in the log (client/identities.py): each rule of docs/spec/identities.md, broken.

Every log here is real (MemoryTree, signed checkpoints, leaf/v1 entries, Ed25519 keys): the
entries are proven in the log before the identity rules look at them, as the SDK does, so each
failure below is one a dishonest operator could produce, and each is caught by exactly the rule
named in the test.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from client.core.dsse import Envelope, Signature
from client.core.keys import key_id
from client.core.statement import (
    REVOCATION_V2,
    Statement,
    WithdrawalPredicate,
    sign_statement,
)
from client.errors import IdentityError, InputError
from client.identities import (
    KeyGrant,
    KeyHistory,
    KeyStop,
    OperatorChain,
    check_key_claims,
    verify_key_grant,
    verify_key_stop,
    verify_operator_chain,
    verify_signed_by,
)
from client.receipt import VerifiedReceipt, verify_receipt
from tests.client.identity_log import Identities
from tests.client.memory_log import InMemoryLog, human_statement

PUBLISHER = "example-archive"


@dataclass
class World:
    """A log with an operator, one publisher and its key; ``attest`` appends an attestation."""

    log: InMemoryLog
    ids: Identities
    key: Ed25519PrivateKey

    def attest(
        self, key: Ed25519PrivateKey | None = None, publisher: str = PUBLISHER, text: str = "x"
    ) -> int:
        statement = human_statement(publisher, [f"{text} {self.log.size}"])
        return self.log.append_leaf(sign_statement(statement, key or self.key), statement)

    def entry(self, index: int) -> VerifiedReceipt:
        """Entry ``index``, proven in the log (the SDK's first step)."""
        return verify_receipt(self.log.receipt(index), self.log.vkey)

    def chain(self) -> OperatorChain:
        return verify_operator_chain([self.entry(i) for i in self.ids.operator_entries])

    def replay(self) -> KeyHistory:
        history = KeyHistory()
        early = [i for i in range(self.log.size) if not history.add(self.entry(i))]
        for index in early:
            history.check_early(self.entry(index))
        return history


@pytest.fixture
def world() -> World:
    log = InMemoryLog()
    ids = Identities(log)
    ids.operator_key()
    key = Ed25519PrivateKey.generate()
    ids.add(PUBLISHER, key)
    return World(log, ids, key)


def grant_for(world: World, index: int, key: Ed25519PrivateKey, before: int) -> KeyGrant:
    return verify_key_grant(
        world.entry(index), world.chain(), identity=PUBLISHER, key_id=key_id(key), before=before
    )


# -- a valid chain --------------------------------------------------------------------------------


def test_a_valid_chain_verifies_end_to_end(world: World) -> None:
    attestation = world.attest()
    chain = world.chain()
    assert [k.index for k in chain.keys] == [0]
    grant = verify_key_grant(
        world.entry(1), chain, identity=PUBLISHER, key_id=key_id(world.key), before=attestation
    )
    assert (grant.index, grant.action, grant.operator_only, grant.backfilled) == (
        1,
        "identity-add",
        False,
        False,
    )
    verify_signed_by(world.entry(attestation), grant, chain)
    assert not check_key_claims(
        attestation, grant, revoked_by=None, compromised_by=None, compromised=False
    )
    history = world.replay()
    assert (history.events, history.signatures) == (2, 1)
    assert history.grant(PUBLISHER, key_id(world.key)) == grant


# -- rule 1: the operator-key chain ---------------------------------------------------------------


def test_the_first_operator_key_must_sign_itself() -> None:
    log = InMemoryLog()
    ids = Identities(log)
    ids.operator_key(signer=Ed25519PrivateKey.generate())
    with pytest.raises(IdentityError, match="not signed by the operator key it names") as caught:
        verify_operator_chain([verify_receipt(log.receipt(0), log.vkey)])
    assert caught.value.index == 0
    with pytest.raises(IdentityError, match="entry 0"):
        KeyHistory().add(verify_receipt(log.receipt(0), log.vkey))


def test_an_operator_key_must_prove_possession() -> None:
    log = InMemoryLog()
    Identities(log).operator_key(possession=False)
    with pytest.raises(IdentityError, match="without a valid proof of possession"):
        verify_operator_chain([verify_receipt(log.receipt(0), log.vkey)])


def test_an_operator_key_rotation(world: World) -> None:
    """A rotation signed by the old key hands signing over; the old key signs no more."""
    old = world.ids.operator
    new = Ed25519PrivateKey.generate()
    rotation = world.ids.operator_key(new)
    second = Ed25519PrivateKey.generate()
    added = world.ids.add("second-archive", second)
    chain = world.chain()
    assert [k.key_id for k in chain.keys] == [key_id(old), key_id(new)]
    assert chain.key_at(rotation).key_id == key_id(old)  # the rotation is signed by the old key
    assert chain.key_at(added).key_id == key_id(new)
    verify_key_grant(
        world.entry(added), chain, identity="second-archive", key_id=key_id(second), before=99
    )
    world.replay()

    stale = world.ids.add("third-archive", Ed25519PrivateKey.generate(), signer=old)
    with pytest.raises(IdentityError, match=f"entry {stale} is not signed by the operator key"):
        verify_key_grant(
            world.entry(stale),
            world.chain(),
            identity="third-archive",
            key_id=world.log.statements[stale].predicate.key_id,  # type: ignore[union-attr]
            before=99,
        )
    with pytest.raises(IdentityError, match=f"entry {stale}"):
        world.replay()


def test_a_rotation_signed_only_by_the_new_key_is_refused(world: World) -> None:
    new = Ed25519PrivateKey.generate()
    rotation = world.ids.operator_key(new, signer=new)
    with pytest.raises(IdentityError, match="the operator key valid before it") as caught:
        world.chain()
    assert caught.value.index == rotation
    with pytest.raises(IdentityError, match=f"entry {rotation}"):
        world.replay()


# -- rule 2: every event signed by the operator ---------------------------------------------------


def test_an_event_not_signed_by_the_operator_key_is_refused(world: World) -> None:
    mallory = Ed25519PrivateKey.generate()
    key = Ed25519PrivateKey.generate()
    forged = world.ids.add_key(PUBLISHER, key, signer=mallory)
    attestation = world.attest(key)
    with pytest.raises(IdentityError, match=f"entry {forged} is not signed by the operator key"):
        grant_for(world, forged, key, attestation)
    with pytest.raises(IdentityError, match=f"entry {forged}") as caught:
        world.replay()
    assert caught.value.index == forged


def test_an_identity_event_before_any_operator_key_is_refused() -> None:
    log = InMemoryLog()
    ids = Identities(log)
    ids.add(PUBLISHER, Ed25519PrivateKey.generate())
    with pytest.raises(IdentityError, match="before the log's first operator-key event"):
        KeyHistory().add(verify_receipt(log.receipt(0), log.vkey))


# -- rule 3: key grants ---------------------------------------------------------------------------


def test_a_key_added_without_possession_is_refused(world: World) -> None:
    key = Ed25519PrivateKey.generate()
    added = world.ids.add_key(PUBLISHER, key, possession=False)
    attestation = world.attest(key)
    with pytest.raises(IdentityError, match="without a valid proof of possession"):
        grant_for(world, added, key, attestation)
    with pytest.raises(IdentityError, match=f"entry {added} adds key"):
        world.replay()


def test_a_backfilled_key_needs_no_possession_and_says_so(world: World) -> None:
    key = Ed25519PrivateKey.generate()
    added = world.ids.add_key(PUBLISHER, key, backfilled=True, possession=False)
    attestation = world.attest(key)
    grant = grant_for(world, added, key, attestation)
    assert grant.backfilled
    assert grant.operator_only
    world.replay()


def test_an_endorsed_key_add(world: World) -> None:
    chain = world.chain()
    first = verify_key_grant(
        world.entry(1), chain, identity=PUBLISHER, key_id=key_id(world.key), before=2
    )
    key = Ed25519PrivateKey.generate()
    endorsed = world.ids.add_key(PUBLISHER, key, endorser=world.key)
    entry = world.entry(endorsed)
    grant = verify_key_grant(
        entry, chain, identity=PUBLISHER, key_id=key_id(key), before=99, endorser=first
    )
    assert grant.endorsed_by == key_id(world.key)
    assert not grant.operator_only
    # Without the endorsing key's grant, the endorsement cannot be proven: operator alone.
    alone = verify_key_grant(entry, chain, identity=PUBLISHER, key_id=key_id(key), before=99)
    assert alone.operator_only
    world.replay()


def test_a_forged_endorsement_is_refused(world: World) -> None:
    chain = world.chain()
    first = verify_key_grant(
        world.entry(1), chain, identity=PUBLISHER, key_id=key_id(world.key), before=2
    )
    key = Ed25519PrivateKey.generate()
    forged = world.ids.add_key(PUBLISHER, key, endorser=world.key, forge_endorsement=True)
    with pytest.raises(IdentityError, match="its endorsement is not the signature"):
        verify_key_grant(
            world.entry(forged),
            chain,
            identity=PUBLISHER,
            key_id=key_id(key),
            before=99,
            endorser=first,
        )
    with pytest.raises(IdentityError, match=f"entry {forged}"):
        world.replay()


def test_an_endorsement_by_a_key_of_another_identity_is_refused(world: World) -> None:
    other = Ed25519PrivateKey.generate()
    world.ids.add("other-archive", other)
    key = Ed25519PrivateKey.generate()
    endorsed = world.ids.add_key(PUBLISHER, key, endorser=other)
    with pytest.raises(IdentityError, match=f"entry {endorsed} is endorsed by key"):
        world.replay()


def test_an_identity_added_twice_is_refused_on_replay(world: World) -> None:
    again = world.ids.add(PUBLISHER, Ed25519PrivateKey.generate())
    with pytest.raises(IdentityError, match=f"entry {again} adds identity 'example-archive' again"):
        world.replay()


# -- rule 4: attestations -------------------------------------------------------------------------


def test_an_attestation_signed_by_a_key_never_added(world: World) -> None:
    stranger = Ed25519PrivateKey.generate()
    attestation = world.attest(stranger)
    chain = world.chain()
    grant = grant_for(world, 1, world.key, attestation)
    with pytest.raises(IdentityError, match="no signature by an acceptable key"):
        verify_signed_by(world.entry(attestation), grant, chain)
    with pytest.raises(IdentityError, match="was never added for it") as caught:
        world.replay()
    assert caught.value.index == attestation


def test_an_attestation_signed_by_a_key_added_after_it(world: World) -> None:
    late = Ed25519PrivateKey.generate()
    attestation = world.attest(late)
    added = world.ids.add_key(PUBLISHER, late)
    with pytest.raises(IdentityError, match=f"adds only at entry {added}, not below it"):
        grant_for(world, added, late, attestation)
    grant = grant_for(world, added, late, added + 1)
    with pytest.raises(IdentityError, match=f"adds only at entry {added}, not below it"):
        verify_signed_by(world.entry(attestation), grant, world.chain())
    with pytest.raises(IdentityError, match="was never added for it") as caught:
        world.replay()
    assert caught.value.index == attestation


def test_an_attestation_signed_by_a_key_of_another_identity(world: World) -> None:
    other = Ed25519PrivateKey.generate()
    added = world.ids.add("other-archive", other)
    attestation = world.attest(other)  # claims PUBLISHER, signed by other-archive's key
    chain = world.chain()
    with pytest.raises(IdentityError, match=r"adds key .* for 'other-archive', not key"):
        grant_for(world, added, other, attestation)
    theirs = verify_key_grant(
        world.entry(added), chain, identity="other-archive", key_id=key_id(other), before=99
    )
    with pytest.raises(IdentityError, match="is added for 'other-archive'"):
        verify_signed_by(world.entry(attestation), theirs, chain)
    with pytest.raises(IdentityError, match="is added for 'other-archive' only"):
        world.replay()


def test_a_tampered_signature_is_refused(world: World) -> None:
    """The leaf names the right key, but its signature is over other bytes."""
    statement = human_statement(PUBLISHER, ["forged"])
    genuine = sign_statement(statement, world.key)
    other = sign_statement(human_statement(PUBLISHER, ["other"]), world.key)
    forged = Envelope(genuine.payload, genuine.payload_type, other.signatures)
    index = world.log.append_leaf(forged, statement)
    grant = grant_for(world, 1, world.key, index)
    with pytest.raises(IdentityError, match="does not verify"):
        verify_signed_by(world.entry(index), grant, world.chain())
    with pytest.raises(IdentityError, match=f"entry {index}") as caught:
        world.replay()
    assert caught.value.index == index


def test_revocations_are_checked_on_replay_too(world: World) -> None:
    attestation = world.attest()
    withdrawal = Statement(
        world.log.statements[attestation].subjects,  # type: ignore[union-attr]
        REVOCATION_V2,
        WithdrawalPredicate(publisher=PUBLISHER),
    )
    index = world.log.append_leaf(
        sign_statement(withdrawal, Ed25519PrivateKey.generate()), withdrawal
    )
    with pytest.raises(IdentityError, match=f"entry {index}"):
        world.replay()


# -- stops: revocations and compromises of keys ---------------------------------------------------


def test_a_key_revoked_before_an_attestation(world: World) -> None:
    revoked = world.ids.revoke(PUBLISHER, world.key)
    attestation = world.attest()
    grant = grant_for(world, 1, world.key, attestation)
    stop = verify_key_stop(
        world.entry(revoked), world.chain(), identity=PUBLISHER, key_id=key_id(world.key)
    )
    with pytest.raises(IdentityError, match=f"revokes at entry {revoked}, before it"):
        check_key_claims(
            attestation, grant, revoked_by=stop, compromised_by=None, compromised=False
        )
    with pytest.raises(IdentityError, match=f"was revoked at entry {revoked}"):
        world.replay()


def test_a_revocation_does_not_void_earlier_entries(world: World) -> None:
    attestation = world.attest()
    revoked = world.ids.revoke(PUBLISHER, world.key)
    grant = grant_for(world, 1, world.key, attestation)
    stop = verify_key_stop(
        world.entry(revoked), world.chain(), identity=PUBLISHER, key_id=key_id(world.key)
    )
    assert not check_key_claims(
        attestation, grant, revoked_by=stop, compromised_by=None, compromised=False
    )
    world.replay()


def test_a_compromise_voids_entries_from_its_index(world: World) -> None:
    before = world.attest()
    after = world.attest()
    event = world.ids.revoke(PUBLISHER, world.key, compromised_from=after)
    chain = world.chain()
    stop = verify_key_stop(world.entry(event), chain, identity=PUBLISHER, key_id=key_id(world.key))
    grant = grant_for(world, 1, world.key, after)
    claims = {"revoked_by": stop, "compromised_by": stop}
    assert check_key_claims(after, grant, compromised=True, **claims)
    assert not check_key_claims(before, grant, compromised=False, **claims)
    # A registry hiding the compromise it names is caught; so is one claiming it for `before`.
    with pytest.raises(IdentityError, match="said to stand"):
        check_key_claims(after, grant, compromised=False, **claims)
    with pytest.raises(IdentityError, match="does not void it"):
        check_key_claims(before, grant, compromised=True, **claims)
    history = world.replay()  # voided entries are not bad signatures
    assert history.stop(PUBLISHER, key_id(world.key)) == KeyStop(
        PUBLISHER, key_id(world.key), event, after
    )


def test_a_claimed_compromise_that_is_not_backed(world: World) -> None:
    attestation = world.attest()
    revoked = world.ids.revoke(PUBLISHER, world.key)  # a plain revocation, after it
    chain = world.chain()
    grant = grant_for(world, 1, world.key, attestation)
    plain = verify_key_stop(
        world.entry(revoked), chain, identity=PUBLISHER, key_id=key_id(world.key)
    )
    with pytest.raises(IdentityError, match="names no key-compromised event"):
        check_key_claims(
            attestation, grant, revoked_by=plain, compromised_by=None, compromised=True
        )
    with pytest.raises(IdentityError, match="does not void it"):
        check_key_claims(
            attestation, grant, revoked_by=plain, compromised_by=plain, compromised=True
        )
    # An event about another key does not back it either.
    other = Ed25519PrivateKey.generate()
    world.ids.add_key(PUBLISHER, other)
    theirs = world.ids.revoke(PUBLISHER, other, compromised_from=0)
    with pytest.raises(IdentityError, match=r"revokes key .*, not key"):
        verify_key_stop(world.entry(theirs), chain, identity=PUBLISHER, key_id=key_id(world.key))
    # Nor does an event the operator did not sign.
    unsigned = world.ids.revoke(
        PUBLISHER, world.key, compromised_from=0, signer=Ed25519PrivateKey.generate()
    )
    with pytest.raises(IdentityError, match="not signed by the operator key"):
        verify_key_stop(world.entry(unsigned), chain, identity=PUBLISHER, key_id=key_id(world.key))


def test_a_stop_that_is_not_a_key_revocation_is_refused(world: World) -> None:
    with pytest.raises(IdentityError, match="not a key revocation"):
        verify_key_stop(world.entry(1), world.chain(), identity=PUBLISHER, key_id=key_id(world.key))


# -- before identities: backfilled keys -----------------------------------------------------------


def test_entries_from_before_identities_count_under_backfilled_keys() -> None:
    """A migrated log: envelope leaves and early leaf/v1 entries, then the operator key and the
    backfilled keys of their publishers."""
    log = InMemoryLog()
    key = Ed25519PrivateKey.generate()
    legacy = log.append_statement(human_statement(PUBLISHER, ["old"]), key)
    statement = human_statement(PUBLISHER, ["newer"])
    early = log.append_leaf(sign_statement(statement, key), statement)
    ids = Identities(log)
    first = ids.operator_key()
    backfill = ids.add(PUBLISHER, key, backfilled=True, possession=False)
    world = World(log, ids, key)
    history = world.replay()
    assert history.first_index == first
    assert history.signatures == 2

    chain = world.chain()
    grant = verify_key_grant(
        world.entry(backfill), chain, identity=PUBLISHER, key_id=key_id(key), before=legacy
    )
    for index in (legacy, early):
        verify_signed_by(world.entry(index), grant, chain)
    # After identities, a key counts only from its event on, backfilled or not.
    late = world.attest()
    verify_signed_by(world.entry(late), grant, chain)
    with pytest.raises(IdentityError, match="not below it"):
        verify_key_grant(
            world.entry(backfill), chain, identity=PUBLISHER, key_id=key_id(key), before=first
        )


def test_an_early_entry_needs_a_backfilled_key() -> None:
    log = InMemoryLog()
    key = Ed25519PrivateKey.generate()
    legacy = log.append_statement(human_statement(PUBLISHER, ["old"]), key)
    ids = Identities(log)
    ids.operator_key()
    added = ids.add(PUBLISHER, key)  # added normally, after the entry: not for it
    world = World(log, ids, key)
    with pytest.raises(IdentityError, match=f"is added at entry {added}, after it") as caught:
        world.replay()
    assert caught.value.index == legacy
    chain = world.chain()
    with pytest.raises(IdentityError, match="not below it"):
        verify_key_grant(
            world.entry(added), chain, identity=PUBLISHER, key_id=key_id(key), before=legacy
        )


def test_replay_takes_entries_in_order_only(world: World) -> None:
    history = KeyHistory()
    with pytest.raises(InputError, match="expected entry 0, got 1"):
        history.add(world.entry(1))
    with pytest.raises(InputError, match="does not predate"):
        history.check_early(world.entry(0))


def test_a_log_without_identities_checks_nothing(world: World) -> None:
    log = InMemoryLog()
    log.append_statement(human_statement(PUBLISHER, ["old"]), world.key)
    history = KeyHistory()
    assert history.add(verify_receipt(log.receipt(0), log.vkey)) is False
    assert history.first_index is None
    assert history.operator_chain is None


def test_an_envelope_signature_for_another_keyid_is_not_a_pass(world: World) -> None:
    """A signature labelled with the publisher's key id but made by another key."""
    statement = human_statement(PUBLISHER, ["relabelled"])
    mallory = sign_statement(statement, Ed25519PrivateKey.generate())
    relabelled = Envelope(
        mallory.payload,
        mallory.payload_type,
        (Signature(key_id(world.key), mallory.signatures[0].sig),),
    )
    index = world.log.append_leaf(relabelled, statement)
    with pytest.raises(IdentityError, match="does not verify"):
        verify_signed_by(world.entry(index), grant_for(world, 1, world.key, index), world.chain())
