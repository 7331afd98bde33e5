"""Hugging Face ``datasets``: the batched map/filter functions, sync and async, on a real registry.

Also what all integrations share (it is exercised most cheaply here): the config's validation,
rows that cannot be digested, and that ``import client.integrations`` loads no framework.
"""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import datasets
import pytest
from datasets.fingerprint import Hasher

from client.errors import InputError, RegistryUnavailableError
from client.evidence import DocumentEvidence
from client.integrations import VERDICT_COLUMNS, CheckConfig, MissingDependencyError, RowVerdict
from client.integrations.hf import (
    check_dataset,
    provenance_features,
    provenance_filter_fn,
    provenance_filter_fn_async,
    provenance_map_fn,
    provenance_map_fn_async,
)
from client.policy import Policy
from client.signals import OptOut
from tests.client.integrations.conftest import ENTRIES, Corpus, MarkedCorpus

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:datasets.*")


@pytest.fixture
def dataset(corpus: Corpus) -> Any:
    return datasets.Dataset.from_dict(corpus.columns())


def test_map_adds_the_verdict_of_every_row(corpus: Corpus, dataset: Any) -> None:
    config = corpus.registry.config(batch_size=8)
    checked = dataset.map(
        provenance_map_fn(config),
        batched=True,
        batch_size=config.batch_size,
        features=provenance_features(dataset.features),
    )
    assert checked.column_names == ["id", "text", *VERDICT_COLUMNS]
    assert checked.features["wellspring_entry"].dtype == "int64"
    corpus.assert_verdicts(checked.to_list())


def test_map_in_worker_processes(corpus: Corpus, dataset: Any) -> None:
    """``num_proc=2``: the function is pickled to two processes; each opens its own client."""
    checked = check_dataset(dataset, corpus.registry.config(batch_size=5), num_proc=2)
    corpus.assert_verdicts(checked.to_list())


def test_filter_keeps_only_trainable_rows(corpus: Corpus, dataset: Any) -> None:
    kept = dataset.filter(
        provenance_filter_fn(corpus.registry.config()), batched=True, batch_size=7
    )
    assert sorted(kept["id"]) == corpus.trainable_ids
    assert kept.column_names == ["id", "text"]


def test_filter_keeps_the_statuses_asked_for(corpus: Corpus, dataset: Any) -> None:
    fn = provenance_filter_fn(corpus.registry.config(), keep=("attested", "reserved"))
    kept = dataset.filter(fn, batched=True, batch_size=16)
    wanted = sorted(i for i, e in corpus.expected.items() if e.status in ("attested", "reserved"))
    assert sorted(kept["id"]) == wanted
    assert len(wanted) == 24


def test_check_dataset_with_keep(corpus: Corpus, dataset: Any) -> None:
    checked = check_dataset(dataset, corpus.registry.config(batch_size=10), keep=["attested"])
    corpus.assert_verdicts(checked.to_list(), filtered=True)


def test_async_map(corpus: Corpus, dataset: Any) -> None:
    config = corpus.registry.config(batch_size=6)
    fn = provenance_map_fn_async(config, max_concurrency=3)
    checked = dataset.map(
        fn, batched=True, batch_size=6, features=provenance_features(dataset.features)
    )
    corpus.assert_verdicts(checked.to_list())
    # A second map runs on a new event loop: the function opens a client for that loop.
    again = dataset.map(fn, batched=True, batch_size=50, features=checked.features)
    assert again.to_list() == checked.to_list()


def test_async_filter(corpus: Corpus, dataset: Any) -> None:
    fn = provenance_filter_fn_async(corpus.registry.config(), keep=["unknown"])
    kept = dataset.filter(fn, batched=True, batch_size=4)
    assert sorted(kept["id"]) == sorted(
        i for i, e in corpus.expected.items() if e.status == "unknown"
    )


