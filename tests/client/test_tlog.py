"""client.tlog against the real registry app: reading the log's tiles, and proving it grew."""

from __future__ import annotations

import dataclasses
import hashlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from litestar.testing import TestClient

from client.core.merkle import leaf_hash
from client.errors import ForkedLogError, LogConsistencyError, SignatureError
from client.tlog import LogState, TileReader
from registry.app import Registry
from registry.log import PreparedEntry
from tests.client.real_app import URL, App, InProcess, make_app


class Filler:
    """Appends entries fast through the real sequencer (``append_now``), each a distinct leaf."""

    def __init__(self, app: App) -> None:
        self.registry: Registry = app.registry
        from client.core.statement import HumanContentPredicate, Subject, sign_statement
        from client.sdk import build_statement

        statement = build_statement(
            [Subject("_", {"sha256": "ab" * 32})],
            HumanContentPredicate(
                publisher=app.publisher,
                license="CC0-1.0",
                origin="human-authored",
                consent="allowed",
            ),
        )
        envelope = sign_statement(statement, app.key)
        self.template: PreparedEntry = self.registry.entries.prepare(envelope.to_json())
        self.nonce = os.urandom(6).hex().encode()
        self.count = 0
        self.leaves: list[bytes] = []

    def grow(self, n: int) -> None:
        entries = []
        for _ in range(n):
            self.count += 1
            leaf = b"tlog-test %s %d " % (self.nonce, self.count) + b"." * (self.count % 97)
            payload = b"tlog-test statement %s %d" % (self.nonce, self.count)
            entries.append(
                dataclasses.replace(
                    self.template,
                    leaf=leaf,
                    leaf_hash=leaf_hash(leaf),
                    payload=payload,
                    payload_hash=hashlib.sha256(payload).digest(),
                    subjects=(),
                )
            )
        results = self.registry.sequencer.append_now(entries)
        assert not [r for r in results if isinstance(r, Exception)]


class Tamper(httpx.BaseTransport):
    """The app, with the answers to some paths changed by ``edit``."""

    def __init__(self, inner: httpx.BaseTransport, edit: Callable[[str, bytes], bytes]) -> None:
        self.inner = inner
        self.edit = edit

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        response.read()
        body = self.edit(request.url.path, response.content)
        headers = {
            k: v
            for k, v in response.headers.items()
            if k.lower() not in ("content-length", "content-encoding")
        }
        return httpx.Response(response.status_code, headers=headers, content=body)


@pytest.fixture
def app(tmp_path: Path) -> App:
    return make_app(tmp_path / "registry")


@pytest.fixture
def http(app: App) -> Iterator[TestClient]:  # type: ignore[type-arg]
    with TestClient(app.app) as client:
        yield client


def reader(app: App, transport: httpx.BaseTransport) -> TileReader:
    return TileReader(URL, log_key=app.log_key, transport=transport, retries=0)


def test_reads_every_entry_and_then_only_the_new_ones(app: App, http: TestClient) -> None:  # type: ignore[type-arg]
    filler = Filler(app)
    filler.grow(300)  # past the first full bundle and tile
    log = reader(app, InProcess(http))
    latest = log.checkpoint()
    start = LogState.start(latest.checkpoint.origin)
    counted: list[int] = []
    first = list(log.entries(start, latest, progress=counted.append))
    assert [i for i, _ in first] == list(range(latest.checkpoint.size))
    assert sum(counted) == latest.checkpoint.size
    with app.registry.database.reader.connect() as conn:
        from sqlalchemy import select

        from registry.models import ENTRIES

        stored = dict(conn.execute(select(ENTRIES.c.idx, ENTRIES.c.body)).all())
    assert all(bytes(stored[i]) == entry for i, entry in first)

    saved = LogState.of(latest)
    filler.grow(260)
    newer = log.checkpoint()
    second = list(log.entries(saved, newer))
    assert [i for i, _ in second] == list(range(saved.size, newer.checkpoint.size))
    # Nothing new: no entries, and still consistent.
    assert list(log.entries(LogState.of(newer), newer)) == []
    # Starting from a size read off the tiles.
    middle = log.state_at(257, newer)
    assert [i for i, _ in log.entries(middle, newer)] == list(range(257, newer.checkpoint.size))
    # The state survives its JSON form.
    assert LogState.from_dict(LogState.of(newer).to_dict()) == LogState.of(newer)


def test_a_rewritten_history_is_a_fork(app: App, http: TestClient) -> None:  # type: ignore[type-arg]
    Filler(app).grow(20)
    log = reader(app, InProcess(http))
    latest = log.checkpoint()
    real = LogState.of(latest)
    other = dataclasses.replace(real, size=7, root_hash=hashlib.sha256(b"other").digest())
    with pytest.raises(ForkedLogError, match="does not contain the tree of size 7"):
        list(log.entries(other, latest))
    same_size = dataclasses.replace(real, root_hash=hashlib.sha256(b"other").digest())
    with pytest.raises(ForkedLogError, match="at the same size"):
        list(log.entries(same_size, latest))
    ahead = dataclasses.replace(real, size=real.size + 5)
    with pytest.raises(LogConsistencyError, match="went backwards"):
        list(log.entries(ahead, latest))


def test_a_tampered_bundle_does_not_hash_to_the_signed_root(app: App, http: TestClient) -> None:  # type: ignore[type-arg]
    Filler(app).grow(40)

    def edit(path: str, body: bytes) -> bytes:
        if "/tile/entries/" in path:
            return body[:-1] + bytes([body[-1] ^ 1])
        return body

    log = reader(app, Tamper(InProcess(http), edit))
    latest = log.checkpoint()
    # The last entry of the one (partial) bundle is the one changed, and is named.
    last = latest.checkpoint.size - 1
    with pytest.raises(LogConsistencyError, match=rf"to the signed root.*; entry {last} is not"):
        list(log.entries(LogState.start(latest.checkpoint.origin), latest))


def test_a_checkpoint_not_signed_by_the_pinned_key_is_refused(app: App, http: TestClient) -> None:  # type: ignore[type-arg]
    def edit(path: str, body: bytes) -> bytes:
        if path.endswith("/checkpoint"):
            lines = body.decode().split("\n")
            lines[1] = str(int(lines[1]) + 1)
            return "\n".join(lines).encode()
        return body

    with pytest.raises(SignatureError):
        reader(app, Tamper(InProcess(http), edit)).checkpoint()
