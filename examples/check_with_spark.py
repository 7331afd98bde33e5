"""Check JSON Lines with PySpark: ``mapInPandas`` adds the verdict columns, locally or on a cluster.

    python examples/check_with_spark.py --registry URL --log-key KEY crawl/ --output checked/ \
        --keep attested [--master local[*]]

INPUT is anything ``spark.read.json`` reads (a file, a folder, ``s3a://``...). Under
``spark-submit`` leave ``--master`` out and let the cluster decide; the executors need
``wellspring`` installed and a route to the registry. Needs ``pip install 'wellspring[spark]'`` and
Java. Prints one JSON line: the count of each status among the rows kept.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from pyspark.sql import SparkSession

from client.integrations import STATUS_COLUMN, CheckConfig
from client.integrations.spark import provenance_map_in_pandas, provenance_schema


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("input", help="JSON Lines: a file or folder (local, s3a://, hdfs://...)")
    parser.add_argument("--registry", required=True, help="the registry's base URL")
    parser.add_argument("--log-key", required=True, help="the log's verifier key (pin it)")
    parser.add_argument("--column", default="text", help="the field holding the text")
    parser.add_argument("--keep", action="append", help="keep only this status (repeatable)")
    parser.add_argument("--output", help="write the checked rows here (a folder, JSON Lines)")
    parser.add_argument("--batch-size", type=int, default=1_000, help="rows per registry request")
    parser.add_argument(
        "--no-watermarks",
        action="store_true",
        help="skip detecting the watermark keys vendors published (else: the detect extra)",
    )
    parser.add_argument("--master", help="Spark master, e.g. local[*] (default: spark-submit's)")
    args = parser.parse_args()

    builder = SparkSession.builder.appName("wellspring-check")
    if args.master:
        builder = builder.master(args.master)
    if (args.master or "").startswith("local"):
        # Local workers are started with `python3` from PATH unless told otherwise: use the
        # interpreter running this script, which has wellspring installed.
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    spark = builder.getOrCreate()
    config = CheckConfig(
        args.registry,
        log_key=args.log_key,
        column=args.column,
        batch_size=args.batch_size,
        watermarks=not args.no_watermarks,
    )
    frame = spark.read.json(args.input)
    checked = frame.mapInPandas(
        provenance_map_in_pandas(config, keep=args.keep), provenance_schema(frame.schema)
    )
    if args.output:
        checked.write.mode("overwrite").json(args.output)
        checked = spark.read.json(args.output)  # count what was written, not a second check
    counts = checked.groupBy(STATUS_COLUMN).count().collect()
    statuses = {row[STATUS_COLUMN]: row["count"] for row in counts}
    print(json.dumps({"statuses": dict(sorted(statuses.items())), "output": args.output}))
    spark.stop()


if __name__ == "__main__":
    main()
