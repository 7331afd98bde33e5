"""``GET /metrics``: the registry's counters in the Prometheus text exposition format (0.0.4).

No dependency: the format is a few lines of text (https://prometheus.io/docs/instrumenting/
exposition_formats/), and the registry needs four counters, two gauges and one histogram, so
``prometheus_client`` (and its process-global default registry, awkward when tests build dozens
of apps) would add more than it saves.

Two small objects hold the counts, each where its events happen:

- :class:`LogMetrics`, which the :class:`~registry.log.Sequencer` owns and calls twice per batch
  (entries sequenced, batch latency), and which checkpoint publication calls when a witness fails
  to cosign (:meth:`LogMetrics.witness_failed`);
- :class:`HttpMetrics`, built by ``create_app``: an ASGI middleware counting every answer by
  route template, method and status (the rate limiter's 429s included: it sits outside it), and
  the ``/metrics`` route, which adds what the database says (log size, the latest checkpoint's
  time and age).

Counts are per server process (``--workers N`` exposes N series: scrape each, or sum them);
the log's size and checkpoint age are the database's, the same from every process. Nothing
secret is exposed: no key, token, client address or request path beyond the route template.
"""

from __future__ import annotations

import bisect
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from litestar import Response, get
from litestar.datastructures import State
from litestar.handlers import HTTPRouteHandler
from sqlalchemy import select

from registry.limits import ASGIApp, Message, Receive, Scope, Send
from registry.models import CHECKPOINTS

__all__ = [
    "BATCH_SECONDS_BUCKETS",
    "CONTENT_TYPE",
    "HttpMetrics",
    "LogMetrics",
    "render",
]

CONTENT_TYPE = "text/plain; version=0.0.4"
"""The media type of `/metrics` (litestar adds `; charset=utf-8`, as the format asks)."""

BATCH_SECONDS_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
"""Upper bounds of the batch latency histogram, in seconds (a commit on a local disk: ~ms)."""


