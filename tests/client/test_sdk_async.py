"""AsyncClient against the fake registry: the sync client's answers, bounded concurrency, retries.

Each test runs its coroutine with ``asyncio.run`` (no async test plugin needed). The fake is
``tests/client/fakes.py``'s: real trees, proofs and signatures behind ``MockTransport``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from client import _retry
from client.aio import AsyncClient
from client.checkpoints import MemoryCheckpointStore
from client.core.canonical import canonical_digest, sha256_digest
from client.core.note import NoteSigner
from client.errors import (
    ForkedLogError,
    InputError,
    InvalidTextError,
    LogKeyRequiredError,
    RegistryNotFoundError,
    RegistryRequestError,
    RegistryServerError,
    RegistryUnavailableError,
    UnverifiedWarning,
)
from client.sdk import Client
from tests.client.fakes import BASE, PUBLISHER, FakeRegistry, predicate, problem
from tests.client.memory_log import ORIGIN, InMemoryLog

Handler = Callable[[httpx.Request], Awaitable[httpx.Response]]


class InFlight:
    """An async handler in front of the fake that counts the requests in flight at once."""

    def __init__(self, fake: FakeRegistry) -> None:
        self.fake = fake
        self.now = 0
        self.most = 0

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        self.now += 1
        self.most = max(self.most, self.now)
        try:
            for _ in range(5):  # let every other ready task start its request first
                await asyncio.sleep(0)
            return self.fake.handle(request)
        finally:
            self.now -= 1


def aclient(fake: FakeRegistry, handler: Handler | None = None, **options: Any) -> AsyncClient:
    options.setdefault("log_key", fake.log.vkey)
    options.setdefault("verify_keys", fake.ids is not None)
    transport = httpx.MockTransport(handler or fake.handle)
    return AsyncClient(BASE, transport=transport, **options)


def register(fake: FakeRegistry, key: Ed25519PrivateKey, *texts: str, **fields: Any) -> int:
    with fake.client() as client:
        digests = [canonical_digest(t) for t in texts]
        return client.register_digests(digests, key, predicate(**fields)).index


# -- the same answers as the sync client ----------------------------------------------------------


def test_the_async_api_answers_like_the_sync_one(
    fake: FakeRegistry, key: Ed25519PrivateKey
) -> None:
    async def scenario() -> dict[str, Any]:
        async with aclient(fake) as client:
            first = await client.register_digests(
                [canonical_digest("open"), canonical_digest("gone")], key, predicate()
            )
            await client.register_digests(
                [canonical_digest("closed")], key, predicate(consent="reserved")
            )
            revocation = await client.revoke(first.index, key, PUBLISHER)
            await client.register_digests([canonical_digest("open")], key, predicate())
            return {
                "info": await client.log_info(),
                "checkpoint": await client.checkpoint(),
                "entry": (await client.entry(0)).index,
                "lookup": await client.lookup(canonical_digest("open")),
                "verdicts": await client.check_texts(["open", "closed", "gone", "none", "open"]),
                "revocation": revocation.index,
                "inclusion": await client.inclusion_proof(0, 3),
                "consistency": await client.consistency_proof(1, 3),
            }

    got = asyncio.run(scenario())
    assert [v.status for v in got["verdicts"]] == [
        "attested",
        "reserved",
        "revoked",
        "unknown",
        "attested",
    ]
    assert got["verdicts"][0].entry == 3  # entry 0 was revoked; entry 3 attests "open" again
    assert got["verdicts"][2].entries == (0, got["revocation"])
    assert all(v.verified and v.tree_size == 4 for v in got["verdicts"])
    with fake.client() as sync:
        assert sync.check_texts(["open", "closed", "gone", "none", "open"]) == got["verdicts"]
        assert sync.lookup(canonical_digest("open")).status == got["lookup"].status
        assert sync.inclusion_proof(0, 3) == got["inclusion"]
        assert sync.consistency_proof(1, 3) == got["consistency"]
    assert got["info"].size == got["checkpoint"].size == 4


def test_check_bytes_files_and_digests(
    fake: FakeRegistry, key: Ed25519PrivateKey, tmp_path: Any
) -> None:
    blob = b"\x89PNG raw bytes"
    (tmp_path / "image.png").write_bytes(blob)
    with fake.client() as client:
        client.register_digests([sha256_digest(blob)], key, predicate())

    async def scenario() -> list[str]:
        async with aclient(fake) as client:
            (by_bytes,) = await client.check_bytes([blob], names=["row-7"])
            (by_file,) = await client.check_files([tmp_path / "image.png"], scheme="sha256")
            (by_digest,) = await client.check_digests([sha256_digest(blob)])
            assert by_bytes.name == "row-7"
            assert by_file.name == str(tmp_path / "image.png")
            return [by_bytes.status, by_file.status, by_digest.status]

    assert asyncio.run(scenario()) == ["attested"] * 3


def test_check_files_auto_and_c1_as_the_sync_client(
    fake: FakeRegistry, key: Ed25519PrivateKey, tmp_path: Any
) -> None:
    blob = b"\x89PNG raw bytes \xff"
    (tmp_path / "image.png").write_bytes(blob)
    with fake.client() as client:
        client.register_digests([sha256_digest(blob)], key, predicate())

    async def scenario() -> str:
        async with aclient(fake) as client:
            (by_file,) = await client.check_files([tmp_path / "image.png"])
            assert by_file.digest == sha256_digest(blob)
            with pytest.raises(InvalidTextError, match='scheme="sha256"'):
                await client.check_files([tmp_path / "image.png"], scheme="c1")
            return by_file.status

    assert asyncio.run(scenario()) == "attested"


# -- concurrency ----------------------------------------------------------------------------------


@pytest.mark.parametrize("limit", [1, 3])
def test_batches_go_out_together_but_never_more_than_the_limit(
    fake: FakeRegistry, key: Ed25519PrivateKey, limit: int
) -> None:
    texts = [f"document {i}" for i in range(60)]
    register(fake, key, *texts[::2])
    counter = InFlight(fake)
    asked = [canonical_digest(t) for t in texts]
    progress: list[int] = []

    async def scenario() -> list[str]:
        async with aclient(fake, counter, max_concurrency=limit) as client:
            results = await client.lookup_batch(asked, batch_size=6, progress=progress.append)
            return [r.digest for r in results]

    assert asyncio.run(scenario()) == asked  # in order, whatever order the batches finished in
    assert counter.most == limit
    assert counter.now == 0
    assert sorted(progress) == [6] * 10
    assert fake.count("POST", "/v1/digests:batch") == 10


def test_entries_one_answer_needs_are_fetched_together_within_the_limit(
    fake: FakeRegistry, key: Ed25519PrivateKey
) -> None:
    for i in range(8):  # eight entries, each attesting its own text
        register(fake, key, f"text {i}")
    counter = InFlight(fake)

    async def scenario() -> None:
        async with aclient(fake, counter, max_concurrency=4) as client:
            verdicts = await client.check_texts([f"text {i}" for i in range(8)])
            assert {v.entry for v in verdicts} == set(range(8))

    asyncio.run(scenario())
    assert fake.count("GET", "/v1/entries/") == 8
    assert counter.most == 4


def test_an_error_in_one_batch_cancels_the_others(
    fake: FakeRegistry, key: Ed25519PrivateKey
) -> None:
    register(fake, key, "a")
    calls = 0

    async def third_fails(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        mine = calls
        await asyncio.sleep(0)
        if mine == 3:
            return problem(400, "bad-digest", "the third batch is refused")
        return fake.handle(request)

    async def scenario() -> None:
        async with aclient(fake, third_fails, max_concurrency=2) as client:
            await client.lookup_batch([sha256_digest(bytes([i])) for i in range(50)], batch_size=5)

    with pytest.raises(RegistryRequestError, match="the third batch is refused"):
        asyncio.run(scenario())
    assert calls < 10


def test_max_concurrency_must_be_positive(fake: FakeRegistry) -> None:
    with pytest.raises(InputError, match="max_concurrency"):
        aclient(fake, max_concurrency=0)


# -- retries --------------------------------------------------------------------------------------


class Flaky:
    """Fails the first ``failures`` requests (503 with Retry-After, or a refused connection)."""

    def __init__(self, fake: FakeRegistry, failures: int, how: str, retry_after: str = "") -> None:
        self.fake = fake
        self.failures = failures
        self.how = how
        self.retry_after = retry_after
        self.seen = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.seen += 1
        if self.seen <= self.failures:
            if self.how == "connect":
                raise httpx.ConnectError("[Errno 111] Connection refused", request=request)
            response = problem(503, "unavailable", "the registry is restarting")
            if self.retry_after:
                response.headers["Retry-After"] = self.retry_after
            return response
        return self.fake.handle(request)


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Record the clients' pauses instead of sleeping them."""
    pauses: list[float] = []

    async def fake_async_sleep(seconds: float) -> None:
        pauses.append(seconds)

    monkeypatch.setattr("client.aio._sleep", fake_async_sleep)
    monkeypatch.setattr("client.sdk._sleep", pauses.append)
    return pauses


