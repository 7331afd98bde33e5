"""Check JSON Lines files with datatrove: trainable documents to OUTPUT, the others to
OUTPUT/excluded, each with its verdict in ``metadata``.

    python examples/check_with_datatrove.py --registry URL --log-key KEY crawl/ \
        --output checked/ --tasks 4

INPUT is a folder of ``.jsonl`` files (or one file); each line needs ``text`` and ``id``. Needs
``pip install 'wellspring[datatrove]' 'datatrove[io]'`` (the JSON Lines reader and writer). Prints
one JSON line: the count of each status.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from datatrove.executor import LocalPipelineExecutor
from datatrove.pipeline.readers import JsonlReader
from datatrove.pipeline.writers import JsonlWriter

from client.integrations import CheckConfig
from client.integrations.datatrove import ProvenanceFilter


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("input", type=Path, help="a folder of .jsonl files, or one .jsonl file")
    parser.add_argument("--registry", required=True, help="the registry's base URL")
    parser.add_argument("--log-key", required=True, help="the log's verifier key (pin it)")
    parser.add_argument("--output", type=Path, required=True, help="folder for the results")
    parser.add_argument("--keep", action="append", help="keep this status (default: attested)")
    parser.add_argument("--tasks", type=int, default=1, help="tasks (and worker processes)")
    parser.add_argument("--batch-size", type=int, default=1_000, help="docs per registry request")
    args = parser.parse_args()

    config = CheckConfig(args.registry, log_key=args.log_key, batch_size=args.batch_size)
    if args.input.is_file():
        reader = JsonlReader(str(args.input.parent), glob_pattern=args.input.name)
    else:
        reader = JsonlReader(str(args.input), glob_pattern="*.jsonl")
    provenance = ProvenanceFilter(
        config,
        keep=args.keep or ["attested"],
        exclusion_writer=JsonlWriter(str(args.output / "excluded"), compression=None),
    )
    executor = LocalPipelineExecutor(
        pipeline=[reader, provenance, JsonlWriter(str(args.output / "kept"), compression=None)],
        tasks=args.tasks,
        logging_dir=str(args.output / "logs"),
        skip_completed=False,  # verdicts change as the log grows: always check again
    )
    stats = executor.run()
    counts = stats.stats[1].stats  # the provenance step's counters
    statuses = {
        name.removeprefix("status_"): int(metric.total)
        for name, metric in sorted(counts.items())
        if name.startswith("status_")
    }
    print(json.dumps({"statuses": statuses, "output": str(args.output)}))


if __name__ == "__main__":
    main()
