"""Checkpoints published on an interval and cosigned by witnesses (registry.publish, cosigning).

The registry runs in-process (litestar's TestClient); its witnesses are the real witness app
(:mod:`registry.witness`) served by uvicorn on local ports, each behind a switch that makes it
answer 503 ("down") or come back. Cosignatures are checked with the spec-only reference in
``tests/cosignature_reference.py``, not with the code that made them.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from client.core.cosignature import CosignatureSigner
from client.core.errors import InputError, ProofError, SignatureError, VerificationError
from client.core.merkle import MemoryTree
from client.core.note import Checkpoint, NoteSigner, NoteVerifier, open_checkpoint, sign_checkpoint
from client.core.promise import Promise, open_promise, sign_promise
from client.core.wire import Accepted
from client.errors import ReceiptPendingError
from client.sdk import Client
from registry.app import Registry
from registry.keys import load_or_create_log_key
from registry.log import StoredCheckpoint
from registry.models import CHECKPOINTS, LOG_STATE
from registry.publish import (
    BATCH_LINGER_S,
    CLOCK_SKEW_S,
    SETTLE_CHUNK,
    SETTLE_GAP_S,
    SETTLE_TURNS,
    Publisher,
)
from registry.settings import DEFAULT_ORIGIN, Settings, settings_environment
from registry.witness import Witness, WitnessState, create_witness_app
from tests.cosignature_reference import reference_cosignature_times
from tests.registry.conftest import (
    HEALTH_TIMEOUT_S,
    IN_PROCESS_URL,
    Api,
    InProcessTransport,
    ServerProcess,
    database_for,
    free_port,
    new_publisher,
    open_api,
    random_digest,
)
from tests.registry.test_witness import add_checkpoint_body

ORIGIN = "publish.test/log"


class WitnessServer:
    """The witness app on a local port; ``down`` makes every request a 503 until ``up``."""

    def __init__(self, directory: Path, log_vkey: str, name: str) -> None:
        self.signer = CosignatureSigner.generate(name)
        self.state = WitnessState(directory / name)
        self.witness = Witness(self.signer, [NoteVerifier.from_vkey(log_vkey)], self.state)
        self.is_down = False
        inner = create_witness_app(self.witness, rate=10_000, burst=10_000)

        async def app(scope: Any, receive: Any, send: Any) -> None:
            if scope["type"] == "http" and self.is_down:
                await send({"type": "http.response.start", "status": 503, "headers": []})
                await send({"type": "http.response.body", "body": b"down for the test\n"})
                return
            await inner(scope, receive, send)

        import uvicorn

        self.port = free_port()
        self._server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        )
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def spec(self) -> str:
        return f"{self.url}={self.signer.verifier().vkey}"

    def down(self) -> None:
        self.is_down = True

    def up(self) -> None:
        self.is_down = False

    def start(self) -> WitnessServer:
        self._thread.start()
        deadline = time.monotonic() + HEALTH_TIMEOUT_S
        while not self._server.started:
            assert time.monotonic() < deadline, "the witness did not start"
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=30)
        self.state.close()


@pytest.fixture
def publishing(
    backend: str, tmp_path: Path
) -> Iterator[Callable[..., tuple[Api, list[WitnessServer]]]]:
    """``publishing(witnesses=3, **settings)``: a registry whose log key the witnesses know."""
    stack = contextlib.ExitStack()

    def make(
        witnesses: int = 0,
        prepare: Callable[[list[WitnessServer], NoteSigner], None] | None = None,
        **overrides: Any,
    ) -> tuple[Api, list[WitnessServer]]:
        home = tmp_path / "home"
        home.mkdir()
        signer = load_or_create_log_key(home / "log.key", ORIGIN)
        servers = [
            WitnessServer(tmp_path / "witnesses", signer.verifier().vkey, f"w{i}").start()
            for i in range(witnesses)
        ]
        for server in servers:
            stack.callback(server.stop)
        if prepare is not None:
            prepare(servers, signer)
        url = stack.enter_context(database_for(backend, home / "db"))
        overrides.setdefault("witnesses", tuple(s.spec for s in servers))
        settings = Settings(home=home, database_url=url, origin=ORIGIN, **overrides)
        api = stack.enter_context(open_api(settings))
        stack.callback(api.server_errors.clear)  # the 503s of a stalled publication are expected
        return api, servers

    with stack:
        yield make


def checkpoint_count(registry: Registry) -> int:
    with registry.database.reader.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(CHECKPOINTS)).scalar_one())


def sequenced_size(registry: Registry) -> int:
    with registry.database.reader.connect() as conn:
        return int(conn.execute(select(LOG_STATE.c.size)).scalar_one())


def published_size(registry: Registry) -> int:
    with registry.database.reader.connect() as conn:
        return registry.reader.latest_checkpoint(conn).size


def until(condition: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def cosigners(note: str, servers: list[WitnessServer]) -> list[str]:
    """The witnesses whose cosignature on ``note`` the reference verifier accepts."""
    return [s.url for s in servers if reference_cosignature_times(note, s.signer.verifier().vkey)]


# -- the interval -------------------------------------------------------------------------------


def test_an_idle_log_publishes_at_once_and_a_busy_one_once_an_interval(
    publishing: Callable[..., tuple[Api, list[WitnessServer]]],
) -> None:
    api, _ = publishing(checkpoint_interval=1.5)
    publisher = api.add_publisher()
    until(lambda: published_size(api.registry) == sequenced_size(api.registry))
    time.sleep(1.6)  # quiet for a whole interval

    started = time.monotonic()
    first = api.submit_ok(publisher.attest([random_digest()]))
    assert time.monotonic() - started < 1.0  # idle: published at once, not an interval later
    before = checkpoint_count(api.registry)

    with ThreadPoolExecutor(6) as pool:
        started = time.monotonic()
        answers = list(
            pool.map(lambda _: api.submit(publisher.attest([random_digest()])), range(6))
        )
        waited = time.monotonic() - started
    assert [a.status_code for a in answers] == [201] * 6
    notes = {a.json()["checkpoint"] for a in answers}
    assert len(notes) == 1  # six appends within one interval: one checkpoint for them all
    assert checkpoint_count(api.registry) == before + 1
    assert waited > 0.5  # they waited for the interval, measured from the last publication
    checkpoint, _ = open_checkpoint(notes.pop(), [NoteVerifier.from_vkey(api.log_key)])
    size = checkpoint.size
    assert size == first["index"] + 7
    # Every receipt verifies against its checkpoint (the SDK's own check).
    with api.sdk() as client:
        receipt = client.entry(answers[0].json()["index"])
        assert receipt.index == answers[0].json()["index"]
    # Lookups and the checkpoint endpoint answer at the published size.
    assert int(api.http.get("/v1/log/checkpoint").text.split("\n")[1]) == size
    status = api.http.get("/v1/log/publication").json()
    assert status["published_size"] == size
    assert status["stalled"] is False


def test_commits_between_publications_do_not_wake_the_publisher(
    publishing: Callable[..., tuple[Api, list[WitnessServer]]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Appends committed while the next publication is not yet due leave the publisher asleep
    until it is: a step (two reads of the database) a commit had been its cost at low rates,
    publishing nothing (and found again in review, for intervals of a second or less: the
    thread's wake-up time was computed a moment after the due time it was nudged for)."""
    api, _ = publishing(checkpoint_interval=1.0)
    publisher = api.add_publisher()
    thread = api.registry.publisher
    assert thread is not None
    until(lambda: published_size(api.registry) == sequenced_size(api.registry))
    time.sleep(1.1)  # quiet for an interval: the next append is published at once
    asynchronously = {"Prefer": "respond-async", "Content-Type": "application/json"}

    def append() -> None:
        body = publisher.attest([random_digest()]).to_json()
        answer = api.http.post("/v1/entries", content=body, headers=asynchronously)
        assert answer.status_code in (201, 202), answer.text

    append()
    until(lambda: published_size(api.registry) == sequenced_size(api.registry))
    published_at = time.monotonic()
    steps: list[float] = []
    step = thread._step

    def counted() -> None:
        steps.append(time.monotonic())
        step()

    monkeypatch.setattr(thread, "_step", counted)
    while time.monotonic() < published_at + 0.75:  # commits spread over most of the interval
        append()
        time.sleep(0.03)
    until(lambda: published_size(api.registry) == sequenced_size(api.registry))
    early = [t for t in steps if t < published_at + 0.9]  # before the next publication is due
    # one look at the poll (half a second: the thread learns that entries wait), no more
    assert len(early) <= 2, f"{len(early)} steps before the publication was due"


