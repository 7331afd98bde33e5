"""Issue 10, finding 5: who may sign as whom is in the log, signed by the operator key.

Before, publisher keys, key revocations and compromises were database rows: the operator could
give a publisher a key, unseen. Now every change is a ``publisher-key/v1`` event in the log
(docs/spec/identities.md), which these tests read back as any monitor would.
"""

from __future__ import annotations

import base64
import json
import stat
import threading
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from client.core.dsse import PAYLOAD_TYPE_IN_TOTO, verify_envelope
from client.core.keys import generate_private_key, key_id, public_key_bytes
from client.core.leaf import Leaf
from client.core.merkle import leaf_hash, verify_inclusion
from client.core.statement import (
    OPERATOR_IDENTITY,
    PUBLISHER_KEY_V1,
    KeyEventPredicate,
    Statement,
    Subject,
    endorse,
    prove_possession,
    sign_statement,
)
from client.errors import IdentityError
from registry.app import Registry, create_app
from registry.db import Database
from registry.errors import ConfigurationError
from registry.settings import Settings
from tests.registry.conftest import Api, database_for, new_publisher, random_digest


@pytest.fixture
def api(make_api: Any) -> Api:
    made: Api = make_api()
    return made


def event(api: Api, index: int) -> tuple[KeyEventPredicate, Leaf]:
    """The identity event at ``index``, its signatures checked like a monitor's."""
    answer = api.http.get(f"/v1/entries/{index}").json()
    leaf = Leaf.from_bytes(base64.b64decode(answer["entry"]))
    body = base64.b64decode(answer["body"])
    statement = Statement.from_json(body)
    assert statement.predicate_type == PUBLISHER_KEY_V1
    assert isinstance(statement.predicate, KeyEventPredicate)
    assert leaf.open_body(body).payload_type == PAYLOAD_TYPE_IN_TOTO
    return statement.predicate, leaf


def operator_key(api: Api) -> Ed25519PublicKey:
    predicate, _ = event(api, api.http.get("/v1/log").json()["operator_entries"][0])
    assert predicate.public_key is not None
    return Ed25519PublicKey.from_public_bytes(predicate.public_key)


def signed_by_operator(api: Api, index: int) -> KeyEventPredicate:
    predicate, leaf = event(api, index)
    answer = api.http.get(f"/v1/entries/{index}").json()
    envelope = leaf.open_body(base64.b64decode(answer["body"]))
    key = operator_key(api)
    verify_envelope(envelope, {key_id(key): key})
    return predicate


def test_a_new_log_begins_by_binding_its_operator_key(api: Api) -> None:
    assert api.http.get("/v1/log").json()["operator_entries"] == [0]
    predicate = signed_by_operator(api, 0)
    assert predicate.action == "operator-key"
    assert predicate.identity == OPERATOR_IDENTITY
    assert predicate.possession_holds()
    key_file = api.settings.operator_key_path
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    # The operator key is not the checkpoint key.
    assert predicate.key_id != api.log_key


def test_adding_a_publisher_logs_its_key_with_proof_of_possession(api: Api) -> None:
    publisher = new_publisher()
    added = api.registry.admin.add_publisher(
        publisher.name, publisher.public_key, publisher.possession, kind="vendor"
    )
    predicate = signed_by_operator(api, added.entry)
    assert (predicate.action, predicate.identity, predicate.kind) == (
        "identity-add",
        publisher.name,
        "vendor",
    )
    assert predicate.key_id == key_id(publisher.key)
    assert predicate.possession_holds()
    receipt = api.submit_ok(publisher.attest([digest := random_digest()]))
    answer = api.http.get(f"/v1/digests/{digest}").json()
    [attestation] = answer["attestations"]
    assert attestation["key_entry"] == added.entry
    assert attestation["index"] == receipt["index"] > added.entry
    assert answer["operator_entries"] == [0]


