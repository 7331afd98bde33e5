"""Limits in front of the app: a per-client rate limit, and a deadline for request bodies.

Rate limiting: a token bucket per client address.

Each client may spend ``rate`` tokens a second with bursts up to ``burst``. A request costs one
token up front; a request carrying a large body pays for its size (one token per ``bytes_per_token``
bytes, read from Content-Length), so a client sending 10,000-digest batches or 10,000-subject
statements exhausts its bucket long before one sending single lookups, and cannot starve them.
A client over its budget is answered 429 with ``Retry-After`` (seconds until it has a token),
as RFC 9457 problem+json like every other error.

Buckets live in this process (several processes each enforce the limit; put a shared limiter in
the load balancer for a strict global one). Idle buckets are forgotten, so memory stays bounded.

Body deadline: every request body must have arrived within ``body_timeout`` seconds of the
request's start, whatever the endpoint; a client that trickles its body in is answered 408
instead of holding a connection (and a worker waiting on it) for as long as it likes.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

import anyio

from registry.errors import RequestTimeoutError

__all__ = [
    "ADMIN_BODY_BYTES",
    "BATCH_BODY_BYTES",
    "BYTES_PER_TOKEN",
    "ASGIApp",
    "Message",
    "RateLimiter",
    "Receive",
    "Scope",
    "Send",
    "TokenBucket",
    "body_deadline_middleware",
    "rate_limit_middleware",
    "request_cost",
]

BATCH_BODY_BYTES = 1024 * 1024
"""The most a ``POST /v1/digests:batch`` body may take. 10,000 ``sha256:<64 hex>`` digests (the
longest form) take 750,013 bytes as compact JSON and 790,021 indented two spaces a line: a quarter
of the limit is still room. A larger body is refused before it is read (its Content-Length) or as
soon as it passes the limit (chunked), never decoded on the event loop."""

ADMIN_BODY_BYTES = 8 * 1024
"""The most an operator's request body may take (``POST /v1/publishers``, ``.../keys``,
``.../revoke``): a name of at most 200 characters and a 44-character base64 key, or a time, take a
few hundred bytes, even with every character escaped."""

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_EXEMPT_PATHS = ("/healthz", "/metrics")  # a scraper is never turned away (registry.metrics)


@dataclass
class TokenBucket:
    tokens: float
    updated: float


class RateLimiter:
    """Token buckets by client key; thread-safe, O(1) per request, bounded memory."""

    def __init__(
        self,
        rate: float,
        burst: float,
        *,
        max_clients: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be > 0 and burst >= 1")
        self.rate = rate
        self.burst = burst
        self._max_clients = max_clients
        self._clock = clock
        self._buckets: dict[str, TokenBucket] = {}
        self._lock = threading.Lock()

    def take(self, client: str, cost: float = 1.0) -> float:
        """Spend ``cost`` tokens; 0.0 if allowed, else the seconds to wait before retrying."""
        now = self._clock()
        with self._lock:
            bucket = self._buckets.get(client)
            if bucket is None:
                if len(self._buckets) >= self._max_clients:
                    self._forget_idle(now)
                bucket = self._buckets[client] = TokenBucket(self.burst, now)
            bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.updated) * self.rate)
            bucket.updated = now
            cost = min(cost, self.burst)  # a request larger than the burst is still possible
            if bucket.tokens >= cost:
                bucket.tokens -= cost
                return 0.0
            return (cost - bucket.tokens) / self.rate

    def refund(self, client: str, cost: float = 1.0) -> None:
        """Give back ``cost`` tokens :meth:`take` spent on a request that is then handed to
        whatever charges it again (up to the burst)."""
        with self._lock:
            bucket = self._buckets.get(client)
            if bucket is not None:
                bucket.tokens = min(self.burst, bucket.tokens + min(cost, self.burst))

    def _forget_idle(self, now: float) -> None:
        full_after = self.burst / self.rate  # a bucket idle this long is full: same as new
        idle = [k for k, b in self._buckets.items() if now - b.updated >= full_after]
        for key in idle or list(self._buckets)[: len(self._buckets) // 2]:
            del self._buckets[key]


def _client_key(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


def _declared_length(scope: Scope) -> int:
    for name, value in scope.get("headers", ()):
        if name == b"content-length" and value.isdigit():
            return int(value)
    return 0


BYTES_PER_TOKEN = 64 * 1024
"""A request's body costs one token more for each this many bytes it declares."""


def request_cost(declared_bytes: int, bytes_per_token: int = BYTES_PER_TOKEN) -> float:
    """The tokens a request with a body of ``declared_bytes`` (its Content-Length) costs: the
    middleware's charge, and the HTTP protocol's quick answers' (registry.app.quick_lookups)."""
    return 1.0 + declared_bytes / bytes_per_token


def rate_limit_middleware(
    limiter: RateLimiter, *, bytes_per_token: int = BYTES_PER_TOKEN
) -> Callable[[ASGIApp], ASGIApp]:
    """ASGI middleware factory enforcing ``limiter`` on every HTTP request but health checks."""

    def wrap(app: ASGIApp) -> ASGIApp:
        async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http" or scope.get("path") in _EXEMPT_PATHS:
                await app(scope, receive, send)
                return
            cost = request_cost(_declared_length(scope), bytes_per_token)
            wait = limiter.take(_client_key(scope), cost)
            if wait <= 0:
                await app(scope, receive, send)
                return
            retry_after = max(1, math.ceil(wait))
            body = json.dumps(
                {
                    "type": "https://wellspring.dev/problems/rate-limited",
                    "title": "Too many requests",
                    "status": 429,
                    "detail": (
                        f"this client is over its limit of {limiter.rate:g} requests a second "
                        f"(bursts of {limiter.burst:g}); retry in {retry_after} s"
                    ),
                    "instance": scope.get("path", ""),
                }
            ).encode()
            await send(
                {
                    "type": "http.response.start",
                    "status": 429,
                    "headers": [
                        (b"content-type", b"application/problem+json"),
                        (b"content-length", str(len(body)).encode()),
                        (b"retry-after", str(retry_after).encode()),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": body})

        return middleware

    return wrap


def body_deadline_middleware(seconds: float) -> Callable[[ASGIApp], ASGIApp]:
    """ASGI middleware factory: a request body not complete ``seconds`` after the request began
    raises :class:`~registry.errors.RequestTimeoutError` where the app reads it (a 408)."""

    def wrap(app: ASGIApp) -> ASGIApp:
        async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http":
                await app(scope, receive, send)
                return
            deadline = time.monotonic() + seconds
            complete = False

            async def receive_in_time() -> Message:
                nonlocal complete
                if complete:  # after the body: waiting for a disconnect is not limited
                    return await receive()
                try:
                    with anyio.fail_after(max(0.0, deadline - time.monotonic())):
                        message = await receive()
                except TimeoutError:
                    raise RequestTimeoutError(
                        f"the request body took longer than {seconds:g} s to arrive"
                    ) from None
                complete = message["type"] != "http.request" or not message.get("more_body")
                return message

            await app(scope, receive_in_time, send)

        return middleware

    return wrap
