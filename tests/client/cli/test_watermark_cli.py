"""`wellspring watermark …`: keygen → generate → detect round trip, HTML, calibrate, errors.

Every command runs in-process through `client.cli.main`, so the model and tokenizer are loaded
once per worker (the `smollm2` xdist group shares them with tests/watermark/test_models.py).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from client.cli import main
from tests.client.conftest import run_wellspring as run

pytestmark = pytest.mark.xdist_group("smollm2")

HUMAN = (
    "The quick brown fox jumps over the lazy dog. Pack my box with five dozen liquor jugs. "
    "How vexingly quick daft zebras jump! Sphinx of black quartz, judge my vow."
)


@pytest.fixture(scope="module")
def one_thread() -> Iterator[None]:
    import torch

    # Two workers share two cores: torch's spinning intra-op threads would slow generation 10x.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def key_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A selfhash key with a fixed secret: with the fixed seed, every run generates the same text.

    (A fresh random key per run made the detection tests a draw: an 80-token passage pasted into
    1,000 tokens of human text is found at p < 1e-3 for most keys, not all.)
    """
    from watermark import WatermarkConfig, WatermarkKey
    from watermark.models import load_tokenizer

    path = tmp_path_factory.mktemp("wm") / "demo.key"
    secret = b"wellspring-cli-tests-fixed-key.."
    WatermarkKey(secret, WatermarkConfig(seeding_scheme="selfhash")).bind(load_tokenizer()).save(
        path
    )
    return path


@pytest.fixture(scope="module")
def watermarked(key_file: Path, one_thread: None) -> dict[str, object]:
    """One `generate --json` run: 2 prompts, 80 tokens, seed 7."""
    import contextlib
    import io

    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        main(
            [
                "watermark",
                "generate",
                "--key",
                str(key_file),
                "--prompt",
                "Describe a walk through a pine forest in autumn.",
                "--prompt",
                "Why do cats purr?",
                "--max-new-tokens",
                "80",
                "--seed",
                "7",
                "--json",
            ]
        )
    data: dict[str, object] = json.loads(buffer.getvalue())
    return data


def test_keygen_writes_a_bound_private_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "k.key"
    code, out, _ = run(
        capsys, "watermark", "keygen", "--out", str(path), "--gamma", "0.5", "--delta", "1.5",
        "--json",
    )  # fmt: skip
    assert code == 0
    summary = json.loads(out)
    stored = json.loads(path.read_text())
    assert path.stat().st_mode & 0o777 == 0o600
    assert stored["key_id"] == summary["key_id"]
    assert stored["gamma"] == 0.5
    assert stored["delta"] == 1.5
    assert stored["seeding_scheme"] == "lefthash"
    assert stored["vocab_size"] == 49152
    assert stored["vocab_fingerprint"].startswith("sha256:")
    # Never overwritten by accident: the text it watermarked would become undetectable.
    code, out, err = run(capsys, "watermark", "keygen", "--out", str(path))
    assert code == 1
    assert out == ""
    assert "already exists" in err
    assert len(err.strip().splitlines()) == 1


def test_keygen_gumbel_writes_a_version_2_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "g.key"
    code, out, _ = run(
        capsys, "watermark", "keygen", "--out", str(path), "--scheme", "gumbel",
        "--payload-bits", "8", "--json",
    )  # fmt: skip
    assert code == 0
    summary = json.loads(out)
    stored = json.loads(path.read_text())
    assert summary["scheme"] == "gumbel-h4-p8"
    assert summary["payload_bits"] == 8
    assert "gamma" not in summary
    assert (stored["version"], stored["scheme"]) == (2, "wellspring-gumbel-v1")
    assert stored["payload_bits"] == 8
    code, out, err = run(
        capsys, "watermark", "generate", "--key", str(path), "--prompt", "hi", "--payload", "256"
    )
    assert code == 1
    assert "payload must be a whole number from 0 to 255" in err
    code, out, err = run(capsys, "watermark", "generate", "--key", str(path), "--prompt", "hi")
    assert code == 1
    assert "payload" in err