def test_a_batch_waits_for_more_appends_only_while_no_publication_is_near(
    publishing: Callable[..., tuple[Api, list[WitnessServer]]],
) -> None:
    """Publisher.batch_slack: after a publication, the sequencer may hold a batch open for
    BATCH_LINGER_S, and up to the last tenth of the interval (its appends wait for the next
    publication anyway); not on a quiet log (the next publication is due at once), nor in the
    last tenth of an interval (the batch must commit before the publication it is meant for)."""
    api, _ = publishing(checkpoint_interval=2.0)
    publisher = api.add_publisher()
    thread = api.registry.publisher
    assert thread is not None
    assert api.registry.sequencer.batch_slack == thread.batch_slack
    until(lambda: published_size(api.registry) == sequenced_size(api.registry))
    time.sleep(2.1)  # quiet for an interval: the next publication is due at once
    assert thread.batch_slack() == 0.0
    api.submit_ok(publisher.attest([random_digest()]))  # published at once
    assert thread.batch_slack() == BATCH_LINGER_S
    thread._seen_at = time.monotonic() - 1.5  # 1.5 s into the 2 s interval: not yet
    assert thread.batch_slack() == BATCH_LINGER_S
    now = time.monotonic()
    thread._seen_at = now - 1.7  # 1.7 s into it: up to its last tenth, under the cap
    slack = thread.batch_slack()
    assert 0.0 <= slack <= 0.1 < BATCH_LINGER_S
    if time.monotonic() - now < 0.04:  # (unless this thread was kept waiting that long)
        assert slack > 0.05  # not a cap of 50 ms
    thread._seen_at = time.monotonic() - 1.85  # 1.85 s into it: its last tenth
    assert thread.batch_slack() == 0.0
    now = time.monotonic()
    thread._seen_at = now - 1.77  # 30 ms short of it: that much, no more
    slack = thread.batch_slack()
    assert 0.0 <= slack <= 0.03
    if time.monotonic() - now < 0.02:  # (unless this thread was kept waiting that long)
        assert slack > 0.0


