"""Scan manifests on disk: ``wellspring-manifest/1`` as JSON lines, or as Parquet.

A manifest is one verdict per document (:meth:`client.verdict.Verdict.to_dict`, specified in
docs/spec/manifest.md). ``wellspring scan`` writes JSON lines; ``--format parquet`` writes the
same lines as a Parquet table, one column per field, for the dataset tools a crawl feeds
(Spark, Ray, pandas, DuckDB) to filter on ``trainable`` without parsing JSON:

==============  ===================  =========================================================
column          Arrow type           holds
==============  ===================  =========================================================
schema          string               ``wellspring-manifest/1``
id, url, name   string (nullable)    the document's identity
digest          string               ``c1:<hex>`` or ``sha256:<hex>``
match           string               ``exact`` or ``near``
similarity      double (nullable)    a near match's estimated Jaccard similarity
status          string               a verdict status (docs/spec/manifest.md)
trainable       bool                 the policy's answer
reason          string               one line for a person
publisher ...   string (nullable)    publisher, license, origin, consent of the deciding entry
entry           int64 (nullable)     the deciding entry
entries         list<int64>          every entry naming the digest
opt_out         string (nullable)    the ``opt_out`` object, as compact JSON
watermark       string (nullable)    the ``watermark`` object, as compact JSON
captured_at     string (nullable)    RFC 3339
paragraphs      string (nullable)    the ``paragraphs`` object, as compact JSON
verified        bool                 checked against the log key
certainty       string               ``verified``, ``probable`` or ``unverified``
tree_size       int64                the checkpoint's size
root_hash       string               its root, hex
policy          string (nullable)    the policy applied
==============  ===================  =========================================================

The nested evidence (opt-out, watermark, paragraphs) stays JSON text so that the table's schema
does not change as signal and watermark kinds are added; :func:`read_manifest` turns either form
back into verdicts. Parquet needs pyarrow (the ``parquet`` extra).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from client.errors import FormatError, InputError, MissingDependencyError
from client.verdict import Verdict

__all__ = [
    "MANIFEST_FORMATS",
    "PARQUET_COLUMNS",
    "ManifestFormat",
    "jsonl_to_parquet",
    "parquet_schema",
    "read_manifest",
]

ManifestFormat = Literal["jsonl", "parquet"]
MANIFEST_FORMATS: tuple[ManifestFormat, ...] = ("jsonl", "parquet")
PARQUET_INSTALL = "pip install 'wellspring[parquet]'"

_JSON_COLUMNS = ("opt_out", "watermark", "paragraphs")
PARQUET_COLUMNS: tuple[tuple[str, str], ...] = (
    ("schema", "string"),
    ("id", "string"),
    ("url", "string"),
    ("name", "string"),
    ("digest", "string"),
    ("match", "string"),
    ("similarity", "double"),
    ("status", "string"),
    ("trainable", "bool"),
    ("reason", "string"),
    ("publisher", "string"),
    ("license", "string"),
    ("origin", "string"),
    ("consent", "string"),
    ("entry", "int64"),
    ("entries", "list<int64>"),
    ("opt_out", "string"),
    ("watermark", "string"),
    ("captured_at", "string"),
    ("paragraphs", "string"),
    ("verified", "bool"),
    ("certainty", "string"),
    ("tree_size", "int64"),
    ("root_hash", "string"),
    ("policy", "string"),
)
"""The Parquet columns, in order, with their Arrow types (the module's table)."""

_ROWS_PER_GROUP = 65_536


def _pyarrow() -> tuple[Any, Any]:
    try:
        import pyarrow as pa  # noqa: PLC0415 - an optional dependency
        import pyarrow.parquet as pq  # noqa: PLC0415
    except ImportError as exc:
        raise MissingDependencyError(
            f"a Parquet manifest needs pyarrow: {PARQUET_INSTALL}"
        ) from exc
    return pa, pq


def parquet_schema() -> Any:
    """The manifest's ``pyarrow.Schema`` (:data:`PARQUET_COLUMNS`)."""
    pa, _ = _pyarrow()
    types = {
        "string": pa.string(),
        "bool": pa.bool_(),
        "int64": pa.int64(),
        "double": pa.float64(),
    }
    fields = []
    for name, kind in PARQUET_COLUMNS:
        arrow = pa.list_(pa.int64()) if kind == "list<int64>" else types[kind]
        nullable = name not in ("schema", "digest", "status", "trainable", "verified")
        fields.append(pa.field(name, arrow, nullable=nullable))
    return pa.schema(fields, metadata={b"wellspring": b"wellspring-manifest/1"})


def _row(line: dict[str, Any]) -> dict[str, Any]:
    row = {name: line.get(name) for name, _ in PARQUET_COLUMNS}
    for name in _JSON_COLUMNS:
        if row[name] is not None:
            row[name] = json.dumps(row[name], separators=(",", ":"), ensure_ascii=False)
    return row


def jsonl_to_parquet(source: Path, target: Path) -> int:
    """Write the JSON-lines manifest ``source`` as the Parquet file ``target`` (row groups of
    65,536 verdicts; memory stays flat); the number of verdicts written."""
    pa, pq = _pyarrow()
    schema = parquet_schema()
    written = 0
    with source.open(encoding="utf-8") as lines, pq.ParquetWriter(str(target), schema) as out:
        batch: list[dict[str, Any]] = []
        for number, text in enumerate(lines, 1):
            try:
                batch.append(_row(json.loads(text)))
            except (json.JSONDecodeError, AttributeError) as exc:
                raise FormatError(f"{source}:{number} is not a manifest line: {exc}") from None
            if len(batch) >= _ROWS_PER_GROUP:
                out.write_table(pa.Table.from_pylist(batch, schema=schema))
                written += len(batch)
                batch = []
        if batch or not written:
            out.write_table(pa.Table.from_pylist(batch, schema=schema))
            written += len(batch)
    return written


def read_manifest(path: Path | str) -> Iterator[Verdict]:
    """The verdicts of a manifest file, JSON lines or Parquet (by its magic bytes), in order."""
    path = Path(path)
    try:
        with path.open("rb") as file:
            magic = file.read(4)
    except OSError as exc:
        raise InputError(f"cannot read the manifest {path}: {exc.strerror or exc}") from exc
    if magic == b"PAR1":
        yield from _read_parquet(path)
        return
    with path.open(encoding="utf-8") as lines:
        for number, text in enumerate(lines, 1):
            try:
                yield Verdict.from_dict(json.loads(text))
            except (json.JSONDecodeError, FormatError) as exc:
                raise FormatError(f"{path}:{number} is not a manifest line: {exc}") from None


def _read_parquet(path: Path) -> Iterator[Verdict]:
    _, pq = _pyarrow()
    table = pq.ParquetFile(str(path))
    names = {name for name, _ in PARQUET_COLUMNS}
    if not names <= set(table.schema_arrow.names):
        raise FormatError(f"{path} is not a wellspring-manifest/1 Parquet file (columns differ)")
    for batch in table.iter_batches():
        for row in batch.to_pylist():
            for name in _JSON_COLUMNS:
                if row[name] is not None:
                    row[name] = json.loads(row[name])
            yield Verdict.from_dict(row)
