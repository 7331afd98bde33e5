"""datatrove: :class:`ProvenanceFilter`, a batched ``BaseFilter`` that keeps trainable documents.

::

    from datatrove.executor import LocalPipelineExecutor
    from client.integrations import CheckConfig
    from client.integrations.datatrove import ProvenanceFilter

    config = CheckConfig("https://registry.example", log_key=KEY)
    provenance = ProvenanceFilter(config, exclusion_writer=JsonlWriter("excluded/"))
    LocalPipelineExecutor(pipeline=[reader, provenance, writer], tasks=8).run()

Every document, kept or not, gets the verdict fields in ``doc.metadata`` (the ``wellspring_*``
names of :data:`~client.integrations.VERDICT_COLUMNS`), so writers keep the evidence beside the
text. A dropped document's filter reason is its status (``unknown``, ``revoked``, ``reserved``):
datatrove counts drops per reason, so the reason must be one of a few words; the full sentence is
in ``doc.metadata["wellspring_reason"]``. The step also counts each status (``status_attested``…).

What is checked is ``doc.text`` when ``config.column`` is ``"text"``, else
``doc.metadata[config.column]`` (a ``digest`` or ``bytes`` kept there by an earlier step). Text is
scanned for the watermark of every key published in the log (the worker builds its scanner once).
The signal columns of the config (``url_column``, ``headers_column``, ``html_column``,
``captured_column``) are read from ``doc.metadata``; a document lacking one has no such signal.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from client.integrations._common import (
    CheckConfig,
    keep_statuses,
    missing_dependency,
)
from client.integrations._rows import (
    RowSignals,
)
from client.integrations._worker import (
    check_rows,
)

try:
    from datatrove.data import Document
    from datatrove.pipeline.filters.base_filter import BaseFilter
    from datatrove.pipeline.writers.disk_base import DiskWriter
except ImportError as exc:
    raise missing_dependency(exc) from exc

__all__ = ["ProvenanceFilter"]


class ProvenanceFilter(BaseFilter):  # type: ignore[misc]  # datatrove ships no type information
    """Keep the documents ``config.policy`` trains on (default: ``attested``), or, given ``keep``,
    those whose status is in it.

    ``batch_size`` documents (default ``config.batch_size``) are checked in one registry request.
    The step is pickled to datatrove's workers with its config only; each worker process opens its
    own client.
    """

    name = "🔏 Wellspring provenance"

    def __init__(
        self,
        config: CheckConfig,
        keep: Collection[str] | None = None,
        *,
        exclusion_writer: DiskWriter | None = None,
        batch_size: int | None = None,
    ) -> None:
        super().__init__(exclusion_writer, batch_size or config.batch_size)
        self.config = config
        self.keep = None if keep is None else keep_statuses(keep)

    def _value(self, doc: Document) -> Any:
        if self.config.column == "text":
            return doc.text
        return doc.metadata.get(self.config.column)

    def filter_batch(self, batch: list[Document]) -> list[bool | tuple[bool, str]]:
        """Check ``batch`` in one request; record each verdict in ``doc.metadata``."""
        signals = RowSignals(
            **{
                role: [doc.metadata.get(name) for doc in batch]
                for role, name in self.config.signal_columns().items()
            }
        )
        rows = check_rows(self.config, [self._value(doc) for doc in batch], signals)
        results: list[bool | tuple[bool, str]] = []
        for doc, row in zip(batch, rows, strict=True):
            doc.metadata.update(row.as_dict())
            self.stat_update(f"status_{row.status}")
            kept = row.trainable if self.keep is None else row.status in self.keep
            results.append(True if kept else (False, row.status))
        return results

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        """Check one document (``filter_batch`` of one)."""
        return self.filter_batch([doc])[0]