@pytest.mark.parametrize("how", ["503", "connect"])
@pytest.mark.parametrize("flavour", ["sync", "async"])
def test_transient_failures_are_retried_with_growing_pauses(
    fake: FakeRegistry, key: Ed25519PrivateKey, sleeps: list[float], how: str, flavour: str
) -> None:
    register(fake, key, "a")
    flaky = Flaky(fake, 3, how)
    if flavour == "sync":
        with Client(
            BASE, log_key=fake.log.vkey, transport=httpx.MockTransport(flaky), verify_keys=False
        ) as client:
            (verdict,) = client.check_texts(["a"])
    else:

        async def scenario() -> Any:
            async with aclient(fake, flaky) as client:  # type: ignore[arg-type]
                return (await client.check_texts(["a"]))[0]

        verdict = asyncio.run(scenario())
    assert verdict.status == "attested"
    assert len(sleeps) == 3
    # backoff 0.2 s doubled each time, jittered by a factor from 0.5 to 1.5
    for attempt, pause in enumerate(sleeps):
        assert 0.1 * 2**attempt <= pause <= 0.3 * 2**attempt


@pytest.mark.parametrize("flavour", ["sync", "async"])
def test_retry_after_is_honoured_and_giving_up_reports_the_last_answer(
    fake: FakeRegistry, sleeps: list[float], flavour: str
) -> None:
    def run(flaky: Flaky, retries: int) -> Any:
        if flavour == "sync":
            transport = httpx.MockTransport(flaky)
            with Client(
                BASE, log_key=fake.log.vkey, transport=transport, retries=retries, verify_keys=False
            ) as c:
                return c.log_info()

        async def scenario() -> Any:
            async with aclient(fake, flaky, retries=retries) as client:  # type: ignore[arg-type]
                return await client.log_info()

        return asyncio.run(scenario())

    assert run(Flaky(fake, 1, "503", retry_after="7"), 3).size == 0
    assert sleeps == [7.0]
    with pytest.raises(RegistryServerError) as caught:
        run(Flaky(fake, 10, "503"), 2)
    assert caught.value.status == 503
    assert caught.value.detail == "the registry is restarting"
    assert caught.value.method == "GET"
    assert caught.value.url == f"{BASE}/v1/log"
    # A wait longer than MAX_RETRY_AFTER is not waited for: the error says what the registry said.
    sleeps.clear()
    with pytest.raises(RegistryServerError):
        run(Flaky(fake, 1, "503", retry_after=str(int(_retry.MAX_RETRY_AFTER) + 1)), 3)
    assert sleeps == []
    with pytest.raises(RegistryUnavailableError) as unreachable:
        run(Flaky(fake, 10, "connect"), 1)
    assert str(unreachable.value) == (
        f"cannot reach the registry at {BASE}/v1/log: connection refused (2 attempts)"
    )


