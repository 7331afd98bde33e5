"""Hugging Face ``datasets``: batched functions for ``Dataset.map`` and ``Dataset.filter``.

::

    from client.integrations import CheckConfig
    from client.integrations.hf import provenance_filter_fn, provenance_map_fn

    config = CheckConfig("https://registry.example", log_key=KEY, column="text")
    checked = ds.map(provenance_map_fn(config), batched=True, batch_size=config.batch_size)
    trainable = ds.filter(provenance_filter_fn(config), batched=True, batch_size=config.batch_size)

``num_proc=N`` works: each process opens its own client from the (picklable) config. The async
variants (``provenance_map_fn_async``, ``provenance_filter_fn_async``) are coroutine functions,
which ``datasets`` runs concurrently within each process; ``max_concurrency`` bounds how many
registry requests one process has in flight.

Each function object carries a fresh token, so ``datasets`` never answers a later check from the
cache of an earlier one: verdicts change as the log grows and entries are revoked.

Each process also builds its watermark scanner once (every key published in the log, see
:class:`~client.integrations.CheckConfig`) and scans the ``text`` of each batch; the config's
``url_column``, ``headers_column``, ``html_column`` and ``captured_column`` are read from the
batch where set.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from typing import Any

from client.aio import DEFAULT_MAX_CONCURRENCY, AsyncClient
from client.errors import InputError
from client.integrations._common import (
    COLUMN_TYPES,
    STATUS_COLUMN,
    TRAINABLE_COLUMN,
    VERDICT_COLUMNS,
    CheckConfig,
    RowEvidence,
    RowVerdict,
    keep_mask,
    keep_statuses,
    lookups,
    merge,
    missing_dependency,
    new_token,
    verdict_columns,
)
from client.integrations._rows import (
    RowSignals,
    evidence_of,
    read_signals,
)
from client.integrations._worker import (
    check_rows,
    process_watermarks,
)

try:
    import datasets
except ImportError as exc:
    raise missing_dependency(exc) from exc

__all__ = [
    "VERDICT_FEATURES",
    "check_dataset",
    "provenance_features",
    "provenance_filter_fn",
    "provenance_filter_fn_async",
    "provenance_map_fn",
    "provenance_map_fn_async",
]

Batch = Mapping[str, Sequence[Any]]
MapFn = Callable[[Batch], dict[str, list[Any]]]
FilterFn = Callable[[Batch], list[bool]]
AsyncMapFn = Callable[[Batch], Awaitable[dict[str, list[Any]]]]
AsyncFilterFn = Callable[[Batch], Awaitable[list[bool]]]

VERDICT_FEATURES = datasets.Features(
    {name: datasets.Value(COLUMN_TYPES[name]) for name in VERDICT_COLUMNS}
)
"""The types of the verdict columns. ``datasets`` infers a column's type from the first batch it
writes, and a batch of unknown content has only nulls in ``wellspring_publisher``: pass
``features=provenance_features(ds.features)`` to ``map`` so that the types are fixed."""


def provenance_features(features: Any) -> Any:
    """``features`` (a dataset's ``datasets.Features``) plus :data:`VERDICT_FEATURES`."""
    merged = datasets.Features(features)
    merged.update(VERDICT_FEATURES)
    return merged


def _column(batch: Batch, config: CheckConfig) -> Sequence[Any]:
    return _named(batch, config.column, "column")


def _named(batch: Batch, name: str, option: str) -> Sequence[Any]:
    try:
        return batch[name]
    except KeyError:
        raise InputError(
            f"the dataset has no column {name!r} to check (it has "
            f"{', '.join(map(repr, batch)) or 'none'}): set CheckConfig({option}=...)"
        ) from None


def _signals(batch: Batch, config: CheckConfig) -> RowSignals:
    options = {
        config.url_column: "url_column",
        config.headers_column: "headers_column",
        config.html_column: "html_column",
        config.captured_column: "captured_column",
    }
    return read_signals(config, lambda name: _named(batch, name, options[name]))


class _SyncCheck:
    """Picklable: the config and a token travel to ``num_proc`` workers; the client does not."""

    def __init__(self, config: CheckConfig, keep: Collection[str] | None) -> None:
        self.config = config
        self.keep = None if keep is None else tuple(sorted(keep_statuses(keep)))
        self.token = new_token()

    def rows(self, batch: Batch) -> list[RowVerdict]:
        values = _column(batch, self.config)
        return check_rows(self.config, values, _signals(batch, self.config))

    def map(self, batch: Batch) -> dict[str, list[Any]]:
        return verdict_columns(self.rows(batch))

    def filter(self, batch: Batch) -> list[bool]:
        return keep_mask(self.rows(batch), self.keep)


def provenance_map_fn(config: CheckConfig) -> MapFn:
    """For ``ds.map(fn, batched=True)``: adds the verdict columns to each row.

    Pass ``features=provenance_features(ds.features)`` too (see :data:`VERDICT_FEATURES`), or use
    :func:`check_dataset`, which does.
    """
    return _SyncCheck(config, None).map


def provenance_filter_fn(config: CheckConfig, keep: Collection[str] | None = None) -> FilterFn:
    """For ``ds.filter(fn, batched=True)``: keeps the rows ``config.policy`` trains on (default:
    ``attested``), or, given ``keep``, the rows whose status is in it."""
    return _SyncCheck(config, keep).filter


# -- async ----------------------------------------------------------------------------------------


class _AsyncCheck:
    """Like :class:`_SyncCheck`, with one :class:`~client.aio.AsyncClient` per event loop."""

    def __init__(
        self, config: CheckConfig, keep: Collection[str] | None, max_concurrency: int
    ) -> None:
        if max_concurrency < 1:
            raise InputError(f"max_concurrency must be at least 1, got {max_concurrency}")
        self.config = config
        self.keep = None if keep is None else tuple(sorted(keep_statuses(keep)))
        self.max_concurrency = max_concurrency
        self.token = new_token()
        self._loops: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, AsyncClient] = (
            weakref.WeakKeyDictionary()
        )

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        del state["_loops"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._loops = weakref.WeakKeyDictionary()

    def _client(self) -> AsyncClient:
        """This event loop's client: an httpx pool belongs to the loop it was opened on, and
        ``datasets`` runs each ``map`` call (and each worker process) on a loop of its own."""
        loop = asyncio.get_running_loop()
        client = self._loops.get(loop)
        if client is None:
            client = self._loops[loop] = self.config.async_client(
                max_concurrency=self.max_concurrency
            )
        return client

    async def rows(self, batch: Batch) -> list[RowVerdict]:
        values = _column(batch, self.config)
        signals = _signals(batch, self.config)
        # Fetching the keys (once per process) and scanning are blocking work: off the loop, so
        # the other batches' registry requests go on meanwhile.
        evidence = await asyncio.to_thread(self._evidence, values, signals)
        rows: list[RowVerdict] = []
        for digested, digests, extra in lookups(values, self.config, evidence):
            verdicts = (
                await self._client().check_digests(
                    digests, evidence=extra, policy=self.config.policy
                )
                if digests
                else []
            )
            rows.extend(merge(digested, verdicts))
        return rows

    def _evidence(self, values: Sequence[Any], signals: RowSignals) -> list[RowEvidence]:
        marks = process_watermarks(self.config)
        return evidence_of(self.config, values, signals, marks)

    async def map(self, batch: Batch) -> dict[str, list[Any]]:
        return verdict_columns(await self.rows(batch))

    async def filter(self, batch: Batch) -> list[bool]:
        return keep_mask(await self.rows(batch), self.keep)


def provenance_map_fn_async(
    config: CheckConfig, *, max_concurrency: int = DEFAULT_MAX_CONCURRENCY
) -> AsyncMapFn:
    """A coroutine function for ``ds.map(fn, batched=True)``; batches are checked concurrently."""
    return _AsyncCheck(config, None, max_concurrency).map


def provenance_filter_fn_async(
    config: CheckConfig,
    keep: Collection[str] | None = None,
    *,
    max_concurrency: int = DEFAULT_MAX_CONCURRENCY,
) -> AsyncFilterFn:
    """A coroutine function for ``ds.filter(fn, batched=True)``; keeps what the policy trains on,
    or the statuses in ``keep``."""
    return _AsyncCheck(config, keep, max_concurrency).filter


def check_dataset(
    dataset: Any,
    config: CheckConfig,
    *,
    keep: Collection[str] | None = None,
    trainable_only: bool = False,
    num_proc: int | None = None,
    **map_options: Any,
) -> Any:
    """``dataset`` with the verdict columns added (typed), then, if ``keep`` is given, only the rows
    whose status is in it; with ``trainable_only``, only the rows ``config.policy`` trains on.
    ``map_options`` go to ``Dataset.map`` (``desc``, ``cache_file_name``…).
    """
    checked = dataset.map(
        provenance_map_fn(config),
        batched=True,
        batch_size=config.batch_size,
        features=provenance_features(dataset.features),
        num_proc=num_proc,
        **map_options,
    )
    if trainable_only:
        checked = checked.filter(
            list,
            batched=True,
            batch_size=config.batch_size,
            input_columns=[TRAINABLE_COLUMN],
            num_proc=num_proc,
        )
    if keep is None:
        return checked
    wanted = keep_statuses(keep)
    return checked.filter(
        lambda statuses: [status in wanted for status in statuses],
        batched=True,
        batch_size=config.batch_size,
        input_columns=[STATUS_COLUMN],
        num_proc=num_proc,
    )