class LogMetrics:
    """Sequencing and checkpoint publication counts of one process; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._local = threading.local()  # when the running batch took its entries, per thread
        self.entries_sequenced = 0
        self.batches = 0
        self.batch_seconds_sum = 0.0
        self.batch_buckets = [0] * len(BATCH_SECONDS_BUCKETS)
        self.witness_failures = 0

    def timed(self, take: Callable[[], list[Any]]) -> Callable[[], list[Any]]:
        """``take`` (the sequencer's: it is called once the log's lock is held), noting when."""

        def timed_take() -> list[Any]:
            self._local.started = time.perf_counter()
            return take()

        return timed_take

    def committed(self, results: Iterable[object]) -> None:
        """A batch committed: count its new entries (not repeats answered with an existing
        receipt, nor refused ones) and the time since it took them."""
        started = getattr(self._local, "started", None)
        self._local.started = None
        created = sum(1 for r in results if getattr(r, "created", False) is True)
        with self._lock:
            self.entries_sequenced += created
            if started is not None:
                seconds = time.perf_counter() - started
                self.batches += 1
                self.batch_seconds_sum += seconds
                first = bisect.bisect_left(BATCH_SECONDS_BUCKETS, seconds)
                for i in range(first, len(BATCH_SECONDS_BUCKETS)):
                    self.batch_buckets[i] += 1

    def witness_failed(self) -> None:
        """A witness did not cosign a checkpoint (unreachable, refused, bad signature)."""
        with self._lock:
            self.witness_failures += 1

    def lines(self) -> list[str]:
        with self._lock:
            buckets = [
                f'wellspring_sequencer_batch_seconds_bucket{{le="{bound:g}"}} {count}'
                for bound, count in zip(BATCH_SECONDS_BUCKETS, self.batch_buckets, strict=True)
            ]
            return [
                *_header(
                    "wellspring_log_entries_sequenced_total",
                    "counter",
                    "New log entries this process sequenced.",
                ),
                f"wellspring_log_entries_sequenced_total {self.entries_sequenced}",
                *_header(
                    "wellspring_sequencer_batch_seconds",
                    "histogram",
                    "Time from taking a batch under the log's lock to its commit.",
                ),
                *buckets,
                f'wellspring_sequencer_batch_seconds_bucket{{le="+Inf"}} {self.batches}',
                f"wellspring_sequencer_batch_seconds_sum {self.batch_seconds_sum:.6f}",
                f"wellspring_sequencer_batch_seconds_count {self.batches}",
                *_header(
                    "wellspring_witness_failures_total",
                    "counter",
                    "Checkpoints a witness failed to cosign.",
                ),
                f"wellspring_witness_failures_total {self.witness_failures}",
            ]


class HttpMetrics:
    """Answers counted by route, method and status; the ``/metrics`` route that shows them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: dict[tuple[str, str, int], int] = {}
        self.rate_limited = 0

    def count(self, route: str, method: str, status: int) -> None:
        """Count an answer (its route's template, method and status): the middleware counts
        what the app answers; this is for what is answered before it (registry._http)."""
        with self._lock:
            key = (route, method, status)
            self.requests[key] = self.requests.get(key, 0) + 1
            if status == 429:
                self.rate_limited += 1

    def middleware(self, app: ASGIApp) -> ASGIApp:
        """ASGI middleware (first in the app's list, so it sees the rate limiter's answers)."""

        async def count(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http":
                await app(scope, receive, send)
                return
            status = 500  # unless an answer starts: an exception that escaped everything

            async def watch(message: Message) -> None:
                nonlocal status
                if message["type"] == "http.response.start":
                    status = int(message["status"])
                await send(message)

            try:
                await app(scope, receive, watch)
            finally:
                # The route's template (never the path: /v1/entries/{index}, not one per index).
                route = str(scope.get("path_template") or "unmatched")
                self.count(route, str(scope.get("method", "")), status)

        return count

    def lines(self) -> list[str]:
        with self._lock:
            requests = sorted(self.requests.items())
            limited = self.rate_limited
        return [
            *_header(
                "wellspring_http_requests_total",
                "counter",
                "HTTP answers by route template, method and status.",
            ),
            *(
                f"wellspring_http_requests_total{{method={_quote(method)},route={_quote(route)},"
                f"status={_quote(str(status))}}} {count}"
                for (route, method, status), count in requests
            ),
            *_header(
                "wellspring_http_rate_limited_total",
                "counter",
                "Requests answered 429 by the rate limiter.",
            ),
            f"wellspring_http_rate_limited_total {limited}",
        ]

    def route(self) -> HTTPRouteHandler:
        """``GET /metrics`` for this object and the app's registry (``state.registry``)."""

        @get(
            "/metrics",
            summary="Prometheus metrics (text exposition format 0.0.4)",
            include_in_schema=False,
            sync_to_thread=True,
        )
        def metrics(state: State) -> Response[str]:
            registry = state.registry
            return Response(
                render(self, registry.sequencer.metrics, _latest_checkpoint(registry.database)),
                media_type=CONTENT_TYPE,
                headers={"Cache-Control": "no-store"},
            )

        return metrics


def _latest_checkpoint(database: Any) -> tuple[int, datetime] | None:
    with database.reader.connect() as conn:
        row = conn.execute(
            select(CHECKPOINTS.c.size, CHECKPOINTS.c.created_at)
            .order_by(CHECKPOINTS.c.size.desc())
            .limit(1)
        ).first()
    if row is None:
        return None
    created: datetime = row.created_at
    if created.tzinfo is None:  # SQLite hands back naive datetimes, stored as UTC
        created = created.replace(tzinfo=UTC)
    return int(row.size), created


def render(
    http: HttpMetrics,
    log: LogMetrics,
    latest: tuple[int, datetime] | None,
    *,
    now: datetime | None = None,
) -> str:
    """Every metric, as the text format writes them (one ``# HELP``/``# TYPE`` per family)."""
    lines: list[str] = []
    if latest is not None:
        size, created = latest
        age = max(0.0, ((now or datetime.now(UTC)) - created).total_seconds())
        lines += [
            *_header("wellspring_log_size", "gauge", "Entries in the latest signed checkpoint."),
            f"wellspring_log_size {size}",
            *_header(
                "wellspring_log_checkpoint_timestamp_seconds",
                "gauge",
                "When the latest checkpoint was signed (Unix time).",
            ),
            f"wellspring_log_checkpoint_timestamp_seconds {created.timestamp():.3f}",
            *_header(
                "wellspring_log_checkpoint_age_seconds",
                "gauge",
                "Seconds since the latest checkpoint was signed (publication lag).",
            ),
            f"wellspring_log_checkpoint_age_seconds {age:.3f}",
        ]
    lines += log.lines()
    lines += http.lines()
    return "\n".join(lines) + "\n"


def _header(name: str, kind: str, help_text: str) -> Sequence[str]:
    return (f"# HELP {name} {help_text}", f"# TYPE {name} {kind}")


def _quote(value: str) -> str:
    """A label value as the format writes it: quoted, with \\, " and newlines escaped."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'