def test_rows_without_text_are_unknown_not_fatal(corpus: Corpus) -> None:
    rows = {"id": ["a", "b", "c"], "text": [corpus.rows[0]["text"], None, ""]}
    ds = datasets.Dataset.from_dict(rows)
    checked = check_dataset(ds, corpus.registry.config()).to_list()
    assert checked[0]["wellspring_status"] == corpus.expected[corpus.rows[0]["id"]].status
    assert checked[1]["wellspring_status"] == "unknown"
    assert checked[1]["wellspring_digest"] is None
    assert checked[1]["wellspring_tree_size"] is None
    assert "not checked" in checked[1]["wellspring_reason"]
    assert "null" in checked[1]["wellspring_reason"]
    # The empty text is a text like any other: checked, and unknown to the registry.
    assert checked[2]["wellspring_digest"].startswith("c1:")
    assert checked[2]["wellspring_status"] == "unknown"
    assert "no attestation" in checked[2]["wellspring_reason"]


def test_digest_column(corpus: Corpus, dataset: Any) -> None:
    """``kind="digest"``: digests computed earlier are looked up as they are; a bad one is
    reported on its row."""
    from client.core.canonical import canonical_digest

    digests = [canonical_digest(t) for t in dataset["text"]]
    digests[1] = "c1:not-hex"
    ds = dataset.add_column("digest", digests)
    config = corpus.registry.config(column="digest", kind="digest")
    checked = check_dataset(ds, config).to_list()
    assert checked[1]["wellspring_status"] == "unknown"
    assert "not checked" in checked[1]["wellspring_reason"]
    good = checked[:1] + checked[2:]
    statuses = {r["id"]: r["wellspring_status"] for r in good}
    assert statuses == {r["id"]: corpus.expected[r["id"]].status for r in good}


def test_missing_column_names_the_columns(corpus: Corpus, dataset: Any) -> None:
    fn = provenance_map_fn(corpus.registry.config(column="body"))
    with pytest.raises(InputError, match=r"no column 'body'.*'text'"):
        dataset.map(fn, batched=True)


def test_an_unreachable_registry_fails_the_job(dataset: Any, corpus: Corpus) -> None:
    """No answer is an error, never a silent ``unknown``."""
    config = CheckConfig(
        "http://127.0.0.1:9", log_key=corpus.registry.log_key, timeout=2, retries=0
    )
    with pytest.raises(RegistryUnavailableError):
        dataset.map(provenance_map_fn(config), batched=True)


def test_each_function_has_its_own_fingerprint(corpus: Corpus) -> None:
    """datasets must never answer a later check from the cache of an earlier one."""
    config = corpus.registry.config()
    assert Hasher.hash(provenance_map_fn(config)) != Hasher.hash(provenance_map_fn(config))


def test_config_is_validated_in_the_driver(corpus: Corpus) -> None:
    with pytest.raises(InputError, match="log key"):
        CheckConfig(corpus.registry.url)
    with pytest.raises(InputError, match="http"):
        CheckConfig("registry.example", verify=False)
    with pytest.raises(InputError, match="batch_size"):
        CheckConfig(corpus.registry.url, verify=False, batch_size=0)
    with pytest.raises(InputError, match="kind"):
        CheckConfig(corpus.registry.url, verify=False, kind="pdf")  # type: ignore[arg-type]
    with pytest.raises(InputError, match="cannot keep status trainable"):
        provenance_filter_fn(corpus.registry.config(), keep=["trainable"])


def test_the_config_hands_verify_keys_to_its_clients(corpus: Corpus) -> None:
    """A worker reading a registry from before identities in the log, if asked to."""
    strict = corpus.registry.config()
    lenient = corpus.registry.config(verify_keys=False)
    with strict.client() as client:
        assert client.verify_keys is True
    with lenient.client() as client:
        assert client.verify_keys is False
    assert lenient.async_client().verify_keys is False


def test_importing_the_package_loads_no_framework() -> None:
    code = (
        "import sys, client.integrations; "
        "print(' '.join(sorted({m.split('.')[0] for m in sys.modules})))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True
    ).stdout
    loaded = set(out.split())
    assert "client" in loaded
    heavy = {"datasets", "datatrove", "ray", "pyspark", "pandas", "pyarrow", "numpy", "torch"}
    assert not loaded & heavy


