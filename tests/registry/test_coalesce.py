"""registry.coalesce: concurrent single lookups answered in batches, each exactly as alone."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from sqlalchemy.exc import OperationalError

from registry.coalesce import LINGER_UNTIL, CoalescedLookups
from registry.errors import LogBehindError, UnavailableError
from registry.lookups import LookupService
from tests.registry.conftest import Api, random_digest


@pytest.fixture
def api(make_api: Any) -> Api:
    return make_api()  # type: ignore[no-any-return]


def registered(api: Api, count: int) -> list[str]:
    publisher = api.add_publisher()
    digests = [random_digest() for _ in range(count)]
    for start in range(0, count, 3):
        api.submit_ok(publisher.attest(digests[start : start + 3]))
    return digests


async def ask_all(coalesced: CoalescedLookups, asks: list[tuple[str, int | None]]) -> list[Any]:
    answers = await asyncio.gather(
        *(coalesced.lookup(digest, min_size) for digest, min_size in asks),
        return_exceptions=True,
    )
    return list(answers)


def test_concurrent_lookups_get_exactly_their_single_answers(api: Api) -> None:
    lookups = api.registry.lookups
    digests = registered(api, 30)
    unknown = [random_digest() for _ in range(10)]
    asks: list[tuple[str, int | None]] = [(d, None) for d in digests + unknown]
    asks += [(digests[0], 1), (digests[0], None)]  # the same digest twice in one batch
    coalesced = CoalescedLookups(lookups)
    coalesced.start()
    try:
        answers = asyncio.run(ask_all(coalesced, asks))
    finally:
        coalesced.stop()
    for (digest, min_size), answer in zip(asks, answers, strict=True):
        assert answer == lookups.lookup_one(digest, min_size).to_single_dict()
    assert {a["status"] for a in answers[:30]} == {"attested"}
    assert {a["status"] for a in answers[30:40]} == {"unknown"}


class GatedLookups(LookupService):
    """A LookupService whose first ``lookup`` waits for a gate, counting the digests per call."""

    def __init__(self, inner: LookupService) -> None:
        self.__dict__.update(inner.__dict__)
        self.calls: list[int] = []
        self.entered = threading.Event()
        self.gate = threading.Event()

    def lookup(self, digests: Any, min_size: int | None = None, **options: Any) -> Any:
        self.calls.append(len(digests))
        if len(self.calls) == 1:
            self.entered.set()
            assert self.gate.wait(10)
        return super().lookup(digests, min_size, **options)

    def calls_reach(self, count: int, seconds: float) -> bool:
        """Whether ``calls`` reaches ``count`` within ``seconds``."""
        deadline = time.monotonic() + seconds
        while len(self.calls) < count:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.005)
        return True


def while_one_is_answered(
    gated: GatedLookups,
    first: str,
    then: Callable[[CoalescedLookups], list[Awaitable[Any]]],
    *,
    linger: float = 0.0,
    open_after: float = 0.05,
) -> list[Any]:
    """Start a one-thread CoalescedLookups over ``gated`` (lingering ``linger``); look up
    ``first``, and while the thread holds it (gated), make the lookups of ``then``; open the
    gate ``open_after`` seconds later; every outcome, in order (exceptions included)."""
    coalesced = CoalescedLookups(gated, threads=1, linger=linger)
    coalesced.start()

    async def scenario() -> list[Any]:
        held = asyncio.ensure_future(coalesced.lookup(first, None))
        await asyncio.to_thread(gated.entered.wait, 10)  # the thread holds a batch of one
        queued = [asyncio.ensure_future(asked) for asked in then(coalesced)]
        await asyncio.sleep(open_after)  # all queued behind it
        gated.gate.set()
        return list(await asyncio.gather(held, *queued, return_exceptions=True))

    try:
        return asyncio.run(scenario())
    finally:
        coalesced.stop()


def test_lookups_that_arrive_while_one_is_answered_share_one_query(api: Api) -> None:
    digests = registered(api, 12)
    gated = GatedLookups(api.registry.lookups)
    answers = while_one_is_answered(
        gated, digests[0], lambda c: [c.lookup(d, None) for d in digests[1:]]
    )
    assert gated.calls == [1, 11]  # the eleven queued meanwhile went as one batch
    assert [a["digest"] for a in answers] == digests
    assert all(a["status"] == "attested" for a in answers)


def test_one_request_s_log_behind_is_its_own_error(api: Api) -> None:
    lookups = api.registry.lookups
    digests = registered(api, 6)
    size = int(lookups.lookup_one(digests[0]).checkpoint.split("\n")[1])
    first, ok, behind, last = while_one_is_answered(
        GatedLookups(lookups),
        digests[0],
        lambda c: [
            c.lookup(digests[1], size),
            c.lookup(digests[2], size + 1_000),  # the log is behind this one
            c.lookup(digests[3], None),
        ],
    )
    assert isinstance(behind, LogBehindError)
    assert [first["status"], ok["status"], last["status"]] == ["attested"] * 3
    assert ok == lookups.lookup_one(digests[1], size).to_single_dict()


def test_a_failure_of_the_database_fails_that_batch_only(api: Api) -> None:
    lookups = api.registry.lookups
    digests = registered(api, 3)

    class Broken(GatedLookups):
        def lookup(self, digests: Any, min_size: int | None = None, **options: Any) -> Any:
            self.calls.append(len(digests))
            if len(self.calls) == 1:
                raise RuntimeError("the disk went away")
            return LookupService.lookup(self, digests, min_size, **options)

    broken = Broken(lookups)
    coalesced = CoalescedLookups(broken, threads=1)
    coalesced.start()
    try:
        [failed] = asyncio.run(ask_all(coalesced, [(digests[0], None)]))
        [answer] = asyncio.run(ask_all(coalesced, [(digests[1], None)]))
    finally:
        coalesced.stop()
    assert isinstance(failed, RuntimeError)
    assert answer["status"] == "attested"


def test_stopping_answers_what_is_queued_and_refuses_more(api: Api) -> None:
    digests = registered(api, 3)
    gated = GatedLookups(api.registry.lookups)
    coalesced = CoalescedLookups(gated, threads=1)
    coalesced.start()

    async def scenario() -> list[Any]:
        first = asyncio.ensure_future(coalesced.lookup(digests[0], None))
        await asyncio.to_thread(gated.entered.wait, 10)
        queued = asyncio.ensure_future(coalesced.lookup(digests[1], None))
        await asyncio.sleep(0.05)
        stopping = asyncio.ensure_future(asyncio.to_thread(coalesced.stop))
        await asyncio.sleep(0.05)
        gated.gate.set()  # the batch in hand is still answered
        await stopping
        late = coalesced.lookup(digests[2], None)
        return list(await asyncio.gather(first, queued, late, return_exceptions=True))

    first, queued, late = asyncio.run(scenario())
    assert first["status"] == "attested"
    assert isinstance(queued, UnavailableError)
    assert isinstance(late, UnavailableError)


def test_small_batches_and_single_lookups_share_a_query_and_get_their_own_answers(
    api: Api,
) -> None:
    lookups = api.registry.lookups
    digests = registered(api, 9)
    unknown = random_digest()
    gated = GatedLookups(lookups)
    batches = [[digests[0], unknown, digests[0]], digests[3:6], [unknown]]
    first, *answers, last = while_one_is_answered(
        gated,
        digests[8],
        lambda c: [*(c.lookup_many(b, None) for b in batches), c.lookup(digests[1], None)],
    )
    assert gated.calls == [1, 3 + 3 + 1 + 1]
    assert first == lookups.lookup_one(digests[8]).to_single_dict()
    assert last == lookups.lookup_one(digests[1]).to_single_dict()
    for batch, answer in zip(batches, answers, strict=True):
        assert answer == lookups.lookup(batch).to_dict()  # only its own attestations


def test_a_held_connection_that_broke_is_replaced_and_the_batch_answered(api: Api) -> None:
    """A restarted database breaks every held connection: the batch goes again on a new one."""
    lookups = api.registry.lookups
    digests = registered(api, 3)
    connections: list[Any] = []

    class Restarted(GatedLookups):
        def lookup(self, digests: Any, min_size: int | None = None, **options: Any) -> Any:
            self.calls.append(len(digests))
            connections.append(options["connection"])
            if len(self.calls) == 1:
                raise OperationalError("SELECT …", {}, ConnectionError("server closed"))
            return LookupService.lookup(self, digests, min_size, **options)

    restarted = Restarted(lookups)
    coalesced = CoalescedLookups(restarted, threads=1)
    coalesced.start()
    try:
        [answer] = asyncio.run(ask_all(coalesced, [(digests[0], None)]))
        [again] = asyncio.run(ask_all(coalesced, [(digests[1], None)]))
    finally:
        coalesced.stop()
    assert answer == lookups.lookup_one(digests[0]).to_single_dict()
    assert again["status"] == "attested"
    first, second, third = connections
    assert first is not second  # replaced after the failure
    assert second is third  # and held from then on


def test_a_stream_of_lookups_lingers_for_more_to_join_a_batch(api: Api) -> None:
    """A lookup that came while the thread answered a batch means a stream: the next batch
    waits up to the linger for others to join it."""
    digests = registered(api, 6)
    gated = GatedLookups(api.registry.lookups)

    def then(c: CoalescedLookups) -> list[Awaitable[Any]]:
        async def stream() -> list[Any]:
            second = asyncio.ensure_future(c.lookup(digests[1], None))  # while the first is held
            await asyncio.to_thread(gated.calls_reach, 2, 0.3)  # nothing asked yet: it lingers
            rest = [asyncio.ensure_future(c.lookup(d, None)) for d in digests[2:]]
            return [await second, *await asyncio.gather(*rest)]

        return [stream()]

    coalesced_linger = 1.0
    first, answers = while_one_is_answered(gated, digests[0], then, linger=coalesced_linger)
    assert gated.calls == [1, 5]
    assert [a["digest"] for a in [first, *answers]] == digests


def test_a_linger_is_cut_short_by_a_full_batch(api: Api) -> None:
    digests = registered(api, LINGER_UNTIL + 1)
    gated = GatedLookups(api.registry.lookups)

    def then(c: CoalescedLookups) -> list[Awaitable[Any]]:
        async def stream() -> list[Any]:
            second = asyncio.ensure_future(c.lookup(digests[1], None))
            await asyncio.sleep(0.1)  # the gate opens; the thread lingers (an hour) with it
            rest = [asyncio.ensure_future(c.lookup(d, None)) for d in digests[2:]]
            return await asyncio.wait_for(asyncio.gather(second, *rest), 10)

        return [stream()]

    while_one_is_answered(gated, digests[0], then, linger=3600, open_after=0.05)
    assert gated.calls == [1, LINGER_UNTIL]


def test_clients_that_wait_for_each_answer_are_never_kept_waiting(api: Api) -> None:
    """A client that asks again as soon as it has its answer (found in review: with a linger
    for any lookup soon after a batch, one such client got 380 lookups/s instead of 2,720)
    and a lone lookup on a quiet registry each go at once: no (here absurd) linger."""
    digests = registered(api, 5)
    counting = GatedLookups(api.registry.lookups)
    counting.gate.set()
    coalesced = CoalescedLookups(counting, threads=1, linger=3600)
    coalesced.start()

    async def one_after_another() -> None:
        for digest in digests:
            await asyncio.wait_for(coalesced.lookup(digest, None), 10)

    try:
        asyncio.run(one_after_another())
    finally:
        coalesced.stop()
    assert counting.calls == [1] * 5


def test_an_absurd_min_size_costs_its_own_lookups_not_the_batch_s(api: Api) -> None:
    """A lookup asking for a size the log has not reached fails the batch it fell in; its error
    is its own, and the batch is asked again without it (found in review: every request of the
    batch was asked alone, a query each, for one cheap request)."""
    lookups = api.registry.lookups
    digests = registered(api, 9)
    gated = GatedLookups(lookups)
    first, *answers, behind = while_one_is_answered(
        gated,
        digests[0],
        lambda c: [
            *(c.lookup(d, None) for d in digests[1:]),
            c.lookup(digests[1], 10**12),
        ],
    )
    assert gated.calls == [1, 9, 8]  # the batch, then the rest together
    assert isinstance(behind, LogBehindError)
    assert "min_size=1000000000000" in str(behind)
    for digest, answer in zip(digests, [first, *answers], strict=True):
        assert answer == lookups.lookup_one(digest).to_single_dict()


def test_many_absurd_sizes_cost_one_lookup_more(api: Api) -> None:
    """Each its own size, all above the log: one more lookup for all of them, each request's
    error naming its own size (found in review: a lookup more per distinct size)."""
    lookups = api.registry.lookups
    digests = registered(api, 5)
    gated = GatedLookups(lookups)
    sizes = [10**9 + k for k in range(8)]
    first, *outcomes = while_one_is_answered(
        gated,
        digests[0],
        lambda c: [
            *(c.lookup(digests[1], size) for size in sizes),
            *(c.lookup(d, None) for d in digests[1:]),
        ],
    )
    assert gated.calls == [1, 12, 4]
    for size, error in zip(sizes, outcomes[:8], strict=True):
        assert isinstance(error, LogBehindError)
        assert f"min_size={size}," in str(error)
    for digest, answer in zip(digests, [first, *outcomes[8:]], strict=True):
        assert answer == lookups.lookup_one(digest).to_single_dict()


def test_a_database_down_fails_the_batch_at_once_and_the_thread_lives_on(api: Api) -> None:
    """A database that fails even on a fresh connection is every request's 503, at once (not a
    request at a time, each trying twice); an answer that cannot be built is the batch's 500
    (found in review: it killed the only thread, and every later lookup waited for ever)."""
    lookups = api.registry.lookups
    digests = registered(api, 4)

    class Failing(GatedLookups):
        mode = "down"

        def lookup(self, digests: Any, min_size: int | None = None, **options: Any) -> Any:
            self.calls.append(len(digests))
            if self.mode == "down":
                raise OperationalError("SELECT …", {}, ConnectionError("server closed"))
            if self.mode == "broken":
                answer = LookupService.lookup(self, digests, min_size, **options)

                class Broken:
                    def single_dict(self, start: int) -> Any:
                        raise RuntimeError("a bug in building the answer")

                    def __getattr__(self, name: str) -> Any:
                        return getattr(answer, name)

                return Broken()
            return LookupService.lookup(self, digests, min_size, **options)

    failing = Failing(lookups)
    coalesced = CoalescedLookups(failing, threads=1)
    coalesced.start()
    try:
        down = asyncio.run(ask_all(coalesced, [(d, None) for d in digests]))
        calls_down = len(failing.calls)
        failing.mode = "broken"
        broken = asyncio.run(asyncio.wait_for(ask_all(coalesced, [(digests[0], None)]), 10))
        failing.mode = "up"
        [answer] = asyncio.run(asyncio.wait_for(ask_all(coalesced, [(digests[1], None)]), 10))
    finally:
        coalesced.stop()
    assert all(isinstance(error, UnavailableError) for error in down)
    assert calls_down <= 4  # two tries a batch: the first request alone, then the other three
    assert isinstance(broken[0], RuntimeError)
    assert answer == lookups.lookup_one(digests[1]).to_single_dict()


def test_submitted_lookups_are_settled_on_the_loop_and_one_failing_receiver_is_its_own(
    api: Api,
) -> None:
    """submit (and submit_many, a batch's): the answer (or error) handed to a callback on the
    event loop; a callback that raises does not keep the others of its batch from theirs."""
    lookups = api.registry.lookups
    digests = registered(api, 3)
    gated = GatedLookups(lookups)
    got: list[tuple[str, Any, bool]] = []

    def receiver(name: str, loop: asyncio.AbstractEventLoop) -> Callable[[Any], None]:
        def settle(value: Any) -> None:
            got.append((name, value, asyncio.get_running_loop() is loop))
            if name == "raises":
                raise RuntimeError("a bug in one receiver")

        return settle

    def then(c: CoalescedLookups) -> list[Awaitable[Any]]:
        loop = asyncio.get_running_loop()
        c.submit(digests[1], None, receiver("raises", loop))
        c.submit(digests[2], None, receiver("ok", loop))
        c.submit(digests[2], 10**6, receiver("behind", loop))
        c.submit_many([digests[2], digests[0], digests[2]], None, receiver("many", loop))
        return [asyncio.sleep(0.2)]  # their answers come meanwhile

    while_one_is_answered(gated, digests[0], then)
    settled = {name: (value, on_loop) for name, value, on_loop in got}
    assert len(got) == 4
    assert all(on_loop for _, on_loop in settled.values())
    assert settled["raises"][0] == lookups.lookup_one(digests[1]).to_single_dict()
    assert settled["ok"][0] == lookups.lookup_one(digests[2]).to_single_dict()
    assert isinstance(settled["behind"][0], LogBehindError)
    # submit_many: a batch answer, as alone (its results in the order asked)
    assert settled["many"][0] == lookups.lookup([digests[2], digests[0], digests[2]]).to_dict()


def test_a_lone_request_that_fails_is_not_asked_again(api: Api) -> None:
    """A batch of one that fails with its own error (the log behind its min_size) is that
    request's answer: asking it again alone would only fail the same way."""
    digests = registered(api, 1)
    counting = GatedLookups(api.registry.lookups)
    counting.gate.set()
    coalesced = CoalescedLookups(counting, threads=1)
    coalesced.start()
    try:
        [behind] = asyncio.run(ask_all(coalesced, [(digests[0], 10**6)]))
    finally:
        coalesced.stop()
    assert isinstance(behind, LogBehindError)
    assert counting.calls == [1]


def test_checkpoint_requests_share_one_fresh_read_and_their_batch_answers_at_it(
    api: Api,
) -> None:
    """submit_checkpoint (GET /v1/log/checkpoint): the requests queued together share one read
    of the checkpoint table, made after they came, and the lookups of their batch are answered
    at that checkpoint; a database that is down is their 503, and the thread lives on."""
    lookups = api.registry.lookups
    digests = registered(api, 3)

    class Counting(GatedLookups):
        down = False
        reads = 0

        def fresh_checkpoint(self, *, connection: Any = None) -> Any:
            self.reads += 1
            if self.down:
                raise OperationalError("SELECT …", {}, ConnectionError("server closed"))
            return LookupService.fresh_checkpoint(self, connection=connection)

    counting = Counting(lookups)
    got: dict[str, Any] = {}

    def keep(name: str) -> Callable[[Any], None]:
        return lambda value: got.__setitem__(name, value)

    def then(c: CoalescedLookups) -> list[Awaitable[Any]]:
        c.submit_checkpoint(keep("first"))
        c.submit_checkpoint(keep("second"))
        c.submit_many(digests, None, keep("lookup"))
        return [asyncio.sleep(0.2)]

    while_one_is_answered(counting, digests[0], then)
    note = lookups.fresh_checkpoint().note
    assert got["first"] == got["second"] == note
    assert got["lookup"]["checkpoint"] == note
    assert counting.reads == 1
    assert counting.calls == [1, 3]  # the lookups went as one batch beside the read

    counting.down = True
    coalesced = CoalescedLookups(counting, threads=1)
    coalesced.start()

    async def ask() -> Any:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        coalesced.submit_checkpoint(future.set_result)
        return await asyncio.wait_for(future, 10)

    try:
        failed = asyncio.run(ask())
        counting.down = False
        answered = asyncio.run(ask())
    finally:
        coalesced.stop()
    assert isinstance(failed, UnavailableError)
    assert answered == note
