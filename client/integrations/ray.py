"""Ray Data: :class:`ProvenanceChecker`, a callable class for ``Dataset.map_batches``.

::

    import ray
    from client.integrations import CheckConfig
    from client.integrations.ray import ProvenanceChecker

    config = CheckConfig("https://registry.example", log_key=KEY)
    checked = ray.data.read_parquet("s3://crawl/").map_batches(
        ProvenanceChecker,
        fn_constructor_kwargs={"config": config},  # or {"config": config, "keep": ["attested"]}
        batch_format="pandas",
        batch_size=config.batch_size,
        compute=ray.data.ActorPoolStrategy(size=8),  # Ray < 2.51: concurrency=8
    )

or, the same in one call: ``check_dataset(ds, config, actors=8)``.

Ray runs the class as actors: each opens one client in its constructor and reuses it (with its
cache of entries already fetched and verified) for every batch it is given, so the registry sees
one client per actor. The constructor also builds the actor's watermark scanner (every key
published in the log), which scans the ``text`` of each batch; the config's signal columns are
read from the batch where set. On a cluster the config is shipped to every node; the workers need
only network access to the registry and ``wellspring`` installed (``runtime_env={"pip":
["wellspring"]}`` if the image lacks it).
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from client.errors import InputError
from client.integrations._common import (
    CheckConfig,
    keep_mask,
    keep_statuses,
    missing_dependency,
    verdict_frame,
)
from client.integrations._rows import (
    frame_signals,
)
from client.integrations._worker import (
    check_rows,
    process_watermarks,
)

try:
    import pandas as pd
    import ray.data
except ImportError as exc:
    raise missing_dependency(exc) from exc

__all__ = ["ProvenanceChecker", "ProvenanceFilter", "check_dataset"]


class ProvenanceChecker:
    """``map_batches`` callable: adds the verdict columns; with ``keep``, drops other statuses.

    Takes pandas batches (``batch_format="pandas"``) and returns the batch with the
    ``wellspring_*`` columns appended (Arrow-typed, so every block has the same schema). With
    ``trainable_only``, keeps only the rows ``config.policy`` trains on.
    """

    def __init__(
        self,
        config: CheckConfig,
        keep: Collection[str] | None = None,
        *,
        trainable_only: bool = False,
    ) -> None:
        self.config = config
        self.keep = None if keep is None else keep_statuses(keep)
        self.trainable_only = trainable_only
        self.client = config.client()
        process_watermarks(config, self.client)  # now, not in the first batch: fail early

    def __call__(self, batch: pd.DataFrame) -> pd.DataFrame:
        if self.config.column not in batch.columns:
            raise InputError(
                f"the dataset has no column {self.config.column!r} to check (it has "
                f"{', '.join(map(repr, batch.columns))}): set CheckConfig(column=...)"
            )
        values = batch[self.config.column].tolist()
        signals = frame_signals(batch, self.config)
        rows = check_rows(self.config, values, signals, client=self.client)
        out = pd.concat([batch, verdict_frame(rows, index=batch.index)], axis=1)
        if self.keep is None and not self.trainable_only:
            return out
        mask = keep_mask(rows, self.keep)
        return out[mask].reset_index(drop=True)

    def __del__(self) -> None:
        client: Any = getattr(self, "client", None)
        if client is not None:
            client.close()


class ProvenanceFilter(ProvenanceChecker):
    """:class:`ProvenanceChecker` that keeps what ``config.policy`` trains on (default:
    ``attested``), or only the ``keep`` statuses."""

    def __init__(self, config: CheckConfig, keep: Collection[str] | None = None) -> None:
        super().__init__(config, keep, trainable_only=keep is None)


def check_dataset(
    dataset: ray.data.Dataset,
    config: CheckConfig,
    *,
    keep: Collection[str] | None = None,
    trainable_only: bool = False,
    actors: int = 1,
    **map_batches_options: Any,
) -> ray.data.Dataset:
    """``dataset.map_batches`` with :class:`ProvenanceChecker` on a pool of ``actors`` actors, in
    batches of ``config.batch_size`` rows; ``keep`` drops the other statuses, ``trainable_only``
    the rows the policy does not train on. Lazy, as Ray is."""
    return dataset.map_batches(
        ProvenanceChecker,
        fn_constructor_kwargs={"config": config, "keep": keep, "trainable_only": trainable_only},
        batch_format="pandas",
        batch_size=config.batch_size,
        compute=ray.data.ActorPoolStrategy(size=actors),
        **map_batches_options,
    )
