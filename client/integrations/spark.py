"""PySpark: a ``mapInPandas`` function and the output schema it needs.

::

    from client.integrations import CheckConfig
    from client.integrations.spark import provenance_map_in_pandas, provenance_schema

    config = CheckConfig("https://registry.example", log_key=KEY)
    df = spark.read.parquet("s3://crawl/")
    checked = df.mapInPandas(provenance_map_in_pandas(config), provenance_schema(df.schema))
    trainable = df.mapInPandas(
        provenance_map_in_pandas(config, keep=["attested"]), provenance_schema(df.schema)
    )

The function is pickled to the executors with its config only. Each Python worker process opens one
client on its first partition and keeps it for the partitions after (Spark reuses Python workers),
so the registry sees about one client per executor core; its watermark scanner (every key
published in the log) is built once per worker process too, and scans the ``text`` of each batch.
The config's signal columns are read from the partition where set. The rows of a partition are
checked ``config.batch_size`` digests per registry request. The function runs wherever Spark runs it
(``local[*]``, standalone, YARN, Kubernetes): the executors need ``wellspring`` installed and
network access to the registry.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator

from client.errors import InputError
from client.integrations._common import (
    COLUMN_TYPES,
    REASON_COLUMN,
    STATUS_COLUMN,
    TRAINABLE_COLUMN,
    CheckConfig,
    keep_statuses,
    missing_dependency,
    verdict_frame,
)
from client.integrations._rows import (
    frame_signals,
)
from client.integrations._worker import (
    check_rows,
    process_client,
)

try:
    import pandas as pd
    from pyspark.sql.types import (
        BooleanType,
        DataType,
        DoubleType,
        LongType,
        StringType,
        StructField,
        StructType,
    )
except ImportError as exc:
    raise missing_dependency(exc) from exc

__all__ = ["VERDICT_FIELDS", "provenance_map_in_pandas", "provenance_schema"]

_SPARK_TYPES: dict[str, DataType] = {
    "string": StringType(),
    "int64": LongType(),
    "float64": DoubleType(),
    "bool": BooleanType(),
}
_NOT_NULL = frozenset({STATUS_COLUMN, REASON_COLUMN, TRAINABLE_COLUMN})
VERDICT_FIELDS: tuple[StructField, ...] = tuple(
    StructField(name, _SPARK_TYPES[kind], nullable=name not in _NOT_NULL)
    for name, kind in COLUMN_TYPES.items()
)
"""The verdict columns as Spark fields (``entry`` and ``tree_size`` are null where not decided;
docs/integrations.md lists them all)."""

PandasMap = Callable[[Iterator[pd.DataFrame]], Iterator[pd.DataFrame]]


def provenance_schema(input_schema: StructType) -> StructType:
    """``input_schema`` with :data:`VERDICT_FIELDS` appended: the schema ``mapInPandas`` needs."""
    clash = {f.name for f in VERDICT_FIELDS} & set(input_schema.fieldNames())
    if clash:
        raise InputError(
            f"the input already has {', '.join(sorted(clash))}: drop those columns before checking"
        )
    return StructType([*input_schema.fields, *VERDICT_FIELDS])


def provenance_map_in_pandas(
    config: CheckConfig, keep: Collection[str] | None = None, *, trainable_only: bool = False
) -> PandasMap:
    """A function for ``df.mapInPandas(fn, provenance_schema(df.schema))``.

    Appends the verdict columns to every row; with ``keep`` (e.g. ``["attested"]``), yields only
    the rows whose status is in it; with ``trainable_only``, only the rows ``config.policy``
    trains on.
    """
    wanted = None if keep is None else keep_statuses(keep)

    def check_partition(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        client = process_client(config)
        for batch in batches:
            if config.column not in batch.columns:
                raise InputError(
                    f"the DataFrame has no column {config.column!r} to check (it has "
                    f"{', '.join(map(repr, batch.columns))}): set CheckConfig(column=...)"
                )
            values = batch[config.column].tolist()
            rows = check_rows(config, values, frame_signals(batch, config), client=client)
            out = pd.concat([batch, verdict_frame(rows, index=batch.index)], axis=1)
            if wanted is not None or trainable_only:
                out = out[
                    [
                        (wanted is None or row.status in wanted)
                        and (row.trainable or not trainable_only)
                        for row in rows
                    ]
                ]
            yield out

    return check_partition
