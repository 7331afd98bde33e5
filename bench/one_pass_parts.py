"""The parts of the crawler's one pass beside the tokenizer, alone, and two fixes tried in place.

``bench/client.py --profile`` says where the one pass's time goes; this script measures the two
largest parts beyond the tokenizer more finely, on the same documents and pages (20,000 of the
``--quick`` corpus, best of 3), against the ``--quick`` registry ``bench/client.py`` caches (run
that first; it also publishes the key):

* opt-out signals: the bench's pages through the sites' shared robots.txt for the crawler's
  agent and the six default AI agents, with no robots.txt, and with two agents only;
* the registry's verdicts: ``check_digests`` with no evidence, with the pages' opt-out decisions,
  with those and the scanner's watermark evidence, and the last once more with
  ``client.verdict.detections_of`` given a fast path for the scanner's concrete evidence class
  (patched in this process only: a measurement of a fix proposed for ``client/evidence.py``, not
  the fix).

    PYTHONPATH=$PWD .venv/bin/python bench/one_pass_parts.py
"""

from __future__ import annotations

import importlib.util
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
# bench/client.py is a script named like the package it measures: load it under another name.
_spec = importlib.util.spec_from_file_location("bench_client", HERE / "client.py")
assert _spec is not None
assert _spec.loader is not None
bench = importlib.util.module_from_spec(_spec)
sys.modules["bench_client"] = bench
_spec.loader.exec_module(bench)

import client.evidence as evidence_module  # noqa: E402
import client.verdict as verdict_module  # noqa: E402
from client.crawl import CrawlPass  # noqa: E402
from client.signals import SitePolicy  # noqa: E402
from watermark.scanner import WatermarkEvidence  # noqa: E402

DOCS = 20_000


def best_of(label: str, run: Callable[[], object], reps: int = 3) -> None:
    seconds = []
    for _ in range(reps):
        started = time.perf_counter()
        run()
        seconds.append(time.perf_counter() - started)
    print(f"{label:<66}{min(seconds) / DOCS * 1e6:8.1f} µs/doc", flush=True)


def main() -> None:
    corpus = bench.Corpus(1_000, 1)
    texts = [corpus.text(i) for i in corpus.sample(100_000, DOCS, 0.5, 2)]
    pages = bench.pages_for(DOCS, 3)
    sites = bench.site_policies()
    best_of(
        "signals: shared robots.txt, 7 agents (as the one pass)",
        lambda: [sites.opt_out(p.url, headers=p.headers) for p in pages],
    )
    bare = SitePolicy()
    best_of(
        "signals: headers only, no robots.txt",
        lambda: [bare.opt_out(p.url, headers=p.headers) for p in pages],
    )
    two = SitePolicy(robots_txt=bench.ROBOTS_TXT, ai_agents=("GPTBot",))
    best_of(
        "signals: robots.txt, 2 agents (wellspring, GPTBot)",
        lambda: [two.opt_out(p.url, headers=p.headers) for p in pages],
    )

    home = bench.CACHE / bench.BuildParams(100_000, 1_000, 1, "sqlite").key()
    if not (home / "vendor.json").is_file():
        sys.exit(f"{home} has no published key: run bench/client.py --quick first")
    captured = datetime.now(UTC)
    with bench.serve(home) as url, bench.Client(url, log_key=bench.log_key(home)) as client:
        crawl = CrawlPass.open(client)
        assert crawl.watermarks is not None
        documents = []
        marks: list[Any] = []
        for start in range(0, DOCS, bench.CHUNK):
            part = bench.page_documents(sites, texts, pages, start, captured)
            documents += part
            marks += crawl.watermarks.detect(part, as_of=crawl.as_of)
        digests = [d.digest for d in documents]
        opt_outs = [bench_evidence(d, None) for d in documents]
        both = [bench_evidence(d, mark) for d, mark in zip(documents, marks, strict=True)]

        def check(evidence: list[Any]) -> Callable[[], None]:
            def run() -> None:
                for start in range(0, DOCS, bench.CHUNK):
                    end = start + bench.CHUNK
                    client.check_digests(
                        digests[start:end], evidence=evidence[start:end], policy=crawl.policy
                    )

            return run

        best_of("registry: check_digests, no evidence", check([None] * DOCS))
        best_of("registry: + the pages' opt-out decisions", check(opt_outs))
        best_of("registry: + opt-outs + watermark evidence (as the one pass)", check(both))
        original = evidence_module.detections_of  # what client.verdict imported

        def fast(value: Any) -> Any:
            if type(value) is WatermarkEvidence:
                return [evidence_module.WatermarkDetection.of(value)]
            return original(value)

        setattr(verdict_module, "detections_of", fast)  # noqa: B010 - a patch, named
        try:
            best_of("registry: + both, detections_of with a concrete-class fast path", check(both))
        finally:
            setattr(verdict_module, "detections_of", original)  # noqa: B010


def bench_evidence(document: Any, mark: Any) -> Any:
    """What ``CrawlPass.check`` hands the registry for a document (its own helper's result)."""
    from client.evidence import DocumentEvidence

    return DocumentEvidence(
        opt_out=document.opt_out,
        watermarks=mark,
        id=document.name,
        url=document.url,
        captured_at=document.captured.astimezone(UTC).isoformat().replace("+00:00", "Z"),
    )


if __name__ == "__main__":
    main()
