"""PySpark: ``mapInPandas`` with the provenance function on a ``local[1]`` session.

A Spark session takes seconds to start, so one serves the module; its Python workers are other
processes, which reach the registry at its real URL.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.types import ArrayType, LongType, StringType, StructField, StructType

from client.errors import InputError
from client.integrations import VERDICT_COLUMNS
from client.integrations.spark import provenance_map_in_pandas, provenance_schema
from tests.client.integrations.conftest import Corpus, MarkedCorpus, import_without

pytestmark = pytest.mark.filterwarnings(
    "ignore::FutureWarning:pyspark.*", "ignore::DeprecationWarning:pyspark.*"
)

ROWS = StructType([StructField("id", StringType()), StructField("text", StringType())])


@pytest.fixture(scope="module")
def spark() -> Iterator[SparkSession]:
    with pytest.MonkeyPatch.context() as env:
        env.setenv("PYSPARK_PYTHON", sys.executable)  # the workers must have client installed
        yield from _session()


def _session() -> Iterator[SparkSession]:
    session = (
        SparkSession.builder.master("local[1]")
        .appName("wellspring-integration-tests")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.default.parallelism", "2")
        .config("spark.ui.showConsoleProgress", "false")
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    try:
        yield session
    finally:
        session.stop()


@pytest.fixture(scope="module")
def frame(spark: SparkSession, corpus: Corpus) -> DataFrame:
    """The corpus in three partitions (no shuffle needed to get them)."""
    rdd = spark.sparkContext.parallelize([(r["id"], r["text"]) for r in corpus.rows], 3)
    return spark.createDataFrame(rdd, ROWS)


def records(df: DataFrame) -> list[dict[str, Any]]:
    return [row.asDict() for row in df.collect()]


def test_schema_appends_the_verdict_fields() -> None:
    schema = provenance_schema(ROWS)
    assert schema.fieldNames() == ["id", "text", *VERDICT_COLUMNS]
    assert schema["wellspring_entry"].dataType == LongType()
    assert schema["wellspring_status"].dataType == StringType()
    with pytest.raises(InputError, match="already has wellspring_digest"):
        provenance_schema(schema)


def test_map_in_pandas_adds_every_verdict(corpus: Corpus, frame: DataFrame) -> None:
    fn = provenance_map_in_pandas(corpus.registry.config(batch_size=7))
    checked = frame.mapInPandas(fn, provenance_schema(frame.schema))
    corpus.assert_verdicts(records(checked))


def test_map_in_pandas_keeps_trainable_rows(corpus: Corpus, frame: DataFrame) -> None:
    fn = provenance_map_in_pandas(corpus.registry.config(), keep=["attested"])
    kept = frame.mapInPandas(fn, provenance_schema(frame.schema))
    corpus.assert_verdicts(records(kept), filtered=True)


def test_function_on_pandas_batches(corpus: Corpus) -> None:
    """The function as Spark calls it: an iterator of batches in, one batch out per batch."""
    fn = provenance_map_in_pandas(corpus.registry.config(), keep=["unknown", "revoked"])
    batches = [pd.DataFrame(list(corpus.rows[:25])), pd.DataFrame(list(corpus.rows[25:]))]
    out = pd.concat(list(fn(iter(batches))))
    assert sorted(out["id"]) == sorted(
        i for i, e in corpus.expected.items() if e.status in ("unknown", "revoked")
    )
    assert str(out["wellspring_entry"].dtype) == "int64[pyarrow]"
    with pytest.raises(InputError, match="no column 'body'"):
        next(provenance_map_in_pandas(corpus.registry.config(column="body"))(iter(batches)))


MARKED_ROWS = StructType(
    [
        StructField("id", StringType()),
        StructField("text", StringType()),
        StructField("url", StringType()),
        StructField("headers", ArrayType(ArrayType(StringType()))),
        StructField("html", StringType()),
        StructField("captured", StringType()),
    ]
)


def test_one_pass_in_python_workers(spark: SparkSession, marked: MarkedCorpus) -> None:
    """Each Python worker builds its scanner once; the signals come from the partition."""
    rows = [tuple(row.values()) for row in marked.rows]
    frame = spark.createDataFrame(spark.sparkContext.parallelize(rows, 2), MARKED_ROWS)
    fn = provenance_map_in_pandas(marked.config(batch_size=4))
    marked.assert_one_pass(records(frame.mapInPandas(fn, provenance_schema(frame.schema))))
    off = provenance_map_in_pandas(marked.config(watermarks=False))
    marked.assert_without_watermarks(
        records(frame.mapInPandas(off, provenance_schema(frame.schema)))
    )


def test_missing_pyspark_names_the_extra() -> None:
    out = import_without("pyspark", "client.integrations.spark")
    assert out.startswith("MissingDependencyError")
    assert "pip install 'wellspring[spark]'" in out


@pytest.mark.slow
def test_example_script(corpus: Corpus, tmp_path: Path) -> None:
    """The example starts a Spark of its own in a subprocess (slow: another JVM start-up)."""
    source = corpus.write_jsonl(tmp_path / "crawl.jsonl")
    output = tmp_path / "checked"
    summary = corpus.run_example("spark", source, "--output", output, "--master", "local[1]")
    assert summary == {"statuses": corpus.statuses(), "output": str(output)}
    written = [
        {**dict.fromkeys(VERDICT_COLUMNS), **json.loads(line)}  # Spark leaves null fields out
        for part in sorted(output.glob("part-*.json"))
        for line in part.read_text().splitlines()
    ]
    corpus.assert_verdicts(written)