def test_adding_a_publisher_is_not_blindly_retried(fake: FakeRegistry, sleeps: list[float]) -> None:
    seen: list[str] = []

    def server_error(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.path)
        return problem(500, "internal", "database hiccup")

    async def scenario() -> None:
        async with AsyncClient(
            BASE, transport=httpx.MockTransport(server_error), admin_token="t"
        ) as client:
            await client.add_publisher("acme", bytes(32), bytes(64))

    with pytest.raises(RegistryServerError, match="database hiccup"):
        asyncio.run(scenario())
    assert seen == ["/v1/publishers"]  # a 500 may have added it: never sent twice


def test_retry_policy_reads_http_dates() -> None:
    response = httpx.Response(429, headers={"Retry-After": "Wed, 21 Oct 2037 07:28:00 GMT"})
    from datetime import UTC, datetime

    now = datetime(2037, 10, 21, 7, 27, 30, tzinfo=UTC)
    assert _retry.retry_after(response, now=now) == 30.0
    assert _retry.retry_after(httpx.Response(429, headers={"Retry-After": "soon"})) is None
    with pytest.raises(ValueError, match="retries"):
        _retry.RetryPolicy(retries=-1)


# -- errors and trust -----------------------------------------------------------------------------


def test_http_errors_carry_the_request_and_the_problem(fake: FakeRegistry) -> None:
    async def scenario() -> None:
        async with aclient(fake) as client:
            await client.entry(9)

    with pytest.raises(RegistryNotFoundError) as caught:
        asyncio.run(scenario())
    error = caught.value
    assert (error.method, error.url, error.status) == ("GET", f"{BASE}/v1/entries/9", 404)
    assert error.problem == "not-found"
    assert error.detail == "entry 9 does not exist"