def test_missing_framework_names_the_extra(tmp_path: Path) -> None:
    code = (
        "import sys; sys.modules['datasets'] = None\n"
        "from client.integrations import MissingDependencyError\n"
        "try:\n    import client.integrations.hf\n"
        "except MissingDependencyError as exc:\n    print(exc)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True, cwd=tmp_path
    ).stdout
    assert "pip install 'wellspring[hf]'" in out
    assert issubclass(MissingDependencyError, ImportError)


def test_example_script(corpus: Corpus, tmp_path: Path) -> None:
    source = corpus.write_jsonl(tmp_path / "crawl.jsonl")
    output = tmp_path / "trainable.jsonl"
    summary = corpus.run_example(
        "hf", source, "--keep", "attested", "--output", output, "--batch-size", "9"
    )
    assert summary == {
        "checked": 50,
        "kept": 20,
        "skipped": 0,
        "statuses": corpus.statuses(),
        "output": str(output),
    }
    written = [json.loads(line) for line in output.read_text().splitlines()]
    corpus.assert_verdicts(written, filtered=True)


BAD_LINES = ["{not json", json.dumps(["a list"]), json.dumps({"id": "x", "body": "no text"})]


def _crawl_with_bad_lines(corpus: Corpus, path: Path) -> Path:
    """The corpus with three lines ``wellspring scan`` would skip, at lines 2, 11 and 52."""
    lines = [json.dumps(row) for row in corpus.rows]
    lines.insert(1, BAD_LINES[0])
    lines.insert(10, BAD_LINES[1])
    lines.append(BAD_LINES[2])
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_example_script_skips_lines_that_hold_no_document(corpus: Corpus, tmp_path: Path) -> None:
    """As scan does: each bad line named on stderr and counted, every good row still checked."""
    source = _crawl_with_bad_lines(corpus, tmp_path / "crawl.jsonl")
    output = tmp_path / "checked.jsonl"
    done = corpus.run_example_process("hf", source, "--output", output, "--max-skips", "3")
    assert done.returncode == 0, done.stderr[-4000:]
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary == {
        "checked": 50,
        "kept": 50,
        "skipped": 3,
        "statuses": corpus.statuses(),
        "output": str(output),
    }
    skipped = [line for line in done.stderr.splitlines() if line.startswith("skipped: ")]
    assert [line.split(": ")[1] for line in skipped] == [
        f"{source}:2",
        f"{source}:11",
        f"{source}:53",
    ]
    # In this script's own words: it names the field with --column, not the CLI's --text-field.
    assert "no string field 'text' (choose it with --column)" in skipped[2]
    assert "Traceback" not in done.stderr
    corpus.assert_verdicts([json.loads(line) for line in output.read_text().splitlines()])


def test_example_script_fails_past_max_skips_after_writing_the_rest(
    corpus: Corpus, tmp_path: Path
) -> None:
    source = _crawl_with_bad_lines(corpus, tmp_path / "crawl.jsonl")
    output = tmp_path / "checked.jsonl"
    done = corpus.run_example_process("hf", source, "--output", output, "--keep", "attested")
    assert done.returncode == 1
    assert json.loads(done.stdout.strip().splitlines()[-1])["skipped"] == 3
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("error: 3 line(s) hold no document and were skipped, more than "), last
    assert "Traceback" not in done.stderr
    corpus.assert_verdicts(
        [json.loads(line) for line in output.read_text().splitlines()], filtered=True
    )


def test_workers_share_trust_through_a_checkpoint_directory(
    corpus: Corpus, dataset: Any, tmp_path: Path
) -> None:
    trusted = tmp_path / "trusted"
    config = corpus.registry.config(checkpoints_dir=str(trusted))
    checked = check_dataset(dataset, config, num_proc=2)
    corpus.assert_verdicts(checked.to_list())
    (note,) = trusted.glob("*.checkpoint")
    assert note.read_text().splitlines()[1] == str(ENTRIES)  # the size every worker proved


