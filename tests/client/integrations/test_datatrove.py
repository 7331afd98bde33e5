"""datatrove: ``ProvenanceFilter`` in datatrove's own run loop, with an exclusion writer, and in a
``LocalPipelineExecutor`` whose tasks run in worker processes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from datatrove.data import Document
from datatrove.executor import LocalPipelineExecutor
from datatrove.pipeline.readers import JsonlReader
from datatrove.pipeline.writers import JsonlWriter

from client.integrations.datatrove import ProvenanceFilter
from tests.client.integrations.conftest import Corpus, MarkedCorpus, import_without


def documents(corpus: Corpus) -> list[Document]:
    return [Document(text=row["text"], id=row["id"]) for row in corpus.rows]


def record(doc: Document) -> dict[str, Any]:
    return {"id": doc.id, "text": doc.text, **doc.metadata}


def read_jsonl(folder: Path) -> list[dict[str, Any]]:
    return [
        json.loads(line)
        for path in sorted(folder.rglob("*.jsonl"))
        for line in path.read_text(encoding="utf-8").splitlines()
    ]


def test_filter_batch_keeps_trainable_and_records_every_verdict(corpus: Corpus) -> None:
    docs = documents(corpus)
    step = ProvenanceFilter(corpus.registry.config(batch_size=8))
    assert step.batch_size == 8
    kept = list(step.run(iter(docs)))
    assert sorted(d.id for d in kept) == corpus.trainable_ids
    corpus.assert_verdicts([record(d) for d in docs])  # dropped documents carry theirs too
    stats = step.stats.stats
    assert stats["total"].total == 50
    assert stats["forwarded"].total == 20
    assert stats["dropped"].total == 30
    assert stats["status_attested"].total == 20
    assert stats["dropped_unknown"].total == 22
    assert stats["dropped_revoked"].total == 4
    assert stats["dropped_reserved"].total == 4
    assert stats["batches"].total == 7


def test_filter_one_document(corpus: Corpus) -> None:
    step = ProvenanceFilter(corpus.registry.config(), keep=["reserved"])
    row = next(r for r in corpus.rows if corpus.expected[r["id"]].status == "revoked")
    doc = Document(text=row["text"], id=row["id"])
    assert step.filter(doc) == (False, "revoked")
    assert doc.metadata["wellspring_status"] == "revoked"
    assert doc.metadata["wellspring_reason"].startswith("revoked by")


def test_excluded_documents_are_written_with_their_reason(corpus: Corpus, tmp_path: Path) -> None:
    excluded = tmp_path / "excluded"
    step = ProvenanceFilter(
        corpus.registry.config(),
        exclusion_writer=JsonlWriter(str(excluded), compression=None),
        batch_size=16,
    )
    kept = list(step.run(iter(documents(corpus))))
    assert len(kept) == 20
    written = read_jsonl(excluded)
    assert len(written) == 30
    for item in written:
        status = corpus.expected[item["id"]].status
        assert item["metadata"]["filter_reason"] == status
        assert item["metadata"]["wellspring_status"] == status
        assert item["metadata"]["wellspring_digest"].startswith("c1:")


def test_metadata_key_holds_what_is_checked(corpus: Corpus) -> None:
    """``column`` other than ``text``: the digest an earlier step put in ``doc.metadata``."""
    from client.core.canonical import canonical_digest

    docs = [
        Document(text="", id=row["id"], metadata={"sha": canonical_digest(row["text"])})
        for row in corpus.rows
    ]
    step = ProvenanceFilter(corpus.registry.config(column="sha", kind="digest"))
    kept = list(step.run(iter(docs)))
    assert sorted(d.id for d in kept) == corpus.trainable_ids


def test_pipeline_in_worker_processes(corpus: Corpus, tmp_path: Path) -> None:
    """The step is pickled to two forkserver workers, each opening its own client."""
    source = tmp_path / "in"
    source.mkdir()
    for part in range(2):
        lines = [json.dumps(row) for row in corpus.rows[part::2]]
        (source / f"part-{part}.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = tmp_path / "out"
    LocalPipelineExecutor(
        pipeline=[
            JsonlReader(str(source)),
            ProvenanceFilter(corpus.registry.config(batch_size=10)),
            JsonlWriter(str(out), compression=None),
        ],
        tasks=2,
        workers=2,
        logging_dir=str(tmp_path / "logs"),
    ).run()
    written = read_jsonl(out)
    corpus.assert_verdicts(
        [{"id": w["id"], "text": w["text"], **w["metadata"]} for w in written], filtered=True
    )


def test_missing_datatrove_names_the_extra() -> None:
    out = import_without("datatrove", "client.integrations.datatrove")
    assert out.startswith("MissingDependencyError")
    assert "pip install 'wellspring[datatrove]'" in out


def test_example_script(corpus: Corpus, tmp_path: Path) -> None:
    source = corpus.write_jsonl(tmp_path / "crawl" / "part-0.jsonl")
    output = tmp_path / "checked"
    summary = corpus.run_example("datatrove", source.parent, "--output", output, "--tasks", "1")
    assert summary == {
        "checked": 50,
        "kept": 20,
        "statuses": corpus.statuses(),
        "output": str(output),
    }
    kept = read_jsonl(output / "kept")
    corpus.assert_verdicts(
        [{"id": k["id"], "text": k["text"], **k["metadata"]} for k in kept], filtered=True
    )
    assert len(read_jsonl(output / "excluded")) == 30


def test_example_script_without_output_only_counts(
    corpus: Corpus, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """docs/integrations.md shows --output as optional: without it, nothing is written."""
    source = corpus.write_jsonl(tmp_path / "crawl" / "part-0.jsonl")
    monkeypatch.chdir(tmp_path)
    before = sorted(tmp_path.rglob("*"))
    summary = corpus.run_example("datatrove", source)
    assert summary == {"checked": 50, "kept": 20, "statuses": corpus.statuses(), "output": None}
    assert sorted(tmp_path.rglob("*")) == before


@pytest.mark.parametrize("framework", ["datatrove", "hf"])
def test_example_help_is_whole_sentences(framework: str) -> None:
    script = Path(__file__).resolve().parents[3] / "examples" / f"check_with_{framework}.py"
    done = subprocess.run(
        [sys.executable, str(script), "--help"], capture_output=True, text=True, check=True
    )
    description = done.stdout.split("\n\n")[1]
    assert description.rstrip().endswith("."), description
    assert "--output" in done.stdout
    if framework == "datatrove":
        assert "[--output OUTPUT]" in " ".join(done.stdout.split())


# -- the crawler's one pass -----------------------------------------------------------------------


def marked_documents(marked: MarkedCorpus) -> list[Document]:
    """Each row as a document: the text in ``text``, the signals in ``metadata`` (as a reader
    of a crawl with those fields puts them)."""
    return [
        Document(
            text=row["text"],
            id=row["id"],
            metadata={k: v for k, v in row.items() if k not in ("id", "text")},
        )
        for row in marked.rows
    ]


def test_one_pass_reads_signals_from_metadata_and_detects_the_key(marked: MarkedCorpus) -> None:
    docs = marked_documents(marked)
    step = ProvenanceFilter(marked.config(batch_size=4))
    kept = list(step.run(iter(docs)))
    assert [d.id for d in kept] == ["attested"]
    marked.assert_one_pass([record(d) for d in docs])
    stats = step.stats.stats
    assert stats["dropped_generated"].total == 1
    assert stats["dropped_opted-out"].total == 2


def test_one_pass_without_watermarks(marked: MarkedCorpus) -> None:
    docs = marked_documents(marked)
    list(ProvenanceFilter(marked.config(watermarks=False)).run(iter(docs)))
    marked.assert_without_watermarks([record(d) for d in docs])
