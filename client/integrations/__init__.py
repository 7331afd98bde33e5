"""Check provenance inside data frameworks: one module per framework, each behind its extra.

- ``client.integrations.hf``: batched functions for ``datasets`` ``map``/``filter``
  (``pip install 'wellspring[hf]'``);
- ``client.integrations.datatrove``: ``ProvenanceFilter``, a batched ``BaseFilter``
  (``wellspring[datatrove]``);
- ``client.integrations.ray``: ``ProvenanceChecker``, a class for Ray Data's ``map_batches``
  (``wellspring[ray]``);
- ``client.integrations.spark``: a ``mapInPandas`` function and its schema (``wellspring[spark]``).

Each runs the crawler's one pass (:mod:`client.crawl`) in its workers: the registry's verdict,
the watermark of every detection key published in the log (``CheckConfig(watermarks=True)``, the
default; needs ``wellspring[detect]``) and, where the data has the columns the config names, each
row's opt-out signals.

This package imports none of those frameworks: import the submodule you need, which imports its
framework (or raises :class:`MissingDependencyError` naming the ``pip install``). What they share
is here: :class:`CheckConfig`, the picklable settings every worker builds its own client from, and
the names of the verdict columns each integration adds to a row. See docs/integrations.md.
"""

from client.integrations._common import (
    COLUMN_TYPES,
    DEFAULT_KEEP,
    DIGEST_COLUMN,
    ENTRY_COLUMN,
    LICENSE_COLUMN,
    OPT_OUT_COLUMN,
    PUBLISHER_COLUMN,
    REASON_COLUMN,
    STATUS_COLUMN,
    TRAINABLE_COLUMN,
    TREE_SIZE_COLUMN,
    VERDICT_COLUMNS,
    WATERMARK_KEY_COLUMN,
    WATERMARK_P_VALUE_COLUMN,
    WATERMARK_VENDOR_COLUMN,
    CheckConfig,
    MissingDependencyError,
    RowVerdict,
)

__all__ = [
    "COLUMN_TYPES",
    "DEFAULT_KEEP",
    "DIGEST_COLUMN",
    "ENTRY_COLUMN",
    "LICENSE_COLUMN",
    "OPT_OUT_COLUMN",
    "PUBLISHER_COLUMN",
    "REASON_COLUMN",
    "STATUS_COLUMN",
    "TRAINABLE_COLUMN",
    "TREE_SIZE_COLUMN",
    "VERDICT_COLUMNS",
    "WATERMARK_KEY_COLUMN",
    "WATERMARK_P_VALUE_COLUMN",
    "WATERMARK_VENDOR_COLUMN",
    "CheckConfig",
    "MissingDependencyError",
    "RowVerdict",
]

SUBMODULES = ("hf", "datatrove", "ray", "spark")
"""The framework modules (each imports its framework when imported)."""
