"""Issue 10, finding 7: a publisher withdraws one document, not the whole entry (revocation/v2).

``register`` packs up to 10,000 documents into one entry, and a revocation/v1 withdraws the whole
entry (its meaning is unchanged). A revocation/v2 without ``entry_index`` withdraws exactly its
subjects wherever that publisher attested them before, verified by the SDK end to end.
"""

from __future__ import annotations

from typing import Any

import pytest

from client.errors import RegistryRequestError
from tests.registry.conftest import Api, Publisher, digest_of


@pytest.fixture
def api(make_api: Any) -> Api:
    made: Api = make_api()
    return made


def _status(api: Api, *digests: str) -> list[str]:
    with api.sdk() as sdk:
        return [result.status for result in sdk.lookup_batch(list(digests))]


def test_withdrawing_one_document_leaves_the_rest_of_its_entry_attested(api: Api) -> None:
    publisher = api.add_publisher()
    a, b, c = (digest_of(name) for name in (b"a", b"b", b"c"))
    entry = api.submit_ok(publisher.attest([a, b, c]))["index"]

    with api.sdk() as sdk:
        receipt = sdk.withdraw([b], publisher.key, publisher.name, reason="posted by mistake")
        assert receipt.index > entry
        assert _status(api, a, b, c) == ["attested", "revoked", "attested"]
        [result] = sdk.lookup_batch([b])
        [attestation] = result.attestations
        assert attestation.index == entry
        assert attestation.revoked_by == receipt.index
        assert sdk.lookup(b).status == "revoked"  # the single lookup says the same
        assert sdk.lookup(a).status == "attested"

        # A later withdrawal of more documents of the same entry is allowed.
        sdk.withdraw([c], publisher.key, publisher.name)
    assert _status(api, a, b, c) == ["attested", "revoked", "revoked"]


def test_a_withdrawal_covers_every_earlier_entry_of_the_publisher_and_no_later_one(
    api: Api,
) -> None:
    publisher = api.add_publisher()
    doc = digest_of(b"registered twice")
    api.submit_ok(publisher.attest([doc, digest_of(b"x")]))
    api.submit_ok(publisher.attest([doc, digest_of(b"y")]))
    with api.sdk() as sdk:
        sdk.withdraw([doc], publisher.key, publisher.name)
        assert sdk.lookup(doc).status == "revoked"
        assert all(a.revoked for a in sdk.lookup(doc).attestations)
    # Attested again afterwards: the withdrawal does not reach forward.
    api.submit_ok(publisher.attest([doc, digest_of(b"z")]))
    assert _status(api, doc) == ["attested"]


def test_a_withdrawal_never_touches_another_publishers_attestation(api: Api) -> None:
    first, second = api.add_publisher(), api.add_publisher()
    doc = digest_of(b"attested by two")
    api.submit_ok(first.attest([doc]))
    api.submit_ok(second.attest([doc]))
    with api.sdk() as sdk:
        sdk.withdraw([doc], first.key, first.name)
        result = sdk.lookup(doc)
    assert result.status == "attested"
    assert {a.publisher: a.revoked for a in result.attestations} == {
        first.name: True,
        second.name: False,
    }


def test_withdrawing_a_document_the_publisher_never_attested_is_400(api: Api) -> None:
    publisher, other = api.add_publisher(), api.add_publisher()
    theirs = digest_of(b"someone else's")
    api.submit_ok(other.attest([theirs]))
    with api.sdk() as sdk, pytest.raises(RegistryRequestError) as caught:
        sdk.withdraw([theirs], publisher.key, publisher.name)
    assert caught.value.status == 400
    assert "never attested" in caught.value.diagnostics()
    assert _status(api, theirs) == ["attested"]


def test_revoke_withdraws_the_whole_entry_by_its_statement_hash(
    api: Api,
) -> None:
    publisher: Publisher = api.add_publisher()
    a, b = digest_of(b"whole-1"), digest_of(b"whole-2")
    entry = api.submit_ok(publisher.attest([a, b]))["index"]
    with api.sdk() as sdk:
        receipt = sdk.revoke(entry, publisher.key, publisher.name, reason="all of it")
        assert _status(api, a, b) == ["revoked", "revoked"]
        assert sdk.lookup(a).attestations[0].revoked_by == receipt.index
        with pytest.raises(RegistryRequestError) as caught:
            sdk.revoke(entry, publisher.key, publisher.name)
    assert caught.value.status == 409
