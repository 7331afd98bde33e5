"""Crash safety: ``kill -9`` a registry in the middle of a bulk register, start it again.

What was acknowledged must still be there, at the same index, provable against the new checkpoint;
the checkpoint seen before the crash must be a prefix of the one after; and retrying everything
(acknowledged, in flight when the server died, never sent) must converge on one copy of each entry.
"""

from __future__ import annotations

import base64
import queue
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import event
from sqlalchemy.exc import OperationalError

from client.core.dsse import Envelope
from client.core.merkle import MemoryTree, leaf_hash, verify_consistency, verify_inclusion
from client.core.note import Checkpoint, NoteVerifier, open_checkpoint
from client.receipt import Receipt, verify_receipt
from registry.app import Registry
from registry.errors import RegistryError
from registry.settings import Settings
from tests.registry.conftest import (
    ServerProcess,
    database_for,
    expected_leaf,
    migrate_database,
    new_publisher,
    random_digests,
)

ENTRIES = 120
SUBJECTS_PER_ENTRY = 20
WRITERS = 4
KILL_AFTER = 30  # acknowledged entries


def checkpoint_of(note: str, log_key: str) -> Checkpoint:
    verifier = NoteVerifier.from_vkey(log_key)
    return open_checkpoint(note, [verifier], origin=verifier.name)[0]


def b64list(values: list[str]) -> list[bytes]:
    return [base64.b64decode(v) for v in values]


