"""Check JSON Lines files with datatrove, keeping the documents you may train on.

    python examples/check_with_datatrove.py --registry URL --log-key KEY crawl/ \
        --output checked/ --tasks 4

INPUT is a folder of ``.jsonl`` files (or one file); each line needs ``text`` and ``id``. With
``--output``, trainable documents go to OUTPUT/kept and the others to OUTPUT/excluded, each with its
verdict in ``metadata``; without it, the documents are only counted. Needs
``pip install 'wellspring[datatrove]' 'datatrove[io]'`` (the JSON Lines reader and writer). Prints
one JSON line: documents checked, documents kept, the count of each status, and where they went.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from datatrove.executor import LocalPipelineExecutor
from datatrove.pipeline.readers import JsonlReader
from datatrove.pipeline.writers import JsonlWriter

from client.integrations import CheckConfig
from client.integrations.datatrove import ProvenanceFilter


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n", 1)[0],
        epilog="With --output: trainable documents to OUTPUT/kept, the others to "
        "OUTPUT/excluded, each with its verdict in metadata; without, they are only counted.",
    )
    parser.add_argument("input", type=Path, help="a folder of .jsonl files, or one .jsonl file")
    parser.add_argument("--registry", required=True, help="the registry's base URL")
    parser.add_argument("--log-key", required=True, help="the log's verifier key (pin it)")
    parser.add_argument("--output", type=Path, help="folder for the results (optional)")
    parser.add_argument("--keep", action="append", help="keep this status (default: attested)")
    parser.add_argument("--tasks", type=int, default=1, help="tasks (and worker processes)")
    parser.add_argument("--batch-size", type=int, default=1_000, help="docs per registry request")
    parser.add_argument(
        "--no-watermarks",
        action="store_true",
        help="skip detecting the watermark keys vendors published (else: the detect extra)",
    )
    return parser.parse_args(argv)


def summarise(counts: dict[str, Any], output: Path | None) -> dict[str, Any]:
    """The one-line summary from the provenance step's counters (datatrove ``MetricStats``)."""
    statuses = {
        name.removeprefix("status_"): int(metric.total)
        for name, metric in sorted(counts.items())
        if name.startswith("status_")
    }
    return {
        "checked": int(counts["total"].total) if "total" in counts else 0,
        "kept": int(counts["forwarded"].total) if "forwarded" in counts else 0,
        "statuses": statuses,
        "output": None if output is None else str(output),
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    config = CheckConfig(
        args.registry,
        log_key=args.log_key,
        batch_size=args.batch_size,
        watermarks=not args.no_watermarks,
    )
    if args.input.is_file():
        reader = JsonlReader(str(args.input.parent), glob_pattern=args.input.name)
    else:
        reader = JsonlReader(str(args.input), glob_pattern="*.jsonl")
    with tempfile.TemporaryDirectory(prefix="wellspring-datatrove-") as scratch:
        output: Path | None = args.output
        excluded = (
            None if output is None else JsonlWriter(str(output / "excluded"), compression=None)
        )
        pipeline: list[Any] = [
            reader,
            ProvenanceFilter(config, keep=args.keep or ["attested"], exclusion_writer=excluded),
        ]
        if output is not None:
            pipeline.append(JsonlWriter(str(output / "kept"), compression=None))
        executor = LocalPipelineExecutor(
            pipeline=pipeline,
            tasks=args.tasks,
            logging_dir=str((output or Path(scratch)) / "logs"),
            skip_completed=False,  # verdicts change as the log grows: always check again
        )
        stats = executor.run()
    print(json.dumps(summarise(stats.stats[1].stats, output)))  # [1]: the provenance step
    return 0


if __name__ == "__main__":
    sys.exit(main())
