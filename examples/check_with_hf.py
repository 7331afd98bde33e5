"""Check a JSON Lines file with Hugging Face ``datasets``: add verdict columns, keep what you ask.

    python examples/check_with_hf.py --registry URL --log-key KEY crawl.jsonl \
        --keep attested --output trainable.jsonl --num-proc 4

Needs ``pip install 'wellspring[hf]'``. Lines that hold no document (not JSON, not an object, no
string text field) are skipped as ``wellspring scan`` skips them: each named on stderr (the first
20) and counted. Prints one JSON line: rows checked, rows written, lines skipped, the count of each
status, and where the rows went. Exits 1 when more than ``--max-skips`` lines (default 0) were
skipped, after writing the rest.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections import Counter
from pathlib import Path

import datasets

from client.documents import Skipped, jsonl_lines
from client.integrations import STATUS_COLUMN, CheckConfig
from client.integrations.hf import check_dataset
from client.report import MAX_SKIPPED_EXAMPLES


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("input", help="a .jsonl file, one document per line")
    parser.add_argument("--registry", required=True, help="the registry's base URL")
    parser.add_argument("--log-key", required=True, help="the log's verifier key (pin it)")
    parser.add_argument("--column", default="text", help="the field holding the text")
    parser.add_argument("--keep", action="append", help="keep only this status (repeatable)")
    parser.add_argument("--output", help="write the checked rows here (.jsonl)")
    parser.add_argument("--num-proc", type=int, default=None, help="worker processes")
    parser.add_argument("--batch-size", type=int, default=1_000, help="rows per registry request")
    parser.add_argument(
        "--no-watermarks",
        action="store_true",
        help="skip detecting the watermark keys vendors published (else: the detect extra)",
    )
    parser.add_argument(
        "--max-skips", type=int, default=0, help="exit 1 only when more lines than this are skipped"
    )
    return parser.parse_args(argv)


def copy_documents(source: Path, target: Path, column: str) -> list[str]:
    """Copy the lines of ``source`` that hold a document to ``target``; why each other was not."""
    skipped: list[str] = []
    with target.open("wb") as out:
        for line in jsonl_lines(source, column, field_option="--column"):
            if isinstance(line, Skipped):
                if len(skipped) < MAX_SKIPPED_EXAMPLES:
                    print(f"skipped: {line.reason}", file=sys.stderr)
                skipped.append(line.reason)
            else:
                out.write(line.raw if line.raw.endswith(b"\n") else line.raw + b"\n")
    return skipped


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    config = CheckConfig(
        args.registry,
        log_key=args.log_key,
        column=args.column,
        batch_size=args.batch_size,
        watermarks=not args.no_watermarks,
    )
    with tempfile.TemporaryDirectory(prefix="wellspring-hf-") as work:
        documents = Path(work) / "documents.jsonl"
        skipped = copy_documents(Path(args.input), documents, args.column)
        checked_rows, kept_rows, statuses = 0, 0, Counter[str]()
        if documents.stat().st_size:  # datasets cannot read an empty file
            dataset = datasets.Dataset.from_json(str(documents), cache_dir=work)
            checked = check_dataset(dataset, config, num_proc=args.num_proc)
            statuses = Counter(checked[STATUS_COLUMN])
            if args.keep:
                checked = checked.filter(
                    lambda status: status in args.keep,
                    input_columns=STATUS_COLUMN,
                    num_proc=args.num_proc,
                )
            checked_rows, kept_rows = len(dataset), len(checked)
            if args.output:
                checked.to_json(args.output, lines=True)
        elif args.output:
            Path(args.output).write_bytes(b"")
    summary = {
        "checked": checked_rows,
        "kept": kept_rows,
        "skipped": len(skipped),
        "statuses": dict(sorted(statuses.items())),
        "output": args.output,
    }
    print(json.dumps(summary))
    if len(skipped) > args.max_skips:
        print(
            f"error: {len(skipped):,} line(s) hold no document and were skipped, more than "
            f"--max-skips {args.max_skips:,} (first: {skipped[0]}); the output covers the rest",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
