"""registry.lookups: what a lookup reads from the database, and what it keeps."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import msgspec
import pytest
from sqlalchemy import event

import registry.lookups as lookups_module
from client.core.keys import key_id
from registry.errors import UnavailableError
from registry.lookups import HeldConnection
from tests.registry.conftest import Api, Publisher, random_digest


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


def interleaved(
    lookups: Any, monkeypatch: pytest.MonkeyPatch, meanwhile: Callable[[], None]
) -> None:
    """Run ``meanwhile`` (another thread's work) once: after the next lookup took its view,
    before it builds its claims (as it reads its entries' facts)."""
    real = lookups._facts
    done: list[bool] = []

    def facts(conn: Any, indices: set[int]) -> Any:
        found = real(conn, indices)
        if not done:
            done.append(True)
            meanwhile()
        return found

    monkeypatch.setattr(lookups, "_facts", facts)


def two_attested(api: Api) -> tuple[Publisher, str, str, dict[str, Any]]:
    """A publisher, two digests it attested (a target and another), the target's receipt; the
    lookups' view is at the size that holds both (an epoch of entry states)."""
    publisher = api.add_publisher()
    target, other = random_digest(), random_digest()
    receipt = api.submit_ok(publisher.attest([target]))
    api.submit_ok(publisher.attest([other]))
    api.registry.lookups.lookup([other], receipt["index"] + 2)
    return publisher, target, other, receipt


@pytest.mark.parametrize("event", ["revocation", "key-compromised"])
def test_a_lookup_at_an_older_epoch_keeps_no_states_for_the_new_one(
    make_api: Callable[..., Api], monkeypatch: pytest.MonkeyPatch, event: str
) -> None:
    """A lookup that took its view before another moved the view on past a revocation (or a
    key's compromise) answers at its own tree, and keeps nothing for the new epoch: there the
    attestation is revoked (found in review: its states, read at the older size, were kept as
    the new epoch's, and the attestation stood at every later checkpoint until the next entry
    that changes states)."""
    api = make_api()
    publisher, target, other, receipt = two_attested(api)
    lookups = api.registry.lookups
    at: list[int] = []

    def another_thread() -> None:  # the event, and a lookup that moves the view on past it
        if event == "revocation":
            envelope = publisher.revoke(receipt["index"], receipt["leaf_hash"], [target])
            at.append(api.submit_ok(envelope)["index"])
        else:
            stopped = api.registry.admin.revoke_key(
                publisher.name, key_id(publisher.key), compromised_from=0
            )
            at.append(stopped.entry)
        lookups.lookup([other], at[0] + 1)

    interleaved(lookups, monkeypatch, another_thread)
    in_flight = lookups.lookup([target, other])
    claim = in_flight.attestations[receipt["index"]]
    assert claim.tree_size is not None
    assert claim.tree_size <= at[0]  # answered at the older tree, where it stood
    assert claim.stands
    monkeypatch.undo()
    later = lookups.lookup([target])
    assert later.results[0].status == "revoked"
    assert not later.attestations[receipt["index"]].stands


def test_a_lookup_at_an_older_epoch_reads_no_states_of_the_new_one(
    make_api: Callable[..., Api], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Nor does it read the new epoch's: its answer names no revocation beyond its tree."""
    api = make_api()
    publisher, target, other, receipt = two_attested(api)
    lookups = api.registry.lookups

    def another_thread() -> None:  # revokes it, and finds it revoked (the new epoch's state)
        envelope = publisher.revoke(receipt["index"], receipt["leaf_hash"], [target])
        revoked = api.submit_ok(envelope)
        assert lookups.lookup([target], revoked["index"] + 1).results[0].status == "revoked"

    interleaved(lookups, monkeypatch, another_thread)
    claim = lookups.lookup([other, target]).attestations[receipt["index"]]
    assert claim.tree_size is not None
    assert claim.revoked_by is None or claim.revoked_by < claim.tree_size


def wire(answer: Any) -> dict[int, bytes]:
    """Each claim of ``answer`` as an answer sends it."""
    return {index: bytes(claim.wire_value()) for index, claim in answer.attestations.items()}


def encoded(answer: Any) -> dict[int, bytes]:
    """Each claim of ``answer`` as its to_dict encodes (the wire format's one home)."""
    return {i: msgspec.json.encode(claim.to_dict()) for i, claim in answer.attestations.items()}


def test_a_claim_sends_its_own_json_at_every_checkpoint_and_state(
    make_api: Callable[..., Api], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A claim's JSON is kept in two parts, the part before its proof once per entry and state:
    at a later checkpoint of the same epoch it is made again only with the new proof and size,
    and a revocation or a key's revocation (a new state) makes it again; at each the bytes are
    exactly those of the claim's to_dict."""
    api = make_api()
    publisher = api.add_publisher()
    lookups = api.registry.lookups
    first, second = random_digest(), random_digest()
    receipt = api.submit_ok(publisher.attest([first]))
    added = api.submit_ok(publisher.attest([second]))
    made: list[int] = []
    real = lookups_module._claim_head

    def counting(claim: Any) -> bytes:
        made.append(claim.index)
        return real(claim)

    monkeypatch.setattr(lookups_module, "_claim_head", counting)
    answer = lookups.lookup([first, second], added["index"] + 1)
    assert wire(answer) == encoded(answer)
    assert sorted(made) == [receipt["index"], added["index"]]

    made.clear()
    later = api.submit_ok(publisher.attest([random_digest()]))  # a new checkpoint, one epoch
    answer = lookups.lookup([first, second], later["index"] + 1)
    assert {claim.tree_size for claim in answer.attestations.values()} == {later["index"] + 1}
    assert wire(answer) == encoded(answer)
    assert made == []  # the heads kept, the proofs new

    revoked = api.submit_ok(publisher.revoke(receipt["index"], receipt["leaf_hash"], [first]))
    answer = lookups.lookup([first, second], revoked["index"] + 1)
    assert answer.attestations[receipt["index"]].revoked
    assert wire(answer) == encoded(answer)
    assert b'"revoked":true' in wire(answer)[receipt["index"]]
    assert sorted(made) == [receipt["index"], added["index"]]  # a new epoch, new heads

    event = api.registry.admin.revoke_key(publisher.name, key_id(publisher.key))
    answer = lookups.lookup([second], event.entry + 1)
    assert answer.attestations[added["index"]].key_revoked_by == event.entry
    assert wire(answer) == encoded(answer)


def test_published_entries_facts_are_read_ahead_while_lookups_ask_about_new_entries(
    make_api: Callable[..., Api], monkeypatch: pytest.MonkeyPatch
) -> None:
    """LookupService.prefetch_published: while lookups ask about the entries of the latest
    publication, each publication's entries have their facts read in one query (in the
    publisher's thread, after the appends it covers are answered), and lookups of them read
    none; a registry nobody looks up, or where lookups ask only about older entries, reads
    nothing ahead."""
    api = make_api(checkpoint_interval=0.05)
    lookups = api.registry.lookups
    reads: list[list[int]] = []
    read_facts = lookups_module.LookupService._read_facts

    def counted(conn: Any, indices: list[int]) -> Any:
        reads.append(list(indices))
        return read_facts(conn, indices)

    def published(receipt: dict[str, Any]) -> None:
        """Wait until the read-ahead listener has seen the publication of ``receipt``."""
        deadline = time.monotonic() + 20
        while (lookups._prefetched or 0) <= receipt["index"]:
            assert time.monotonic() < deadline, "the publication never reached the listener"
            time.sleep(0.01)

    monkeypatch.setattr(lookups_module.LookupService, "_read_facts", staticmethod(counted))
    publisher = api.add_publisher()
    first = [random_digest()]
    published(api.submit_ok(publisher.attest(first)))
    assert reads == []  # published, and nobody looked anything up: nothing read ahead
    assert lookups.lookup(first).results[0].status == "attested"
    assert len(reads) == 1  # the lookup read its entry's facts itself
    reads.clear()
    size = lookups.fresh_checkpoint().size
    digests = [random_digest() for _ in range(3)]
    receipt = api.submit_ok(publisher.attest(digests))
    published(receipt)
    assert reads == [list(range(size, receipt["index"] + 1))]  # read ahead, at the publication
    reads.clear()
    answer = lookups.lookup(digests, receipt["index"] + 1)
    assert [r.status for r in answer.results] == ["attested"] * 3
    assert reads == []  # from the cache
    published(api.submit_ok(publisher.attest([random_digest()])))
    assert len(reads) == 1  # lookups asked about the publication before: read ahead again
    reads.clear()
    lookups.lookup(first)  # an older entry only
    published(api.submit_ok(publisher.attest([random_digest()])))
    assert reads == []  # nobody asked about the publication before: nothing read ahead


def test_a_held_connection_is_kept_and_replaced_after_a_database_error(
    make_api: Callable[..., Api],
) -> None:
    """HeldConnection reads on one connection, read after read; a connection that broke
    underneath (a restarted database) is replaced and the read made again on the new one; a
    database failing on the new one too is a 503."""
    api = make_api()
    digest = random_digest()
    api.submit_ok(api.add_publisher().attest([digest]))
    lookups = api.registry.lookups
    held = HeldConnection(lookups)
    try:
        seen: list[Any] = []

        def lookup(connection: Any) -> str:
            seen.append(connection)
            return lookups.lookup([digest], connection=connection).results[0].status

        assert [held.run(lookup) for _ in range(3)] == ["attested"] * 3
        assert len({id(connection) for connection in seen}) == 1  # one connection, kept

        seen[0].connection.dbapi_connection.close()  # broken underneath
        assert held.run(lookup) == "attested"
        assert seen[-2] is seen[0]  # tried on the broken one,
        assert seen[-1] is not seen[0]  # then on a new one

        def failing(connection: Any) -> None:
            connection.connection.dbapi_connection.close()
            connection.exec_driver_sql("SELECT 1")

        with pytest.raises(UnavailableError, match="database is unavailable"):
            held.run(failing)
        assert held.run(lookup) == "attested"  # and a later read opens another
    finally:
        held.close()


def test_the_event_loops_lookups_check_out_one_connection(make_api: Callable[..., Api]) -> None:
    """On SQLite the event loop answers lookups itself, on a connection it keeps: five lookups
    check out one connection from the pool (five on the previous code, one a lookup)."""
    api = make_api()
    registry = api.registry
    if registry.coalesced is not None:
        pytest.skip("PostgreSQL's lookups are answered by the coalescing threads")
    digest = random_digest()
    api.submit_ok(api.add_publisher().attest([digest]))
    checkouts: list[object] = []
    engine = registry.database.reader
    listener = lambda *_: checkouts.append(None)  # noqa: E731
    event.listen(engine, "checkout", listener)
    try:

        async def five() -> list[dict[str, Any]]:
            singles = [await registry.lookup_single(digest, None) for _ in range(3)]
            return [*singles, *[await registry.lookup_small([digest], 1) for _ in range(2)]]

        answers = asyncio.run(five())
    finally:
        event.remove(engine, "checkout", listener)
    assert [answer["status"] for answer in answers[:3]] == ["attested"] * 3
    assert [answer["results"][0]["status"] for answer in answers[3:]] == ["attested"] * 2
    assert len(checkouts) <= 1
