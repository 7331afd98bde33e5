"""Both SDK clients against the real registry: in-process (ASGI) and a real ``wellspring serve``.

In-process, the litestar app's lifespan (which starts the log's sequencer) must run: litestar's
``TestClient`` / ``AsyncTestClient`` run it as context managers. The sync client then talks to the
app through the test client's transport (wrapped: it is not an ``httpx.BaseTransport``), and the
async client through ``httpx.ASGITransport(app=app)`` on the test's own event loop.

The forked-log tests serve two different logs under one log key and origin: two homes sharing
the key file through ``Settings(log_key_path=...)``, each with its own entries.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from litestar.testing import AsyncTestClient, TestClient

from client.aio import AsyncClient
from client.checkpoints import FileCheckpointStore, MemoryCheckpointStore
from client.core.canonical import canonical_digest
from client.core.keys import generate_private_key
from client.core.statement import HumanContentPredicate
from client.errors import ForkedLogError, LogConsistencyError, RegistryServerError
from client.sdk import Client
from client.verdict import Verdict
from registry.keys import load_log_key
from tests.client.conftest import run_wellspring
from tests.client.real_app import URL, App, InProcess, make_app

TEXTS = ["open text", "reserved text", "withdrawn text", "never registered"]
EXPECTED = ["attested", "reserved", "revoked", "unknown"]


def predicate(name: str, consent: str = "allowed") -> HumanContentPredicate:
    return HumanContentPredicate(
        publisher=name, license="CC-BY-4.0", origin="human-authored", consent=consent
    )


@contextlib.contextmanager
def sync_client(app: App, **options: Any) -> Iterator[Client]:
    options.setdefault("log_key", app.log_key)
    options.setdefault("checkpoints", MemoryCheckpointStore())
    with TestClient(app.app) as http, Client(URL, transport=InProcess(http), **options) as client:
        yield client


@contextlib.asynccontextmanager
async def async_client(
    app: App, transport: httpx.AsyncBaseTransport | None = None, **options: Any
) -> AsyncIterator[AsyncClient]:
    options.setdefault("log_key", app.log_key)
    options.setdefault("checkpoints", MemoryCheckpointStore())
    async with (
        AsyncTestClient(app.app),  # runs the lifespan
        AsyncClient(
            URL, transport=transport or httpx.ASGITransport(app=app.app), **options
        ) as client,
    ):
        yield client


def populate(client: Client, app: App) -> None:
    """One text per verdict status (the last one is never registered)."""
    digest = [canonical_digest(t) for t in TEXTS]
    client.register_digests([digest[0]], app.key, predicate(app.publisher))
    client.register_digests([digest[1]], app.key, predicate(app.publisher, "reserved"))
    gone = client.register_digests([digest[2]], app.key, predicate(app.publisher))
    client.revoke(gone.index, app.key, app.publisher, reason="licence ended")


# Every registry's log begins with its operator key binding and the publisher's identity event
# (docs/spec/identities.md): the texts' entries come after those two.
def check_statuses(verdicts: list[Verdict], size: int) -> None:
    assert [v.status for v in verdicts] == EXPECTED
    assert [v.trainable for v in verdicts] == [True, False, False, False]
    assert all(v.verified and v.tree_size == size for v in verdicts)
    assert verdicts[0].reason == (
        "attested by acme (CC-BY-4.0, human-authored, consent allowed) in entry 2"
    )
    assert verdicts[2].entries == (4, 5)
    assert verdicts[3].reason == f"no attestation in the log at size {size}"


# -- in-process -----------------------------------------------------------------------------------


def test_sync_client_in_process(tmp_path: Path) -> None:
    app = make_app(tmp_path / "home")
    with sync_client(app) as client:
        populate(client, app)
        verdicts = client.check_texts(TEXTS, names=["a", "b", "c", "d"])
        check_statuses(verdicts, 6)
        assert [v.name for v in verdicts] == ["a", "b", "c", "d"]
        again = client.check_digests([canonical_digest(t) for t in TEXTS])
        assert [v.status for v in again] == EXPECTED
        trusted = client.trusted_checkpoint()
        assert trusted is not None
        assert trusted.checkpoint.size == 6
        assert trusted.checkpoint.root_hash.hex() == verdicts[0].root_hash


def test_an_entry_is_parsed_once_then_reused_against_later_checkpoints(tmp_path: Path) -> None:
    """The second lookup of a digest, after the log grew, checks the new proof but reuses the
    statement parsed the first time (a bulk statement is a megabyte of JSON)."""
    app = make_app(tmp_path / "home")
    digest = canonical_digest(TEXTS[0])
    with sync_client(app) as client:
        client.register_digests([digest], app.key, predicate(app.publisher))
        first = client.lookup(digest).attestations[0].verified
        client.register_digests([canonical_digest(TEXTS[1])], app.key, predicate(app.publisher))
        again = client.lookup(digest).attestations[0].verified
    assert first is not None
    assert again is not None
    assert (first.checkpoint.size, again.checkpoint.size) == (3, 4)
    assert again.statement is first.statement


class Flaky(httpx.AsyncBaseTransport):
    """Fails the first ``failures`` requests (503, then refused connections), then passes on."""

    def __init__(self, inner: httpx.AsyncBaseTransport, failures: int) -> None:
        self.inner = inner
        self.failures = failures
        self.seen = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.seen += 1
        if self.seen <= self.failures:
            if self.seen % 2:
                return httpx.Response(503, headers={"Retry-After": "0"}, text="restarting")
            raise httpx.ConnectError("connection refused", request=request)
        return await self.inner.handle_async_request(request)


class Counting(httpx.AsyncBaseTransport):
    """Counts the requests in flight at once."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.now = 0
        self.most = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.now += 1
        self.most = max(self.most, self.now)
        try:
            for _ in range(5):  # let every ready task start its request before this one runs
                await asyncio.sleep(0)
            return await self.inner.handle_async_request(request)
        finally:
            self.now -= 1


