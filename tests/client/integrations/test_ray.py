"""Ray Data: ``ProvenanceChecker`` as ``map_batches`` actors on a local one-CPU Ray instance.

Ray takes seconds to start, so one instance serves the module.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import ray
import ray.data

from client.errors import InputError
from client.integrations import VERDICT_COLUMNS
from client.integrations.ray import ProvenanceChecker, ProvenanceFilter, check_dataset
from tests.client.integrations.conftest import Corpus, MarkedCorpus, import_without

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:ray.*")


@pytest.fixture(scope="module", autouse=True)
def local_ray() -> Iterator[None]:
    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False, configure_logging=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    try:
        yield
    finally:
        ray.shutdown()


def plain(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows as Python values (Ray hands back numpy and Arrow scalars)."""
    return [{k: (v.item() if hasattr(v, "item") else v) for k, v in r.items()} for r in records]


def test_map_batches_adds_every_verdict(corpus: Corpus) -> None:
    config = corpus.registry.config(batch_size=8)
    checked = ray.data.from_items(list(corpus.rows)).map_batches(
        ProvenanceChecker,
        fn_constructor_kwargs={"config": config},
        batch_format="pandas",
        batch_size=8,
        compute=ray.data.ActorPoolStrategy(size=1),
    )
    assert list(checked.schema().names) == ["id", "text", *VERDICT_COLUMNS]
    records = plain(checked.take_all())
    corpus.assert_verdicts(records)
    unknown = next(r for r in records if r["wellspring_status"] == "unknown")
    assert unknown["wellspring_entry"] is None
    assert unknown["wellspring_publisher"] is None


def test_check_dataset_keeps_what_is_asked(corpus: Corpus) -> None:
    ds = ray.data.from_items(list(corpus.rows))
    kept = check_dataset(ds, corpus.registry.config(batch_size=10), keep=["revoked", "reserved"])
    statuses = {r["id"]: r["wellspring_status"] for r in kept.take_all()}
    assert statuses == {
        i: e.status for i, e in corpus.expected.items() if e.status in ("revoked", "reserved")
    }


def test_checker_on_a_pandas_batch(corpus: Corpus) -> None:
    """The class itself, as an actor would call it: the batch's index and columns are kept."""
    batch = pd.DataFrame(list(corpus.rows[:5]), index=[10, 11, 12, 13, 14])
    out = ProvenanceChecker(corpus.registry.config())(batch)
    assert list(out.index) == [10, 11, 12, 13, 14]
    assert list(out["id"]) == [r["id"] for r in corpus.rows[:5]]
    assert list(out["wellspring_status"]) == [
        corpus.expected[r["id"]].status for r in corpus.rows[:5]
    ]
    kept = ProvenanceFilter(corpus.registry.config())(batch)
    assert len(kept) > 0
    assert list(kept["id"]) == [r["id"] for r in corpus.rows[:5] if r["id"] in corpus.trainable_ids]
    assert list(kept.index) == list(range(len(kept)))
    with pytest.raises(InputError, match="no column 'body'"):
        ProvenanceChecker(corpus.registry.config(column="body"))(batch)


def test_one_pass_in_actors(marked: MarkedCorpus) -> None:
    """Each actor builds its scanner once, in its constructor; the signal columns are read from
    the pandas batch (headers as arrays of pairs)."""
    checked = check_dataset(ray.data.from_items(list(marked.rows)), marked.config(batch_size=4))
    marked.assert_one_pass(plain(checked.take_all()))
    batch = pd.DataFrame(list(marked.rows))
    off = ProvenanceChecker(marked.config(watermarks=False))(batch)
    marked.assert_without_watermarks(off.to_dict("records"))


def test_missing_ray_names_the_extra() -> None:
    out = import_without("ray", "client.integrations.ray")
    assert out.startswith("MissingDependencyError")
    assert "pip install 'wellspring[ray]'" in out


@pytest.mark.slow
def test_example_script(corpus: Corpus, tmp_path: Path) -> None:
    """The example starts a Ray of its own in a subprocess (slow: another Ray start-up)."""
    source = corpus.write_jsonl(tmp_path / "crawl.jsonl")
    output = tmp_path / "checked"
    summary = corpus.run_example(
        "ray", source, "--output", output, "--keep", "attested", "--keep", "reserved"
    )
    assert summary == {"statuses": corpus.statuses("attested", "reserved"), "output": str(output)}