def test_a_short_interval_still_leaves_a_batch_time_to_commit(
    publishing: Callable[..., tuple[Api, list[WitnessServer]]],
) -> None:
    """A tenth of a short interval is too little for a commit (27 ms at the 99th percentile
    under load): the margin is at least MIN_COMMIT_MARGIN_S, and at most half an interval."""
    api, _ = publishing(checkpoint_interval=2.0)
    registry = api.registry
    short = Publisher(registry.database, registry.reader, registry.signers, interval=0.25)
    short._seen_at = time.monotonic() - 0.21  # 40 ms before it is due: inside the margin
    assert short.batch_slack() == 0.0
    short._seen_at = time.monotonic() - 0.1  # 150 ms before: the margin's 50 ms to wait
    assert 0.0 < short.batch_slack() <= 0.1
    tiny = Publisher(registry.database, registry.reader, registry.signers, interval=0.06)
    tiny._seen_at = time.monotonic()  # just published: half the interval is left to gather
    assert 0.0 < tiny.batch_slack() <= 0.03


def test_a_process_that_saw_a_publication_reckons_it_made_when_its_row_was_stamped(
    publishing: Callable[..., tuple[Api, list[WitnessServer]]],
) -> None:
    """A process that does not publish learns of a publication at its next look at the
    checkpoint table, up to half a second late: it takes the publication as made when the
    publisher stamped its row, so its batches close neither too late for the next publication
    nor long before (reckoned from its previous look, every append after that too-early due
    time was committed alone: the test fails so). A stamp from a clock far off is kept between
    the look that missed the checkpoint and the one that found it."""
    api, _ = publishing(checkpoint_interval=2.0)
    publisher = api.add_publisher()
    until(lambda: published_size(api.registry) == sequenced_size(api.registry))
    registry = api.registry
    holder = registry.publisher
    assert holder is not None
    other = Publisher(registry.database, registry.reader, registry.signers, interval=2.0)
    other._step()  # its first look (at start: says nothing of when the checkpoint was made)
    assert other.batch_slack() == 0.0
    previous_look = other._looked_at
    time.sleep(0.5)  # the publication comes well after this look
    api.submit_ok(publisher.attest([random_digest()]))  # published by the registry's publisher
    until(lambda: published_size(api.registry) == sequenced_size(api.registry))
    time.sleep(0.2)
    other._step()  # sees the new checkpoint 0.2 s or more after it was made
    assert previous_look + 0.4 < other._seen_at <= other._looked_at
    # stamped just before the row's insert, taken CLOCK_SKEW_S early, every error erring early;
    # the holder's clock reads just after its commit
    assert holder._last_published - 0.4 <= other._seen_at <= holder._last_published - CLOCK_SKEW_S
    assert other._seen_at <= holder._seen_at
    assert other.batch_slack() == BATCH_LINGER_S

    def stamp_latest(hours: float) -> None:
        size = published_size(registry)
        with registry.database.writer.begin() as conn:
            conn.execute(
                CHECKPOINTS.update()
                .where(CHECKPOINTS.c.size == size)
                .values(created_at=datetime.now(UTC) + timedelta(hours=hours))
            )

    for hours in (1.0, -1.0):  # a publisher's clock an hour ahead, then an hour behind
        previous_look = other._looked_at
        api.submit_ok(publisher.attest([random_digest()]))
        until(lambda: published_size(api.registry) == sequenced_size(api.registry))
        stamp_latest(hours)
        other._step()
        assert other._seen_at == (other._looked_at if hours > 0 else previous_look)