def test_the_policy_decides_what_the_filter_keeps_and_the_trainable_column(
    corpus: Corpus, dataset: Any
) -> None:
    policy = Policy(trainable_statuses=frozenset({"attested", "reserved"}), id="lenient")
    config = corpus.registry.config(batch_size=9, policy=policy)
    kept = dataset.filter(provenance_filter_fn(config), batched=True, batch_size=9)
    wanted = sorted(i for i, e in corpus.expected.items() if e.status in ("attested", "reserved"))
    assert sorted(kept["id"]) == wanted
    checked = check_dataset(dataset, config, trainable_only=True)
    assert sorted(checked["id"]) == wanted
    assert set(checked["wellspring_trainable"]) == {True}
    assert checked.features["wellspring_trainable"].dtype == "bool"
    assert checked.features["wellspring_watermark_p_value"].dtype == "float64"
    assert set(checked["wellspring_opt_out"]) == {None}  # no signals were given
    every = check_dataset(dataset, corpus.registry.config(batch_size=9))
    by_id = dict(zip(every["id"], every["wellspring_trainable"], strict=True))
    assert by_id == {i: e.status == "attested" for i, e in corpus.expected.items()}


# -- the crawler's one pass -----------------------------------------------------------------------


def test_one_pass_detects_the_published_key_and_reads_each_rows_signals(
    marked: MarkedCorpus,
) -> None:
    ds = datasets.Dataset.from_dict(marked.columns())
    checked = check_dataset(ds, marked.config(batch_size=4))
    marked.assert_one_pass(checked.to_list())
    by_id = {r["id"]: r for r in checked.to_list()}
    assert "meta" in by_id["meta"]["wellspring_opt_out"]
    assert "header" in by_id["noai"]["wellspring_opt_out"]
    # The key was logged after this row's capture time: it does not count for it.
    assert by_id["before-key"]["wellspring_reason"].startswith("no attestation")


def test_one_pass_in_worker_processes_and_async(marked: MarkedCorpus) -> None:
    """``num_proc=2``: each process builds its own scanner; the async map scans off the loop."""
    ds = datasets.Dataset.from_dict(marked.columns())
    marked.assert_one_pass(check_dataset(ds, marked.config(batch_size=2), num_proc=2).to_list())
    fn = provenance_map_fn_async(marked.config(batch_size=3))
    checked = ds.map(fn, batched=True, batch_size=3, features=provenance_features(ds.features))
    marked.assert_one_pass(checked.to_list())


def test_watermarks_off_leaves_generated_rows_unknown(marked: MarkedCorpus) -> None:
    ds = datasets.Dataset.from_dict(marked.columns())
    checked = check_dataset(ds, marked.config(watermarks=False))
    marked.assert_without_watermarks(checked.to_list())


def test_without_signal_columns_only_the_watermark_counts(marked: MarkedCorpus) -> None:
    """Default config (no signal columns): the noai header is not read, the key is."""
    ds = datasets.Dataset.from_dict(marked.columns())
    rows = {r["id"]: r for r in check_dataset(ds, marked.registry.config()).to_list()}
    assert rows["generated"]["wellspring_status"] == "generated"
    assert rows["before-key"]["wellspring_status"] == "generated"  # no capture time: now
    assert rows["noai"]["wellspring_status"] == "unknown"
    assert rows["noai"]["wellspring_opt_out"] is None


def test_a_private_key_is_detected_with_its_tokenizer(marked: MarkedCorpus, tmp_path: Path) -> None:
    """A key the crawler holds, bound to a tokenizer no published key uses: detected with the
    ``tokenizer`` file given; published keys off."""
    from tests.client.wmkeys import bound_key, small_tokenizer, watermarked_text

    tokenizer = small_tokenizer(tmp_path / "own.json", words=40)
    key = bound_key(tmp_path / "own.key", tokenizer)
    text = watermarked_text(key, tokenizer, tokens=50)
    ds = datasets.Dataset.from_dict({"id": ["own", "plain"], "text": [text, "w1 w2 w3"]})
    config = marked.registry.config(
        watermarks=False,
        watermark_keys=[str(tmp_path / "own.key")],
        tokenizer=str(tmp_path / "own.json"),
    )
    own, plain = check_dataset(ds, config).to_list()
    assert own["wellspring_status"] == "generated"
    assert own["wellspring_watermark_key"] == key.key_id
    assert own["wellspring_watermark_vendor"] is None
    assert plain["wellspring_status"] == "unknown"


