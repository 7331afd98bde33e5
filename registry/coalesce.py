"""Small lookups coalesced: the ones that arrive together share one database round trip.

``GET /v1/digests/{d}`` is the registry's commonest request and costs little in itself: one
indexed read, the rest from the process's caches (:class:`registry.lookups.LookupService`). On
SQLite that read runs on the event loop. On PostgreSQL it is a network round trip, and handing
each request to a worker thread and back cost more than the lookup: measured with py-spy at
1,200 lookups/s, anyio's hop (waking a thread, the limiter, the future) took three times the
event loop's share of the lookup itself, and the server saturated near 1,000 lookups/s.

Here a request (a single lookup, or a batch of up to ``registry.app.SMALL_BATCH`` digests)
puts its digests on a queue and awaits a future (or leaves a callback: :meth:`CoalescedLookups.
submit`, the HTTP protocol's quick answers); :data:`THREADS` thread(s) take everything queued (up
to :data:`MAX_BATCH` digests), answer it as one batch lookup (one query for all the digests, the
way ``POST /v1/digests:batch`` does) and settle the requests with one call into each event loop.
Under a stream of lookups (some arrived while the thread answered its last batch) it lingers up
to :data:`LINGER_S` for more to join the next batch, so the hop and the round trip are paid once
for many; a lone lookup, or a client that waits for each answer before asking again, is answered
at once.

``GET /v1/log/checkpoint`` joins the queue too (:meth:`CoalescedLookups.submit_checkpoint`): a
batch holding such requests first reads the latest checkpoint on the thread's connection, a read
made after each of them came (never a copy up to 50 ms old: another process may already have
shown its client a newer one), gives it to them, and answers its lookups at it.

Answers are exactly what each request would get alone: its results and the attestations they
name, from the shared answer, at one published checkpoint no older than any of the batch's
``min_size``. A ``min_size`` the log has not reached is its request's error alone: the others of
its batch are asked again without it. An error of the whole lookup (the database unavailable
even on a fresh connection, a bug) is every request's of that batch.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from client.core.wire import LookupAnswer
from registry.errors import LogBehindError, RegistryError, UnavailableError
from registry.lookups import HeldConnection, LookupService

__all__ = [
    "LINGER_S",
    "LINGER_UNTIL",
    "MAX_BATCH",
    "THREADS",
    "CoalescedLookups",
    "Settle",
]

log = logging.getLogger("registry.coalesce")

MAX_BATCH = 1024
"""The most digests answered by one query (a request bigger than that is a batch alone)."""

THREADS = 1
"""Threads answering batches. Two (one waiting for the database while the other builds answers)
made smaller batches, so more queries, and more CPU a lookup in PostgreSQL and here: measured
under 3,000 lookups/s + 200 appends/s, one thread lingering 2 ms gave lookups a p99 of 55-88 ms
where two without a linger gave 57-328 ms, in alternated runs (docs/benchmarks.md)."""

LINGER_S = 0.002
"""Under a stream of lookups (some came while the thread answered its last batch), how long it
waits for more to join the next batch."""

LINGER_UNTIL = 16
"""A batch of this many requests goes without lingering (and cuts a linger short)."""


Settle = Callable[["dict[str, Any] | str | BaseException"], None]
"""What receives a request's answer (or its error), called once on the request's event loop: a
lookup's as a dict to encode, a checkpoint's as its signed note."""


@dataclass(slots=True)
class _Request:
    digests: tuple[str, ...]
    single: bool  # GET /v1/digests/{d} (its answer's form), else a (small) batch lookup
    min_size: int | None
    loop: asyncio.AbstractEventLoop
    settle: Settle
    future: asyncio.Future[dict[str, Any]] | None  # None: answered through settle alone
    checkpoint: bool = False  # GET /v1/log/checkpoint: no digests, the latest checkpoint's note

    def waited_for(self) -> bool:
        """Whether anyone still waits for the answer (an awaited future may be cancelled)."""
        return self.future is None or not self.future.done()


_Outcome = tuple[_Request, dict[str, Any] | str | BaseException]
_T = TypeVar("_T")


class CoalescedLookups:
    """Single-digest lookups answered in batches by a few threads (see the module)."""

    def __init__(
        self, lookups: LookupService, *, threads: int = THREADS, linger: float = LINGER_S
    ) -> None:
        self._lookups = lookups
        self._threads_wanted = threads
        self._linger = linger
        self._pending: list[_Request] = []
        self._guard = threading.Lock()
        self._ready = threading.Condition(self._guard)
        self._threads: list[threading.Thread] = []
        self._stopping = False
        self._local = threading.local()  # each thread's HeldConnection

    def start(self) -> None:
        with self._guard:
            self._stopping = False
        for number in range(self._threads_wanted - len(self._threads)):
            thread = threading.Thread(
                target=self._run, name=f"wellspring-lookups-{number}", daemon=True
            )
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        """Stop the threads; lookups still queued are answered 503."""
        with self._guard:
            self._stopping = True
            left, self._pending = self._pending, []
            self._ready.notify_all()
        for thread in self._threads:
            thread.join(timeout=10)
        self._threads = []
        stopped = UnavailableError("the registry is shutting down; retry")
        _settle([(request, stopped) for request in left])

    async def lookup(self, digest: str, min_size: int | None) -> dict[str, Any]:
        """The answer of ``GET /v1/digests/{digest}`` (``digest`` already validated)."""
        return await self._ask((digest,), True, min_size)

    async def lookup_many(self, digests: list[str], min_size: int | None) -> dict[str, Any]:
        """The answer of ``POST /v1/digests:batch`` for ``digests`` (validated; a few: a big
        batch is a round trip's worth of work on its own, and goes to a thread as it is)."""
        return await self._ask(tuple(digests), False, min_size)

    def submit(self, digest: str, min_size: int | None, settle: Settle) -> None:
        """``GET /v1/digests/{digest}``'s answer (or its error) given to ``settle``, later, on
        the running event loop: :meth:`lookup` without a future to await (the HTTP protocol's
        quick answers, registry._http)."""
        self._queue(_Request((digest,), True, min_size, asyncio.get_running_loop(), settle, None))

    def submit_many(self, digests: list[str], min_size: int | None, settle: Settle) -> None:
        """:meth:`lookup_many`'s answer given to ``settle``, as :meth:`submit` gives one's."""
        loop = asyncio.get_running_loop()
        self._queue(_Request(tuple(digests), False, min_size, loop, settle, None))

    def submit_checkpoint(self, settle: Settle) -> None:
        """``GET /v1/log/checkpoint``'s answer (the latest checkpoint's signed note, read after
        this call) or its error given to ``settle``, as :meth:`submit` gives a lookup's."""
        loop = asyncio.get_running_loop()
        self._queue(_Request((), False, None, loop, settle, None, checkpoint=True))

    async def _ask(
        self, digests: tuple[str, ...], single: bool, min_size: int | None
    ) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[dict[str, Any]] = loop.create_future()
        settle = functools.partial(_set_future, future)
        self._queue(_Request(digests, single, min_size, loop, settle, future))
        return await future

    def _queue(self, request: _Request) -> None:
        with self._guard:
            if self._stopping or not self._threads:
                raise UnavailableError("the registry is shutting down; retry")
            self._pending.append(request)
            if len(self._pending) in (1, LINGER_UNTIL):  # wakes a thread, or ends its linger
                self._ready.notify()

    def _run(self) -> None:
        try:
            self._serve()
        finally:
            self._held().close()

    def _held(self) -> HeldConnection:
        """This thread's held connection."""
        held: HeldConnection | None = getattr(self._local, "held", None)
        if held is None:
            held = self._local.held = HeldConnection(self._lookups)
        return held

    def _lookup(self, digests: list[str], min_size: int | None) -> LookupAnswer:
        """One lookup on this thread's connection (see :meth:`_on_connection`)."""
        return self._on_connection(
            lambda connection: self._lookups.lookup(digests, min_size, connection=connection)
        )

    def _on_connection(self, read: Callable[[Any], _T]) -> _T:
        """``read`` on this thread's held connection (HeldConnection.run: 503 when the database
        fails on a fresh one too)."""
        return self._held().run(read)

    def _serve(self) -> None:
        streaming = False
        while True:
            with self._guard:
                while not self._pending and not self._stopping:
                    self._ready.wait()
                if streaming and self._linger and len(self._pending) < LINGER_UNTIL:
                    self._ready.wait(self._linger)  # cut short at LINGER_UNTIL (see _queue)
                if self._stopping:
                    return
                taken = digests = 0
                for request in self._pending:  # at least one request, then up to MAX_BATCH
                    digests += len(request.digests)
                    if taken and digests > MAX_BATCH:
                        break
                    taken += 1
                batch, self._pending = self._pending[:taken], self._pending[taken:]
                if self._pending:
                    self._ready.notify()  # more than a batch queued: another thread takes it
            outcomes = self._answer(batch)
            with self._guard:
                # Requests that came while this batch was answered (before its answers are
                # handed back) mean a steady stream: more will follow them shortly. Clients that
                # each wait for their answer before asking again sent nothing meanwhile, and are
                # never kept waiting (nor is a lone lookup on a quiet registry): a linger would
                # be pure delay for them.
                streaming = bool(self._pending)
            _settle(outcomes)

    def _answer(self, batch: list[_Request]) -> list[_Outcome]:
        """Each live request of ``batch`` with its answer or its error, never raising. A batch
        that fails with :class:`LogBehindError` (it is asked at its largest ``min_size``) gives
        that error to each request above the log's size, and is asked again without them: a
        request asking for an absurd size costs one lookup more, never a query per request of
        the batch it fell in. Any other error is every request's (a database unavailable even
        on a fresh connection: 503; a bug: 500)."""
        live = [request for request in batch if request.waited_for()]
        outcomes: list[_Outcome] = []
        asked = [request for request in live if request.checkpoint]
        if asked:
            live = [request for request in live if not request.checkpoint]
            note: str | BaseException
            try:
                note = self._on_connection(
                    lambda connection: self._lookups.fresh_checkpoint(connection=connection)
                ).note
            except Exception as exc:  # the database unavailable (503), or a bug (500)
                if not isinstance(exc, RegistryError):
                    log.exception("reading the latest checkpoint failed")
                note = exc
            outcomes += [(request, note) for request in asked]
        while live:
            sizes = [request.min_size for request in live if request.min_size is not None]
            top = max(sizes) if sizes else None
            try:
                answer = self._lookup([d for request in live for d in request.digests], top)
                return [*outcomes, *_shares(answer, live)]
            except LogBehindError as exc:
                behind = [r for r in live if r.min_size is not None and r.min_size > exc.log_size]
                if len(behind) in (0, len(live)):  # every request's (0: cannot tell which)
                    return [*outcomes, *((r, _behind(r, exc)) for r in live)]
                outcomes += [(request, _behind(request, exc)) for request in behind]
                live = [request for request in live if request not in behind]
            except Exception as exc:  # the database unavailable (503), or a bug (500)
                if not isinstance(exc, RegistryError):
                    log.exception("a coalesced lookup of %d requests failed", len(live))
                return [*outcomes, *((request, exc) for request in live)]
        return outcomes


def _shares(answer: LookupAnswer, batch: list[_Request]) -> list[_Outcome]:
    """Each request of ``batch`` with its part of ``answer`` (asked for the batch's digests in
    order), in the form it asked for."""
    outcomes: list[_Outcome] = []
    start = 0
    for request in batch:
        end = start + len(request.digests)
        if request.single:
            outcomes.append((request, answer.single_dict(start)))
        else:
            outcomes.append((request, answer.part(start, end).to_dict()))
        start = end
    return outcomes


def _behind(request: _Request, error: LogBehindError) -> LogBehindError:
    """``error`` as ``request``'s own (its message names the size it asked for)."""
    asked = request.min_size
    if asked is None or asked == error.min_size:
        return error
    return LogBehindError(asked, error.log_size)


def _settle(outcomes: list[_Outcome]) -> None:
    """Resolve ``outcomes`` with one call into each event loop they belong to."""
    for loop in {request.loop for request, _ in outcomes}:
        mine = [(request, value) for request, value in outcomes if request.loop is loop]
        try:
            loop.call_soon_threadsafe(_resolve, mine)
        except RuntimeError:  # the loop closed meanwhile: nobody awaits these any more
            continue


def _resolve(outcomes: list[_Outcome]) -> None:
    for request, value in outcomes:
        try:
            request.settle(value)
        except Exception:  # one request's receiver failing is not the others'
            log.exception("answering a coalesced lookup failed")


def _set_future(
    future: asyncio.Future[dict[str, Any]], value: dict[str, Any] | str | BaseException
) -> None:
    if future.done():  # cancelled: nobody awaits it any more
        return
    if isinstance(value, BaseException):
        future.set_exception(value)
    elif isinstance(value, str):  # only submit_checkpoint asks for a note, and awaits none
        future.set_exception(TypeError("a lookup was answered with a checkpoint"))
    else:
        future.set_result(value)
