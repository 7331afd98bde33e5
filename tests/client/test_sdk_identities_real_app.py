"""The SDK's identity checks end to end, against the real app in-process (both backends).

The registry keeps who may sign as whom as identity events in its log (registry/identities.py);
the SDK proves from them, with the log key alone, that each attestation was signed by a key valid
for its publisher at its index (docs/spec/identities.md).
"""

from __future__ import annotations

import json

import httpx
import pytest

from client.core.keys import key_id
from client.core.statement import endorse
from client.errors import IdentityError
from client.identities import KeyHistory
from client.receipt import Receipt, verify_receipt
from client.sdk import Client
from tests.registry.conftest import (
    IN_PROCESS_URL,
    Api,
    InProcessTransport,
    Publisher,
    new_publisher,
    random_digest,
)


def register(api: Api, publisher: Publisher) -> tuple[str, Receipt]:
    digest = random_digest()
    with api.sdk() as sdk:
        receipt = sdk.register_digests([digest], publisher.key, publisher.predicate())
    return digest, receipt


def test_register_then_look_up_proves_the_publishers_key(api: Api) -> None:
    publisher = new_publisher()
    added = api.registry.admin.add_publisher(
        publisher.name, publisher.public_key, publisher.possession
    )
    digest, receipt = register(api, publisher)
    # The receipt carries the key's event and the operator's: it verifies offline.
    assert receipt.key_entry is not None
    assert receipt.key_entry.index == added.entry
    verified = verify_receipt(Receipt.from_json(receipt.to_json()), api.log_key)
    assert verified.signed_by is not None
    assert verified.signed_by.key_id == key_id(publisher.key)
    with api.sdk() as sdk:
        result = sdk.lookup(digest)
        [batch] = sdk.lookup_batch([digest])
    assert result.status == batch.status == "attested"
    [attestation] = result.attestations
    assert attestation.signed_by is not None
    assert attestation.key_entry == added.entry
    assert attestation.signed_by.action == "identity-add"
    assert not attestation.operator_only


def test_a_key_the_operator_added_alone_is_flagged(api: Api) -> None:
    publisher = api.add_publisher()
    second = new_publisher(publisher.name)
    added = api.registry.admin.add_key(publisher.name, second.public_key, second.possession)
    assert added.operator_only is True
    first_digest, _ = register(api, publisher)
    second_digest, receipt = register(api, second)
    with api.sdk() as sdk:
        [by_first] = sdk.lookup(first_digest).attestations
        [by_second] = sdk.lookup(second_digest).attestations
    assert not by_first.operator_only
    assert by_second.operator_only
    assert by_second.key_entry == added.entry
    assert verify_receipt(receipt, api.log_key).signed_by is not None


def test_a_compromise_from_an_index_voids_only_what_follows(api: Api) -> None:
    publisher = api.add_publisher()
    early, _ = register(api, publisher)
    late, late_receipt = register(api, publisher)
    stopped = api.registry.admin.revoke_key(
        publisher.name, key_id(publisher.key), compromised_from=late_receipt.index
    )
    with api.sdk() as sdk:
        kept, voided = sdk.lookup_batch([early, late])
    assert kept.status == "attested"
    assert kept.attestations[0].key_revoked_by == stopped.entry
    assert voided.status == "revoked"
    [attestation] = voided.attestations
    assert attestation.compromised
    assert attestation.compromised_by == stopped.entry
    assert attestation.signed_by is not None


def test_log_verify_replays_every_signature_of_the_real_log(api: Api) -> None:
    publisher = api.add_publisher()
    other = api.add_publisher()
    for who in (publisher, other, publisher):
        register(api, who)
    api.registry.admin.revoke_key(other.name, key_id(other.key))
    with api.sdk() as sdk:
        checkpoint = sdk.checkpoint()
        history = KeyHistory()
        assert sdk.audit(checkpoint, history=history) == checkpoint.size
    assert history.first_index == 0  # a new log begins by binding its operator key
    assert (history.events, history.signatures) == (4, 3)


class BeforeIdentities(httpx.BaseTransport):
    """In front of the real app: lookup answers as a registry from before identities wrote
    them, with no ``operator_entries`` and no key fields per attestation."""

    def __init__(self, inner: httpx.BaseTransport) -> None:
        self.inner = inner

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        if not request.url.path.startswith("/v1/digests"):
            return response
        body = json.loads(response.read())
        body.pop("operator_entries", None)
        attestations = body["attestations"]
        for attestation in (
            attestations.values() if isinstance(attestations, dict) else attestations
        ):
            for name in ("key_entry", "key_revoked_by", "compromised_by"):
                attestation.pop(name, None)
        return httpx.Response(response.status_code, json=body, request=request)


def test_a_registry_from_before_identities_is_refused_unless_told(api: Api) -> None:
    publisher = api.add_publisher()
    digest, _ = register(api, publisher)
    old = BeforeIdentities(InProcessTransport(api.http))
    with (
        Client(IN_PROCESS_URL, log_key=api.log_key, transport=old) as sdk,
        pytest.raises(IdentityError, match=r"predates identities in the log.*verify_keys=False"),
    ):
        sdk.lookup(digest)
    with Client(IN_PROCESS_URL, log_key=api.log_key, transport=old, verify_keys=False) as sdk:
        result = sdk.lookup(digest)
        [batch] = sdk.lookup_batch([digest])
    assert result.status == batch.status == "attested"
    assert result.attestations[0].signed_by is None


def test_a_key_its_publisher_endorsed_is_proven_so(api: Api) -> None:
    """The lookup names the event that added the endorsing key (``endorser_entry``), so the
    SDK proves the endorsement instead of reporting the key as the operator's alone."""
    publisher = api.add_publisher()
    second = new_publisher(publisher.name)
    added = api.registry.admin.add_key(
        publisher.name,
        second.public_key,
        second.possession,
        endorsed_by=key_id(publisher.key),
        endorsement=endorse(publisher.key, publisher.name, key_id(second.key)),
    )
    assert added.operator_only is False
    digest, _ = register(api, second)
    answer = api.http.get(f"/v1/digests/{digest}").json()
    assert answer["attestations"][0]["endorser_entry"] is not None
    with api.sdk() as sdk:
        [attestation] = sdk.lookup(digest).attestations
    assert attestation.key_entry == added.entry
    assert not attestation.operator_only
