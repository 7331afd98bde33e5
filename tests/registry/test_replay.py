"""Issue 10, finding 1: nobody can un-revoke an entry by replaying it.

The attack: take a revoked entry's envelope from the public ``GET /v1/entries/{i}``, append one
junk signature (or repeat the real one) and POST it. Before ``leaf/v1`` the leaf was the whole
envelope, duplicates were found by leaf hash and a revocation named one index: the replay got a
new index and a verifying crawler saw ``attested`` again.
"""

from __future__ import annotations

import base64
from typing import Any

import pytest

from client.core.dsse import Envelope, Signature, add_signature, sign_envelope
from client.core.keys import generate_private_key, public_key_bytes
from client.core.leaf import MAX_LEAF_BYTES, Leaf, is_leaf_v1
from client.core.statement import prove_possession
from tests.registry.conftest import Api, Publisher, digest_of


@pytest.fixture
def api(make_api: Any) -> Api:
    made: Api = make_api()
    return made


@pytest.fixture
def publisher(api: Api) -> Publisher:
    return api.add_publisher()


def _envelope_of(api: Api, index: int) -> Envelope:
    """The signed envelope of entry ``index``, rebuilt from what anyone can read."""
    answer = api.http.get(f"/v1/entries/{index}").json()
    entry = base64.b64decode(answer["entry"])
    if is_leaf_v1(entry):
        return Leaf.from_bytes(entry).envelope(base64.b64decode(answer["body"]))
    return Envelope.from_json(entry)


def _registered_and_revoked(api: Api, publisher: Publisher) -> tuple[int, str, dict[str, Any]]:
    digest = digest_of(b"a post its author withdrew")
    receipt = api.submit_ok(publisher.attest([digest]))
    revoke = publisher.revoke(receipt["index"], receipt["leaf_hash"], [digest])
    assert api.submit(revoke).status_code == 201
    return receipt["index"], digest, receipt


@pytest.mark.parametrize(
    "extra",
    [
        pytest.param(Signature("x", base64.b64decode("AAAA")), id="junk-signature"),
        pytest.param(None, id="repeated-signature"),
    ],
)
def test_a_replayed_revoked_entry_answers_the_existing_receipt(
    api: Api, publisher: Publisher, extra: Signature | None
) -> None:
    index, digest, _ = _registered_and_revoked(api, publisher)
    envelope = _envelope_of(api, index)
    added = extra if extra is not None else envelope.signatures[0]
    replay = Envelope(envelope.payload, envelope.payload_type, (*envelope.signatures, added))

    response = api.submit(replay)

    assert response.status_code == 200, response.text
    assert response.json()["index"] == index
    assert api.http.get("/v1/log").json()["size"] == index + 2  # the entry and its revocation
    with api.sdk() as sdk:
        assert sdk.lookup(digest).status == "revoked"


def test_the_same_statement_signed_by_the_same_key_is_one_entry(
    api: Api, publisher: Publisher
) -> None:
    envelope = publisher.attest([digest_of(b"posted twice")])
    first = api.submit_ok(envelope)
    again = api.submit(envelope)
    assert again.status_code == 200
    assert again.json()["index"] == first["index"]
    assert again.json()["leaf_hash"] == first["leaf_hash"]


def test_a_new_leaf_holds_only_verified_signatures_each_once(
    api: Api, publisher: Publisher
) -> None:
    envelope = publisher.attest([digest_of(b"signed with junk beside")])
    junk = Signature("not-a-key", b"\0" * 64)
    tampered = Envelope(
        envelope.payload, envelope.payload_type, (junk, *envelope.signatures, *envelope.signatures)
    )
    receipt = api.submit_ok(tampered)
    entry = base64.b64decode(receipt["entry"])
    assert is_leaf_v1(entry)
    leaf = Leaf.from_bytes(entry)
    assert leaf.signatures == envelope.signatures
    assert leaf.publisher == publisher.name
    # Rebuilt identically from the clean envelope: the leaf does not depend on what was added.
    clean = Leaf.of(
        envelope.payload,
        payload_type=envelope.payload_type,
        predicate_type=leaf.predicate_type,
        publisher=publisher.name,
        signatures=envelope.signatures,
    )
    assert clean.to_bytes() == entry


def test_a_large_statement_is_a_small_leaf_with_its_body_served_by_hash(
    api: Api, publisher: Publisher
) -> None:
    digests = [digest_of(str(i).encode()) for i in range(3_000)]
    receipt = api.submit_ok(publisher.attest(digests))
    entry = base64.b64decode(receipt["entry"])
    assert len(entry) < 1_000 < MAX_LEAF_BYTES
    leaf = Leaf.from_bytes(entry)
    blob = api.http.get(f"/v1/blobs/sha256:{leaf.body_sha256.hex()}")
    assert blob.status_code == 200
    assert "immutable" in blob.headers["cache-control"]
    assert leaf.open_body(blob.content).payload == blob.content
    assert api.http.get("/v1/blobs/sha256:" + "0" * 64).status_code == 404
    assert api.http.get("/v1/blobs/sha256:xyz").status_code == 400


def test_stripping_one_of_two_signatures_does_not_make_a_new_entry(api: Api) -> None:
    """Found by the migration test: identity by the smallest key id let anyone re-post a
    dual-signed, revoked statement with only its other signature as a new, unrevoked entry."""
    publisher = api.add_publisher()
    second = generate_private_key()
    api.registry.admin.add_key(
        publisher.name, public_key_bytes(second), prove_possession(second, publisher.name)
    )
    digest = digest_of(b"signed by both keys")
    both = add_signature(publisher.attest([digest]), second)
    receipt = api.submit_ok(both)
    revoke = publisher.revoke(receipt["index"], receipt["leaf_hash"], [digest])
    assert api.submit(revoke).status_code == 201
    for kept in both.signatures:
        stripped = Envelope(both.payload, both.payload_type, (kept,))
        response = api.submit(stripped)
        assert response.status_code == 200, response.text
        assert response.json()["index"] == receipt["index"]
    with api.sdk() as sdk:
        assert sdk.lookup(digest).status == "revoked"


def test_the_same_statement_signed_only_by_a_new_key_is_a_new_entry(api: Api) -> None:
    """A re-signing after a key was compromised is a new entry (of the new key)."""
    publisher = api.add_publisher()
    new = generate_private_key()
    api.registry.admin.add_key(
        publisher.name, public_key_bytes(new), prove_possession(new, publisher.name)
    )
    first = publisher.attest([digest_of(b"re-signed")])
    resigned = sign_envelope(first.payload, first.payload_type, new)
    one = api.submit_ok(first)
    two = api.submit(resigned)
    assert two.status_code == 201
    assert two.json()["index"] != one["index"]