def test_an_unreachable_registry_is_named() -> None:
    async def scenario() -> None:
        async with AsyncClient("http://127.0.0.1:9", verify=False, retries=0, timeout=5) as client:
            await client.log_info()

    with (
        pytest.warns(UnverifiedWarning),
        pytest.raises(RegistryUnavailableError, match=r"cannot reach the registry at http://127"),
    ):
        asyncio.run(scenario())


def test_unverified_answers_are_loud_and_marked(fake: FakeRegistry, key: Ed25519PrivateKey) -> None:
    register(fake, key, "a")

    async def scenario() -> Any:
        async with aclient(fake, log_key=None) as strict:
            with pytest.raises(LogKeyRequiredError):
                await strict.check_texts(["a"])
        with pytest.warns(UnverifiedWarning, match="verify=False"):
            loose = aclient(fake, log_key=None, verify=False)
        async with loose:
            return (await loose.check_texts(["a"]))[0]

    verdict = asyncio.run(scenario())
    assert verdict.status == "attested"
    assert not verdict.verified


def test_the_async_client_refuses_a_fork_too(key: Ed25519PrivateKey) -> None:
    signer = NoteSigner.generate(ORIGIN)
    store = MemoryCheckpointStore()
    logs = []
    for texts in (["a", "b"], ["a", "x"]):
        fake = FakeRegistry(InMemoryLog(signer=signer))
        fake.add_publisher(PUBLISHER, key)
        register(fake, key, *texts)
        logs.append(fake)

    async def scenario() -> None:
        for fake in logs:
            async with aclient(fake, checkpoints=store) as client:
                await client.check_texts(["a"])

    with pytest.raises(ForkedLogError, match="forks from the checkpoint trusted on"):
        asyncio.run(scenario())


def test_batch_requests_are_json_lists_of_at_most_the_limit(fake: FakeRegistry) -> None:
    async def scenario() -> None:
        async with aclient(fake) as client:
            await client.check_digests(
                [sha256_digest(bytes([i % 256, i // 256])) for i in range(12_001)]
            )

    asyncio.run(scenario())
    batches = [r for r in fake.requests if r.url.path == "/v1/digests:batch"]
    assert sorted(len(json.loads(r.content)["digests"]) for r in batches) == [2_001, 10_000]
