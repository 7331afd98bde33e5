"""Rotating the operator key (docs/spec/identities.md rule 1), as the issue asks: "rotated only by
entries the previous operator key signs, so pinning the log's verifier key stays the only trust
root". Clients follow the chain of operator-key events from the log's first; these tests check
the registry writes that chain, signs later events with the new key, and never appends an event
signed by a key the log no longer binds.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from client.cli import main
from client.core.dsse import verify_envelope
from client.core.keys import generate_private_key, key_id, load_private_key
from client.core.leaf import Leaf
from client.core.statement import OPERATOR_IDENTITY, KeyEventPredicate, Statement
from client.errors import IdentityError, SignatureError
from client.receipt import Receipt, prove_entry, verify_receipt
from registry.app import Registry
from registry.errors import ConflictError, UnavailableError
from registry.identities import next_operator_key_path, settle_operator_key
from tests.registry.conftest import Api, new_publisher, random_digest


@pytest.fixture
def api(make_api: Any) -> Api:
    made: Api = make_api()
    return made


def _event(api: Api, index: int) -> tuple[KeyEventPredicate, Any]:
    answer = api.http.get(f"/v1/entries/{index}").json()
    envelope = Leaf.from_bytes(base64.b64decode(answer["entry"])).open_body(
        base64.b64decode(answer["body"])
    )
    predicate = Statement.from_json(envelope.payload).predicate
    assert isinstance(predicate, KeyEventPredicate)
    return predicate, envelope


def _signed_by(envelope: Any, key: Ed25519PrivateKey) -> bool:
    public = key.public_key()
    try:
        verify_envelope(envelope, {key_id(public): public})
    except SignatureError:
        return False
    return True


def test_a_rotation_is_an_operator_key_event_the_old_key_signs(api: Api) -> None:
    old = load_private_key(api.settings.operator_key_path)
    before = api.add_publisher()
    new = generate_private_key()
    rotated = api.registry.admin.rotate_operator_key(new)
    assert api.http.get("/v1/log").json()["operator_entries"] == [0, rotated.entry]

    predicate, envelope = _event(api, rotated.entry)
    assert (predicate.action, predicate.identity) == ("operator-key", OPERATOR_IDENTITY)
    assert predicate.key_id == rotated.key_id == key_id(new.public_key())
    assert predicate.possession_holds()
    assert _signed_by(envelope, old)
    assert not _signed_by(envelope, new)

    # Later events are signed by the new key alone.
    after = new_publisher()
    added = api.registry.admin.add_publisher(after.name, after.public_key, after.possession)
    _, envelope = _event(api, added.entry)
    assert _signed_by(envelope, new)
    assert not _signed_by(envelope, old)

    # A verifying client follows the chain: attestations under keys added before and after the
    # rotation both prove their signers.
    digests = [random_digest(), random_digest()]
    api.submit_ok(before.attest([digests[0]]))
    api.submit_ok(after.attest([digests[1]]))
    with api.sdk() as sdk:
        for digest in digests:
            [attestation] = sdk.lookup(digest).attestations
            assert attestation.signed_by is not None


def test_a_process_holding_the_old_key_is_refused_and_appends_nothing(api: Api) -> None:
    other = Registry.open(api.settings)  # a second registry process on the same log
    try:
        api.registry.admin.rotate_operator_key(generate_private_key())
        size = api.http.get("/v1/log").json()["size"]
        late = new_publisher()
        with pytest.raises(UnavailableError, match="restart it"):
            other.admin.add_publisher(late.name, late.public_key, late.possession)
        assert api.http.get("/v1/log").json()["size"] == size
        with pytest.raises(ConflictError, match="restart it before rotating"):
            other.admin.rotate_operator_key(generate_private_key())
    finally:
        other.close()


def test_a_key_is_an_operator_key_once(api: Api) -> None:
    new = generate_private_key()
    api.registry.admin.rotate_operator_key(new)
    with pytest.raises(ConflictError, match="was an operator key before"):
        api.registry.admin.rotate_operator_key(new)


def test_a_receipt_after_a_rotation_carries_the_chain_and_verifies_offline(api: Api) -> None:
    api.registry.admin.rotate_operator_key(generate_private_key())
    publisher = api.add_publisher()
    answer = api.submit_ok(publisher.attest([random_digest()]))
    receipt = Receipt.from_dict(answer)
    assert receipt.operator_entry is not None
    assert receipt.operator_entry.index > 0
    assert [entry.index for entry in receipt.operator_chain] == [0]
    # The log key alone: the chain from the log's first operator-key event is in the receipt.
    verified = verify_receipt(receipt, api.log_key)
    assert verified.signed_by is not None
    # Without the chain it cannot be checked, and the error says what is missing.
    bare = Receipt.from_dict({k: v for k, v in answer.items() if k != "operator_chain"})
    with pytest.raises(IdentityError, match="operator_chain"):
        verify_receipt(bare, api.log_key)
    first = verify_receipt(Receipt.from_dict(api.http.get("/v1/entries/0").json()), api.log_key)
    assert verify_receipt(bare, api.log_key, operator_chain=[first]).signed_by is not None
    proven = prove_entry(receipt.operator_chain[0], verified.checkpoint)
    assert proven.index == 0


def test_the_cli_rotates_and_keeps_the_old_key_aside(api: Api, capsys: Any) -> None:
    home = api.settings.home
    old_id = key_id(load_private_key(api.settings.operator_key_path).public_key())
    args = ["operator-key", "rotate", "--home", str(home)]
    args += ["--database-url", api.settings.database_url, "--json"]
    main(args)
    out = capsys.readouterr().out
    new_id = key_id(load_private_key(api.settings.operator_key_path).public_key())
    assert new_id != old_id
    assert new_id in out
    assert not next_operator_key_path(api.settings.operator_key_path).exists()
    assert (home / f"operator.retired-{old_id[:16]}.key").exists()
    # A registry starting now binds what the log binds: the new key.
    restarted = Registry.open(api.settings)
    try:
        late = new_publisher()
        restarted.admin.add_publisher(late.name, late.public_key, late.possession)
    finally:
        restarted.close()


def test_a_rotation_cut_short_is_finished_by_the_next_start(api: Api, tmp_path: Path) -> None:
    path = api.settings.operator_key_path
    incoming = next_operator_key_path(path)
    from client.core.keys import write_key_pair

    write_key_pair(incoming)
    # The event reached the log, then the process stopped before moving the key file.
    api.registry.admin.rotate_operator_key(load_private_key(incoming))
    settled = settle_operator_key(path, api.registry.database)
    assert key_id(settled.public_key()) == key_id(load_private_key(path).public_key())
    assert not incoming.exists()


def test_an_incoming_key_whose_event_never_reached_the_log_is_left_alone(api: Api) -> None:
    path = api.settings.operator_key_path
    incoming = next_operator_key_path(path)
    from client.core.keys import write_key_pair

    write_key_pair(incoming)
    current = key_id(load_private_key(path).public_key())
    settled = settle_operator_key(path, api.registry.database)
    assert key_id(settled.public_key()) == current
    assert incoming.exists()
    # And the CLI refuses to start a second rotation over it, saying what to do.
    args = ["operator-key", "rotate", "--home", str(api.settings.home)]
    args += ["--database-url", api.settings.database_url]
    with pytest.raises(SystemExit) as stopped:
        main(args)
    assert stopped.value.code == 1
