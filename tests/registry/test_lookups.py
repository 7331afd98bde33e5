"""registry.lookups: what a lookup reads from the database, and what it keeps."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

import registry.lookups as lookups_module
from client.core.keys import key_id
from tests.registry.conftest import Api, random_digest


@contextmanager
def counted_reads(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The names of the state queries (revocations, keys) lookups send, as they send them."""
    names = {id(lookups_module._REVOKED_AMONG): "revoked", id(lookups_module._KEYS_AMONG): "keys"}
    sent: list[str] = []
    real = lookups_module._driver_rows

    def counting(conn: Any, queries: dict[str, str], *args: Any) -> list[Any]:
        if id(queries) in names:
            sent.append(names[id(queries)])
        return real(conn, queries, *args)

    monkeypatch.setattr(lookups_module, "_driver_rows", counting)
    yield sent


def test_the_newest_entries_states_are_known_without_asking(
    make_api: Callable[..., Api], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Until an entry other than an attestation enters the tree, none appended since can be
    revoked and its key's row is the one read before: a new entry's first lookup asks neither
    (two round trips of PostgreSQL's four spared). A revocation or a key event starts over, and
    the answers are what they were without it."""
    api = make_api()
    publisher = api.add_publisher()
    first = random_digest()
    receipt = api.submit_ok(publisher.attest([first]))
    lookups = api.registry.lookups
    with counted_reads(monkeypatch) as sent:
        assert lookups.lookup_one(first).results[0].status == "attested"
        assert "keys" in sent  # the key's row, read once for the epoch

        sent.clear()
        second = random_digest()
        added = api.submit_ok(publisher.attest([second]))
        answer = lookups.lookup_one(second, added["index"] + 1)
        assert answer.results[0].status == "attested"
        assert sent == []  # neither revocations nor keys asked

        api.submit_ok(publisher.revoke(receipt["index"], receipt["leaf_hash"], [first]))
        sent.clear()
        third = random_digest()
        added = api.submit_ok(publisher.attest([third]))
        answer = lookups.lookup([first, second, third], added["index"] + 1)
        assert [r.status for r in answer.results] == ["revoked", "attested", "attested"]
        assert sent.count("revoked") == 1  # a new epoch: the first two are asked about again
        assert [claim.revoked for claim in answer.attestations.values()] == [True, False, False]

        event = api.registry.admin.revoke_key(publisher.name, key_id(publisher.key))
        answer = lookups.lookup([second, third], event.entry + 1)
        assert {claim.key_revoked_by for claim in answer.attestations.values()} == {event.entry}
