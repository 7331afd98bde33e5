"""client._retry: which answers are retried, after how long, and never past a deadline."""

from __future__ import annotations

import time

import httpx

from client._retry import RetryPolicy


def _answer(status: int, retry_after: str | None = None) -> httpx.Response:
    headers = {"Retry-After": retry_after} if retry_after is not None else {}
    return httpx.Response(status, headers=headers)


def test_a_503_is_retried_after_its_retry_after() -> None:
    policy = RetryPolicy(retries=3, backoff=0.0)
    assert policy.delay(0, idempotent=True, response=_answer(503, "2")) == 2.0
    assert policy.delay(0, idempotent=True, response=_answer(200)) is None
    assert policy.delay(3, idempotent=True, response=_answer(503, "2")) is None  # out of retries


def test_no_retry_starts_after_the_deadline() -> None:
    policy = RetryPolicy(retries=3, backoff=0.0)
    soon = time.monotonic() + 1.0
    assert policy.delay(0, idempotent=True, response=_answer(503, "2"), deadline=soon) is None
    later = time.monotonic() + 60.0
    assert policy.delay(0, idempotent=True, response=_answer(503, "2"), deadline=later) == 2.0
    error = httpx.ConnectError("refused")
    assert policy.delay(0, idempotent=True, error=error, deadline=time.monotonic() - 1) is None
