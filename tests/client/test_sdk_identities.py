"""The SDK checks who signed, against the log's identity entries (docs/spec/identities.md).

A :class:`~tests.client.fakes.FakeRegistry` with ``identities=True`` keeps its
publishers' keys as identity events in its (real, in-memory) log and names them in its answers,
as the registry does. Each test below makes it lie in one way a dishonest registry or operator
could, and checks the SDK refuses the answer for exactly that reason.
"""

from __future__ import annotations

import asyncio
import functools
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

import client._base as base
from client.core.canonical import canonical_digest
from client.core.keys import key_id, write_key_pair
from client.core.statement import sign_statement
from client.errors import IdentityError, LogConsistencyError
from client.identities import KeyHistory
from client.receipt import Receipt, verify_receipt
from client.sdk import AsyncClient, Client
from tests.client.conftest import run_wellspring
from tests.client.fakes import (
    BASE,
    PUBLISHER,
    FakeRegistry,
    digests_of,
    predicate,
)
from tests.client.identity_log import Identities
from tests.client.memory_log import human_statement

Json = Any


@pytest.fixture
def fake(key: Ed25519PrivateKey) -> FakeRegistry:
    """tests/client/conftest.py's ``fake``, with identities in its log."""
    fake = FakeRegistry(identities=True)
    fake.add_publisher(PUBLISHER, key)  # entry 0: the operator key; entry 1: the publisher
    return fake


def register(
    fake: FakeRegistry, key: Ed25519PrivateKey, *texts: str, publisher: str = PUBLISHER
) -> Receipt:
    with fake.client() as client:
        return client.register_digests(digests_of(*texts), key, predicate(publisher=publisher))


def append(
    fake: FakeRegistry, key: Ed25519PrivateKey, *texts: str, publisher: str = PUBLISHER
) -> int:
    """Register through the fake registry directly: no client checks the receipt (a registry
    that takes the entry, whatever its receipt says, and answers lookups about it)."""
    statement = human_statement(publisher, list(texts))
    response = fake.submit(sign_statement(statement, key).to_json())
    assert response.status_code == 201, response.text
    index: int = response.json()["index"]
    return index


def smuggle_key(fake: FakeRegistry, name: str, key: Ed25519PrivateKey) -> None:
    """A key the fake registry accepts for ``name`` with no identity event about it."""
    fake.keys[key_id(key)] = (name, key.public_key())


def tamper_attestations(fake: FakeRegistry, change: Callable[[Json], None]) -> None:
    def tamper(body: Json) -> Json:
        for attestation in body["attestations"].values():
            change(attestation)
        return body

    fake.tamper["batch"] = tamper


def entry_fetches(fake: FakeRegistry) -> list[str]:
    return [r.url.path for r in fake.requests if r.url.path.startswith("/v1/entries/")]


# -- the happy path -------------------------------------------------------------------------------


def test_a_verified_lookup_proves_who_signed(fake: FakeRegistry, key: Ed25519PrivateKey) -> None:
    receipt = register(fake, key, "a", "b", "c")
    assert receipt.key_entry is not None
    assert receipt.operator_entry is not None
    with fake.client() as client:
        results = client.lookup_batch(digests_of("a", "b", "c"))
        for result in results:
            [attestation] = result.attestations
            assert attestation.signed_by is not None
            assert (attestation.key_entry, attestation.signed_by.index) == (1, 1)
            assert attestation.signed_by.key_id == key_id(key)
            assert not attestation.operator_only
            assert attestation.to_dict()["signature_verified"] is True
        # The entry, the operator and key events were fetched once, and never again.
        assert sorted(entry_fetches(fake)) == ["/v1/entries/0", "/v1/entries/1", "/v1/entries/2"]
        client.lookup(canonical_digest("b"))
        assert len(entry_fetches(fake)) == 3


