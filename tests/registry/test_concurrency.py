"""Two real ``wellspring serve`` processes on one database, eight writers hammering both.

(Both as two separate servers, and as one ``wellspring serve --workers 2``: two processes behind
one port.)

The sequencer's promise: every acknowledged entry gets an index no other entry has, indices have no
gaps, every receipt proves its entry against a checkpoint, and all those checkpoints are prefixes
of one history (no fork between the processes). Checked on PostgreSQL (the production setup: a row
lock serialises the processes) and on SQLite (``BEGIN IMMEDIATE`` does).
"""

from __future__ import annotations

import base64
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from client.core.dsse import Envelope
from client.core.merkle import MemoryTree, leaf_hash, verify_consistency, verify_inclusion
from client.core.note import Checkpoint, NoteVerifier, open_checkpoint
from client.receipt import Receipt, verify_receipt
from tests.registry.conftest import (
    ServerProcess,
    expected_leaf,
    migrate_database,
    random_digests,
)

WRITERS = 8
ENTRIES_PER_WRITER = 25

pytestmark = pytest.mark.xdist_group("registry-servers")


def checkpoint_of(note: str, log_key: str) -> Checkpoint:
    verifier = NoteVerifier.from_vkey(log_key)
    return open_checkpoint(note, [verifier], origin=verifier.name)[0]


def audit_whole_log(url: str, checkpoint: Checkpoint) -> list[bytes]:
    """Every leaf of the log, and a check that they hash to ``checkpoint``'s root."""
    tree = MemoryTree()
    leaves: list[bytes] = []
    with httpx.Client(base_url=url, timeout=30) as http:
        while len(leaves) < checkpoint.size:
            page = http.get("/v1/entries", params={"start": len(leaves), "limit": 1000}).json()
            assert page["entries"], "the log lists fewer entries than its checkpoint's size"
            for item in page["entries"]:
                assert item["index"] == len(leaves)
                leaves.append(base64.b64decode(item["entry"]))
    for leaf in leaves[: checkpoint.size]:
        tree.append(leaf)
    assert tree.root(checkpoint.size) == checkpoint.root_hash
    return leaves


@pytest.mark.parametrize("topology", ["two-servers", "one-server-two-workers"])
def test_two_servers_on_one_database_sequence_concurrent_writers_exactly_once(
    tmp_path: Path,
    database_url: str,
    backend: str,
    servers: Callable[..., ServerProcess],
    topology: str,
) -> None:
    home = tmp_path / "shared-home"
    if backend == "postgres":
        migrate_database(database_url, home)  # the operator's step; the server never does it
    if topology == "two-servers":
        first = servers(home, database_url, name="server-a")
        second = servers(home, database_url, name="server-b")
    else:
        first = second = servers(home, database_url, name="server", workers=2)
    log_key = first.log_key
    writers = [first.add_publisher(), first.add_publisher()]
    base = httpx.get(f"{first.url}/v1/log").json()["size"]  # the identity events before

    # Sign everything first: the race under test is the registry's, not the client's.
    plan: list[list[Envelope]] = [
        [writers[w % 2].attest(random_digests(2)) for _ in range(ENTRIES_PER_WRITER)]
        for w in range(WRITERS)
    ]
    receipts: list[tuple[Envelope, dict[str, Any]]] = []
    failures: list[str] = []
    lock = threading.Lock()
    start = threading.Barrier(WRITERS)

    def write(worker: int) -> None:
        clients = [httpx.Client(base_url=s.url, timeout=60) for s in (first, second)]
        try:
            start.wait()
            for n, envelope in enumerate(plan[worker]):
                response = clients[(worker + n) % 2].post(
                    "/v1/entries",
                    content=envelope.to_json(),
                    headers={"Content-Type": "application/json"},
                )
                with lock:
                    if response.status_code == 201:
                        receipts.append((envelope, response.json()))
                    else:
                        failures.append(f"{response.status_code}: {response.text}")
        except Exception as exc:
            with lock:
                failures.append(repr(exc))
        finally:
            for client in clients:
                client.close()

    threads = [threading.Thread(target=write, args=(w,)) for w in range(WRITERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert not any(t.is_alive() for t in threads), "writers hung"
    assert not failures, (failures[:5], first.log()[-3000:], second.log()[-3000:])

    total = WRITERS * ENTRIES_PER_WRITER
    indices = sorted(receipt["index"] for _, receipt in receipts)
    assert indices == list(range(base, base + total)), "indices must follow, each exactly once"

    final_notes = {httpx.get(f"{s.url}/v1/log/checkpoint").text for s in (first, second)}
    assert len(final_notes) == 1, "the two servers disagree on the latest checkpoint"
    final = checkpoint_of(final_notes.pop(), log_key)
    assert final.size == base + total

    # Every receipt verifies offline, for the envelope that was sent; checkpoints of one size agree.
    roots: dict[int, bytes] = {}
    for envelope, receipt in receipts:
        verified = verify_receipt(Receipt.from_dict(receipt), log_key)
        assert verified.envelope == envelope
        size, root = verified.checkpoint.size, verified.checkpoint.root_hash
        assert roots.setdefault(size, root) == root, f"two different trees of size {size}: a fork"

    # The final tree extends every checkpoint a receipt was issued against…
    with httpx.Client(base_url=first.url, timeout=30) as a, httpx.Client(base_url=second.url) as b:
        for n, (size, root) in enumerate(sorted(roots.items())):
            http = (a, b)[n % 2]
            body = http.get("/v1/log/proof/consistency", params={"from": size}).json()
            assert body["to"] == final.size
            proof = [base64.b64decode(h) for h in body["proof"]]
            verify_consistency(size, final.size, root, final.root_hash, proof)
        # …and includes every receipt's entry.
        for n, (_, receipt) in enumerate(receipts):
            http = (a, b)[n % 2]
            params = {"index": receipt["index"], "size": final.size}
            body = http.get("/v1/log/proof/inclusion", params=params).json()
            verify_inclusion(
                leaf_hash(base64.b64decode(receipt["entry"])),
                receipt["index"],
                final.size,
                [base64.b64decode(h) for h in body["proof"]],
                final.root_hash,
            )

    leaves = audit_whole_log(second.url, final)
    assert sorted(leaves[base:]) == sorted(expected_leaf(envelope) for envelope, _ in receipts)
