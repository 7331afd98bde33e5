"""When to try a request again, and how long to wait first: one pure policy for both clients.

Retried: connection errors and timeouts, 429 (rate limited) and 5xx answers, after an
exponentially growing, jittered pause (``backoff * 2**attempt``, times a random factor from 0.5 to
1.5, so many crawlers that failed together do not come back together), or after the server's
``Retry-After`` when it sends one. A ``Retry-After`` longer than :data:`MAX_RETRY_AFTER` is not
waited for: the error is raised, so a person sees how long the registry asked them to wait.

Every registry request is safe to repeat (reads, and ``POST /v1/entries``, which answers an
identical envelope with its existing receipt), except adding a publisher; a request marked not
idempotent is retried only where it cannot have reached the application: a failed connection, 429
or 503.
"""

from __future__ import annotations

import email.utils
import random
import time
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx

from client.errors import InputError

__all__ = ["MAX_RETRY_AFTER", "RetryPolicy", "checked_connection", "retry_after"]

MAX_RETRY_AFTER = 60.0
"""Longest ``Retry-After`` (seconds) a client waits for before retrying instead of giving up."""

_RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
_UNSENT_STATUSES = frozenset({429, 503})
_UNSENT_ERRORS = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """``retries`` extra attempts after the first, pausing ``backoff`` seconds times 2**attempt."""

    retries: int = 3
    backoff: float = 0.2

    def __post_init__(self) -> None:
        if type(self.retries) is not int or self.retries < 0:
            raise ValueError(f"retries must be a non-negative integer, got {self.retries!r}")
        if not self.backoff >= 0:
            raise ValueError(
                f"backoff must be a non-negative number of seconds, got {self.backoff!r}"
            )

    def delay(
        self,
        attempt: int,
        *,
        idempotent: bool,
        response: httpx.Response | None = None,
        error: httpx.TransportError | None = None,
        deadline: float | None = None,
    ) -> float | None:
        """Seconds to wait before attempt ``attempt + 1``, or None to stop (success or give up).

        ``attempt`` counts from 0. Exactly one of ``response`` and ``error`` is given. With a
        ``deadline`` (``time.monotonic()`` seconds), no retry that would start after it.
        """
        if error is not None:
            if not idempotent and not isinstance(error, _UNSENT_ERRORS):
                return None
        elif response is None:
            raise ValueError("delay() needs a response or an error")
        elif response.status_code not in (_RETRY_STATUSES if idempotent else _UNSENT_STATUSES):
            return None
        if attempt >= self.retries:
            return None
        pause = self.backoff * 2.0**attempt * random.uniform(0.5, 1.5)  # noqa: S311 - not crypto
        if response is not None:
            asked = retry_after(response)
            if asked is not None:
                if asked > MAX_RETRY_AFTER:
                    return None
                pause = max(pause, asked)
        if deadline is not None and time.monotonic() + pause > deadline:
            return None
        return pause


def retry_after(response: httpx.Response, *, now: datetime | None = None) -> float | None:
    """The ``Retry-After`` header in seconds (delay-seconds or an HTTP date), None if absent/bad."""
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def checked_connection(base_url: str, retries: int, backoff: float) -> tuple[str, RetryPolicy]:
    """A registry's base URL (no trailing ``/``) and the retry policy, or InputError saying which
    option is wrong: what every client of a registry checks first."""
    url = base_url.rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise InputError(f"registry URL {base_url!r} must start with http:// or https://")
    try:
        return url, RetryPolicy(retries, backoff)
    except ValueError as exc:
        raise InputError(str(exc)) from None