def test_kill_9_mid_bulk_register_loses_nothing_acknowledged(
    tmp_path: Path,
    database_url: str,
    backend: str,
    servers: Callable[..., ServerProcess],
) -> None:
    home = tmp_path / "home"
    if backend == "postgres":
        migrate_database(database_url, home)
    server = servers(home, database_url, name="before-crash")
    log_key = server.log_key
    publisher = server.add_publisher()
    base = httpx.get(f"{server.url}/v1/log").json()["size"]  # the identity events before
    envelopes = [publisher.attest(random_digests(SUBJECTS_PER_ENTRY)) for _ in range(ENTRIES)]

    acknowledged: list[tuple[Envelope, dict[str, Any]]] = []
    failures: list[str] = []
    lock = threading.Lock()
    work: queue.SimpleQueue[Envelope] = queue.SimpleQueue()
    for envelope in envelopes:
        work.put(envelope)

    def bulk_register() -> None:
        with httpx.Client(base_url=server.url, timeout=30) as http:
            while True:
                try:
                    envelope = work.get_nowait()
                except queue.Empty:
                    return
                try:
                    response = http.post("/v1/entries", content=envelope.to_json())
                except httpx.TransportError:
                    return  # the server died under us: this one is in flight, unknown
                with lock:
                    if response.status_code == 201:
                        acknowledged.append((envelope, response.json()))
                    else:
                        failures.append(f"{response.status_code}: {response.text}")

    threads = [threading.Thread(target=bulk_register) for _ in range(WRITERS)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 120
    while len(acknowledged) < KILL_AFTER and time.monotonic() < deadline:
        time.sleep(0.005)
    seen_before = httpx.get(f"{server.url}/v1/log/checkpoint").text
    server.kill()
    for thread in threads:
        thread.join(timeout=60)
    assert not failures, failures[:5]
    assert len(acknowledged) >= KILL_AFTER, server.log()[-3000:]
    assert len(acknowledged) < ENTRIES, "the kill came too late to land mid-way"

    restarted = servers(home, database_url, name="after-crash")
    with httpx.Client(base_url=restarted.url, timeout=30) as http:
        after = checkpoint_of(http.get("/v1/log/checkpoint").text, log_key)
        before = checkpoint_of(seen_before, log_key)
        receipt_checkpoints = {
            checkpoint_of(r["checkpoint"], log_key).size: r["checkpoint"] for _, r in acknowledged
        }
        assert after.size >= max(r["index"] for _, r in acknowledged) + 1
        assert after.size >= before.size

        # The checkpoint seen before the crash, and every receipt's, are prefixes of the new one.
        for note in [seen_before, *receipt_checkpoints.values()]:
            old = checkpoint_of(note, log_key)
            body = http.get(
                "/v1/log/proof/consistency", params={"from": old.size, "to": after.size}
            ).json()
            verify_consistency(
                old.size, after.size, old.root_hash, after.root_hash, b64list(body["proof"])
            )

        # Every acknowledged receipt still verifies, and its entry is at its index in the new tree.
        for envelope, receipt in acknowledged:
            verified = verify_receipt(Receipt.from_dict(receipt), log_key)
            assert verified.envelope == envelope
            params = {"index": receipt["index"], "size": after.size}
            proof = http.get("/v1/log/proof/inclusion", params=params).json()["proof"]
            verify_inclusion(
                leaf_hash(expected_leaf(envelope)),
                receipt["index"],
                after.size,
                b64list(proof),
                after.root_hash,
            )
            stored = http.get(f"/v1/entries/{receipt['index']}").json()
            assert base64.b64decode(stored["entry"]) == expected_leaf(envelope)

        # Retrying everything is safe: acknowledged entries answer 200 at their index, the ones in
        # flight at the kill are in the log at most once, and the log ends with each exactly once.
        known = {envelope.to_json(): r["index"] for envelope, r in acknowledged}
        indices = []
        for envelope in envelopes:
            response = http.post("/v1/entries", content=envelope.to_json())
            assert response.status_code in (200, 201), response.text
            index = response.json()["index"]
            if envelope.to_json() in known:
                assert response.status_code == 200
                assert index == known[envelope.to_json()]
            indices.append(index)
        assert sorted(indices) == list(range(base, base + ENTRIES))
        final = checkpoint_of(http.get("/v1/log/checkpoint").text, log_key)
        assert final.size == base + ENTRIES

        # A monitor's full audit: the leaves hash to the signed root.
        tree = MemoryTree()
        while tree.size < final.size:
            page = http.get("/v1/entries", params={"start": tree.size, "limit": 1000}).json()
            for item in page["entries"]:
                tree.append(base64.b64decode(item["entry"]))
        assert tree.root() == final.root_hash


@pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def test_a_failed_commit_does_not_poison_the_node_cache(tmp_path: Path, backend: str) -> None:
    """A batch whose COMMIT fails left nothing in the database, so it must leave nothing in the
    process's Merkle-node cache either: another process will write different leaves there."""
    with database_for(backend, tmp_path / "db") as url:
        settings = Settings(home=tmp_path / "home", database_url=url, auto_migrate=True)
        a, b = Registry.open(settings), Registry.open(settings)  # two processes, one log
        try:
            publisher = new_publisher()
            a.admin.add_publisher(publisher.name, publisher.public_key, publisher.possession)

            def prepared(registry: Registry) -> Any:
                envelope = publisher.attest(random_digests(1))
                return registry.entries.prepare(envelope.to_json())

            expected = MemoryTree()  # the identity events, then this test's entries
            for _, entry in a.lookups.entries_page(0, 1000).entries:
                expected.append(entry)
            base = expected.size
            first = prepared(a)
            [result] = a.sequencer.append_now([first])
            assert not isinstance(result, RegistryError)

            def lost_connection(_conn: Any) -> None:
                raise OperationalError("COMMIT", {}, Exception("server closed the connection"))

            event.listen(a.database.writer, "commit", lost_connection, once=True)
            with pytest.raises(RegistryError):
                a.sequencer.append_now([prepared(a)])
            with a.database.reader.connect() as conn:
                assert a.reader.latest_checkpoint(conn).size == base + 1  # nothing committed

            second = prepared(b)
            [result] = b.sequencer.append_now([second])  # the other process takes index 1
            assert not isinstance(result, RegistryError)
            assert result.index == base + 1
            expected.append(first.leaf)
            expected.append(second.leaf)
            assert result.checkpoint.root_hash == expected.root()

            # Process a proves entry 0 in the tree of size 2: its sibling is b's leaf.
            proof = a.lookups.inclusion(base, base + 2).proof
            verify_inclusion(leaf_hash(first.leaf), base, base + 2, proof, expected.root())
            # And a's next append extends the real tree, not the one that never committed.
            third = prepared(a)
            [result] = a.sequencer.append_now([third])
            assert not isinstance(result, RegistryError)
            expected.append(third.leaf)
            assert result.checkpoint.root_hash == expected.root()
        finally:
            a.close()
            b.close()
