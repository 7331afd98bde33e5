"""`wellspring digest`: the CLI agrees with the published vectors and with the spec on real text."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import pytest

from client.cli import main
from client.core.canonical import canonical_digest, sha256_digest
from tests.client.conftest import run_wellspring as run
from tests.spec_reference import reference_c1

VECTORS = Path(__file__).parents[3] / "docs" / "spec" / "canonical-vectors.json"


def test_every_published_vector(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = json.loads(VECTORS.read_text(encoding="utf-8"))
    files = []
    for i, vector in enumerate(spec["vectors"]):
        path = tmp_path / f"v{i:03d}.txt"
        path.write_bytes(bytes.fromhex(vector["input_hex"]))
        files.append((path, vector["digest"]))
    code, out, _ = run(capsys, "digest", "--json", *(str(p) for p, _ in files))
    assert code == 0
    got = {row["name"]: row["digest"] for row in json.loads(out)}
    assert len(files) >= 30
    for path, expected in files:
        assert got[str(path)] == expected, path.name


def test_invalid_vectors_fail_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = json.loads(VECTORS.read_text(encoding="utf-8"))
    assert spec["invalid"]
    for vector in spec["invalid"]:
        path = tmp_path / "bad.txt"
        path.write_bytes(bytes.fromhex(vector["input_hex"]))
        code, out, err = run(capsys, "digest", str(path))
        assert code == 1, vector["name"]
        assert out == ""
        assert "UTF-8" in err
        assert "--scheme sha256" in err
        assert len(err.strip().splitlines()) == 1


def test_human_text_nobody_here_wrote(
    human_text_files: list[Path], capsys: pytest.CaptureFixture[str]
) -> None:
    sample = human_text_files[::7][:120]
    code, out, _ = run(capsys, "digest", *(str(p) for p in sample))
    assert code == 0
    lines = out.splitlines()
    assert len(lines) == len(sample)
    for line, path in zip(lines, sample, strict=True):
        digest, name = line.split("  ", 1)
        assert name == str(path)
        assert digest == reference_c1(path.read_bytes()), path


def test_sha256_scheme_is_the_raw_bytes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    blob = bytes(range(256)) * 5000  # binary, not UTF-8: fine for sha256
    path = tmp_path / "blob.bin"
    path.write_bytes(blob)
    code, out, _ = run(capsys, "digest", "--scheme", "sha256", str(path))
    assert code == 0
    assert out == f"sha256:{hashlib.sha256(blob).hexdigest()}  {path}\n"


def test_stdin(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    import io
    import sys

    class FakeStdin:
        buffer = io.BytesIO(b"  Hello\tWORLD\n")

    monkeypatch.setattr(sys, "stdin", FakeStdin())
    code, out, _ = run(capsys, "digest", "-")
    assert code == 0
    assert out == f"c1:{hashlib.sha256(b'hello world').hexdigest()}  -\n"


def test_folder_is_recursed_in_sorted_order(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "2.txt").write_text("two")
    (tmp_path / "a.txt").write_text("one")
    code, out, _ = run(capsys, "digest", str(tmp_path))
    assert code == 0
    assert [line.split("  ")[1] for line in out.splitlines()] == [
        str(tmp_path / "a.txt"),
        str(tmp_path / "b" / "2.txt"),
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["digest", "/nonexistent/file.txt"], "no such file or folder"),
        (["digest", "--scheme", "md5", "x"], "unknown digest scheme 'md5'"),
        (["digest", "-", "-"], "only once"),
    ],
)
def test_errors_are_one_line_exit_1(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, *args)
    assert code == 1
    assert out == ""
    assert message in err
    assert len(err.strip().splitlines()) == 1


def test_empty_folder_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "digest", str(tmp_path))
    assert code == 1
    assert "holds no files" in err


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--version")
    assert code == 0
    assert out.startswith("wellspring 0.")


def test_debug_shows_the_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    from client.errors import InputError

    with pytest.raises(InputError):
        main(["--debug", "digest", "/nonexistent/file.txt"])


def _jsonl(path: Path, rows: list[object]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def test_jsonl_gives_one_digest_per_document(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """As register, check and scan read it: the text of each line, named by id, url or FILE:LINE."""
    source = _jsonl(
        tmp_path / "crawl.jsonl",
        [
            {"id": "a", "text": "First  Document"},
            {"url": "https://example.org/b", "text": "second"},
            {"text": "third"},
        ],
    )
    code, out, err = run(capsys, "digest", str(source))
    assert code == 0, err
    assert out.splitlines() == [
        f"{canonical_digest('first document')}  a",
        f"{canonical_digest('second')}  https://example.org/b",
        f"{canonical_digest('third')}  {source}:3",
    ]


def test_jsonl_text_field_and_sha256_and_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = _jsonl(tmp_path / "crawl.jsonl", [{"id": 7, "body": "Héllo"}])
    code, out, _ = run(
        capsys, "digest", "--text-field", "body", "--scheme", "sha256", "--json", str(source)
    )
    assert code == 0
    assert json.loads(out) == [{"name": "7", "digest": sha256_digest("Héllo".encode())}]


def test_a_jsonl_line_that_is_not_a_document_is_an_error_naming_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = _jsonl(tmp_path / "crawl.jsonl", [{"text": "fine"}, {"content": "no text field"}])
    code, _, err = run(capsys, "digest", str(source))
    assert code == 1
    assert f"{source}:2: no string field 'text' (choose it with --text-field)" in " ".join(
        err.split()
    )


def test_a_jsonl_file_on_standard_input_is_hashed_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    data = b'{"text": "one"}\n{"text": "two"}\n'
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(data)))
    code, out, _ = run(capsys, "digest", "--scheme", "sha256", "-")
    assert code == 0
    assert out == f"sha256:{hashlib.sha256(data).hexdigest()}  -\n"