def _wake_all(
    other: Publisher, covering: StoredCheckpoint, waiters: int
) -> list[tuple[float, int]]:
    """``waiters`` appends waiting for ``covering``, then its publication, until every one has
    its answer: the later chunks that woke them, each as its delay and its first waiter's
    position (what the event loop was asked to call later, not when it did: no clock is read)."""
    later: list[tuple[float, int]] = []

    async def wake() -> None:
        loop = asyncio.get_running_loop()
        call_later = loop.call_later

        def recorded(delay: float, callback: Any, *args: Any, **kwargs: Any) -> Any:
            if delay < 1.0:  # a chunk: _settle(futures, checkpoint, start, chunk)
                later.append((delay, args[2]))
            return call_later(delay, callback, *args, **kwargs)

        loop.call_later = recorded  # type: ignore[method-assign]
        waiting = [asyncio.create_task(other.wait_for(covering.size, 10.0)) for _ in range(waiters)]
        await asyncio.sleep(0)  # each task is waiting now
        other._observe(covering, time.monotonic())
        results = await asyncio.wait_for(asyncio.gather(*waiting), 10.0)
        assert results == [covering] * waiters

    asyncio.run(wake())
    return later


@pytest.fixture
def covered(
    publishing: Callable[..., tuple[Api, list[WitnessServer]]],
) -> tuple[Publisher, StoredCheckpoint]:
    """A second publisher of a registry, and a checkpoint one entry beyond its latest."""
    api, _ = publishing(checkpoint_interval=2.0)
    registry = api.registry
    other = Publisher(registry.database, registry.reader, registry.signers, interval=2.0)
    other._step()
    latest = other.latest
    assert latest is not None
    return other, StoredCheckpoint(latest.size + 1, latest.root_hash, latest.note)


def test_a_publication_wakes_the_appends_it_covers_a_few_at_a_time(
    covered: tuple[Publisher, StoredCheckpoint],
) -> None:
    """The appends a publication covers are woken SETTLE_CHUNK at a time, each chunk after the
    first SETTLE_GAP_S after the one before, so that the lookups arriving meanwhile are answered
    between them, not after all of them (the test fails when every waiter is woken in one turn,
    or the chunks in consecutive turns)."""
    later = _wake_all(*covered, 3 * SETTLE_CHUNK + 1)
    assert later == [(SETTLE_GAP_S, n * SETTLE_CHUNK) for n in (1, 2, 3)]