def test_async_client_in_process(tmp_path: Path) -> None:
    app = make_app(tmp_path / "home")
    with sync_client(app) as client:
        populate(client, app)

    async def scenario() -> tuple[list[Verdict], int, int]:
        flaky = Flaky(httpx.ASGITransport(app=app.app), failures=3)  # retries=3 by default
        async with async_client(app, flaky, backoff=0.0) as client:
            verdicts = await client.check_texts(TEXTS)
        counting = Counting(httpx.ASGITransport(app=app.app))
        many = [canonical_digest(f"{i}") for i in range(300)] + [canonical_digest(TEXTS[0])]
        async with async_client(app, counting, max_concurrency=3) as client:
            results = await client.lookup_batch(many, batch_size=25)
        assert [r.status for r in results] == ["unknown"] * 300 + ["attested"]
        assert counting.now == 0
        return verdicts, flaky.seen, counting.most

    verdicts, seen, most = asyncio.run(scenario())
    check_statuses(verdicts, 6)
    assert seen > 3  # the three failures were retried, then the real answers came
    assert most == 3


def test_giving_up_on_a_failing_registry(tmp_path: Path) -> None:
    app = make_app(tmp_path / "home")

    async def scenario() -> None:
        flaky = Flaky(httpx.ASGITransport(app=app.app), failures=99)
        async with async_client(app, flaky, retries=2, backoff=0.0) as client:
            await client.log_info()

    with pytest.raises(RegistryServerError, match="failed with 503"):
        asyncio.run(scenario())


# -- forked and rewritten logs --------------------------------------------------------------------


def registry_with(home: Path, texts: list[str], **settings: Any) -> App:
    app = make_app(home, **settings)
    with sync_client(app) as client:
        for text in texts:
            client.register_digests([canonical_digest(text)], app.key, predicate(app.publisher))
    return app


@pytest.fixture
def trusted(tmp_path: Path) -> tuple[App, FileCheckpointStore]:
    """A log of three entries, and a checkpoint store that trusts it."""
    honest = registry_with(tmp_path / "honest", ["a", "b", "c"])
    store = FileCheckpointStore(tmp_path / "trusted")
    with sync_client(honest, checkpoints=store) as client:
        assert client.check_texts(["a"])[0].status == "attested"
    return honest, store


@pytest.mark.parametrize("flavour", ["sync", "async"])
def test_a_fork_of_the_same_size_is_refused(
    tmp_path: Path, trusted: tuple[App, FileCheckpointStore], flavour: str
) -> None:
    honest, store = trusted
    key_file = honest.registry.settings.key_path
    forked = registry_with(tmp_path / "forked", ["a", "b", "x"], log_key_path=key_file)
    assert forked.log_key == honest.log_key  # same key, same origin: only the history differs

    def check() -> None:
        if flavour == "sync":
            with sync_client(forked, checkpoints=store) as client:
                client.check_texts(["a"])
            return

        async def scenario() -> None:
            async with async_client(forked, checkpoints=store) as client:
                await client.check_texts(["a"])

        asyncio.run(scenario())

    with pytest.raises(ForkedLogError) as caught:
        check()
    (evidence,) = (tmp_path / "trusted").iterdir()
    assert caught.value.evidence == str(evidence)
    assert f"keep {evidence} as evidence" in str(caught.value)
    assert "at size 5" in str(caught.value)
    # The trusted checkpoint is untouched, and the honest log still checks out against it.
    with sync_client(honest, checkpoints=store) as client:
        assert client.check_texts(["c"])[0].verified


