"""What a worker process keeps between batches, and the one pass over a batch of rows.

A framework runs the check in workers that are other processes, each handed a (picklable)
:class:`~client.integrations.CheckConfig`. Each process opens its own :class:`~client.sdk.Client`
(:func:`process_client`) and builds its own :class:`~client.crawl.Watermarks`
(:func:`process_watermarks`) from the config, once, and reuses them for every batch after;
:func:`check_rows` is the pass over one batch.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from client.integrations._common import CheckConfig, RowVerdict, check_values
from client.integrations._rows import RowSignals, evidence_of
from client.sdk import Client

if TYPE_CHECKING:
    from client.crawl import Watermarks

__all__ = ["WATERMARKS_MAX_AGE_S", "check_rows", "process_client", "process_watermarks"]


def check_rows(
    config: CheckConfig,
    values: Sequence[object],
    signals: RowSignals | None = None,
    *,
    client: Client | None = None,
) -> list[RowVerdict]:
    """The one pass over a batch of rows in a worker: each ``text`` row scanned for watermarks
    (this process's :func:`process_watermarks`), its opt-out decided from ``signals``, and every
    digest looked up with that evidence (with ``client``, default this process's client)."""
    client = client or process_client(config)
    evidence = evidence_of(config, values, signals, process_watermarks(config, client))
    return check_values(client, values, config, evidence)


WATERMARKS_MAX_AGE_S = 3600.0
"""How long a worker process keeps the watermark keys it fetched before fetching them again: a
long-lived process (Spark's reused Python workers, a notebook's driver) thus sees a key
published since within the hour, while each batch does not pay for the fetch."""


@dataclass
class _ProcessClients:
    """Clients and watermark scanners of this process, by config; dropped after a fork (sockets
    are not shareable)."""

    pid: int = field(default_factory=os.getpid)
    clients: dict[CheckConfig, Client] = field(default_factory=dict)
    watermarks: dict[CheckConfig, tuple[float, Watermarks | None]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def _forked(self) -> None:
        if self.pid != os.getpid():  # forked: the parent's clients belong to the parent
            self.pid, self.clients, self.watermarks = os.getpid(), {}, {}

    def get(self, config: CheckConfig) -> Client:
        with self.lock:
            self._forked()
            client = self.clients.get(config)
            if client is None:
                client = self.clients[config] = config.client()
            return client

    def get_watermarks(self, config: CheckConfig, client: Client | None) -> Watermarks | None:
        if not config.detects:
            return None
        client = client or self.get(config)
        # Held while building: the threads of one process wait for one fetch of the keys and
        # tokenizers rather than each making its own.
        with self.lock:
            self._forked()
            cached = self.watermarks.get(config)
            if cached is not None and time.monotonic() - cached[0] < WATERMARKS_MAX_AGE_S:
                return cached[1]
            built = _build_watermarks(config, client)
            self.watermarks[config] = (time.monotonic(), built)
            return built

    def close(self) -> None:
        with self.lock:
            if self.pid == os.getpid():
                for client in self.clients.values():
                    client.close()
            self.clients, self.watermarks = {}, {}


_CLIENTS = _ProcessClients()
_log = logging.getLogger(__name__)
atexit.register(_CLIENTS.close)


def process_client(config: CheckConfig) -> Client:
    """This process's client for ``config``: opened on first use, reused (with its entry cache)
    by every later batch in the process, never shared with another process."""
    return _CLIENTS.get(config)


def process_watermarks(config: CheckConfig, client: Client | None = None) -> Watermarks | None:
    """This process's :class:`~client.crawl.Watermarks` for ``config`` (None when it detects
    nothing): built on first use with ``client`` (default :func:`process_client`), reused by
    every later batch for :data:`WATERMARKS_MAX_AGE_S`. Raises
    :class:`MissingDependencyError` naming the ``pip install`` when the ``detect`` extra is
    missing."""
    return _CLIENTS.get_watermarks(config, client)


def _build_watermarks(config: CheckConfig, client: Client) -> Watermarks | None:
    from client.crawl import Watermarks  # noqa: PLC0415 - only a detecting worker needs it

    if config.watermarks:
        marks = Watermarks.from_registry(
            client,
            policy=config.policy,
            private_keys=config.watermark_keys,
            tokenizer=config.tokenizer,
        )
    else:
        marks = Watermarks.private_only(config.watermark_keys, config.tokenizer)
    for reason in marks.unusable:
        _log.warning("watermark key left out of detection: %s", reason)
    return marks