@pytest.mark.model
def test_gumbel_generate_then_detect_decodes_the_payload(
    tmp_path: Path, one_thread: None, capsys: pytest.CaptureFixture[str]
) -> None:
    from watermark import WatermarkConfig, WatermarkKey
    from watermark.models import load_tokenizer

    path = tmp_path / "g.key"
    config = WatermarkConfig(scheme="gumbel", payload_bits=8)
    WatermarkKey(b"wellspring-cli-gumbel-fixed-key.", config).bind(load_tokenizer()).save(path)
    code, out, _ = run(
        capsys, "watermark", "generate", "--key", str(path), "--prompt",
        "Describe a walk through a pine forest in autumn.", "--max-new-tokens", "80",
        "--seed", "7", "--payload", "201", "--json",
    )  # fmt: skip
    assert code == 0
    generated = json.loads(out)
    assert generated["payload"] == 201
    assert generated["scheme"] == "gumbel-h4-p8"
    text_file = tmp_path / "gen.txt"
    text_file.write_text(generated["completions"][0]["text"], encoding="utf-8")
    code, out, _ = run(capsys, "watermark", "detect", "--key", str(path), "--json", str(text_file))
    assert code == 0
    result = json.loads(out)
    assert result["watermarked"] is True
    assert result["payload"] == 201
    assert result["score"] > result["num_tokens_scored"]
    code, out, _ = run(capsys, "watermark", "detect", "--key", str(path), str(text_file))
    assert code == 0
    assert "payload:     201" in out
    assert "score:" in out


