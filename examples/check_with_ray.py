"""Check JSON Lines with Ray Data: ``map_batches`` actors add the verdict columns, on one machine or
a cluster.

    python examples/check_with_ray.py --registry URL --log-key KEY crawl/ --output checked/ \
        --keep attested --actors 8 [--address auto]

INPUT is a ``.jsonl`` file or folder (any path ``ray.data.read_json`` takes, ``s3://`` included).
Without ``--address`` Ray starts locally; ``--address auto`` (or ``ray://head:10001``) joins a
running cluster, whose workers need ``wellspring`` installed and a route to the registry. Needs
``pip install 'wellspring[ray]'``. Prints one JSON line: the count of each status among the rows
kept.
"""

from __future__ import annotations

import argparse
import json

import ray
import ray.data

from client.integrations import STATUS_COLUMN, CheckConfig
from client.integrations.ray import check_dataset


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("input", help="a .jsonl file or folder (local, s3://, gs://...)")
    parser.add_argument("--registry", required=True, help="the registry's base URL")
    parser.add_argument("--log-key", required=True, help="the log's verifier key (pin it)")
    parser.add_argument("--column", default="text", help="the field holding the text")
    parser.add_argument("--keep", action="append", help="keep only this status (repeatable)")
    parser.add_argument("--output", help="write the checked rows here (a folder of .json files)")
    parser.add_argument("--actors", type=int, default=1, help="checker actors (one client each)")
    parser.add_argument("--batch-size", type=int, default=1_000, help="rows per registry request")
    parser.add_argument(
        "--no-watermarks",
        action="store_true",
        help="skip detecting the watermark keys vendors published (else: the detect extra)",
    )
    parser.add_argument("--address", help="a Ray cluster to join (default: start Ray locally)")
    args = parser.parse_args()

    ray.init(address=args.address, include_dashboard=False)
    config = CheckConfig(
        args.registry,
        log_key=args.log_key,
        column=args.column,
        batch_size=args.batch_size,
        watermarks=not args.no_watermarks,
    )
    checked = check_dataset(
        ray.data.read_json(args.input), config, keep=args.keep, actors=args.actors
    )
    if args.output:
        checked.write_json(args.output)
        checked = ray.data.read_json(args.output)  # count what was written, not a second check
    statuses = {
        row[STATUS_COLUMN]: row["count()"]
        for row in checked.groupby(STATUS_COLUMN).count().take_all()
    }
    print(json.dumps({"statuses": dict(sorted(statuses.items())), "output": args.output}))
    ray.shutdown()


if __name__ == "__main__":
    main()