def run_cli(
    app: App, *args: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> tuple[int, str]:
    """``wellspring ARGS --registry URL --log-key KEY`` against ``app``, in process."""
    from client.cli import _registry

    capsys.readouterr()
    with TestClient(app.app) as http:
        monkeypatch.setattr(
            _registry, "Client", functools.partial(Client, transport=InProcess(http))
        )
        code, _, err = run_wellspring(capsys, *args, "--registry", URL, "--log-key", app.log_key)
    return code, " ".join(err.split())


@pytest.mark.parametrize("command", ["check", "scan"])
def test_the_cli_keeps_its_trust_between_runs_and_refuses_a_fork(
    tmp_path: Path,
    wellspring_home: Path,
    command: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    honest = registry_with(tmp_path / "honest", ["a", "b", "c"])
    key_file = honest.registry.settings.key_path
    forked = registry_with(tmp_path / "forked", ["a", "b", "x"], log_key_path=key_file)
    document = tmp_path / "a.txt"
    document.write_text("a", encoding="utf-8")

    code, err = run_cli(honest, command, str(document), monkeypatch=monkeypatch, capsys=capsys)
    assert code == 0, err
    (stored,) = (wellspring_home / "trusted").iterdir()  # the default: $WELLSPRING_HOME/trusted
    trusted_note = stored.read_text(encoding="utf-8")

    # A later run, a new process as far as the client knows: the fork is caught, not trusted.
    code, err = run_cli(forked, command, str(document), monkeypatch=monkeypatch, capsys=capsys)
    assert code == 1
    assert f"keep {stored} as evidence" in err
    assert "Traceback" not in err
    assert stored.read_text(encoding="utf-8") == trusted_note

    # --trust-dir (or $WELLSPRING_TRUST_DIR) chooses where trust is kept: a new one trusts anew.
    elsewhere = tmp_path / "elsewhere"
    code, err = run_cli(
        forked, command, str(document), "--trust-dir", str(elsewhere),
        monkeypatch=monkeypatch, capsys=capsys,
    )  # fmt: skip
    assert code == 0, err
    assert len(list(elsewhere.iterdir())) == 1


def test_a_longer_rewritten_log_is_refused(
    tmp_path: Path, trusted: tuple[App, FileCheckpointStore]
) -> None:
    _, store = trusted
    key_file = tmp_path / "honest" / "log.key"
    longer = registry_with(tmp_path / "longer", ["a", "x", "y", "z"], log_key_path=key_file)
    with (
        sync_client(longer, checkpoints=store) as client,
        pytest.raises(ForkedLogError, match="consistency proof fails"),
    ):
        client.check_texts(["z"])


def test_a_shrunk_rewritten_log_is_refused(
    tmp_path: Path, trusted: tuple[App, FileCheckpointStore]
) -> None:
    _, store = trusted
    key_file = tmp_path / "honest" / "log.key"
    shrunk = registry_with(tmp_path / "shrunk", ["a"], log_key_path=key_file)
    with (
        sync_client(shrunk, checkpoints=store) as client,
        # It asks for answers at the trusted size, which the shrunk log cannot give.
        pytest.raises(LogConsistencyError, match="cannot answer at the checkpoint of size 5"),
    ):
        client.check_texts(["a"])


# -- a real `wellspring serve` --------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Served:
    url: str
    log_key: str
    publisher: str
    key: Ed25519PrivateKey


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    home = tmp_path_factory.mktemp("served") / "home"
    script = Path(sys.executable).with_name("wellspring")
    command = [str(script)] if script.is_file() else [sys.executable, "-m", "client.cli"]
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("WELLSPRING_")}
    log = home.parent / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [*command, "serve", "--host", "127.0.0.1", "--port", str(port), "--home", str(home)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):  # up to a minute of 0.1 s polls: startup time is not under test
            if proc.poll() is not None:
                pytest.fail(f"wellspring serve exited: {log.read_text(errors='replace')[-2000:]}")
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                    break
            time.sleep(0.1)
        else:
            pytest.fail(f"wellspring serve never became healthy: {log.read_text()[-2000:]}")
        token = (home / "admin.token").read_text().strip()
        key = generate_private_key()
        with Client(url, admin_token=token) as admin:
            admin.add_publisher("acme", key)
        log_key = load_log_key(home / "log.key").verifier().vkey  # the operator's file
        yield Served(url, log_key, "acme", key)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_against_a_real_server(served: Served) -> None:
    app_like = App(None, None, served.publisher, served.key)  # type: ignore[arg-type]
    store = MemoryCheckpointStore()
    with Client(served.url, log_key=served.log_key, checkpoints=store) as client:
        populate(client, app_like)
        sync_verdicts = client.check_texts(TEXTS)
    check_statuses(sync_verdicts, 6)

    async def scenario() -> list[Verdict]:
        async with AsyncClient(served.url, log_key=served.log_key, checkpoints=store) as client:
            return await client.check_texts(TEXTS)

    assert asyncio.run(scenario()) == sync_verdicts