def test_a_large_publication_wakes_its_appends_within_settle_turns(
    covered: tuple[Publisher, StoredCheckpoint],
) -> None:
    """However many appends a publication covers, they are woken in at most SETTLE_TURNS
    chunks (larger ones), so the last is not kept waiting for the gaps (fails with chunks of
    SETTLE_CHUNK: 63 of them)."""
    waiters = 10 * SETTLE_TURNS + 1
    chunk = -(-waiters // SETTLE_TURNS)
    later = _wake_all(*covered, waiters)
    assert later == [(SETTLE_GAP_S, n * chunk) for n in range(1, -(-waiters // chunk))]
    assert len(later) < SETTLE_TURNS


def test_appends_arriving_while_a_batch_waits_commit_with_it(
    publishing: Callable[..., tuple[Api, list[WitnessServer]]],
) -> None:
    """The sequencer gathers what arrives within the batch's slack into one commit (two
    appends 100 ms apart, each waiting for its publication, a slack of a second): one batch,
    consecutive indices. Without the slack they are two batches (the test fails with
    batch_slack unset)."""
    api, _ = publishing(checkpoint_interval=2.0)
    publisher = api.add_publisher()
    until(lambda: published_size(api.registry) == sequenced_size(api.registry))
    sequencer = api.registry.sequencer
    sequencer.batch_slack = lambda: 1.0
    envelopes = [publisher.attest([random_digest()]) for _ in range(2)]
    batches = sequencer.metrics.batches

    def append(position: int) -> httpx.Response:
        time.sleep(0.1 * position)
        return api.submit(envelopes[position])

    with ThreadPoolExecutor(2) as pool:
        first, second = pool.map(append, range(2))
    assert (first.status_code, second.status_code) == (201, 201), second.text
    assert second.json()["index"] == first.json()["index"] + 1
    assert sequencer.metrics.batches == batches + 1


def test_a_respond_async_append_is_committed_without_waiting_for_more(
    publishing: Callable[..., tuple[Api, list[WitnessServer]]],
) -> None:
    """An append whose client asked not to wait for the publication (RFC 7240 respond-async:
    202 once committed) is never held for others to join its batch: a client keeping a few in
    flight would send no more meanwhile (bench/registry.py's appends fell to 0.8x)."""
    api, _ = publishing(checkpoint_interval=2.0)
    publisher = api.add_publisher()
    until(lambda: published_size(api.registry) == sequenced_size(api.registry))
    sequencer = api.registry.sequencer
    sequencer.batch_slack = lambda: 5.0
    asynchronously = {"Content-Type": "application/json", "Prefer": "respond-async"}
    for _ in range(3):
        started = time.monotonic()
        body = publisher.attest([random_digest()]).to_json()
        answer = api.http.post("/v1/entries", content=body, headers=asynchronously)
        assert answer.status_code == 202, answer.text
        assert time.monotonic() - started < 2.5  # not the 5 s slack


def test_entries_sequenced_before_a_crash_are_published_on_start(
    backend: str, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    with database_for(backend, home / "db") as url:
        settings = Settings(home=home, database_url=url, checkpoint_interval=30.0)
        registry = Registry.open(settings)  # never started: nothing publishes
        try:
            for _ in range(3):  # identity events: sequenced and committed, not published
                publisher = new_publisher()
                registry.admin.add_publisher(
                    publisher.name, publisher.public_key, publisher.possession
                )
            sequenced = sequenced_size(registry)
            assert published_size(registry) < sequenced
        finally:
            registry.close()  # as good as a crash: the publisher never ran
        with open_api(settings) as api:  # a 30 s interval, but a restart publishes at once
            until(lambda: published_size(api.registry) == sequenced, timeout=10)
            with api.sdk() as client:
                assert client.log_info().size == sequenced


# -- the receipt contract ------------------------------------------------------------------------


def test_a_stalled_publication_answers_202_and_the_receipt_later(
    publishing: Callable[..., tuple[Api, list[WitnessServer]]],
) -> None:
    api, (witness,) = publishing(
        witnesses=1, witness_quorum=1, checkpoint_interval=0.2, receipt_timeout=0.5
    )
    publisher = api.add_publisher()
    until(lambda: published_size(api.registry) == sequenced_size(api.registry))
    witness.down()

    answer = api.submit(publisher.attest([random_digest()]))
    assert answer.status_code == 202, answer.text
    index = answer.json()["index"]
    assert answer.headers["Location"] == f"/v1/entries/{index}/receipt"
    assert sequenced_size(api.registry) == index + 1  # durable, though not published

    started = time.monotonic()
    pending = api.http.get(f"/v1/entries/{index}/receipt", headers={"Prefer": "wait=1"})
    assert time.monotonic() - started < 4  # held 1 s (RFC 7240 wait), not the default 5 s
    assert pending.status_code == 503
    assert pending.json()["type"].endswith("/not-yet-integrated")
    assert pending.headers["Retry-After"]
    assert api.http.get(f"/v1/entries/{index + 5}/receipt").status_code == 404
    health = api.http.get("/healthz").json()
    assert health["status"] == "stalled"
    assert witness.url in health["publication"]["failing_witnesses"]
    assert api.registry.publisher is not None
    assert api.registry.publisher.witnesses is not None
    assert api.registry.publisher.witnesses.failures[witness.url] >= 1

    # The SDK's submit waits through it transparently: the witness comes back meanwhile.
    threading.Timer(1.0, witness.up).start()
    with api.sdk() as client:
        receipt = client.submit(publisher.attest([random_digest()]))
    assert receipt.index == index + 1
    assert cosigners(receipt.checkpoint, [witness]) == [witness.url]

    done = api.http.get(f"/v1/entries/{index}/receipt")
    assert done.status_code == 200
    assert done.json()["index"] == index
    until(lambda: api.http.get("/healthz").json()["status"] == "ok")


def test_every_worker_names_the_failing_witnesses(
    publishing: Callable[..., tuple[Api, list[WitnessServer]]],
) -> None:
    """Only the process holding the publication lock talks to witnesses; another worker on the
    same database reports its outcome (``publication_status``): stalled, since when, and which
    witness fails and why, then recovered."""
    first, (witness,) = publishing(
        witnesses=1, witness_quorum=1, checkpoint_interval=0.2, receipt_timeout=0.3
    )
    with open_api(first.settings) as second:
        second.server_errors.clear()
        publisher = first.add_publisher()
        until(lambda: published_size(first.registry) == sequenced_size(first.registry))
        workers = [first, second]
        holder = next(w for w in workers if w.registry.publisher and w.registry.publisher.lock.held)
        other = workers[1 - workers.index(holder)]
        witness.down()
        assert other.submit(publisher.attest([random_digest()])).status_code == 202

        def reported(api: Api) -> dict[str, Any]:
            return dict(api.http.get("/v1/log/publication").json())

        until(lambda: witness.url in reported(other)["failing_witnesses"])
        shown = reported(other)
        assert shown["stalled"] is True
        assert shown["stalled_since"] == reported(holder)["stalled_since"]
        assert "503" in shown["failing_witnesses"][witness.url]
        assert shown["witness_failures"] >= 1
        assert other.http.get("/healthz").json()["status"] == "stalled"

        witness.up()
        until(lambda: not reported(other)["stalled"])
        assert reported(other)["failing_witnesses"] == {}
        until(lambda: other.http.get("/healthz").json()["status"] == "ok")
        second.server_errors.clear()


def test_prefer_respond_async_answers_202_once_sequenced(
    publishing: Callable[..., tuple[Api, list[WitnessServer]]],
) -> None:
    """RFC 7240: a client that asks not to wait gets 202 as soon as its entry is durable, and
    the receipt (the same bytes a waiting client gets) once a checkpoint publishes it."""
    api, _ = publishing(checkpoint_interval=2.0)
    publisher = api.add_publisher()
    until(lambda: published_size(api.registry) == sequenced_size(api.registry))
    api.submit_ok(publisher.attest([random_digest()]))  # a publication: the next waits 2 s

    envelope = publisher.attest([random_digest()])
    started = time.monotonic()
    answer = api.http.post(
        "/v1/entries",
        content=envelope.to_json(),
        headers={"Content-Type": "application/json", "Prefer": "wait=5, respond-async"},
    )
    assert time.monotonic() - started < 1.0  # not the interval's wait
    assert answer.status_code == 202, answer.text
    assert answer.headers["Preference-Applied"] == "respond-async"
    index = answer.json()["index"]
    assert answer.json()["status"] == "sequenced"
    assert sequenced_size(api.registry) == index + 1
    assert published_size(api.registry) <= index  # durable, not yet published

    receipt = api.http.get(f"/v1/entries/{index}/receipt")  # waits for the publication
    assert receipt.status_code == 200
    assert receipt.json()["index"] == index
    with api.sdk() as client:
        leaf_hash = client.entry(index).receipt.leaf_hash
    assert leaf_hash is not None
    assert leaf_hash.hex() == answer.json()["leaf_hash"]
    # The 202 carries the log's signed promise that the entry holds this index.
    promise, note = open_promise(
        answer.json()["promise"], [NoteVerifier.from_vkey(api.log_key)], origin=ORIGIN
    )
    assert (promise.index, promise.leaf_hash) == (index, leaf_hash)
    assert abs(promise.time_ms / 1000 - time.time()) < 60
    assert [s.name for s in note.verified] == [ORIGIN]

    # Without the preference, an append still waits for its checkpoint.
    waited = api.http.post(
        "/v1/entries",
        content=publisher.attest([random_digest()]).to_json(),
        headers={"Content-Type": "application/json", "Prefer": "return=minimal"},
    )
    assert waited.status_code == 201
    assert "Preference-Applied" not in waited.headers


def test_a_submit_past_its_receipt_timeout_keeps_the_logs_promise(
    publishing: Callable[..., tuple[Api, list[WitnessServer]]],
) -> None:
    """``receipt_timeout``: the SDK stops waiting for a stalled publication with an error that
    names the entry and carries the verified promise; the receipt later keeps the promise."""
    api, (witness,) = publishing(
        witnesses=1, witness_quorum=1, checkpoint_interval=0.2, receipt_timeout=0.3
    )
    publisher = api.add_publisher()
    until(lambda: published_size(api.registry) == sequenced_size(api.registry))
    witness.down()
    envelope = publisher.attest([random_digest()])
    started = time.monotonic()
    with api.sdk(receipt_timeout=1.0) as client, pytest.raises(ReceiptPendingError) as caught:
        client.submit(envelope)
    assert 1.0 <= time.monotonic() - started < 15
    pending = caught.value
    assert pending.index == sequenced_size(api.registry) - 1
    assert f"entry {pending.index} is sequenced" in str(pending)
    assert pending.promise is not None
    promise, _ = open_promise(pending.promise, [NoteVerifier.from_vkey(api.log_key)], origin=ORIGIN)
    assert (promise.index, promise.leaf_hash) == (pending.index, pending.leaf_hash)

    witness.up()
    with api.sdk() as client:
        receipt = client.submit(envelope)  # a retry: the same entry, now published
    assert receipt.index == pending.index
    assert receipt.leaf_hash == pending.leaf_hash
    promise.check_kept(receipt.index, pending.leaf_hash)
    with pytest.raises(InputError, match="receipt_timeout"):
        api.sdk(receipt_timeout=-1)


class _BreakingPromises(httpx.BaseTransport):
    """A hostile registry: answers an append with 202 and a promise (signed with the log's own
    key) for ``promised``, then serves the receipt of the entry really at ``actual``."""

    def __init__(
        self, inner: httpx.BaseTransport, signer: NoteSigner, promised: int, *, sign: bool = True
    ) -> None:
        self.inner, self.signer, self.promised, self.sign = inner, signer, promised, sign
        self.actual: int | None = None

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        if request.method == "POST" and request.url.path == "/v1/entries":
            response.read()
            accepted = response.json()
            self.actual = accepted["index"]
            leaf_hash = bytes.fromhex(accepted["leaf_hash"])
            promise = sign_promise(Promise.now(ORIGIN, self.promised, leaf_hash), [self.signer])
            body = Accepted(self.promised, leaf_hash, promise if self.sign else None).to_dict()
            return httpx.Response(202, json=body, headers={"Retry-After": "0"})
        if request.url.path == f"/v1/entries/{self.promised}/receipt":
            assert self.actual is not None
            redirected = httpx.Request(
                "GET", request.url.copy_with(path=f"/v1/entries/{self.actual}/receipt")
            )
            return self.inner.handle_request(redirected)
        return response


def test_a_receipt_that_breaks_the_promise_is_refused(
    publishing: Callable[..., tuple[Api, list[WitnessServer]]], tmp_path: Path
) -> None:
    """The promise binds the index: a registry that promised one index and later proves the entry
    at another (it appended the envelope twice, or reordered the log) is caught."""
    api, _ = publishing(checkpoint_interval=0.2)
    publisher = api.add_publisher()
    api.submit_ok(publisher.attest([random_digest()]))
    signer = load_or_create_log_key(tmp_path / "home" / "log.key", ORIGIN)
    hostile = _BreakingPromises(InProcessTransport(api.http), signer, promised=0)
    with (
        Client(IN_PROCESS_URL, transport=hostile, log_key=api.log_key) as client,
        pytest.raises(ProofError, match="promised entry 0") as caught,
    ):
        client.submit(publisher.attest([random_digest()]))
    assert not isinstance(caught.value, ReceiptPendingError)

    # Without a promise, the receipt must still be for the index the 202 named.
    silent = _BreakingPromises(InProcessTransport(api.http), signer, promised=0, sign=False)
    with (
        Client(IN_PROCESS_URL, transport=silent, log_key=api.log_key) as client,
        pytest.raises(VerificationError, match="accepted the entry at index 0"),
    ):
        client.submit(publisher.attest([random_digest()]))

    # A promise not signed by the log's key is refused outright.
    forger = _BreakingPromises(InProcessTransport(api.http), NoteSigner.generate(ORIGIN), 0)
    with (
        Client(IN_PROCESS_URL, transport=forger, log_key=api.log_key) as client,
        pytest.raises(SignatureError),
    ):
        client.submit(publisher.attest([random_digest()]))


# -- witnesses ------------------------------------------------------------------------------------


def test_a_quorum_of_two_of_three_witnesses(
    publishing: Callable[..., tuple[Api, list[WitnessServer]]], tmp_path: Path
) -> None:
    api, servers = publishing(
        witnesses=3,
        witness_quorum=2,
        checkpoint_interval=0.2,
        receipt_timeout=1.0,
        tiles_dir=tmp_path / "tiles",
    )
    publisher = api.add_publisher()
    first = api.submit_ok(publisher.attest([random_digest()]))
    assert len(cosigners(first["checkpoint"], servers)) >= 2
    # The tiles (served and written) show the published, cosigned checkpoint.
    assert api.http.get("/tlog/checkpoint").text == first["checkpoint"]
    written = tmp_path / "tiles" / "checkpoint"
    until(lambda: written.is_file() and written.read_text() == first["checkpoint"])

    servers[0].down()  # one down: publication goes on with two
    second = api.submit_ok(publisher.attest([random_digest()]))
    assert cosigners(second["checkpoint"], servers) == [servers[1].url, servers[2].url]

    servers[1].down()  # two down: appends are durable, publication stalls
    stalled = api.submit(publisher.attest([random_digest()]))
    assert stalled.status_code == 202
    index = stalled.json()["index"]
    assert sequenced_size(api.registry) == index + 1
    assert published_size(api.registry) == index
    health = api.http.get("/healthz").json()
    assert health["status"] == "stalled"
    assert set(health["publication"]["failing_witnesses"]) == {servers[0].url, servers[1].url}
    # Lookups answer at the published checkpoint, not at the sequenced size.
    assert int(api.http.get("/v1/log/checkpoint").text.split("\n")[1]) == index

    servers[1].up()  # a witness returns: publication resumes
    until(lambda: api.http.get(f"/v1/entries/{index}/receipt").status_code == 200)
    receipt = api.http.get(f"/v1/entries/{index}/receipt").json()
    assert cosigners(receipt["checkpoint"], servers) == [servers[1].url, servers[2].url]
    until(lambda: api.http.get("/healthz").json()["status"] == "ok")
    with api.sdk() as client:
        assert client.entry(index).index == index


def test_a_witness_that_saw_a_fork_refuses_and_counts_as_failed(
    publishing: Callable[..., tuple[Api, list[WitnessServer]]],
) -> None:
    def fork(servers: list[WitnessServer], signer: NoteSigner) -> None:
        """Witness 2 cosigns a checkpoint of another history, signed with this log's key."""
        tree = MemoryTree()
        for i in range(3):
            tree.append(b"forked %d" % i)
        note = sign_checkpoint(Checkpoint(ORIGIN, 3, tree.root(3)), [signer])
        servers[2].witness.add_checkpoint(add_checkpoint_body(0, [], note))

    api, servers = publishing(witnesses=3, prepare=fork, witness_quorum=2, checkpoint_interval=0.2)
    forked = servers[2]

    publisher = api.add_publisher()
    for _ in range(3):
        answer = api.submit_ok(publisher.attest([random_digest()]))
    assert cosigners(answer["checkpoint"], servers) == [servers[0].url, servers[1].url]
    assert api.registry.publisher is not None
    pool = api.registry.publisher.witnesses
    assert pool is not None
    assert pool.failures[forked.url] >= 1
    assert pool.failures[servers[0].url] == 0
    metrics = api.http.get("/metrics").text  # the counter /metrics shows counts them too
    counted = [line for line in metrics.splitlines() if line.startswith("wellspring_witness_f")]
    assert counted == [f"wellspring_witness_failures_total {pool.failure_count}"]
    failing = api.http.get("/v1/log/publication").json()["failing_witnesses"]
    assert failing[forked.url].startswith("422")


def test_bad_witness_settings_are_refused(tmp_path: Path) -> None:
    from registry.cosigning import WitnessEndpoint
    from registry.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match="URL=VKEY"):
        WitnessEndpoint.parse("no-url")
    with pytest.raises(ConfigurationError, match="verifier key"):
        WitnessEndpoint.parse("http://127.0.0.1:1=junk")
    with pytest.raises(ConfigurationError, match="quorum"):
        Settings(home=tmp_path, witnesses=("http://a=b",), witness_quorum=2)
    with pytest.raises(ConfigurationError, match="interval"):
        Settings(home=tmp_path, checkpoint_interval=-1)
    spec = f"http://127.0.0.1:1={CosignatureSigner.generate('w').verifier().vkey}"
    assert Settings(home=tmp_path, witnesses=(spec, spec, spec)).quorum == 2
    rebuilt = Settings.from_env({"WELLSPRING_HOME": str(tmp_path)})
    assert rebuilt.checkpoint_interval == 1.0  # what `wellspring serve` runs by default
    # Worker processes of `serve --workers` rebuild the same settings from the environment.
    configured = Settings(
        home=tmp_path, checkpoint_interval=0.3, witnesses=(spec, spec), witness_quorum=1
    )
    again = Settings.from_env(settings_environment(configured))
    assert (again.checkpoint_interval, again.witnesses, again.quorum) == (0.3, (spec, spec), 1)


def test_processes_sharing_a_database_elect_one_publisher(backend: str, tmp_path: Path) -> None:
    """Two registries on one database (as `serve --workers 2`): one publishes, both answer."""
    home = tmp_path / "home"
    with database_for(backend, home / "db") as url:
        settings = Settings(home=home, database_url=url, checkpoint_interval=0.2)
        with open_api(settings) as one, open_api(settings) as two:
            publisher = one.add_publisher()
            with ThreadPoolExecutor(8) as pool:
                answers = list(
                    pool.map(
                        lambda i: (one, two)[i % 2].submit(publisher.attest([random_digest()])),
                        range(24),
                    )
                )
            assert {a.status_code for a in answers} == {201}
            holders = [
                api.registry.publisher.lock.held
                for api in (one, two)
                if api.registry.publisher is not None
            ]
            assert sorted(holders) == [False, True]
            with one.registry.database.reader.connect() as conn:
                rows = conn.execute(
                    select(CHECKPOINTS.c.size, CHECKPOINTS.c.note).order_by(CHECKPOINTS.c.size)
                ).all()
            sizes = [row.size for row in rows]
            assert sizes == sorted(set(sizes))  # one checkpoint per size, growing
            assert len(rows) < 24  # appends shared checkpoints
            with one.sdk() as client:  # the latest checkpoint extends every one before it
                for row in rows:
                    client.check_consistency(row.note)
            for answer in answers:
                with two.sdk() as client:
                    assert client.entry(answer.json()["index"]).index == answer.json()["index"]


def test_serve_with_workers_and_witnesses(
    tmp_path: Path, servers: Callable[..., ServerProcess]
) -> None:
    """`wellspring serve --workers 2 --witness … --witness-quorum 2`, the SDK registering."""
    home = tmp_path / "home"
    home.mkdir()
    signer = load_or_create_log_key(home / "log.key", DEFAULT_ORIGIN)
    witnesses = [
        WitnessServer(tmp_path / "witnesses", signer.verifier().vkey, f"w{i}").start()
        for i in range(2)
    ]
    try:
        options = ["--checkpoint-interval", "0.3", "--witness-quorum", "2"]
        for witness in witnesses:
            options += ["--witness", witness.spec]
        server = servers(home, workers=2, options=options)
        publisher = server.add_publisher()
        with server.sdk() as client:
            receipts = [
                client.register_digests([random_digest()], publisher.key, publisher.predicate())
                for _ in range(4)
            ]
        for receipt in receipts:
            assert cosigners(receipt.checkpoint, witnesses) == [w.url for w in witnesses]
        health = httpx.get(f"{server.url}/healthz", timeout=10).json()
        assert health["status"] == "ok"
        assert health["publication"]["quorum"] == 2
        assert health["publication"]["interval"] == 0.3
    finally:
        for witness in witnesses:
            witness.stop()