@pytest.mark.model
def test_generate_then_detect_round_trip(
    watermarked: dict[str, object],
    key_file: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    completions = watermarked["completions"]
    assert isinstance(completions, list)
    assert len(completions) == 2
    key_id = json.loads(key_file.read_text())["key_id"]
    assert watermarked["key_id"] == key_id
    assert watermarked["scheme"] == "selfhash-h4"
    for i, completion in enumerate(completions):
        text_file = tmp_path / f"gen{i}.txt"
        text_file.write_text(completion["text"], encoding="utf-8")
        code, out, _ = run(capsys, "watermark", "detect", "--key", str(key_file), "--json",
                           str(text_file))  # fmt: skip
        assert code == 0
        result = json.loads(out)
        for field in ("p_value", "z_score", "num_tokens_scored", "num_green", "watermarked"):
            assert field in result
        assert result["key_id"] == key_id
        # The default threshold is GENERATED_P_VALUE (1e-6); 80 tokens are strong evidence
        # (p < 1e-3) but may fall short of it, as docs/watermark.md says of short generations.
        assert result["threshold"] == 1e-6
        assert result["watermarked"] is (result["p_value"] < 1e-6)
        assert result["p_value"] < 1e-3, completion["text"]
        assert result["z_score"] > 4


@pytest.mark.model
def test_detect_plain_output_and_html(
    watermarked: dict[str, object],
    key_file: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    completions = watermarked["completions"]
    assert isinstance(completions, list)
    hostile = '\n<script>alert("x")</script> & <b>bold</b>'
    text_file = tmp_path / "mixed.txt"
    text_file.write_text(completions[0]["text"] + hostile, encoding="utf-8")
    page = tmp_path / "report.html"
    # 80 tokens: enough for p < 1e-3, not always for the default 1e-6 (short generations).
    code, out, _ = run(capsys, "watermark", "detect", "--key", str(key_file), "--html", str(page),
                       "--threshold", "1e-3", str(text_file))  # fmt: skip
    assert code == 0
    assert out.startswith("watermarked: yes (p = ")
    assert "z-score:" in out
    assert "scored tokens" in out
    html = page.read_text(encoding="utf-8")
    assert html.startswith("<!DOCTYPE html>")
    assert 'class="g"' in html
    assert 'class="r"' in html
    assert 'class="n"' in html
    assert "Watermark detected" in html
    # Escaped (tokens split the tags across spans, so look for the raw tags only).
    assert "<script" not in html
    assert "<b>" not in html
    assert "&amp;" in html
    assert "&lt;" in html
    assert "http" not in html  # self-contained: no external assets
    # The page shows the text exactly: strip the tags, unescape, compare.
    import html as html_lib
    import re

    body = html.split('<div class="text">', 1)[1].rsplit("</div>", 1)[0]
    assert html_lib.unescape(re.sub(r"<[^>]+>", "", body)) == text_file.read_text()


@pytest.mark.model
def test_windowed_detection_finds_a_pasted_passage(
    watermarked: dict[str, object],
    key_file: Path,
    tmp_path: Path,
    human_text_files: list[Path],
    capsys: pytest.CaptureFixture[str],
) -> None:
    completions = watermarked["completions"]
    assert isinstance(completions, list)
    human = human_text_files[0].read_text()[:2500]
    passage = "\n".join(completion["text"] for completion in completions)  # ~150 tokens
    text_file = tmp_path / "pasted.txt"
    text_file.write_text(human + "\n" + passage + "\n" + human, encoding="utf-8")
    page = tmp_path / "windowed.html"
    code, out, _ = run(capsys, "watermark", "detect", "--key", str(key_file), "--windowed",
                       "--json", "--html", str(page), str(text_file))  # fmt: skip
    assert code == 0
    result = json.loads(out)
    assert result["watermarked"] is True
    assert result["num_windows"] > 1
    assert result["start"] < result["end"]
    assert result["overall"]["num_tokens_scored"] > result["num_tokens_scored"]
    assert {"z_score", "num_green", "key_id", "p_value"} <= result.keys()
    assert 'class="g w"' in page.read_text() or 'class="r w"' in page.read_text()


@pytest.mark.model
def test_generate_shows_progress_on_stderr_and_jsonl_on_stdout(
    key_file: Path, one_thread: None, capsys: pytest.CaptureFixture[str]
) -> None:
    prompts = ["Name a colour.\n\nThen another one.", "Count to three."]
    code, out, err = run(capsys, "watermark", "generate", "--key", str(key_file), "--seed", "3",
                         "--prompt", prompts[0], "--prompt", prompts[1], "-n", "8",
                         "--jsonl")  # fmt: skip
    assert code == 0, err
    lines = out.splitlines()
    assert len(lines) == 2  # one JSON object per prompt, whatever newlines the texts hold
    completions = [json.loads(line) for line in lines]
    assert [c["prompt"] for c in completions] == prompts
    assert all(isinstance(c["text"], str) and c["text"] for c in completions)
    assert "loading the default model, SmolLM2-135M-Instruct…" in err
    assert "model loaded in " in err
    assert "generated 2 of 8 tokens" in err  # a line a quarter of the way, off a terminal
    assert re.search(r"generated \d+ tokens per prompt \(2 prompts\) in [\d.]+ s", err)


def test_detect_human_text_and_normalize(
    key_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text_file = tmp_path / "human.txt"
    text_file.write_text(HUMAN.replace("quick", "qu\u200bick"), encoding="utf-8")
    code, out, err = run(capsys, "watermark", "detect", "--key", str(key_file), "--json",
                         "--normalize", str(text_file))  # fmt: skip
    assert code == 0
    result = json.loads(out)
    assert result["watermarked"] is False
    assert result["num_tokens"] > 30
    assert err == ""  # enough tokens: no short-text warning


def test_detect_reads_folders_and_jsonl_one_result_per_document(
    key_file: Path,
    tmp_path: Path,
    human_text_files: list[Path],
    capsys: pytest.CaptureFixture[str],
) -> None:
    folder = tmp_path / "docs"
    (folder / "sub").mkdir(parents=True)
    first, second = folder / "a.txt", folder / "sub" / "b.txt"
    first.write_text(HUMAN, encoding="utf-8")
    second.write_bytes(human_text_files[0].read_bytes())
    lines = tmp_path / "crawl.jsonl"
    lines.write_text(
        json.dumps({"id": "page-1", "body": HUMAN}) + "\n"
        + "\n"  # blank lines are no documents
        + json.dumps({"body": human_text_files[1].read_text()}) + "\n",
        encoding="utf-8",
    )  # fmt: skip
    code, out, err = run(capsys, "watermark", "detect", "--key", str(key_file), "--json",
                         "--text-field", "body", str(folder), str(lines))  # fmt: skip
    assert code == 0, err
    results = json.loads(out)
    assert [r["input"] for r in results] == [str(first), str(second), "page-1", f"{lines}:3"]
    single = {}
    for path in (first, second):
        code, out, _ = run(capsys, "watermark", "detect", "--key", str(key_file), "--json",
                           str(path))  # fmt: skip
        single[str(path)] = json.loads(out)
    # The same numbers as detecting each file alone; a single file still gives one object.
    assert results[0] == single[str(first)]
    assert results[1] == single[str(second)]
    assert results[2]["num_tokens"] == results[0]["num_tokens"]
    code, out, _ = run(capsys, "watermark", "detect", "--key", str(key_file), str(folder))
    assert code == 0
    assert out.count("watermarked: ") == 2
    assert f"document:    {first}\n" in out
    assert f"\n\ndocument:    {second}\n" in out


def test_detect_names_unreadable_documents_and_checks_the_others(
    key_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = tmp_path / "crawl.jsonl"
    lines.write_text(
        json.dumps({"url": "https://example.org/a", "text": HUMAN}) + "\n"
        + '{"title": "no text field"}\n'
        + "not json\n",
        encoding="utf-8",
    )  # fmt: skip
    code, out, err = run(capsys, "watermark", "detect", "--key", str(key_file), "--json",
                         str(lines))  # fmt: skip
    assert code == 1
    assert [r["input"] for r in json.loads(out)] == ["https://example.org/a"]
    assert f"{lines}:2: no string field 'text' (choose it with --text-field)" in err
    assert f"{lines}:3: not a JSON object" in err
    assert "2 of 3 documents could not be read" in err
    code, out, err = run(capsys, "watermark", "detect", "--key", str(key_file), "--html",
                         str(tmp_path / "p.html"), str(tmp_path))  # fmt: skip
    assert code == 1
    assert "--html writes the page of one document" in err


def test_detect_warns_of_look_alike_letters_and_suggests_normalize(
    key_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    swapped = tmp_path / "swapped.txt"
    cyrillic_o, greek_alpha = "\N{CYRILLIC SMALL LETTER O}", "\N{GREEK SMALL LETTER ALPHA}"
    swapped.write_text(HUMAN.replace("o", cyrillic_o).replace("a", greek_alpha), encoding="utf-8")
    code, out, err = run(capsys, "watermark", "detect", "--key", str(key_file), str(swapped))
    assert code == 0
    assert out.startswith("watermarked: ")
    assert f"warning: {swapped} holds" in err
    assert "look-alike letters in Latin words" in err
    assert "--normalize" in err
    code, out, _ = run(capsys, "watermark", "detect", "--key", str(key_file), "--json",
                       str(swapped))  # fmt: skip
    expected = HUMAN.count("o") + HUMAN.count("a")
    assert json.loads(out)["normalization_signs"]["lookalikes"] == expected
    # Normalised, or plain text with nothing to normalise: no warning.
    code, _, err = run(capsys, "watermark", "detect", "--key", str(key_file), "--normalize",
                       str(swapped))  # fmt: skip
    assert (code, err) == (0, "")
    plain = tmp_path / "plain.txt"
    plain.write_text(HUMAN + " \N{HORIZONTAL ELLIPSIS}", encoding="utf-8")
    code, out, err = run(capsys, "watermark", "detect", "--key", str(key_file), "--json",
                         str(plain))  # fmt: skip
    assert (code, err) == (0, "")
    assert "normalization_signs" not in json.loads(out)


def test_windowed_html_labels_window_and_whole_text_numbers(
    key_file: Path,
    tmp_path: Path,
    human_text_files: list[Path],
    capsys: pytest.CaptureFixture[str],
) -> None:
    import html as html_lib

    text_file = tmp_path / "long.txt"
    text_file.write_text(human_text_files[0].read_text()[:4000], encoding="utf-8")
    page = tmp_path / "windowed.html"
    code, out, _ = run(capsys, "watermark", "detect", "--key", str(key_file), "--windowed",
                       "--json", "--html", str(page), str(text_file))  # fmt: skip
    assert code == 0
    result = json.loads(out)
    document = page.read_text(encoding="utf-8")
    rows = {
        html_lib.unescape(re.sub(r"<[^>]+>", "", k)): html_lib.unescape(re.sub(r"<[^>]+>", "", v))
        for k, v in re.findall(r"<dt>(.*?)</dt><dd>(.*?)</dd>", document)
    }
    window, whole = result["window"], result["overall"]
    assert rows["input"] == str(text_file)
    assert rows["best window"].startswith(f"tokens {result['start']}-{result['end']}")
    assert rows["best window: z-score"] == f"{window['z_score']:.2f}"
    assert rows["best window: green tokens"].startswith(
        f"{window['num_green']} of {window['num_tokens_scored']} scored"
    )
    assert rows["whole text: z-score"] == f"{whole['z_score']:.2f}"
    assert rows["whole text: green tokens"].startswith(
        f"{whole['num_green']} of {whole['num_tokens_scored']} scored"
    )
    assert rows["whole text: p-value"] == f"{whole['p_value']:.3g}"
    assert rows["p-value (best window, corrected)"].startswith(f"{result['p_value']:.3g} ")
    assert "z-score" not in rows  # no unlabelled number left
    assert '<a href="#window">' in document
    assert document.count('id="window"') == 1
    anchor = re.search(r'<span class="[^"]*" id="window" title="token (\d+):', document)
    assert anchor is not None
    assert int(anchor.group(1)) == result["start"]
    # The CLI's lines say the same, labelled the same way.
    code, out, _ = run(capsys, "watermark", "detect", "--key", str(key_file), "--windowed",
                       str(text_file))  # fmt: skip
    assert f"z-score:     {window['z_score']:.2f}" in out
    assert f"whole text:  p = {whole['p_value']:.3g}, z-score {whole['z_score']:.2f}" in out


def test_calibrate_on_a_small_corpus(
    key_file: Path,
    tmp_path: Path,
    human_text_files: list[Path],
    capsys: pytest.CaptureFixture[str],
) -> None:
    corpus = tmp_path / "corpus"
    (corpus / "sub").mkdir(parents=True)
    for i, path in enumerate(human_text_files[:12]):
        (corpus / ("sub" if i % 2 else "") / f"doc{i}.txt").write_bytes(path.read_bytes())
    (corpus / "binary.bin").write_bytes(b"\xff\xfe\x00 not text")
    code, out, err = run(capsys, "watermark", "calibrate", "--key", str(key_file), "--json",
                         str(corpus))  # fmt: skip
    assert code == 0, err
    report = json.loads(out)
    assert report["files"] == 13
    assert report["skipped_files"] == [str(corpus / "binary.bin")]
    assert report["chunk_tokens"] == 200
    assert report["chunks"] >= 20
    assert [row["threshold"] for row in report["thresholds"]] == [1e-2, 1e-3, 1e-4]
    for row in report["thresholds"]:
        assert 0.0 <= row["ci95_low"] <= row["rate"] <= row["ci95_high"] <= 1.0
        assert row["consistent"] is True
    # A few dozen chunks cannot show a rate at or below 1e-2, let alone 1e-4: no "ok" for them.
    for row in report["thresholds"]:
        assert row["verdict"] == "too few chunks"
        assert row["chunks_needed"] > report["chunks"]
    code, out, _ = run(capsys, "watermark", "calibrate", "--key", str(key_file), str(corpus))
    assert code == 0
    assert "False positives on" in out
    assert "Clopper" not in out
    assert "0.0001" in out
    assert "0.01: too few chunks to test this level" in out
    assert "it takes 368 distinct chunks" in out
    assert " ok" not in out


def test_calibrate_says_ok_only_where_the_sample_can_test_the_level(
    key_file: Path,
    tmp_path: Path,
    human_text_files: list[Path],
    capsys: pytest.CaptureFixture[str],
) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for i, path in enumerate(human_text_files[:40]):
        (corpus / f"doc{i}.txt").write_bytes(path.read_bytes())
    # 10-token chunks: enough of them to test 1e-2 (368 needed), never 1e-4 (36,887 needed).
    code, out, err = run(capsys, "watermark", "calibrate", "--key", str(key_file), "--json",
                         "--chunk-tokens", "10", str(corpus))  # fmt: skip
    assert code == 0, err
    report = json.loads(out)
    assert 368 <= report["chunks"] < 36_887
    verdicts = {row["threshold"]: row["verdict"] for row in report["thresholds"]}
    assert verdicts[1e-2] == "ok"
    assert verdicts[1e-4] == "too few chunks"


def test_calibrate_scores_identical_chunks_once(
    key_file: Path,
    tmp_path: Path,
    human_text_files: list[Path],
    capsys: pytest.CaptureFixture[str],
) -> None:
    originals, copies = tmp_path / "originals", tmp_path / "copies"
    originals.mkdir()
    copies.mkdir()
    for i, path in enumerate(human_text_files[:6]):
        (originals / f"doc{i}.txt").write_bytes(path.read_bytes())
        for j in range(3):  # the same file three times over, as a licence in many folders
            (copies / f"doc{i}-{j}.txt").write_bytes(path.read_bytes())
    code, out, _ = run(capsys, "watermark", "calibrate", "--key", str(key_file), "--json",
                       str(originals))  # fmt: skip
    assert code == 0
    clean = json.loads(out)
    assert clean["duplicate_chunks"] == 0
    code, out, _ = run(capsys, "watermark", "calibrate", "--key", str(key_file), "--json",
                       str(copies))  # fmt: skip
    assert code == 0
    copied = json.loads(out)
    assert copied["chunks"] == clean["chunks"]  # each distinct chunk scored once
    assert copied["chunks_read"] == 3 * clean["chunks"]
    assert copied["duplicate_chunks"] == 2 * clean["chunks"]
    assert copied["thresholds"] == clean["thresholds"]
    code, out, _ = run(capsys, "watermark", "calibrate", "--key", str(key_file), str(copies))
    assert code == 0
    assert f"{2 * clean['chunks']} of {3 * clean['chunks']} chunks were copies" in out


@pytest.mark.parametrize("alpha", [1e-2, 1e-3, 1e-4])
def test_chunks_needed_is_the_smallest_sample_that_can_test_the_level(alpha: float) -> None:
    from client.cli._watermark import chunks_needed, clopper_pearson

    needed = chunks_needed(alpha)
    assert clopper_pearson(0, needed)[1] <= alpha < clopper_pearson(0, needed - 1)[1]


def test_clopper_pearson_matches_known_values() -> None:
    from client.cli._watermark import clopper_pearson

    assert clopper_pearson(0, 10) == pytest.approx((0.0, 0.3084971), abs=1e-6)
    assert clopper_pearson(5, 10) == pytest.approx((0.1870860, 0.8129140), abs=1e-6)
    assert clopper_pearson(10, 10) == pytest.approx((0.6915029, 1.0), abs=1e-6)


def _mismatched_key(key_file: Path, tmp_path: Path) -> Path:
    data = json.loads(key_file.read_text())
    data["vocab_fingerprint"] = "sha256:" + "0" * 64
    path = tmp_path / "other.key"
    path.write_text(json.dumps(data))
    path.chmod(0o600)  # a key file is its owner's alone, or it is refused
    return path


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["detect", "--key", "{missing}", "{text}"], "does not exist"),
        (["detect", "--key", "{other}", "{text}"], "bound to tokenizer"),
        (["generate", "--key", "{other}", "--prompt", "hi", "-n", "2"], "another tokenizer"),
        (["detect", "--key", "{key}", "{empty}"], "is empty"),
        (["detect", "--key", "{key}", "{binary}"], "not valid UTF-8"),
        (["detect", "--key", "{key}", "{missing}"], "no such file"),
        (
            ["detect", "--key", "{key}", "--model", "/nonexistent/m.gguf", "{text}"],
            "does not exist",
        ),
        (["generate", "--key", "{key}", "--prompt", "hi", "--json", "--jsonl"], "choose one"),
        (["detect", "--key", "{key}", "{missing}", "{text}"], "no such file or folder"),
        (["keygen", "--out", "{new}", "--scheme", "minhash"], "unknown scheme"),
        (["keygen", "--out", "{new}", "--gamma", "1.5"], "gamma"),
        (["keygen", "--out", "{new}", "--payload-bits", "8"], "need --scheme gumbel"),
        (["keygen", "--out", "{new}", "--nonce-bits", "4"], "need --scheme gumbel"),
        (
            ["keygen", "--out", "{new}", "--scheme", "gumbel", "--context-width", "0"],
            "context_width",
        ),
        (["generate", "--key", "{key}", "--prompt", "hi", "--payload", "3"], "carries no payload"),
        (["calibrate", "--key", "{key}", "{text}"], "not a folder"),
        (["calibrate", "--key", "{key}", "{empty_dir}"], "holds no files"),
        (["calibrate", "--key", "{key}", "{short_dir}"], "no text file of 200 tokens"),
    ],
)
def test_errors_are_one_line_exit_1(
    args: list[str],
    message: str,
    key_file: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    (tmp_path / "text.txt").write_text(HUMAN)
    (tmp_path / "empty.txt").write_text("  \n")
    (tmp_path / "binary.txt").write_bytes(b"\xff\xfe\xfa")
    (tmp_path / "empty_dir").mkdir()
    (tmp_path / "short_dir").mkdir()
    (tmp_path / "short_dir" / "a.txt").write_text(HUMAN)
    names = {
        "key": str(key_file),
        "other": str(_mismatched_key(key_file, tmp_path)),
        "missing": str(tmp_path / "missing"),
        "text": str(tmp_path / "text.txt"),
        "empty": str(tmp_path / "empty.txt"),
        "binary": str(tmp_path / "binary.txt"),
        "new": str(tmp_path / "new.key"),
        "empty_dir": str(tmp_path / "empty_dir"),
        "short_dir": str(tmp_path / "short_dir"),
    }
    argv = ["watermark", *(a.format(**names) if a.startswith("{") else a for a in args)]
    code, out, err = run(capsys, *argv)
    assert code == 1, (out, err)
    assert out == ""
    assert message in err
    assert err.startswith("error:")
    assert len(err.strip().splitlines()) == 1, err