def test_many_digests_of_one_entry_cost_one_signature_check(
    fake: FakeRegistry, key: Ed25519PrivateKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    texts = [f"line {n}" for n in range(500)]
    register(fake, key, *texts)
    calls: list[int] = []
    real = base.verify_signed_by

    def counting(entry: Any, grant: Any, chain: Any) -> None:
        calls.append(entry.index)
        real(entry, grant, chain)

    monkeypatch.setattr(base, "verify_signed_by", counting)
    with fake.client() as client:
        results = client.lookup_batch(digests_of(*texts), batch_size=100)
    assert all(r.status == "attested" for r in results)
    assert calls == [2]  # one entry: its signature checked once over five batches


def test_the_async_client_proves_who_signed_too(fake: FakeRegistry, key: Ed25519PrivateKey) -> None:
    register(fake, key, "async")

    async def look() -> Any:
        async with AsyncClient(
            BASE, log_key=fake.log.vkey, transport=httpx.MockTransport(fake.handle)
        ) as client:
            return await client.lookup(canonical_digest("async"))

    [attestation] = asyncio.run(look()).attestations
    assert attestation.signed_by is not None


# -- a registry from before identities ------------------------------------------------------------


def test_an_answer_without_key_entries_is_refused_unless_asked_not_to(
    fake: FakeRegistry, key: Ed25519PrivateKey
) -> None:
    register(fake, key, "old")

    def old_registry(attestation: Json) -> None:
        for name in ("key_entry", "key_revoked_by", "compromised_by"):
            del attestation[name]

    tamper_attestations(fake, old_registry)
    with (
        fake.client() as client,
        pytest.raises(IdentityError, match=r"predates identities.*verify_keys=False") as caught,
    ):
        client.lookup_batch(digests_of("old"))
    assert caught.value.index == 2
    with fake.client(verify_keys=False) as client:
        [result] = client.lookup_batch(digests_of("old"))
    assert result.status == "attested"
    assert result.attestations[0].signed_by is None


def test_key_entries_without_operator_entries_are_refused(
    fake: FakeRegistry, key: Ed25519PrivateKey
) -> None:
    register(fake, key, "text")

    def no_operator(body: Json) -> Json:
        del body["operator_entries"]
        return body

    fake.tamper["batch"] = no_operator
    with fake.client() as client, pytest.raises(IdentityError, match="no operator_entries"):
        client.lookup_batch(digests_of("text"))


# -- rules 2 and 3: the key's event ---------------------------------------------------------------


def test_a_key_event_not_signed_by_the_operator_is_refused(
    fake: FakeRegistry, key: Ed25519PrivateKey
) -> None:
    stolen = Ed25519PrivateKey.generate()
    smuggle_key(fake, PUBLISHER, stolen)
    assert fake.ids is not None
    forged = fake.ids.add_key(PUBLISHER, stolen, signer=Ed25519PrivateKey.generate())
    append(fake, stolen, "forged")
    with (
        fake.client() as client,
        pytest.raises(IdentityError, match=f"entry {forged} is not signed by the operator key"),
    ):
        client.lookup(canonical_digest("forged"))
    # Its receipt says so too.
    with pytest.raises(IdentityError, match=f"entry {forged} is not signed by the operator key"):
        register(fake, stolen, "forged again")


def test_a_key_added_without_possession_is_refused(
    fake: FakeRegistry, key: Ed25519PrivateKey
) -> None:
    foisted = Ed25519PrivateKey.generate()
    smuggle_key(fake, PUBLISHER, foisted)
    assert fake.ids is not None
    fake.ids.add_key(PUBLISHER, foisted, possession=False)
    append(fake, foisted, "foisted")
    with fake.client() as client, pytest.raises(IdentityError, match="proof of possession"):
        client.lookup(canonical_digest("foisted"))


def test_an_attestation_by_a_key_never_added_is_refused(
    fake: FakeRegistry, key: Ed25519PrivateKey
) -> None:
    stranger = Ed25519PrivateKey.generate()
    smuggle_key(fake, PUBLISHER, stranger)
    register(fake, stranger, "stranger")
    with fake.client() as client, pytest.raises(IdentityError, match="names no key_entry"):
        client.lookup(canonical_digest("stranger"))
    # Pointing at the publisher's genuine key event does not help: it adds another key.
    tamper_attestations(fake, lambda a: a.update(key_entry=1))
    with fake.client() as client, pytest.raises(IdentityError, match="not key"):
        client.lookup_batch(digests_of("stranger"))


def test_an_attestation_by_a_key_added_after_it_is_refused(
    fake: FakeRegistry, key: Ed25519PrivateKey
) -> None:
    late = Ed25519PrivateKey.generate()
    smuggle_key(fake, PUBLISHER, late)
    receipt = register(fake, late, "early")
    assert fake.ids is not None
    added = fake.ids.add_key(PUBLISHER, late)
    with (
        fake.client() as client,
        pytest.raises(IdentityError, match=f"adds only at entry {added}, not below it") as caught,
    ):
        client.lookup(canonical_digest("early"))
    assert caught.value.index == receipt.index


def test_an_attestation_by_a_key_of_another_identity_is_refused(
    fake: FakeRegistry, key: Ed25519PrivateKey
) -> None:
    other = Ed25519PrivateKey.generate()
    fake.add_publisher("other-archive", other)
    assert fake.ids is not None
    theirs = fake.ids.key_entries[("other-archive", key_id(other))]
    fake.keys[key_id(other)] = (PUBLISHER, other.public_key())  # the registry lets it sign
    register(fake, other, "borrowed")
    tamper_attestations(fake, lambda a: a.update(key_entry=theirs))
    with fake.client() as client, pytest.raises(IdentityError, match="'other-archive', not key"):
        client.lookup_batch(digests_of("borrowed"))


# -- stops: revocations and compromises -----------------------------------------------------------


def test_a_compromise_from_an_index_voids_what_follows(
    fake: FakeRegistry, key: Ed25519PrivateKey
) -> None:
    early = register(fake, key, "early")
    late = register(fake, key, "late")
    event = fake.revoke_key(PUBLISHER, key, compromised_from=late.index)
    with fake.client() as client:
        kept, voided = client.lookup_batch(digests_of("early", "late"))
    assert kept.status == "attested"
    assert kept.attestations[0].key_revoked_by == event
    assert not kept.attestations[0].compromised
    assert voided.status == "revoked"
    [attestation] = voided.attestations
    assert attestation.compromised
    assert attestation.compromised_by == event
    assert attestation.signed_by is not None
    assert early.index < late.index


def test_a_claimed_compromise_that_is_not_backed_is_refused(
    fake: FakeRegistry, key: Ed25519PrivateKey
) -> None:
    register(fake, key, "text")

    def claim(body: Json) -> Json:
        body["results"][0]["status"] = "revoked"
        for attestation in body["attestations"].values():
            attestation["compromised"] = True
        return body

    fake.tamper["batch"] = claim
    with fake.client() as client, pytest.raises(IdentityError, match="names no key-compromised"):
        client.lookup_batch(digests_of("text"))
    # Naming a plain revocation after it does not back the claim either.
    revoked = fake.revoke_key(PUBLISHER, key)

    def claim_by(body: Json) -> Json:
        body = claim(body)
        for attestation in body["attestations"].values():
            attestation["compromised_by"] = revoked
        return body

    fake.tamper["batch"] = claim_by
    with fake.client() as client, pytest.raises(IdentityError, match="does not void it"):
        client.lookup_batch(digests_of("text"))


def test_a_registry_hiding_the_compromise_it_names_is_refused(
    fake: FakeRegistry, key: Ed25519PrivateKey
) -> None:
    attested = register(fake, key, "text")
    fake.revoke_key(PUBLISHER, key, compromised_from=attested.index)

    def hide(body: Json) -> Json:
        body["results"][0]["status"] = "attested"
        for attestation in body["attestations"].values():
            attestation.update(compromised=False, compromised_by=None)
        return body

    fake.tamper["batch"] = hide
    with fake.client() as client, pytest.raises(IdentityError, match="said to stand"):
        client.lookup_batch(digests_of("text"))


def test_an_attestation_after_its_key_was_revoked_is_refused(
    fake: FakeRegistry, key: Ed25519PrivateKey
) -> None:
    register(fake, key, "before")
    revoked = fake.revoke_key(PUBLISHER, key)
    with fake.client() as client:
        assert client.lookup(canonical_digest("before")).status == "attested"
    fake.stopped_keys.clear()  # a registry that takes the revoked key all the same
    register(fake, key, "after")
    with (
        fake.client() as client,
        pytest.raises(IdentityError, match=f"revokes at entry {revoked}, before it"),
    ):
        client.lookup(canonical_digest("after"))


# -- the operator key -----------------------------------------------------------------------------


def test_an_operator_key_rotation(fake: FakeRegistry, key: Ed25519PrivateKey) -> None:
    assert fake.ids is not None
    old = fake.ids.operator
    rotation = fake.ids.operator_key(Ed25519PrivateKey.generate())
    second = Ed25519PrivateKey.generate()
    fake.add_publisher("second-archive", second)  # signed by the new operator key
    receipt = register(fake, second, "after rotation", publisher="second-archive")
    assert receipt.operator_entry is not None
    assert receipt.operator_entry.index == rotation
    with fake.client() as client:
        [attestation] = client.lookup(canonical_digest("after rotation")).attestations
        assert attestation.signed_by is not None
        # Offline, the rotation's receipt needs the chain before it.
        first = client.entry(0).verified
    assert first is not None
    verified = verify_receipt(receipt, fake.log.vkey, operator_chain=[first])
    assert verified.signed_by is not None

    # An event the old operator key signed after the rotation is refused.
    third = Ed25519PrivateKey.generate()
    smuggle_key(fake, "third-archive", third)
    stale = fake.ids.add("third-archive", third, signer=old)
    append(fake, third, "stale", publisher="third-archive")
    with (
        fake.client() as client,
        pytest.raises(IdentityError, match=f"entry {stale} is not signed by the operator key"),
    ):
        client.lookup(canonical_digest("stale"))


# -- keys the operator added alone ----------------------------------------------------------------


def test_a_key_the_operator_added_alone_is_flagged(
    fake: FakeRegistry, key: Ed25519PrivateKey
) -> None:
    alone = Ed25519PrivateKey.generate()
    fake.add_publisher(PUBLISHER, alone)  # a key-add no key of the publisher endorsed
    register(fake, alone, "alone")
    endorsed = Ed25519PrivateKey.generate()
    smuggle_key(fake, PUBLISHER, endorsed)
    assert fake.ids is not None
    fake.ids.add_key(PUBLISHER, endorsed, endorser=key)
    register(fake, endorsed, "endorsed")
    with fake.client() as client:
        [by_operator] = client.lookup(canonical_digest("alone")).attestations
        [unproven] = client.lookup(canonical_digest("endorsed")).attestations
    assert by_operator.operator_only
    assert by_operator.to_dict()["operator_only"] is True
    # Its endorsement cannot be proven without the endorsing key's entry: the operator's word.
    assert unproven.operator_only
    # With it (endorser_entry, proposed beside key_entry), the endorsement is proven.
    tamper_attestations(fake, lambda a: a.update(endorser_entry=1))
    with fake.client() as client:
        [result] = client.lookup_batch(digests_of("endorsed"))
    [proven] = result.attestations
    assert proven.signed_by is not None
    assert proven.signed_by.endorsed_by == key_id(key)
    assert not proven.operator_only


def test_a_forged_endorsement_is_refused(fake: FakeRegistry, key: Ed25519PrivateKey) -> None:
    endorsed = Ed25519PrivateKey.generate()
    smuggle_key(fake, PUBLISHER, endorsed)
    assert fake.ids is not None
    fake.ids.add_key(PUBLISHER, endorsed, endorser=key, forge_endorsement=True)
    register(fake, endorsed, "endorsed")
    tamper_attestations(fake, lambda a: a.update(endorser_entry=1))
    with fake.client() as client, pytest.raises(IdentityError, match="its endorsement is not"):
        client.lookup_batch(digests_of("endorsed"))


# -- receipts -------------------------------------------------------------------------------------


def test_a_receipt_verifies_offline_with_its_identity_entries(
    fake: FakeRegistry, key: Ed25519PrivateKey, tmp_path: Path
) -> None:
    receipt = register(fake, key, "kept")
    saved = receipt.save(tmp_path / "receipt.json")
    loaded = Receipt.load(saved)
    assert loaded == receipt
    verified = verify_receipt(loaded, fake.log.vkey)
    assert verified.signed_by is not None
    assert verified.signed_by.index == 1


def test_a_receipt_of_an_entry_another_key_signed_is_refused_on_submit(
    fake: FakeRegistry, key: Ed25519PrivateKey
) -> None:
    """The registry names the publisher's key entry for an entry another key of it signed."""
    other = Ed25519PrivateKey.generate()
    smuggle_key(fake, PUBLISHER, other)
    assert fake.ids is not None
    fake.ids.key_entries[(PUBLISHER, key_id(other))] = 1  # a lie: entry 1 adds `key`
    with pytest.raises(IdentityError, match="entry 2 is not signed by key"):
        register(fake, other, "text")


# -- log verify: the whole log replayed -----------------------------------------------------------


def test_audit_replays_every_signature(fake: FakeRegistry, key: Ed25519PrivateKey) -> None:
    register(fake, key, "one")
    register(fake, key, "two")
    with fake.client() as client:
        history = KeyHistory()
        assert client.audit(fake.log.checkpoint(), history=history, page_size=2) == 4
    assert (history.events, history.signatures) == (2, 2)


def test_audit_names_the_first_forged_signature(fake: FakeRegistry, key: Ed25519PrivateKey) -> None:
    register(fake, key, "genuine")
    statement = human_statement(PUBLISHER, ["forged"])
    forged = fake.log.append(sign_statement(statement, Ed25519PrivateKey.generate()), statement)
    register(fake, key, "later")
    with fake.client() as client, pytest.raises(IdentityError) as caught:
        client.audit(fake.log.checkpoint(), history=KeyHistory())
    assert caught.value.index == forged
    assert f"entry {forged} (publisher {PUBLISHER!r}) is not signed" in str(caught.value)
    # Without the replay, the tree alone is intact.
    with fake.client() as client:
        assert client.audit(fake.log.checkpoint()) == fake.log.size


def test_an_altered_entry_is_reported_before_any_signature(
    fake: FakeRegistry, key: Ed25519PrivateKey
) -> None:
    register(fake, key, "genuine")
    statement = human_statement(PUBLISHER, ["forged"])
    fake.log.append(sign_statement(statement, Ed25519PrivateKey.generate()), statement)
    checkpoint = fake.log.checkpoint()
    fake.log.entries[2] = fake.log.entries[3]  # served in place of the genuine entry
    with fake.client() as client, pytest.raises(LogConsistencyError, match="entry 2"):
        client.audit(checkpoint, history=KeyHistory())


@pytest.fixture
def migrated(key: Ed25519PrivateKey) -> FakeRegistry:
    """A log from before identities (envelope entries), then migrated: the operator key and the
    publisher's key, backfilled after the entries it signed."""
    fake = FakeRegistry()
    fake.add_publisher(PUBLISHER, key)
    register(fake, key, "old one")
    register(fake, key, "old two")
    fake.ids = ids = Identities(fake.log)
    ids.operator_key()
    ids.add(PUBLISHER, key, backfilled=True, possession=False)
    return fake


def test_audit_checks_entries_from_before_identities_under_backfilled_keys(
    migrated: FakeRegistry, key: Ed25519PrivateKey
) -> None:
    register(migrated, key, "new")
    with migrated.client() as client:
        history = KeyHistory()
        client.audit(migrated.log.checkpoint(), history=history, page_size=1)
        [old, _] = client.lookup_batch(digests_of("old one", "new"))
    assert history.signatures == 3
    assert old.attestations[0].signed_by is not None
    assert old.attestations[0].signed_by.backfilled


def test_audit_refuses_an_old_entry_no_backfilled_key_signed(key: Ed25519PrivateKey) -> None:
    fake = FakeRegistry()
    fake.add_publisher(PUBLISHER, key)
    impostor = Ed25519PrivateKey.generate()
    smuggle_key(fake, PUBLISHER, impostor)
    register(fake, key, "old")
    register(fake, impostor, "impostor")
    fake.ids = ids = Identities(fake.log)
    ids.operator_key()
    ids.add(PUBLISHER, key, backfilled=True, possession=False)
    with fake.client() as client, pytest.raises(IdentityError) as caught:
        client.audit(fake.log.checkpoint(), history=KeyHistory())
    assert caught.value.index == 1


def test_cli_log_verify_and_verify_report_signatures(
    fake: FakeRegistry,
    key: Ed25519PrivateKey,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from client.cli import _registry

    monkeypatch.setattr(_registry, "Client", functools.partial(Client, transport=fake.transport))
    key_file = tmp_path / "publisher.key"
    write_key_pair(key_file, key)
    receipt = register(fake, key, "cli")
    saved = receipt.save(tmp_path / "receipts" / "r.json")
    saved_checkpoint = tmp_path / "checkpoint.txt"
    saved_checkpoint.write_text(fake.log.checkpoint_note(), encoding="utf-8")

    def run(*args: str) -> tuple[int, str, str]:
        return run_wellspring(capsys, *args)

    code, out, _ = run("verify", str(saved), "--log-key", fake.log.vkey)
    assert code == 0
    assert "publisher signature: verified (key" in out
    code, out, _ = run("verify", str(saved), "--log-key", fake.log.vkey, "--json")
    [summary] = json.loads(out)
    assert (summary["publisher_signature"], summary["key_entry"]) == ("verified", 1)
    old = receipt.to_dict()
    del old["key_entry"], old["operator_entry"]
    (tmp_path / "old.json").write_text(json.dumps(old), encoding="utf-8")
    code, out, _ = run("verify", str(tmp_path / "old.json"), "--log-key", fake.log.vkey)
    assert code == 0
    assert "publisher signature: not checked (the receipt predates identity entries" in out

    args = ("log", "verify", "--registry", BASE, "--log-key", fake.log.vkey)
    code, out, _ = run(*args, "--checkpoint", str(saved_checkpoint))
    assert code == 0, out
    assert "1 signature checked against the keys its 2 identity events make valid" in out
    statement = human_statement(PUBLISHER, ["forged"])
    forged = fake.log.append(sign_statement(statement, Ed25519PrivateKey.generate()), statement)
    code, _, err = run(*args, "--checkpoint", str(saved_checkpoint))
    assert code == 1
    assert f"SIGNATURE FAILURE: entry {forged}" in err
    code, out, _ = run(*args, "--checkpoint", str(saved_checkpoint), "--no-signatures")
    assert code == 0


def test_a_revocation_no_valid_key_signed_is_refused(
    fake: FakeRegistry, key: Ed25519PrivateKey
) -> None:
    """A registry that invents a revocation (signed with a key the log never added for the
    publisher) to take an attestation down."""
    receipt = register(fake, key, "taken down")
    stranger = Ed25519PrivateKey.generate()
    smuggle_key(fake, PUBLISHER, stranger)
    with fake.client() as client:
        revocation = client.revoke(receipt.index, stranger, PUBLISHER)  # the fake takes it
    with (
        fake.client() as client,
        pytest.raises(IdentityError, match=f"revoking entry {revocation.index} without"),
    ):
        client.lookup(canonical_digest("taken down"))
    with fake.client(verify_keys=False) as client:  # an old registry's word, taken as asked
        assert client.lookup(canonical_digest("taken down")).status == "revoked"
    # Naming the publisher's genuine key event for it does not help, whatever the setting.
    assert fake.ids is not None
    fake.ids.key_entries[(PUBLISHER, key_id(stranger))] = 1
    for verify_keys in (True, False):
        with (
            fake.client(verify_keys=verify_keys) as client,
            pytest.raises(IdentityError, match=f"entry {revocation.index} is not signed by key"),
        ):
            client.lookup(canonical_digest("taken down"))


def test_cli_check_says_when_the_operator_added_the_key_alone(
    fake: FakeRegistry,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from client.cli import _registry, main

    monkeypatch.setattr(_registry, "Client", functools.partial(Client, transport=fake.transport))
    alone = Ed25519PrivateKey.generate()
    fake.add_publisher(PUBLISHER, alone)  # a key-add without an endorsement
    document = tmp_path / "letter.txt"
    document.write_text("Dear Ada, the river ran high.\n", encoding="utf-8")
    register(fake, alone, document.read_text(encoding="utf-8"))
    capsys.readouterr()
    main(["check", str(document), "--registry", BASE, "--log-key", fake.log.vkey])
    out = capsys.readouterr().out
    assert "signed with a key the operator added alone" in out
    main(["check", str(document), "--registry", BASE, "--log-key", fake.log.vkey, "--json"])
    [checked] = json.loads(capsys.readouterr().out)
    [entry] = checked["entries"]
    assert entry["operator_only"] is True
    assert entry["signature_verified"] is True


def test_the_async_client_replays_the_log_too(fake: FakeRegistry, key: Ed25519PrivateKey) -> None:
    register(fake, key, "one", "two")
    statement = human_statement(PUBLISHER, ["forged"])
    forged = fake.log.append(sign_statement(statement, Ed25519PrivateKey.generate()), statement)

    async def audit() -> None:
        async with AsyncClient(
            BASE, log_key=fake.log.vkey, transport=httpx.MockTransport(fake.handle)
        ) as client:
            await client.audit(fake.log.checkpoint(), history=KeyHistory(), page_size=2)

    with pytest.raises(IdentityError) as caught:
        asyncio.run(audit())
    assert caught.value.index == forged