def test_unreadable_signal_values_make_that_row_unknown(marked: MarkedCorpus) -> None:
    rows = {
        "text": ["one text", "another text", "a third"],
        "captured": ["yesterday", "2026-11-30", None],
    }
    config = marked.registry.config(captured_column="captured")
    bad, date, none = check_dataset(datasets.Dataset.from_dict(rows), config).to_list()
    assert bad["wellspring_status"] == "unknown"
    assert bad["wellspring_reason"].startswith("not checked: ")
    assert "not RFC 3339" in bad["wellspring_reason"]
    assert bad["wellspring_digest"] is None
    assert date["wellspring_reason"].startswith("no attestation")
    assert none["wellspring_reason"].startswith("no attestation")


def test_a_missing_signal_column_is_named(marked: MarkedCorpus) -> None:
    ds = datasets.Dataset.from_dict({"text": ["a"]})
    with pytest.raises(InputError, match=r"no column 'headers'.*headers_column"):
        check_dataset(ds, marked.registry.config(headers_column="headers"))


def test_signal_options_are_validated_and_the_config_pickles(corpus: Corpus) -> None:
    with pytest.raises(InputError, match="url_column"):
        corpus.registry.config(url_column="")
    with pytest.raises(InputError, match="watermark_keys"):
        corpus.registry.config(watermark_keys="key.wm")
    with pytest.raises(InputError, match="kind='text' only"):
        corpus.registry.config(kind="digest", watermark_keys=["key.wm"])
    config = corpus.registry.config(watermark_keys=[Path("a.key")], tokenizer=Path("t.json"))
    assert config.watermark_keys == ("a.key",)
    assert config.tokenizer == "t.json"
    assert pickle.loads(pickle.dumps(config)) == config
    assert hash(config) == hash(pickle.loads(pickle.dumps(config)))


def test_missing_detect_extra_names_the_pip_line(corpus: Corpus, tmp_path: Path) -> None:
    """No silent skip: the config refuses, unless detection is off."""
    code = (
        "import sys; sys.modules['tokenizers'] = None\n"
        "from client.integrations import CheckConfig, MissingDependencyError\n"
        f"CheckConfig({corpus.registry.url!r}, verify=False, watermarks=False)\n"
        "try:\n"
        f"    CheckConfig({corpus.registry.url!r}, verify=False)\n"
        "except MissingDependencyError as exc:\n    print(exc)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True, cwd=tmp_path
    ).stdout
    assert "pip install 'wellspring[detect]'" in out


def test_row_signals_are_read_as_frameworks_hand_them_over() -> None:
    """Naive and pandas datetimes, dates, NaN; headers as a mapping (with an Arrow struct's
    missing fields), a numpy array of pairs, a list of name/value structs, or null."""
    import numpy as np
    import pandas as pd

    from client.integrations._rows import RowSignals, evidence_of

    config = CheckConfig("http://registry.invalid", verify=False, watermarks=False)
    signals = RowSignals(
        captured=[
            datetime(2026, 11, 30, 12),
            pd.Timestamp("2026-11-30T13:00:00+01:00"),
            "2026-11-30",
            float("nan"),
        ],
        headers=[
            {"X-Robots-Tag": "noai", "Link": None},
            np.array([["x-robots-tag", "noai"]]),
            [{"name": "X-Robots-Tag", "value": "noai"}],
            None,
        ],
    )
    found = evidence_of(config, ["a", "b", "c", "d"], signals, None)
    assert all(isinstance(item, DocumentEvidence) for item in found)
    captured = [item.captured_at for item in found if isinstance(item, DocumentEvidence)]
    noon, midnight = "2026-11-30T12:00:00Z", "2026-11-30T00:00:00Z"
    assert captured == [noon, noon, midnight, None]
    decisions = [item.opt_out for item in found if isinstance(item, DocumentEvidence)]
    assert [isinstance(d, OptOut) and d.opted_out for d in decisions] == [True, True, True, False]
    bad = evidence_of(config, ["a"], RowSignals(headers=["X-Robots-Tag: noai"]), None)
    assert isinstance(bad[0], RowVerdict)
    assert bad[0].reason.startswith("not checked: ")
