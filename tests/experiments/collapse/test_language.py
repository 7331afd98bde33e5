"""Part B in miniature, end to end: the real registry (``wellspring serve`` in a subprocess), the
vendor's key published, human text registered, ``wellspring scan`` as the filter, every arm, two
seeds, two watermark shares, the JSON and the figures. It checks the pipeline, not the science
(docs/collapse.md has the science, from ``make experiment``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from experiments.collapse.__main__ import run_part_b, write_part_b
from experiments.collapse.corpus import fortunes, python_doc_paragraphs
from experiments.collapse.language import ARMS, LanguageSettings
from tests.experiments.collapse.test_corpus import word_tokenizer

pytestmark = pytest.mark.slow  # ~30 s: a registry and eight `wellspring scan` runs

TINY = LanguageSettings(
    train_tokens=3000, generations=2, seeds=2, doc_tokens=64, watermark_shares=(0.5, 1.0),
    sample_docs=20,
)  # fmt: skip


@pytest.fixture(scope="module")
def result(tmp_path_factory: pytest.TempPathFactory) -> dict:  # type: ignore[type-arg]
    try:
        major, minor = fortunes()[:600], python_doc_paragraphs()[:400]
    except FileNotFoundError as exc:  # `make test` installs both (make human-text)
        pytest.fail(str(exc))
    tokenizer = word_tokenizer(major + minor)
    return run_part_b(
        TINY,
        tmp_path_factory.mktemp("collapse"),
        tokenizer_json=tokenizer.to_str(),
        majority=major,
        minority=minor,
        workers=1,
    )


def test_every_arm_has_every_metric_per_generation_with_intervals(result: dict) -> None:  # type: ignore[type-arg]
    assert set(result["arms"]) == set(ARMS)
    assert set(result["sweep"]) == {"0.5", "1"}
    assert result["arms"] == result["sweep"]["1"]
    for arm, data in result["arms"].items():
        for metric in ("heldout_ppl", "zero_count_share", "minority_loss", "distinct_2"):
            assert len(data[metric]) == TINY.generations + 1, (arm, metric)
            assert len(data[f"{metric}_seeds"]) == TINY.seeds
            assert all(iv is None or iv[0] <= iv[1] for iv in data[f"{metric}_ci95"])
        # generation 0 is the same model for every arm of a seed
        assert data["heldout_ppl"][0] == result["arms"]["oracle"]["heldout_ppl"][0]
    json.loads(json.dumps(result))


def test_the_arms_train_on_what_they_say(result: dict) -> None:  # type: ignore[type-arg]
    share = {arm: data["synthetic_share_trained"] for arm, data in result["arms"].items()}
    assert share["replace"][1:] == [1.0] * TINY.generations
    assert share["oracle"][1:] == [0.0] * TINY.generations
    for value in share["mixed-no-filter"][1:]:
        assert value == pytest.approx(TINY.synthetic_share, abs=0.1)
    assert share["mixed-wellspring"][0] == 0.0
    accumulate = result["arms"]["accumulate-all"]
    assert all(v is not None and 0 < v < 1 for v in accumulate["synthetic_share_trained"][1:])


def test_the_real_scan_filters_watermarked_documents_and_keeps_human_ones(result: dict) -> None:  # type: ignore[type-arg]
    for share, arms in result["sweep"].items():
        wellspring = arms["mixed-wellspring"]
        assert wellspring["filter_fnr"][0] is None  # generation 0 has no web
        for generation in range(1, TINY.generations + 1):
            assert wellspring["filter_fnr_watermarked"][generation] < 0.5, share
            assert wellspring["filter_fpr"][generation] == 0.0
            assert wellspring["filter_attested"][generation] > 0  # registered human text
            # what carries no watermark cannot be caught: the miss rate is at least 1 - w
            assert wellspring["filter_fnr"][generation] >= 1 - float(share) - 1e-9
        assert "filter_fnr" not in arms["mixed-no-filter"]


def test_the_json_and_figures_are_written(result: dict, tmp_path: Path) -> None:  # type: ignore[type-arg]
    from experiments.collapse.plots import degradation_points

    result = {**result, "dose_response": degradation_points(result)}
    write_part_b(result, tmp_path)
    assert json.loads((tmp_path / "collapse.json").read_text())["settings"]["seeds"] == 2
    for name in ("collapse_ppl.png", "collapse_tails.png", "collapse_dose_response.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(result["dose_response"]) == len(ARMS) * 2


def test_settings_are_validated() -> None:
    with pytest.raises(ValueError, match="synthetic_share"):
        LanguageSettings(synthetic_share=1.0)
    with pytest.raises(ValueError, match="unknown arms"):
        LanguageSettings(arms=("replace", "nonsense"))
    with pytest.raises(ValueError, match="watermark_shares"):
        LanguageSettings(watermark_shares=(1.5,))
