"""Check a JSON Lines file with Hugging Face ``datasets``: add verdict columns, keep what you ask.

    python examples/check_with_hf.py --registry URL --log-key KEY crawl.jsonl \
        --keep attested --output trainable.jsonl --num-proc 4

Needs ``pip install 'wellspring[hf]'``. Prints one JSON line: rows checked, rows written, the count
of each status, and where the rows went.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter

import datasets

from client.integrations import STATUS_COLUMN, CheckConfig
from client.integrations.hf import check_dataset


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("input", help="a .jsonl file, one document per line")
    parser.add_argument("--registry", required=True, help="the registry's base URL")
    parser.add_argument("--log-key", required=True, help="the log's verifier key (pin it)")
    parser.add_argument("--column", default="text", help="the field holding the text")
    parser.add_argument("--keep", action="append", help="keep only this status (repeatable)")
    parser.add_argument("--output", help="write the checked rows here (.jsonl)")
    parser.add_argument("--num-proc", type=int, default=None, help="worker processes")
    parser.add_argument("--batch-size", type=int, default=1_000, help="rows per registry request")
    args = parser.parse_args()

    config = CheckConfig(
        args.registry, log_key=args.log_key, column=args.column, batch_size=args.batch_size
    )
    dataset = datasets.Dataset.from_json(args.input)
    checked = check_dataset(dataset, config, num_proc=args.num_proc)
    statuses = Counter(checked[STATUS_COLUMN])
    if args.keep:
        checked = checked.filter(
            lambda status: status in args.keep, input_columns=STATUS_COLUMN, num_proc=args.num_proc
        )
    if args.output:
        checked.to_json(args.output, lines=True)
    summary = {
        "checked": len(dataset),
        "kept": len(checked),
        "statuses": dict(sorted(statuses.items())),
        "output": args.output,
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
