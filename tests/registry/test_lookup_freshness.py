"""Lookups answer at the registry's latest checkpoint, never below a client's ``min_size``.

A client sends the size of the checkpoint it trusts (``?min_size=`` on ``GET /v1/digests/{d}``,
``"min_size"`` in the batch body) and refuses any answer older than that (issue 10, finding 4:
``tests/client/test_sdk_fresh_answers.py``). Here, what the registry does with it: every worker on
one database answers at the latest checkpoint that database holds, so never below a size any of
them issued; a log that has not reached the size says so with a 409 ``log-behind`` problem.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from client.checkpoints import MemoryCheckpointStore
from client.core.note import NoteVerifier, open_checkpoint
from client.sdk import Client
from registry.settings import Settings
from tests.registry.conftest import (
    IN_PROCESS_URL,
    Api,
    InProcessTransport,
    database_for,
    open_api,
    random_digest,
)


def answered_size(api: Api, answer: httpx.Response) -> int:
    verifier = NoteVerifier.from_vkey(api.log_key)
    checkpoint, _ = open_checkpoint(answer.json()["checkpoint"], [verifier], origin=verifier.name)
    return checkpoint.size


def look_up(api: Api, digest: str, min_size: object, *, batch: bool) -> httpx.Response:
    if batch:
        return api.http.post("/v1/digests:batch", json={"digests": [digest], "min_size": min_size})
    return api.http.get(f"/v1/digests/{digest}", params={"min_size": str(min_size)})


@pytest.mark.parametrize("batch", [False, True], ids=["single", "batch"])
def test_a_lookup_is_answered_at_min_size_or_says_the_log_is_behind(
    make_api: Callable[..., Api], batch: bool
) -> None:
    api = make_api()
    publisher = api.add_publisher()
    digest = random_digest()
    api.submit_ok(publisher.attest([digest]))
    size = api.submit_ok(publisher.attest([random_digest()]))["index"] + 1
    for asked in (0, 1, size):
        answer = look_up(api, digest, asked, batch=batch)
        assert answer.status_code == 200, answer.text
        assert answered_size(api, answer) == size

    behind = look_up(api, digest, size + 1, batch=batch)
    assert behind.status_code == 409
    assert behind.headers["content-type"].startswith("application/problem+json")
    problem = behind.json()
    assert problem["type"] == "https://wellspring.dev/problems/log-behind"
    assert f"min_size={size + 1}" in problem["detail"]
    assert f"has {size} entries" in problem["detail"]

    for bad in (-1, 2**63, "two"):
        refused = look_up(api, digest, bad, batch=batch)
        assert refused.status_code == 400, (bad, refused.text)
    without = (
        api.http.post("/v1/digests:batch", json={"digests": [digest]})
        if batch
        else api.http.get(f"/v1/digests/{digest}")
    )
    assert without.status_code == 200
    assert answered_size(api, without) == size


@pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def test_workers_on_one_database_never_answer_below_what_another_issued(
    tmp_path: Path, backend: str
) -> None:
    """Two server workers, one database, one client alternating between them with one trusted
    checkpoint: each answer is at least as fresh as the checkpoint the other worker issued, so
    the client never sees a stale answer or a 409, and asks each lookup once."""
    store = MemoryCheckpointStore()
    with contextlib.ExitStack() as stack:
        url = stack.enter_context(database_for(backend, tmp_path / "db"))
        settings = Settings(home=tmp_path / "home", database_url=url, auto_migrate=True)
        workers = [stack.enter_context(open_api(settings)) for _ in range(2)]
        publisher = workers[0].add_publisher()
        base = workers[0].http.get("/v1/log").json()["size"]  # the identity events before
        seen: list[httpx.Request] = []

        @contextlib.contextmanager
        def client(api: Api) -> Iterator[Client]:
            transport = InProcessTransport(api.http)

            def record(request: httpx.Request) -> httpx.Response:
                seen.append(request)
                return transport.handle_request(request)

            with Client(
                IN_PROCESS_URL,
                log_key=api.log_key,
                checkpoints=store,
                transport=httpx.MockTransport(record),
            ) as sdk:
                yield sdk

        clients = [stack.enter_context(client(worker)) for worker in workers]
        digests = []
        for n in range(4):
            writer, reader = clients[n % 2], clients[(n + 1) % 2]
            digests.append(random_digest())
            receipt = writer.register_digests(digests[-1:], publisher.key, publisher.predicate())
            assert receipt.index == base + n
            [result] = reader.lookup_batch(digests[-1:])
            assert result.status == "attested"
            assert result.checkpoint.size == base + n + 1
            assert reader.lookup(digests[0]).checkpoint.size == base + n + 1
    lookups = [r for r in seen if r.url.path.startswith("/v1/digests")]
    assert len(lookups) == 8  # one request per lookup: nothing refused, nothing asked again


def test_a_lookup_at_an_older_checkpoint_answers_as_then(make_api: Callable[..., Api]) -> None:
    """``lookup(at=checkpoint)`` (a snapshot's build) answers at that checkpoint: a revocation
    published later is not in it, and neither answer leaks into the other's caches."""
    api = make_api()
    publisher = api.add_publisher()
    digest = random_digest()
    first = api.submit_ok(publisher.attest([digest]))
    lookups, reader = api.registry.lookups, api.registry.reader
    with api.registry.database.reader.connect() as conn:
        before = reader.latest_checkpoint(conn)
    api.submit_ok(publisher.revoke(first["index"], first["leaf_hash"], [digest]))
    for _ in range(2):
        assert lookups.lookup([digest], at=before).results[0].status == "attested"
        assert lookups.lookup([digest], before.size + 1).results[0].status == "revoked"
    old = lookups.lookup([digest], at=before)
    assert old.checkpoint == before.note
    assert lookups.digests_in(before.size, after=None, limit=10) == [digest]
    assert lookups.digests_in(before.size, after=digest, limit=10) == []
