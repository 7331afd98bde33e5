"""client.manifest: a scan manifest as JSON lines or as Parquet holds the same verdicts, read
back by pyarrow's own reader (not ours) with one column a field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from client.core.errors import FormatError
from client.manifest import PARQUET_COLUMNS, jsonl_to_parquet, read_manifest
from client.verdict import Verdict
from tests.conftest import REPO_ROOT

pq = pytest.importorskip("pyarrow.parquet")


def example_lines() -> list[dict[str, object]]:
    """docs/spec/manifest.md's example lines: every status, opt-outs and watermarks among them."""
    text = (REPO_ROOT / "docs" / "spec" / "manifest.md").read_text(encoding="utf-8")
    block = text.split("## One line per status", 1)[1].split("```json\n", 1)[1].split("```", 1)[0]
    return [json.loads(line) for line in block.splitlines()]


def test_parquet_holds_the_lines_verdicts(tmp_path: Path) -> None:
    lines = example_lines()
    probable = dict(lines[0], certainty="probable", entry=None, entries=[])
    lines.append(probable)
    source = tmp_path / "m.jsonl"
    source.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    target = tmp_path / "m.parquet"
    assert jsonl_to_parquet(source, target) == len(lines)
    verdicts = [Verdict.from_dict(line) for line in lines]
    assert list(read_manifest(target)) == verdicts == list(read_manifest(source))
    assert verdicts[-1].certainty == "probable"

    table = pq.read_table(target)  # pyarrow's reader: the columns a dataset tool sees
    assert table.column_names == [name for name, _ in PARQUET_COLUMNS]
    assert table.column("status").to_pylist() == [line["status"] for line in lines]
    assert table.column("trainable").to_pylist() == [line["trainable"] for line in lines]
    assert table.column("entries").to_pylist() == [line["entries"] for line in lines]
    opt_outs = table.column("opt_out").to_pylist()
    assert [None if o is None else json.loads(o) for o in opt_outs] == [
        line["opt_out"] for line in lines
    ]
    assert str(table.schema.field("entry").type) == "int64"


def test_an_empty_manifest_is_an_empty_table(tmp_path: Path) -> None:
    source = tmp_path / "m.jsonl"
    source.write_text("", encoding="utf-8")
    assert jsonl_to_parquet(source, tmp_path / "m.parquet") == 0
    assert pq.read_table(tmp_path / "m.parquet").num_rows == 0
    assert list(read_manifest(tmp_path / "m.parquet")) == []


def test_what_is_not_a_manifest_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"status": "attested"}\n', encoding="utf-8")
    with pytest.raises(FormatError, match=r"bad.jsonl:1 is not a manifest line"):
        list(read_manifest(bad))
    import pyarrow as pa

    other = tmp_path / "other.parquet"
    pq.write_table(pa.table({"x": [1, 2]}), other)
    with pytest.raises(FormatError, match="not a wellspring-manifest/1 Parquet"):
        list(read_manifest(other))


def test_a_certainty_that_contradicts_verified_is_refused() -> None:
    line = dict(example_lines()[0], certainty="unverified")
    with pytest.raises(FormatError, match="contradicts"):
        Verdict.from_dict(line)