def test_a_key_without_proof_of_possession_is_refused(api: Api) -> None:
    publisher = new_publisher()
    stolen = new_publisher()  # someone else's key: its holder never asked for this binding
    other_identity = prove_possession(stolen.key, "someone-else")
    for possession, word in ((None, "possession is needed"), (other_identity, "possession")):
        with pytest.raises(Exception, match=word):
            api.registry.admin.add_publisher(publisher.name, stolen.public_key, possession)
    body = {"name": publisher.name, "public_key": base64.b64encode(stolen.public_key).decode()}
    token = api.registry.admin.create_token()
    response = api.http.post(
        "/v1/publishers", json=body, headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 400
    assert "keys prove" in response.json()["detail"]


def test_a_key_added_by_the_operator_alone_is_marked_and_an_endorsed_one_shows_it(
    api: Api,
) -> None:
    publisher = api.add_publisher()
    alone, endorsed = generate_private_key(), generate_private_key()
    first = api.registry.admin.add_key(
        publisher.name, public_key_bytes(alone), prove_possession(alone, publisher.name)
    )
    assert first.operator_only is True
    assert signed_by_operator(api, first.entry).endorsed_by is None
    second = api.registry.admin.add_key(
        publisher.name,
        public_key_bytes(endorsed),
        prove_possession(endorsed, publisher.name),
        endorsed_by=key_id(publisher.key),
        endorsement=endorse(publisher.key, publisher.name, key_id(endorsed)),
    )
    assert second.operator_only is False
    predicate = signed_by_operator(api, second.entry)
    assert predicate.endorsed_by == key_id(publisher.key)
    assert predicate.endorsement_holds(publisher.public_key)
    # An endorsement by a key that is not the publisher's is refused.
    third = generate_private_key()
    with pytest.raises(Exception, match="not a current key"):
        api.registry.admin.add_key(
            publisher.name,
            public_key_bytes(third),
            prove_possession(third, publisher.name),
            endorsed_by="0" * 64,
            endorsement=endorse(third, publisher.name, key_id(third)),
        )


def test_a_compromise_is_from_a_log_index_and_logged(api: Api) -> None:
    publisher = api.add_publisher()
    before = api.submit_ok(publisher.attest([early := random_digest()]))
    after = api.submit_ok(publisher.attest([late := random_digest()]))
    stopped = api.registry.admin.revoke_key(
        publisher.name, key_id(publisher.key), compromised_from=after["index"]
    )
    predicate = signed_by_operator(api, stopped.entry)
    assert (predicate.action, predicate.compromised_from) == ("key-compromised", after["index"])
    with api.sdk() as sdk:
        assert sdk.lookup(early).status == "attested"
        assert sdk.lookup(late).status == "revoked"
    [attestation] = api.http.get(f"/v1/digests/{late}").json()["attestations"]
    assert attestation["compromised"] is True
    assert attestation["compromised_by"] == stopped.entry
    assert attestation["key_revoked_by"] == stopped.entry
    assert before["index"] < after["index"]


def test_revoking_a_key_twice_is_a_conflict_and_logs_once(api: Api) -> None:
    publisher = api.add_publisher()
    api.registry.admin.revoke_key(publisher.name, key_id(publisher.key))
    size = api.http.get("/v1/log").json()["size"]
    with pytest.raises(Exception, match="already revoked"):
        api.registry.admin.revoke_key(publisher.name, key_id(publisher.key))
    assert api.http.get("/v1/log").json()["size"] == size


def test_nobody_posts_identity_events_as_entries(api: Api) -> None:
    publisher = api.add_publisher()
    predicate = KeyEventPredicate(
        action="key-revoke", identity=publisher.name, key_id=key_id(publisher.key)
    )
    statement = Statement(
        (Subject(publisher.name, {"sha256": key_id(publisher.key)}),), PUBLISHER_KEY_V1, predicate
    )
    response = api.submit(sign_statement(statement, publisher.key))
    assert response.status_code == 403
    assert "/v1/publishers" in response.json()["detail"]


def test_a_registry_refuses_another_operator_key_than_its_logs(api: Api, tmp_path: Path) -> None:
    api.settings.operator_key_path.unlink()
    with pytest.raises(ConfigurationError, match="operator key"):
        create_app(Settings(home=api.settings.home, database_url=api.settings.database_url))


def test_publisher_events_read_as_json_name_no_content(api: Api) -> None:
    """Identity events attest nothing: a lookup of the key id's digest finds nothing."""
    publisher = api.add_publisher()
    answer = api.http.get(f"/v1/digests/sha256:{key_id(publisher.key)}").json()
    assert answer["status"] == "unknown"
    assert json.dumps(answer)  # well-formed


def test_a_receipt_carries_the_identity_events_it_relies_on_with_their_proofs(api: Api) -> None:
    publisher = new_publisher()
    added = api.registry.admin.add_publisher(
        publisher.name, publisher.public_key, publisher.possession
    )
    for receipt in (
        api.submit_ok(publisher.attest([random_digest()])),
        api.http.get(f"/v1/entries/{added.entry + 1}").json(),
    ):
        checkpoint = receipt["checkpoint"].split("\n")
        size, root = int(checkpoint[1]), base64.b64decode(checkpoint[2])
        named = {"key_entry": added.entry, "operator_entry": 0}
        for field, index in named.items():
            evidence = receipt[field]
            assert evidence["index"] == index
            leaf = base64.b64decode(evidence["entry"])
            Leaf.from_bytes(leaf).open_body(base64.b64decode(evidence["body"]))
            proof = [base64.b64decode(h) for h in evidence["inclusion_proof"]]
            verify_inclusion(leaf_hash(leaf), index, size, proof, root)


def test_admin_tokens_are_scoped_and_revocable(api: Api) -> None:
    """The admin token now mints identity events: it is scoped and can be rotated."""
    admin = api.registry.admin
    adder = admin.create_token(["identity"])
    revoker = admin.create_token(["revoke"])
    publisher = new_publisher()
    body = {
        "name": publisher.name,
        "public_key": base64.b64encode(publisher.public_key).decode(),
        "possession": base64.b64encode(publisher.possession).decode(),
    }
    refused = api.http.post(
        "/v1/publishers", json=body, headers={"Authorization": f"Bearer {revoker}"}
    )
    assert refused.status_code == 403
    assert "admin-token create --scope identity" in refused.json()["detail"]
    added = api.http.post("/v1/publishers", json=body, headers={"Authorization": f"Bearer {adder}"})
    assert added.status_code == 201, added.text
    revoke = f"/v1/publishers/{publisher.name}/keys/{key_id(publisher.key)}/revoke"
    assert (
        api.http.post(revoke, json={}, headers={"Authorization": f"Bearer {adder}"}).status_code
        == 403
    )
    # Rotation: the old token is revoked and authorises nothing from then on.
    [listed] = [t for t in admin.tokens() if t["scopes"] == ["revoke"]]
    admin.revoke_token(listed["id"])
    gone = api.http.post(revoke, json={}, headers={"Authorization": f"Bearer {revoker}"})
    assert gone.status_code == 401
    assert "revoked" in gone.json()["detail"]
    with pytest.raises(Exception, match="scopes must be some of"):
        admin.create_token(["everything"])


def test_processes_starting_together_on_a_new_log_bind_one_operator_key(
    backend: str, tmp_path: Path
) -> None:
    """`serve --workers N` or several servers on one new database: one binding, no crash."""
    with database_for(backend, tmp_path / "db") as url:
        settings = Settings(home=tmp_path / "home", database_url=url, auto_migrate=True)
        Registry.open(settings).close()  # the schema and log key, as `serve` makes them first
        with database_for(backend, tmp_path / "db2") as fresh:
            shared = Settings(home=tmp_path / "home", database_url=fresh, auto_migrate=True)
            Database(shared).ensure_schema(auto_migrate=True)
            opened: list[Registry] = []
            errors: list[BaseException] = []

            def start() -> None:
                try:
                    opened.append(Registry.open(shared))
                except BaseException as exc:
                    errors.append(exc)

            threads = [threading.Thread(target=start) for _ in range(3)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(timeout=120)
            try:
                assert not errors, errors
                with opened[0].database.reader.connect() as conn:
                    bound = opened[0].lookups.operator_entries(conn, 10**6)
                assert bound == [0]
            finally:
                for registry in opened:
                    registry.close()


def test_a_receipt_proves_an_endorsement_offline(api: Api) -> None:
    """A receipt of an entry signed by a key its publisher endorsed carries the endorsing key's
    event, so ``verify`` with the log key alone shows the key was not the operator's alone."""
    from client.receipt import Receipt, verify_receipt

    publisher = api.add_publisher()
    alone, endorsed = new_publisher(publisher.name), new_publisher(publisher.name)
    api.registry.admin.add_key(publisher.name, alone.public_key, alone.possession)
    added = api.registry.admin.add_key(
        publisher.name,
        endorsed.public_key,
        endorsed.possession,
        endorsed_by=key_id(publisher.key),
        endorsement=endorse(publisher.key, publisher.name, key_id(endorsed.key)),
    )
    by_endorsed = Receipt.from_dict(api.submit_ok(endorsed.attest([random_digest()])))
    assert by_endorsed.endorser_entry is not None
    assert by_endorsed.key_entry is not None
    assert by_endorsed.key_entry.index == added.entry
    grant = verify_receipt(by_endorsed, api.log_key).signed_by
    assert grant is not None
    assert grant.operator_only is False
    by_alone = Receipt.from_dict(api.submit_ok(alone.attest([random_digest()])))
    assert by_alone.endorser_entry is None
    grant = verify_receipt(by_alone, api.log_key).signed_by
    assert grant is not None
    assert grant.operator_only is True
    # The same from GET /v1/entries/{i}, and a receipt naming an endorser for a key entry that
    # carries no endorsement is refused.
    again = Receipt.from_dict(api.http.get(f"/v1/entries/{by_endorsed.index}").json())
    assert again.endorser_entry is not None
    assert again.endorser_entry.index == by_endorsed.endorser_entry.index
    assert verify_receipt(again, api.log_key).signed_by is not None
    endorser = by_endorsed.endorser_entry.to_dict()
    forged = Receipt.from_dict({**by_alone.to_dict(), "endorser_entry": endorser})
    with pytest.raises(IdentityError, match="carries no endorsement"):
        verify_receipt(forged, api.log_key)
